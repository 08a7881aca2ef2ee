//! Verifying a signed HTTP API request exactly as Pusher specifies (protocol doc §1.12):
//! `auth_key`, `auth_timestamp` within ±600 s, `auth_version=1.0`, `body_md5` when a body is
//! present, and `auth_signature` = HMAC-SHA256 over `METHOD\nPATH\nsorted params`, compared in
//! constant time. Both SDK shapes are accepted: the PyPI SDK sends `body_md5` of the empty
//! body on GET (accepted when it matches), and parameter order never matters.

use super::request::Request;
use crate::app::App;
use crate::signature::{api_string_to_sign, body_md5_hex, verify_hex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Accepted clock skew between the publisher and this server.
pub const MAX_SKEW_SECS: u64 = 600;

/// Why a request is refused: always 401, with this text in the JSON body.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing auth_key, auth_timestamp, auth_version or auth_signature")]
    Missing,
    #[error("auth_key does not match the app")]
    WrongKey,
    #[error("auth_version must be 1.0")]
    Version,
    #[error("auth_timestamp is more than 600 s from the server's clock")]
    Stale,
    #[error("body_md5 is missing or does not match the body")]
    BodyMd5,
    #[error("invalid signature")]
    Signature,
}

pub fn verify(app: &App, req: &Request) -> Result<(), AuthError> {
    verify_at(app, req, unix_now())
}

pub fn verify_at(app: &App, req: &Request, now: i64) -> Result<(), AuthError> {
    let key = req.param("auth_key").ok_or(AuthError::Missing)?;
    let ts = req.param("auth_timestamp").ok_or(AuthError::Missing)?;
    let version = req.param("auth_version").ok_or(AuthError::Missing)?;
    let sig = req.param("auth_signature").ok_or(AuthError::Missing)?;
    if key != app.key {
        return Err(AuthError::WrongKey);
    }
    if version != "1.0" {
        return Err(AuthError::Version);
    }
    let ts: i64 = ts.parse().map_err(|_| AuthError::Stale)?;
    // `abs_diff` cannot overflow: `now - ts` on a caller's extreme timestamp would panic in
    // debug builds and, wrapped in release, pass the check for ever.
    if now.abs_diff(ts) > MAX_SKEW_SECS {
        return Err(AuthError::Stale);
    }
    match req.param("body_md5") {
        Some(md5) if md5 != body_md5_hex(&req.body) => return Err(AuthError::BodyMd5),
        None if !req.body.is_empty() => return Err(AuthError::BodyMd5),
        _ => {}
    }
    let to_sign = api_string_to_sign(&req.method, &req.raw_path, &req.query);
    if verify_hex(&app.secret, to_sign.as_bytes(), sig) {
        return Ok(());
    }
    // Some clients sign the decoded path but send it percent-encoded.
    let decoded = super::request::decode(&req.raw_path);
    if decoded != req.raw_path {
        let to_sign = api_string_to_sign(&req.method, &decoded, &req.query);
        if verify_hex(&app.secret, to_sign.as_bytes(), sig) {
            return Ok(());
        }
    }
    Err(AuthError::Signature)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse_query;

    fn app() -> App {
        let apps = crate::app::Apps::new(&[crate::config::AppConfig::new(
            "3",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
        )]);
        std::sync::Arc::try_unwrap(apps.list.into_iter().next().unwrap()).unwrap()
    }

    fn req(query: &str, body: &str) -> Request {
        Request {
            method: "POST".into(),
            raw_path: "/apps/3/events".into(),
            query: parse_query(query),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const Q: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    #[test]
    fn pusher_vector_and_every_refusal() {
        let now = 1353088179;
        assert_eq!(verify_at(&app(), &req(Q, BODY), now), Ok(()));
        // Signature last (Node) or sorted in (Python): order is irrelevant.
        let reordered = "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_version=1.0&auth_timestamp=1353088179&auth_key=278d425bdf160c739803";
        assert_eq!(verify_at(&app(), &req(reordered, BODY), now), Ok(()));
        assert_eq!(
            verify_at(&app(), &req(Q, BODY), now + 601),
            Err(AuthError::Stale)
        );
        assert_eq!(
            verify_at(&app(), &req(Q, BODY), now - 601),
            Err(AuthError::Stale)
        );
        assert_eq!(
            verify_at(&app(), &req(Q, "{}"), now),
            Err(AuthError::BodyMd5)
        );
        assert_eq!(
            verify_at(&app(), &req(&Q.replace("da45", "da46"), BODY), now),
            Err(AuthError::Signature)
        );
        assert_eq!(
            verify_at(&app(), &req(&Q.replace("278d", "278e"), BODY), now),
            Err(AuthError::WrongKey)
        );
        assert_eq!(
            verify_at(&app(), &req(&Q.replace("=1.0", "=2.0"), BODY), now),
            Err(AuthError::Version)
        );
        assert_eq!(
            verify_at(&app(), &req("auth_key=278d425bdf160c739803", BODY), now),
            Err(AuthError::Missing)
        );
        let no_md5 = Q.replace("&body_md5=ec365a775a4cd0599faeb73354201b6f", "");
        assert_eq!(
            verify_at(&app(), &req(&no_md5, BODY), now),
            Err(AuthError::BodyMd5)
        );
    }

    /// A request signed with the app's secret at `ts` (the body's md5 included).
    fn signed_at(ts: i64) -> Request {
        let base = format!(
            "auth_key=278d425bdf160c739803&auth_timestamp={ts}&auth_version=1.0&body_md5={}",
            body_md5_hex(BODY.as_bytes())
        );
        let r = req(&base, BODY);
        let to_sign = api_string_to_sign(&r.method, &r.raw_path, &r.query);
        let sig = crate::signature::sign_hex("7ad3773142a6692b25b8", to_sign.as_bytes());
        req(&format!("{base}&auth_signature={sig}"), BODY)
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic_or_a_pass() {
        let now = 1353088179;
        assert_eq!(verify_at(&app(), &signed_at(now - 600), now), Ok(()));
        // `now - ts` overflows for these: a panic in debug builds; in release, `now - 2^63`
        // wrapped to i64::MIN, whose abs() stays negative, and passed the window.
        for ts in [i64::MIN, now.wrapping_sub(i64::MIN), i64::MAX, -1] {
            assert_eq!(
                verify_at(&app(), &signed_at(ts), now),
                Err(AuthError::Stale),
                "{ts}"
            );
        }
        for now in [i64::MIN, i64::MAX] {
            assert_eq!(
                verify_at(&app(), &signed_at(1353088179), now),
                Err(AuthError::Stale)
            );
        }
    }
}
