//! Pusher signatures: the HTTP API request signature and the channel auth strings.
//!
//! All crypto comes from `hmac`, `sha2` and `md-5`; this module only assembles the
//! strings to sign, exactly as pusher-protocol.md §1.10 and §1.12 describe them.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex of HMAC-SHA256(secret, message).
pub fn hmac_hex(secret: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Lowercase hex MD5 of a request body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// `auth_signature` for an HTTP API request: HMAC of "METHOD\nPATH\nQUERY" where QUERY is
/// every parameter except `auth_signature`, sorted by key, joined as `k=v&...`, unescaped.
pub fn api_signature(secret: &str, method: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params.to_vec();
    sorted.sort_unstable();
    let query = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hmac_hex(secret, &format!("{method}\n{path}\n{query}"))
}

/// The full query string (signature included) for `POST /apps/{app_id}/events`.
pub fn events_query(key: &str, secret: &str, app_id: &str, timestamp: u64, body: &[u8]) -> String {
    let path = format!("/apps/{app_id}/events");
    let timestamp = timestamp.to_string();
    let md5 = body_md5(body);
    let params = [
        ("auth_key", key),
        ("auth_timestamp", timestamp.as_str()),
        ("auth_version", "1.0"),
        ("body_md5", md5.as_str()),
    ];
    let signature = api_signature(secret, "POST", &path, &params);
    format!(
        "auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={md5}&auth_signature={signature}"
    )
}

/// `auth` field for subscribing to a presence channel: `key:hex(HMAC(secret, "socket_id:channel:channel_data"))`.
pub fn presence_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: &str,
) -> String {
    let sig = hmac_hex(secret, &format!("{socket_id}:{channel}:{channel_data}"));
    format!("{key}:{sig}")
}

/// `auth` field for subscribing to a private channel: `key:hex(HMAC(secret, "socket_id:channel"))`.
pub fn private_auth(key: &str, secret: &str, socket_id: &str, channel: &str) -> String {
    let sig = hmac_hex(secret, &format!("{socket_id}:{channel}"));
    format!("{key}:{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    /// pusher-protocol.md §1.12
    #[test]
    fn http_api_test_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let query = events_query(KEY, SECRET, "3", 1353088179, body);
        assert_eq!(
            query,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn api_signature_sorts_params() {
        let a = api_signature(SECRET, "GET", "/p", &[("b", "2"), ("a", "1")]);
        let b = api_signature(SECRET, "GET", "/p", &[("a", "1"), ("b", "2")]);
        assert_eq!(a, b);
        assert_eq!(a, hmac_hex(SECRET, "GET\n/p\na=1&b=2"));
    }

    /// pusher-protocol.md §1.11
    #[test]
    fn presence_auth_test_vector() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        assert_eq!(
            presence_auth(KEY, SECRET, "1234.1234", "presence-foobar", data),
            "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
    }

    /// pusher-protocol.md §1.11
    #[test]
    fn private_auth_test_vector() {
        assert_eq!(
            private_auth(KEY, SECRET, "1234.1234", "private-foobar"),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }
}
