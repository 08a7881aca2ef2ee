//! Channel name rules and kinds.

/// What a channel's prefix makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    Private,
    PrivateEncrypted,
    Presence,
    /// `#server-to-user-{id}`: reserved for signed-in users.
    ServerToUser,
}

impl ChannelKind {
    pub fn of(name: &str) -> ChannelKind {
        if name.starts_with("#server-to-user-") {
            ChannelKind::ServerToUser
        } else if name.starts_with("private-encrypted-") {
            ChannelKind::PrivateEncrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
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
        assert_eq!(
            ChannelKind::of("private-encrypted-x"),
            ChannelKind::PrivateEncrypted
        );
        assert_eq!(ChannelKind::of("presence-x"), ChannelKind::Presence);
        assert_eq!(ChannelKind::of("x"), ChannelKind::Public);
    }
}
