//! The operator surface's one guard. `/metrics`, `/stats` and `POST /admin/reload` answer
//! only after [`Access::admit`]; the dashboard and admin API (`/dashboard`, `/admin/api/*`)
//! only after [`admit_admin`], which takes the admin credential instead (the password or
//! its session cookie, docs/dashboard.md). [`Access::admit`] knows two ways in
//! (docs/security.md):
//!
//! - the bearer token (`metrics.token`): `Authorization: Bearer <token>`, on either listener,
//!   compared in constant time;
//! - the metrics listener (`metrics.bind`) while no token is configured: whoever can reach
//!   that address is trusted, so it belongs on loopback or a network only operators reach.
//!
//! Deliberately absent: "the peer is loopback" (behind nginx or Caddy on the same host every
//! client is), and an app's API signature (it speaks for one tenant, and these figures are
//! node-wide).

use super::request::Request;
use super::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which listener a connection came in on; it decides what the connection may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `bind`: WebSockets, the app API and `/health`; operator routes only with the token.
    Public,
    /// `metrics.bind`: `/metrics`, `/stats`, `POST /admin/reload`, `/health`, and the
    /// dashboard and admin API (their own credential); nothing else (404).
    Metrics,
}

/// The configured token as the guard keeps it: its SHA-256. Comparing digests takes the same
/// time whatever a client sends, its length included.
#[derive(Clone, Copy)]
pub struct OperatorToken([u8; 32]);

impl OperatorToken {
    pub fn new(token: &str) -> OperatorToken {
        OperatorToken(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, given: &str) -> bool {
        bool::from(Sha256::digest(given.as_bytes()).ct_eq(&self.0))
    }
}

/// What one listener lets through to the operator routes.
pub struct Access {
    pub surface: Surface,
    /// `metrics.token`; `None`: the public port refuses every operator request, and the
    /// metrics listener admits every one.
    token: Option<OperatorToken>,
    /// The dashboard and admin API, with their own credential (`[admin]`; docs/dashboard.md);
    /// `None` when off (their routes are 404).
    pub dashboard: Option<std::sync::Arc<super::dashboard::Dashboard>>,
}

/// `WWW-Authenticate` for a request without credentials (RFC 6750 §3: no error code).
const CHALLENGE: &str = "WWW-Authenticate: Bearer realm=\"raptor\"\r\n";
/// `WWW-Authenticate` for a wrong token.
const CHALLENGE_INVALID: &str =
    "WWW-Authenticate: Bearer realm=\"raptor\", error=\"invalid_token\"\r\n";

impl Access {
    pub fn new(surface: Surface, token: Option<OperatorToken>) -> Access {
        Access {
            surface,
            token,
            dashboard: None,
        }
    }

    /// The same, serving the dashboard and admin API too.
    pub fn with_dashboard(
        mut self,
        dashboard: Option<std::sync::Arc<super::dashboard::Dashboard>>,
    ) -> Access {
        self.dashboard = dashboard;
        self
    }

