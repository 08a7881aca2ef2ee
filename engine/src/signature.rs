//! HMAC-SHA256 signatures: the HTTP API request signature, and (later) channel and user auth.
//! All comparisons are constant time.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// `hex(HMAC-SHA256(secret, message))`.
pub fn sign_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key size");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks that `given_hex` is the signature of `message`, in constant time.
pub fn verify_hex(secret: &str, message: &[u8], given_hex: &str) -> bool {
    let expected = sign_hex(secret, message);
    let given = given_hex.as_bytes();
    // Lowercase hex only, like the SDKs send; a length mismatch leaks nothing secret.
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given))
}

/// Checks a client `auth` value `"<key>:<hex signature of string_to_sign>"` for `app_key`.
pub fn verify_client_auth(app_key: &str, secret: &str, auth: &str, string_to_sign: &str) -> bool {
    let Some((key, sig)) = auth.split_once(':') else {
        return false;
    };
    // The key is public; comparing it in variable time leaks nothing.
    key == app_key && verify_hex(secret, string_to_sign.as_bytes(), sig)
}

/// `hex(md5(body))`, the `body_md5` query parameter.
pub fn body_md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The string the HTTP API signs: `METHOD\nPATH\nk=v&...` with every parameter except
/// `auth_signature`, keys lowercased and sorted, values not URL-escaped.
pub fn api_string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut kv: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    kv.sort();
    let query: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// The query parameters that sign an HTTP API request, the client side of
/// `http::auth::verify`: `params`, then `auth_key`, `auth_timestamp`, `auth_version=1.0`,
/// `body_md5` (only with a body, as the Node SDK does) and `auth_signature` last. `path` is
/// the path exactly as it will be sent (percent-encoded), since the server checks the
/// signature over the path it receives. Values are returned unescaped; the caller encodes
/// them into the query string.
pub fn sign_api_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
    timestamp: u64,
) -> Vec<(String, String)> {
    let mut signed = params.to_vec();
    signed.push(("auth_key".into(), key.into()));
    signed.push(("auth_timestamp".into(), timestamp.to_string()));
    signed.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        signed.push(("body_md5".into(), body_md5_hex(body)));
    }
    let to_sign = api_string_to_sign(method, path, &signed);
    signed.push((
        "auth_signature".into(),
        sign_hex(secret, to_sign.as_bytes()),
    ));
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pusher_rest_api_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5_hex(body), "ec365a775a4cd0599faeb73354201b6f");
        let params = vec![
            ("auth_key".to_string(), "278d425bdf160c739803".to_string()),
            ("auth_timestamp".into(), "1353088179".into()),
            ("auth_version".into(), "1.0".into()),
            ("body_md5".into(), "ec365a775a4cd0599faeb73354201b6f".into()),
            ("auth_signature".into(), "ignored".into()),
        ];
        let s = api_string_to_sign("POST", "/apps/3/events", &params);
        assert_eq!(
            sign_hex("7ad3773142a6692b25b8", s.as_bytes()),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        assert!(verify_hex(
            "7ad3773142a6692b25b8",
            s.as_bytes(),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        ));
        assert!(!verify_hex("7ad3773142a6692b25b8", s.as_bytes(), "da45"));
    }

    #[test]
    fn sign_api_request_makes_the_pusher_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let q = sign_api_request(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "POST",
            "/apps/3/events",
            &[],
            body,
            1353088179,
        );
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            [
                ("auth_key", "278d425bdf160c739803"),
                ("auth_timestamp", "1353088179"),
                ("auth_version", "1.0"),
                ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
                (
                    "auth_signature",
                    "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
                ),
            ]
        );
        // A GET: the parameters are signed too, and there is no body_md5.
        let params = [("info".to_string(), "user_count".to_string())];
        let q = sign_api_request("k", "s", "GET", "/apps/1/channels", &params, b"", 1);
        let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "info",
                "auth_key",
                "auth_timestamp",
                "auth_version",
                "auth_signature"
            ]
        );
        let to_sign = api_string_to_sign("GET", "/apps/1/channels", &q);
        assert!(verify_hex("s", to_sign.as_bytes(), &q[4].1));
    }

    #[test]
    fn client_auth_vectors() {
        let (k, s) = ("278d425bdf160c739803", "7ad3773142a6692b25b8");
        let auth = format!("{k}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
        assert!(verify_client_auth(k, s, &auth, "1234.1234:private-foobar"));
        assert!(!verify_client_auth(
            "other",
            s,
            &auth,
            "1234.1234:private-foobar"
        ));
        assert!(!verify_client_auth(k, s, &auth, "1234.1235:private-foobar"));
        assert!(!verify_client_auth(
            k,
            s,
            "nocolon",
            "1234.1234:private-foobar"
        ));
        let user = format!("{k}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
        assert!(verify_client_auth(
            k,
            s,
            &user,
            "1234.1234::user::{\"id\":\"12345\"}"
        ));
        let presence =
            format!("{k}:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
        assert!(verify_client_auth(
            k,
            s,
            &presence,
            "1234.1234:presence-foobar:{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}"
        ));
    }

    #[test]
    fn private_channel_vector() {
        assert_eq!(
            sign_hex("7ad3773142a6692b25b8", b"1234.1234:private-foobar"),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }
}
