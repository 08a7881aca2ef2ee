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
    fn private_channel_vector() {
        assert_eq!(
            sign_hex("7ad3773142a6692b25b8", b"1234.1234:private-foobar"),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }
}
