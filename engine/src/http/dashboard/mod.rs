//! The dashboard (`/dashboard`) and the admin JSON API (`/admin/api/*`), docs/dashboard.md.
//!
//! [`Dashboard`] is the node's one shared value for it (immutable but for an atomic swap
//! and a counter): the credentials, and the [`board::Board`] the sampler on shard 0 makes
//! once a second. Handlers on any shard read the latest board; so the dashboard's cost does
//! not grow with its viewers, and no shard state is shared.

pub mod api;
pub mod board;
pub mod history;
pub mod session;
pub mod stream;

use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Open `/admin/api/stream` connections a node serves at most.
pub const MAX_STREAMS: usize = 64;

/// Wrong admin passwords (login or Bearer) a node checks per second at most; beyond it every
/// password check is refused with 429 until the second is over, right or wrong, so guessing
/// runs at this rate whatever the connections and keep-alive requests.
pub const MAX_FAILURES_PER_SEC: u64 = 5;

pub struct Dashboard {
    pub auth: session::Auth,
    board: ArcSwapOption<board::Board>,
    /// Open event streams (bounded by [`MAX_STREAMS`]).
    pub streams: AtomicUsize,
    pub started: Instant,
    /// Failed password checks in the current second: its start (whole seconds since
    /// `started`) in the high 32 bits, the count in the low 32. One word, one CAS, any shard.
    failures: AtomicU64,
}

impl Dashboard {
    /// From `[admin]`; `None` when the dashboard is off. Without a configured password one
    /// is made and logged once.
    pub fn from_config(cfg: &crate::config::AdminConfig) -> Option<Arc<Dashboard>> {
        if !cfg.enabled {
            return None;
        }
        let password = match &cfg.password {
            Some(p) => p.expose().to_owned(),
            None => {
                let p = random_password();
                tracing::warn!(
                    "admin: no admin.password set; generated for this run: {p} (the dashboard is at /dashboard on the metrics listener only; set admin.password or admin.password_file to keep one and serve it on the public port too)"
                );
                p
            }
        };
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source");
        Some(Arc::new(Dashboard {
            auth: session::Auth::new(&password, key, cfg.session_hours * 3600),
            board: ArcSwapOption::empty(),
            streams: AtomicUsize::new(0),
            started: Instant::now(),
            failures: AtomicU64::new(0),
        }))
    }

    /// May a password be checked now? False while [`MAX_FAILURES_PER_SEC`] wrong ones came
    /// in this second.
    pub fn may_check_password(&self) -> bool {
        let now = self.started.elapsed().as_secs();
        let cur = self.failures.load(Ordering::Relaxed);
        cur >> 32 != now || cur & 0xffff_ffff < MAX_FAILURES_PER_SEC
    }

    /// Counts a wrong password.
    pub fn note_failure(&self) {
        let now = self.started.elapsed().as_secs();
        let _ = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                Some(if cur >> 32 == now {
                    cur + 1
                } else {
                    (now << 32) | 1
                })
            });
    }

    /// The latest board, once the sampler made one.
    pub fn board(&self) -> Option<Arc<board::Board>> {
        self.board.load_full()
    }

    pub(super) fn set_board(&self, b: board::Board) {
        self.board.store(Some(Arc::new(b)));
    }
}

/// 24 characters from a 62-letter alphabet (about 143 bits), from the OS random source.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS random source");
        // 248 = 4 × 62: rejecting bytes above it keeps every letter equally likely.
        for x in b.iter().filter(|&&x| x < 248).take(24 - out.len()) {
            out.push(ALPHABET[usize::from(*x) % 62] as char);
        }
    }
    out
}

/// The page and its two assets, compiled into the binary.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "" | "index.html" => Some(("text/html; charset=utf-8", include_str!("index.html"))),
        "app.js" => Some(("text/javascript; charset=utf-8", include_str!("app.js"))),
        "app.css" => Some(("text/css; charset=utf-8", include_str!("app.css"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = super::random_password();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, super::random_password());
    }
}
