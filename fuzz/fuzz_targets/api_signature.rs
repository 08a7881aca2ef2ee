//! HTTP API signature checking (`http::auth::verify_at`) on a fuzzed request: the head goes
//! through the real parser, the rest of the input is the body. Must never panic, and must
//! only accept what a signature over it allows (checked by the seeds, which are signed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_engine::app::{App, Apps};
use raptor_engine::config::Config;
use raptor_engine::http::auth::verify_at;
use raptor_engine::http::request::parse_head;
use std::sync::{Arc, OnceLock};

/// The app of the Pusher documentation's signature example (the seeds are signed with it).
const APP: &str =
    "[[apps]]\nid = \"3\"\nkey = \"278d425bdf160c739803\"\nsecret = \"7ad3773142a6692b25b8\"\n";
/// `auth_timestamp` of the seeds, so they pass the ±600 s window and reach the HMAC.
const NOW: i64 = 1353088179;

fn app() -> &'static Arc<App> {
    static APPS: OnceLock<Apps> = OnceLock::new();
    let apps = APPS.get_or_init(|| {
        let cfg = Config::from_toml(APP, "fuzz").expect("valid config");
        Apps::new(&cfg.apps)
    });
    &apps.list[0]
}

fuzz_target!(|data: &[u8]| {
    let Ok(Some((mut req, n))) = parse_head(data, 8 * 1024) else {
        return;
    };
    req.body = data[n..].to_vec();
    let _ = verify_at(app(), &req, NOW);
});
