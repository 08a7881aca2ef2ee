//! Wildcard subscriptions (docs/protocol.md "Wildcard subscriptions", ADR 0012): a pattern
//! over URL-shaped channel names, `/`-separated segments where `*` stands for exactly one
//! segment and a final `**` for one or more. `*` is not a legal channel-name character, so a
//! pattern is never mistaken for a channel.
//!
//! A pattern subscription is a subscription to a channel named by the pattern itself, placed
//! and counted like any channel; what is new is that every order point knows the patterns
//! with subscribers ([`Index`]) and sends each event of a matching channel on to the
//! pattern. The first segment is always literal, so a pattern's kind (public or private) is
//! its prefix, and every channel it matches has the same prefix: a public pattern never
//! reaches a private channel.
//!
//! Sans-IO and unit-tested: [`Pattern::parse`] checks a pattern, [`Index::matching`] is what
//! an order point runs for every event. Its cost for a channel no pattern matches: a `/`
//! search, and for a name with one, a hash lookup of its first segment.

use crate::app::AppIdx;
use crate::channel::name::{self, Access, ChannelKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Whether a subscription names a pattern rather than a channel.
pub fn is_pattern(name: &str) -> bool {
    name.contains('*')
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// `**` (last only): one or more segments.
    Rest,
}

/// Why a pattern is refused (`pusher:subscription_error`, type `PatternError`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0}")]
    Name(#[from] name::NameError),
    #[error("a pattern's first segment must be a literal name (e.g. `gallery/*/comments`)")]
    WildFirst,
    #[error("`*` and `**` must be whole `/`-separated segments")]
    PartialWildcard,
    #[error("`**` may only be a pattern's last segment")]
    RestNotLast,
    #[error("an empty segment (`//` or a `/` at either end)")]
    EmptySegment,
    #[error("patterns cover public and private channels only (not presence, encrypted, cache or user channels)")]
    Kind,
}

/// A checked pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: Arc<str>,
    segs: Vec<Seg>,
}

impl Pattern {
    /// Checks `text` (a name holding `*`) as a pattern of at most `max` bytes.
    pub fn parse(text: &str, max: usize) -> Result<Pattern, PatternError> {
        // The characters of a channel name, plus `*`.
        name::validate(&text.replace('*', "x"), max)?;
        let kind = ChannelKind::of(text);
        if !matches!(kind.access, Access::Public | Access::Private) || kind.encrypted || kind.cache
        {
            return Err(PatternError::Kind);
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let seg = match *p {
                "" => return Err(PatternError::EmptySegment),
                "*" => Seg::One,
                "**" if i + 1 == parts.len() => Seg::Rest,
                "**" => return Err(PatternError::RestNotLast),
                p if p.contains('*') => return Err(PatternError::PartialWildcard),
                p => Seg::Literal(p.into()),
            };
            segs.push(seg);
        }
        if !matches!(segs[0], Seg::Literal(_)) {
            return Err(PatternError::WildFirst);
        }
        Ok(Pattern {
            text: Arc::from(text),
            segs,
        })
    }

    fn first(&self) -> &str {
        match &self.segs[0] {
            Seg::Literal(s) => s,
            _ => unreachable!("checked by parse"),
        }
    }

    /// The text every channel of this pattern starts with: up to the last `/` before its
    /// first wildcard segment (`private-team/` for `private-team/*/chat`).
    pub fn literal_prefix(&self) -> &str {
        let mut end = 0;
        for seg in &self.segs {
            match seg {
                Seg::Literal(l) => end += l.len() + 1,
                _ => break,
            }
        }
        &self.text[..end.min(self.text.len())]
    }

    /// Whether a token's read grant (a glob over channel names, docs/tokens.md) covers
    /// every channel of this pattern. Not a glob match of the pattern's text, which a grant
    /// like `team/?` would pass (`?` matches the `*`) while granting one-letter names only:
    /// the grant must be the pattern itself, or a literal prefix of the pattern's literal
    /// prefix followed by `*` (a glob `*` spans `/`, so `private-team/*` also covers
    /// deeper names).
    pub fn covered_by_grant(&self, grant: &str) -> bool {
        if grant == &*self.text {
            return true;
        }
        match grant.strip_suffix('*') {
            Some(lit) if !lit.contains(['*', '?', '[', ']', '{', '}', '\\']) => {
                self.literal_prefix().starts_with(lit)
            }
            _ => false,
        }
    }

