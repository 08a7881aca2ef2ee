//! Channel name rules and kinds.

/// Who may subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `private-*` (and encrypted): a signature over `socket_id:channel`.
    Private,
    /// `presence-*`: a signature over `socket_id:channel:channel_data`.
    Presence,
    /// `#server-to-user-{id}`: only connections signed in as `{id}`.
    User,
}

/// What a channel's prefix makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelKind {
    pub access: Access,
    /// `private-encrypted-*`: payloads are end-to-end encrypted; relayed untouched, no client
    /// events.
    pub encrypted: bool,
    /// `cache-*`, `private-cache-*`, `private-encrypted-cache-*`, `presence-cache-*`: the last
    /// event is replayed to new subscribers.
    pub cache: bool,
    /// `presence-privileged-*` (Raptor extension): only privileged members see the member list
    /// and send client events.
    pub privileged: bool,
}

impl ChannelKind {
    pub fn of(name: &str) -> ChannelKind {
        let k = |access, encrypted, cache, privileged| ChannelKind {
            access,
            encrypted,
            cache,
            privileged,
        };
        if name.starts_with("#server-to-user-") {
            k(Access::User, false, false, false)
        } else if let Some(rest) = name.strip_prefix("private-encrypted-") {
            k(Access::Private, true, rest.starts_with("cache-"), false)
        } else if let Some(rest) = name.strip_prefix("private-") {
            k(Access::Private, false, rest.starts_with("cache-"), false)
        } else if let Some(rest) = name.strip_prefix("presence-") {
            k(
                Access::Presence,
                false,
                rest.starts_with("cache-"),
                rest.starts_with("privileged-"),
            )
        } else {
            k(Access::Public, false, name.starts_with("cache-"), false)
        }
    }

    pub fn is_presence(&self) -> bool {
        self.access == Access::Presence
    }
}

/// Why a name is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {0} characters")]
    TooLong(usize),
    #[error("channel name contains a character outside [A-Za-z0-9_-=@,.;/]")]
    BadChar,
}

/// Valid: 1..=max bytes of `[A-Za-z0-9_\-=@,.;/]` (Pusher's set plus `/` for URL-shaped names
/// like `my-photo-gallery/123/comments`), or `#server-to-user-` followed by such characters.
pub fn validate(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max {
        return Err(NameError::TooLong(max));
    }
    let rest = name.strip_prefix("#server-to-user-").unwrap_or(name);
    if rest.is_empty() || !rest.bytes().all(allowed) {
        return Err(NameError::BadChar);
    }
    Ok(())
}

fn allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';' | b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate("my-photo-gallery/123/comments", 200).is_ok());
        assert!(validate("a_b-c=d@e,f.g;h", 200).is_ok());
        assert!(validate("#server-to-user-42", 200).is_ok());
        assert_eq!(validate("", 200), Err(NameError::Empty));
        assert_eq!(
            validate(&"a".repeat(201), 200),
            Err(NameError::TooLong(200))
        );
        assert!(validate(&"a".repeat(200), 200).is_ok());
        for bad in ["a b", "a#b", "é", "a\"b", "#x", "#server-to-user-"] {
            assert_eq!(validate(bad, 200), Err(NameError::BadChar), "{bad}");
        }
    }

    #[test]
    fn kinds() {
        let k = ChannelKind::of;
        assert_eq!(k("x").access, Access::Public);
        assert!(k("cache-x").cache && k("cache-x").access == Access::Public);
        assert!(k("private-cache-x").cache && k("private-cache-x").access == Access::Private);
        let e = k("private-encrypted-cache-x");
        assert!(e.encrypted && e.cache && e.access == Access::Private);
        assert!(k("private-encrypted-x").encrypted && !k("private-encrypted-x").cache);
        assert!(k("presence-cache-x").cache && k("presence-cache-x").is_presence());
        assert!(k("presence-privileged-x").privileged && k("presence-privileged-x").is_presence());
        assert_eq!(k("#server-to-user-1").access, Access::User);
        assert!(!k("private-x").encrypted && !k("x").cache);
    }
}
