//! CORS for the HTTP transports: pages on another origin reach them with `XMLHttpRequest`
//! (pusher-js) or `EventSource`. pusher-js sends `Content-Type: application/json` on every
//! request, so a browser preflights each one (the `t`/`n` parameters make every URL new, so
//! the preflight cache never hits). No credentials are involved (pusher-js never sets
//! `withCredentials`), so `*` suffices when the app allows every origin; an app with
//! `allowed_origins` gets its origin echoed, or 403.

use crate::app::App;
use crate::http1::response::Response;

/// The CORS header lines for a response to `origin`, or the 403 that refuses it. A request
/// without `Origin` (not a browser, or same-origin) is always allowed, as for WebSockets.
pub fn allow(app: &App, origin: Option<&str>) -> Result<String, Response> {
    let Some(origin) = origin else {
        return Ok(String::new());
    };
    if app.allowed_origins.is_empty() {
        return Ok(ANY.into());
    }
    if app
        .allowed_origins
        .iter()
        .any(|a| a.eq_ignore_ascii_case(origin))
    {
        return Ok(format!(
            "Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n"
        ));
    }
    Err(Response::error(403, "Origin not allowed"))
}

/// Any origin may read the answer.
pub const ANY: &str = "Access-Control-Allow-Origin: *\r\n";

/// What a preflight allows, beside the origin.
const ALLOWED: &str = "Access-Control-Allow-Methods: OPTIONS, GET, POST\r\nAccess-Control-Allow-Headers: Content-Type, Last-Event-ID, X-Requested-With\r\nAccess-Control-Max-Age: 86400\r\n";

/// The answer to a preflight (`OPTIONS`).
pub fn preflight(app: &App, origin: Option<&str>) -> Response {
    match allow(app, origin) {
        Err(refused) => refused,
        Ok(headers) => {
            let mut r = Response::json(204, "");
            r.extra_headers = headers;
            r.extra_headers.push_str(ALLOWED);
            r
        }
    }
}

/// The answer to a preflight for an unknown app key: allowed, so that the page reads the
/// refusal that follows (the origin header is added by the caller).
pub fn preflight_any() -> Response {
    let mut r = Response::json(204, "");
    r.extra_headers.push_str(ALLOWED);
    r
}

/// `resp` with the CORS headers of `origin` (unless refused, which it then is).
pub fn with(app: &App, origin: Option<&str>, mut resp: Response) -> Response {
    match allow(app, origin) {
        Ok(h) => {
            resp.extra_headers.push_str(&h);
            resp
        }
        Err(refused) => refused,
    }
}
