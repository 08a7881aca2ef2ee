//! Access tokens (docs/tokens.md): a JWT (HS256, signed with the app's secret, header `kid`
//! = the app's key) naming a user and what it may read and write. The app's backend mints
//! them (or the server through the API, or `raptor token create`); clients present them in
//! `pusher:signin` (`auth`), in a subscription's `auth`, or as `?token=` on the WebSocket URL.
//!
//! Parsing and the signature are `jsonwebtoken`'s (HS256 only: `alg: none` and every other
//! algorithm are refused); this module adds the bounds, the grants (globs over channel
//! names, compiled when a token is verified) and the typed errors clients see.

use globset::{Glob, GlobSet, GlobSetBuilder};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most read and write grants together in one token.
pub const MAX_GRANTS: usize = 100;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Most sessions one token may allow (`uses`).
pub const MAX_USES: u32 = 1000;

/// What a token says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token signs in (its id, as a `pusher:signin` user's `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The user's info (shown to presence members, like `user_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<simd_json::OwnedValue>,
    /// Channels (names or globs) the holder may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// Channels (names or globs) the holder may send client events to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<String>,
    /// Expiry, not-before and issue times, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The token's id: what uses are counted and revocations name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Sessions that may use the token (absent: any number). One session is one client
    /// page: its reconnections are the same use (docs/tokens.md, "Uses").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// A verified token with its grants compiled.
#[derive(Debug, Clone)]
pub struct Token {
    pub claims: Claims,
    read: GlobSet,
    write: GlobSet,
    /// The token as presented, so a connection presenting it again (a subscription's
    /// `auth` for each channel) is answered without verifying and compiling it again.
    pub raw: Box<str>,
}

/// Why a token was refused. The message is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token of another app (kid)")]
    WrongApp,
    #[error("token without kid (the app key)")]
    NoKid,
    #[error("a token with uses needs a jti, and at most {MAX_USES} uses")]
    BadUses,
    #[error("a token with uses is presented at sign-in, where its session is counted")]
    UsesAtSignin,
    #[error("a token without sub signs no one in")]
    NoSub,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token has more than {MAX_GRANTS} grants")]
    TooManyGrants,
    #[error("bad grant pattern: {0}")]
    BadGrant(String),
    #[error("token revoked")]
    Revoked,
    #[error("token used by as many sessions as it allows")]
    UsedUp,
}

/// Seconds since the Unix epoch: the clock tokens are checked against.
pub fn now_secs() -> u64 {
    crate::stats::unix_ms() / 1000
}

/// Does `s` look like a JWT (rather than a Pusher `key:signature`)? Tokens start with the
/// base64 of `{"` and have three dot-separated parts.
pub fn looks_like_token(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|&b| b == b'.').count() == 2
}

/// Signs `claims` for the app with key `key` and secret `secret`.
pub fn mint(key: &str, secret: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.to_string());
    // Signing with an HMAC key and serializable claims cannot fail.
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing")
}

/// A token just made, as the API and `raptor token create` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Minted {
    pub token: String,
    pub jti: String,
    pub exp: u64,
}

/// Makes a token of `claims` for the app (a random `jti` unless given) and checks it as a
/// server of the app would at `now`: a token it would refuse is not made.
pub fn issue(key: &str, secret: &str, mut claims: Claims, now: u64) -> Result<Minted, TokenError> {
    let jti = claims
        .jti
        .get_or_insert_with(|| format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
        .clone();
    let token = mint(key, secret, &claims);
    verify(key, secret, &token, now)?;
    Ok(Minted {
        token,
        jti,
        exp: claims.exp.unwrap_or_default(),
    })
}

/// Verifies `token` for the app (`key`, `secret`) at `now` (seconds since the epoch).
pub fn verify(key: &str, secret: &str, token: &str, now: u64) -> Result<Token, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Malformed(
            "only HS256 tokens are accepted".into(),
        ));
    }
    match header.kid.as_deref() {
        None => return Err(TokenError::NoKid),
        Some(kid) if kid != key => return Err(TokenError::WrongApp),
        Some(_) => {}
    }
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    // Checked below against `now`, so tests and the sweeper share one clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })?;
    let claims = data.claims;
    if claims
        .exp
        .is_some_and(|exp| now > exp.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf)
    {
        return Err(TokenError::NotYetValid);
    }
    // Uses are counted by token id: without one, or with absurdly many, they could not be.
    if claims
        .uses
        .is_some_and(|u| claims.jti.is_none() || u == 0 || u > MAX_USES)
    {
        return Err(TokenError::BadUses);
    }
    if claims.read.len() + claims.write.len() > MAX_GRANTS {
        return Err(TokenError::TooManyGrants);
    }
    Ok(Token {
        read: grants(&claims.read)?,
        write: grants(&claims.write)?,
        claims,
        raw: token.into(),
    })
}

fn grants(patterns: &[String]) -> Result<GlobSet, TokenError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        if p.is_empty() || p.len() > 200 {
            return Err(TokenError::BadGrant(p.chars().take(40).collect()));
        }
        b.add(Glob::new(p).map_err(|_| TokenError::BadGrant(p.chars().take(40).collect()))?);
    }
    b.build().map_err(|e| TokenError::BadGrant(e.to_string()))
}

impl Token {
    /// The holder may subscribe to `channel`.
    pub fn may_read(&self, channel: &str) -> bool {
        self.read.is_match(channel)
    }

    /// The holder may send client events to `channel`.
    pub fn may_write(&self, channel: &str) -> bool {
        self.write.is_match(channel)
    }

    /// Past its expiry (and the leeway) at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.claims
            .exp
            .is_some_and(|exp| now > exp.saturating_add(LEEWAY_SECS))
    }
}

#[cfg(test)]
mod tests;
