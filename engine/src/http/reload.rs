//! `POST /admin/reload`: the operator's reload (the same as SIGHUP, [`crate::reload`]), with
//! its outcome in the answer instead of the log.
//!
//! Behind the operator guard like `/metrics`. It changes state, so a request carrying an
//! `Origin` header is refused (403): browsers send one with every cross-site POST, and
//! operators' tools (curl, systemd's `ExecReload`, scripts) do not. Without this a page the
//! operator visits could make the browser post to a metrics listener on loopback, which
//! needs no token.

use super::request::Request;
use super::response::Response;
use crate::config::ConfigError;
use crate::shard::Shard;

pub async fn reload(shard: &Shard, req: &Request) -> Response {
    if req.origin.is_some() {
        return Response::error(403, "cross-origin requests may not reload the server");
    }
    let Some(reloader) = shard.node.reloader.get().cloned() else {
        return Response::error(503, "the server is still starting");
    };
    // Reading files blocks; keep it off the shard's executor.
    match glommio::executor()
        .spawn_blocking(move || reloader.reload())
        .await
    {
        Ok(report) => match simd_json::to_vec(&report) {
            Ok(body) => Response::json(200, body),
            Err(e) => Response::error(500, &e.to_string()),
        },
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running configuration stays");
            Response::error(
                422,
                &format!("{}; the running configuration stays", answer(&e)),
            )
        }
    }
}

/// The refusal as the answer says it. A TOML syntax error's own text quotes the offending
/// line of the file, which may hold a secret: the answer names the file and where, the log
/// (readable only by the host's operators) has the rest.
fn answer(e: &ConfigError) -> String {
    match e {
        ConfigError::Parse { path, .. } => {
            format!("invalid config file {path}: not valid TOML or an unknown field (the log says where)")
        }
        other => other.to_string(),
    }
}
