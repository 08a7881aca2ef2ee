//! Node identities: the operator-chosen [`NodeId`] and the per-run [`NodeKey`].

use std::fmt;
use std::sync::Arc;

/// Longest node id accepted. Ids travel in every gossip message and `Hello`.
pub const MAX_NODE_ID_LEN: usize = 64;

/// A node's name, chosen by the operator (`--node-id`). Stable across restarts; two live
/// nodes must never share one. Cheap to clone and `Send`, so it can cross threads.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// Why a node id was refused (operator error: fix the configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id is longer than {MAX_NODE_ID_LEN} bytes")]
    TooLong,
    #[error("node id may only contain ascii letters, digits, '.', '_' and '-'")]
    BadChar,
}

impl NodeId {
    /// Checks the id: 1 to 64 bytes of `[A-Za-z0-9._-]`, so it is safe in gossip keys, logs
    /// and file names without escaping.
    pub fn new(id: &str) -> Result<NodeId, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_NODE_ID_LEN {
            return Err(IdError::TooLong);
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(IdError::BadChar);
        }
        Ok(NodeId(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// One run of one node: its id and the generation it started with. Everything a node
/// publishes (gossip keys, presence members, interest) is attributed to a `NodeKey`, never to
/// a bare `NodeId`, so state from a previous run cannot be mistaken for the current one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeKey {
    pub id: NodeId,
    /// Start time in unix milliseconds; strictly greater after a restart (see
    /// [`crate::membership::new_generation`]).
    pub generation: u64,
}

impl NodeKey {
    pub fn new(id: NodeId, generation: u64) -> NodeKey {
        NodeKey { id, generation }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(NodeId::new("node-1.a_b").is_ok());
        assert_eq!(NodeId::new(""), Err(IdError::Empty));
        assert_eq!(NodeId::new(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(NodeId::new("a b"), Err(IdError::BadChar));
        assert_eq!(NodeId::new("a:b"), Err(IdError::BadChar));
    }
}
