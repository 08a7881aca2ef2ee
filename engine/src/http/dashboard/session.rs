//! Admin credentials: the password, and the stateless session cookie a login gives.
//!
//! A session is `v1.<expiry unix secs>.<hex HMAC-SHA256(key, "v1.<expiry>")>` under a key
//! made at start: any shard can check it without shared state, and a restart ends every
//! session. Comparisons are constant-time (`subtle`), of digests, so neither a password nor
//! its length leaks through timing.
//!
//! The cookie's name carries a tag of the key (`raptor_admin_<8 hex>`): browsers keep one
//! cookie per host and name whatever the port, so with one name, logging in to a second
//! node on the same host (a test cluster, a metrics listener) would replace the first
//! node's session. The key is random rather than derived from the password on purpose: a
//! stolen cookie must not allow guessing the password offline.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The start of the cookie's name.
pub const COOKIE_PREFIX: &str = "raptor_admin_";

pub struct Auth {
    password: [u8; 32],
    key: [u8; 32],
    session_secs: u64,
    cookie: String,
}

impl Auth {
    /// `password`: the configured one; `key`: random, made at start.
    pub fn new(password: &str, key: [u8; 32], session_secs: u64) -> Auth {
        let tag = Sha256::digest(key);
        Auth {
            password: Sha256::digest(password.as_bytes()).into(),
            key,
            session_secs,
            cookie: format!("{COOKIE_PREFIX}{}", hex::encode(&tag[..4])),
        }
    }

    /// This node's (and run's) cookie name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    pub fn password_matches(&self, given: &str) -> bool {
        bool::from(Sha256::digest(given.as_bytes()).ct_eq(&self.password))
    }

    pub fn session_secs(&self) -> u64 {
        self.session_secs
    }

    /// A session valid for `session_secs` from `now` (unix seconds).
    pub fn issue(&self, now: u64) -> String {
        let body = format!("v1.{}", now + self.session_secs);
        format!("{body}.{}", hex::encode(self.mac(&body)))
    }

    /// Is `token` a session this node issued that has not expired at `now`?
    pub fn verify(&self, token: &str, now: u64) -> bool {
        let Some((body, sig)) = token.rsplit_once('.') else {
            return false;
        };
        let Some(expiry) = body.strip_prefix("v1.").and_then(|e| e.parse::<u64>().ok()) else {
            return false;
        };
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        let valid = bool::from(self.mac(body).as_slice().ct_eq(sig.as_slice()));
        valid && now < expiry
    }

    fn mac(&self, body: &str) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(body.as_bytes());
        m.finalize().into_bytes().into()
    }
}

/// Now, in unix seconds (sessions' clock).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_until_they_expire_and_only_under_their_key() {
        let a = Auth::new("correct-horse-battery", [7; 32], 3600);
        let t = a.issue(1000);
        assert!(t.starts_with("v1.4600."));
        assert!(a.verify(&t, 1000) && a.verify(&t, 4599));
        assert!(!a.verify(&t, 4600), "expired");
        let other = Auth::new("correct-horse-battery", [8; 32], 3600);
        assert!(!other.verify(&t, 1000), "another node's (or run's) key");
        // A longer expiry with the old signature does not verify.
        let forged = t.replacen("v1.4600", "v1.99999", 1);
        assert!(!a.verify(&forged, 1000));
        for junk in ["", "v1", "v1.x.y", "v2.4600.00", "v1.4600.zz"] {
            assert!(!a.verify(junk, 1000), "{junk}");
        }
    }

    #[test]
    fn password_and_cookie_parsing() {
        let a = Auth::new("correct-horse-battery", [7; 32], 3600);
        assert!(a.password_matches("correct-horse-battery"));
        assert!(!a.password_matches("correct-horse-batter"));
        assert!(!a.password_matches(""));
        let name = a.cookie_name();
        assert!(name.starts_with(COOKIE_PREFIX) && name.len() == COOKIE_PREFIX.len() + 8);
        assert_ne!(
            name,
            Auth::new("correct-horse-battery", [8; 32], 1).cookie_name()
        );
        let header = format!("a=1; {name}=v1.2.ab; b=2");
        assert_eq!(cookie(&header, name), Some("v1.2.ab"));
        assert_eq!(cookie(&format!("x{name}=1"), name), None);
    }
}