    /// Whether `channel` (a channel name, never a pattern) is one of this pattern's.
    pub fn matches(&self, channel: &str) -> bool {
        let mut parts = channel.split('/');
        for seg in &self.segs {
            match seg {
                Seg::Rest => {
                    // One or more segments left, none empty.
                    let mut any = false;
                    for p in parts {
                        if p.is_empty() {
                            return false;
                        }
                        any = true;
                    }
                    return any;
                }
                Seg::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Seg::Literal(l) => match parts.next() {
                    Some(p) if p == &**l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// One app's patterns by first segment, each with its count of registrations.
type ByFirst = HashMap<Box<str>, Vec<(Pattern, u32)>>;

/// The patterns with subscribers that an order point checks every event against, by app
/// and first segment. Each registration is counted (in a cluster every node with local
/// subscribers registers its patterns): a pattern stays while any registration does.
#[derive(Debug, Default)]
pub struct Index {
    /// App → first segment → its patterns (looked up by `&str`, no allocation per event).
    by_first: HashMap<AppIdx, ByFirst>,
    len: usize,
}

impl Index {
    /// Counts one registration of `p` for `app`.
    pub fn add(&mut self, app: AppIdx, p: Pattern) {
        let list = self
            .by_first
            .entry(app)
            .or_default()
            .entry(p.first().into())
            .or_default();
        match list.iter_mut().find(|(q, _)| q.text == p.text) {
            Some((_, n)) => *n += 1,
            None => {
                list.push((p, 1));
                self.len += 1;
            }
        }
    }

    /// Takes one registration of `pattern` back.
    pub fn remove(&mut self, app: AppIdx, pattern: &str) {
        let Ok(p) = Pattern::parse(pattern, usize::MAX) else {
            return;
        };
        let Some(firsts) = self.by_first.get_mut(&app) else {
            return;
        };
        let Some(list) = firsts.get_mut(p.first()) else {
            return;
        };
        if let Some(i) = list.iter().position(|(q, _)| q.text == p.text) {
            list[i].1 -= 1;
            if list[i].1 == 0 {
                list.swap_remove(i);
                self.len -= 1;
            }
        }
        if list.is_empty() {
            firsts.remove(p.first());
            if firsts.is_empty() {
                self.by_first.remove(&app);
            }
        }
    }

    /// Patterns registered (distinct).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The patterns of `app` that `channel` matches. Patterns never match a pattern.
    pub fn matching<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
    ) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        let list = match channel.split_once('/') {
            Some((first, _)) if self.len > 0 && !is_pattern(channel) => {
                self.by_first.get(&app).and_then(|f| f.get(first))
            }
            _ => None,
        };
        list.into_iter()
            .flatten()
            .filter(move |(p, _)| p.matches(channel))
            .map(|(p, _)| &p.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s, 200).unwrap()
    }

    #[test]
    fn one_segment_and_any_depth() {
        let g = p("my-photo-gallery/*/comments");
        assert!(g.matches("my-photo-gallery/123/comments"));
        assert!(!g.matches("my-photo-gallery/123/likes"));
        assert!(!g.matches("my-photo-gallery/1/2/comments"));
        assert!(!g.matches("my-photo-gallery//comments"));
        assert!(!g.matches("my-photo-gallery/123/comments/x"));
        let r = p("orders/**");
        assert!(r.matches("orders/1") && r.matches("orders/1/items/2"));
        assert!(!r.matches("orders") && !r.matches("orders/") && !r.matches("orders/a//b"));
        assert!(!r.matches("ordersx/1"));
        let pr = p("private-team/*");
        assert!(pr.matches("private-team/a") && !pr.matches("team/a"));
    }

    #[test]
    fn grants_cover_a_pattern_only_when_they_cover_all_its_channels() {
        let pt = p("private-team/*");
        assert_eq!(pt.literal_prefix(), "private-team/");
        assert_eq!(p("a/b/*/c").literal_prefix(), "a/b/");
        for ok in ["private-team/*", "private-*", "private-team*", "*"] {
            assert!(pt.covered_by_grant(ok), "{ok}");
        }
        for no in [
            "private-team/?",
            "private-team/??",
            "private-team/[!s]*",
            "private-team/a*",
            "private-t?am/*",
            "private-team/x",
        ] {
            assert!(!pt.covered_by_grant(no), "{no}");
        }
        assert!(!p("private-team/**").covered_by_grant("private-team/*/x"));
    }

    #[test]
    fn refusals() {
        let e = |s: &str| Pattern::parse(s, 200).unwrap_err();
        assert_eq!(e("*/comments"), PatternError::WildFirst);
        assert_eq!(e("a/b*/c"), PatternError::PartialWildcard);
        assert_eq!(e("a/**/c"), PatternError::RestNotLast);
        assert_eq!(e("a//*"), PatternError::EmptySegment);
        assert_eq!(e("a/*/"), PatternError::EmptySegment);
        for k in [
            "presence-x/*",
            "private-encrypted-x/*",
            "cache-x/*",
            "private-cache-x/*",
            "#server-to-user-*",
        ] {
            assert!(Pattern::parse(k, 200).is_err(), "{k}");
        }
        assert!(matches!(e("a b/*"), PatternError::Name(_)));
        assert!(matches!(
            Pattern::parse("abc/*", 4),
            Err(PatternError::Name(_))
        ));
    }

    #[test]
    fn the_index_counts_registrations_and_matches_by_first_segment() {
        let mut ix = Index::default();
        assert_eq!(ix.matching(0, "a/b").count(), 0);
        ix.add(0, p("a/*"));
        ix.add(0, p("a/*"));
        ix.add(0, p("a/**"));
        ix.add(1, p("a/*"));
        assert_eq!(ix.len(), 3);
        let m: Vec<&str> = ix.matching(0, "a/b").map(|s| &**s).collect();
        assert_eq!(m, ["a/*", "a/**"]);
        assert_eq!(ix.matching(0, "b/a").count(), 0);
        assert_eq!(ix.matching(0, "a").count(), 0);
        assert_eq!(
            ix.matching(0, "a/*").count(),
            0,
            "a pattern is not a channel"
        );
        ix.remove(0, "a/*");
        assert_eq!(ix.matching(0, "a/b").count(), 2, "one registration left");
        ix.remove(0, "a/*");
        ix.remove(0, "a/**");
        assert_eq!(ix.matching(0, "a/b").count(), 0);
        assert_eq!(ix.len(), 1);
        ix.remove(1, "a/*");
        assert!(ix.is_empty() && ix.by_first.is_empty());
    }
}