    /// May this request reach an operator route? `Err` is the 401 to send, with a JSON body
    /// and a `WWW-Authenticate: Bearer` challenge.
    pub fn admit(&self, req: &Request) -> Result<(), Response> {
        let given = req.authorization.as_ref().and_then(|a| bearer(a.expose()));
        match (self.token, self.surface, given) {
            (None, Surface::Metrics, _) => Ok(()),
            (Some(t), _, Some(g)) if t.matches(g) => Ok(()),
            (_, _, None) => Err(refusal(
                "authentication required: send Authorization: Bearer <metrics.token>",
                CHALLENGE,
            )),
            (_, _, Some(_)) => Err(refusal("invalid bearer token", CHALLENGE_INVALID)),
        }
    }
}

/// May this request reach the admin API? The admin password as a Bearer token (scripts), or
/// a valid session cookie; a state-changing request with the cookie must also prove it is
/// not cross-site ([`not_cross_site`]). Never the operator token: it reads figures, the
/// admin API also acts.
pub fn admit_admin(dash: &super::dashboard::Dashboard, req: &Request) -> Result<(), Response> {
    // Only a Bearer credential is ours: a proxy's `Authorization: Basic` (nginx auth_basic
    // forwards it) falls through to the session cookie.
    let given = req.authorization.as_ref().and_then(|a| bearer(a.expose()));
    if let Some(token) = given {
        return check_password(dash, token);
    }
    let session = req
        .admin
        .as_ref()
        .and_then(|a| a.cookie.as_ref())
        .and_then(|c| super::dashboard::session::cookie(c.expose(), dash.auth.cookie_name()));
    match session {
        Some(s) if dash.auth.verify(s, super::dashboard::session::unix_secs()) => {
            not_cross_site(req)
        }
        _ => Err(Response::error(401, "authentication required")),
    }
}

/// One admin password check, within the node's failure rate (429 beyond it).
pub fn check_password(dash: &super::dashboard::Dashboard, given: &str) -> Result<(), Response> {
    if !dash.may_check_password() {
        let mut r = Response::error(429, "too many wrong passwords; retry in a second");
        r.extra_headers.push_str("Retry-After: 1\r\n");
        return Err(r);
    }
    if dash.auth.password_matches(given) {
        Ok(())
    } else {
        dash.note_failure();
        Err(Response::error(401, "invalid credentials"))
    }
}

/// For cookie-authenticated requests that change something (anything but GET): the
/// dashboard's own header, which a cross-site form cannot send and no CORS answer of ours
/// lets a script send, and an `Origin` (when sent) naming this `Host`.
pub fn not_cross_site(req: &Request) -> Result<(), Response> {
    if req.method == "GET" {
        return Ok(());
    }
    let admin = req.admin.as_deref();
    let same_origin = match (&req.origin, admin.and_then(|a| a.host.as_ref())) {
        (None, _) => true,
        (Some(o), Some(h)) => o
            .split_once("://")
            .is_some_and(|(_, host)| host.eq_ignore_ascii_case(h)),
        (Some(_), None) => false,
    };
    if admin.is_some_and(|a| a.csrf_header) && same_origin {
        Ok(())
    } else {
        Err(Response::error(403, "cross-site request refused"))
    }
}

fn refusal(message: &str, challenge: &str) -> Response {
    let mut r = Response::error(401, message);
    r.extra_headers.push_str(challenge);
    r
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const TOKEN: &str = "0123456789abcdef0123";

    fn req(auth: Option<&str>) -> Request {
        Request {
            authorization: auth.map(Secret::new),
            ..Request::default()
        }
    }

    fn status(a: &Access, auth: Option<&str>) -> Result<(), (u16, String, String)> {
        a.admit(&req(auth)).map_err(|r| {
            (
                r.status,
                String::from_utf8(r.body).unwrap(),
                r.extra_headers,
            )
        })
    }

    #[test]
    fn public_port_needs_the_token_and_has_nothing_else_to_offer() {
        for token in [None, Some(OperatorToken::new(TOKEN))] {
            let a = Access::new(Surface::Public, token);
            let (code, body, challenge) = status(&a, None).unwrap_err();
            assert_eq!(code, 401);
            assert_eq!(
                body,
                r#"{"error":"authentication required: send Authorization: Bearer <metrics.token>"}"#
            );
            assert_eq!(challenge, CHALLENGE);
            for wrong in ["Bearer nope", "Basic dXNlcjpwYXNz", "Bearer ", TOKEN] {
                let (code, _, _) = status(&a, Some(wrong)).unwrap_err();
                assert_eq!(code, 401, "{wrong}");
            }
            let (_, body, challenge) = status(&a, Some("Bearer nope")).unwrap_err();
            assert_eq!(body, r#"{"error":"invalid bearer token"}"#);
            assert_eq!(challenge, CHALLENGE_INVALID);
        }
        let a = Access::new(Surface::Public, Some(OperatorToken::new(TOKEN)));
        for right in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER  {TOKEN} "),
        ] {
            assert!(status(&a, Some(&right)).is_ok(), "{right}");
        }
        // A prefix or an extension of the token is not the token.
        for near in [&TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}0")] {
            assert!(status(&a, Some(&format!("Bearer {near}"))).is_err());
        }
    }

    #[test]
    fn metrics_listener_is_open_without_a_token_and_guarded_with_one() {
        let open = Access::new(Surface::Metrics, None);
        assert!(status(&open, None).is_ok());
        assert!(status(&open, Some("Bearer anything")).is_ok());
        let guarded = Access::new(Surface::Metrics, Some(OperatorToken::new(TOKEN)));
        assert_eq!(status(&guarded, None).unwrap_err().0, 401);
        assert_eq!(status(&guarded, Some("Bearer nope")).unwrap_err().0, 401);
        assert!(status(&guarded, Some(&format!("Bearer {TOKEN}"))).is_ok());
    }
}
