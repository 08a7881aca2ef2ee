//! Any JSON document, its object keys in the order they came: `raptor stats` prints the
//! server's figures as `name  value` lines in the server's own order, whatever figures a
//! later version adds. (simd-json's values keep large objects in a hash map, whose order is
//! not the document's.)

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value; scalars are kept as the text to print.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Scalar(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    /// Every scalar with its path: `webhooks.sent`, `peers[0].id`.
    pub fn flatten(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.flatten_into(String::new(), &mut out);
        out
    }

    fn flatten_into(&self, path: String, out: &mut Vec<(String, String)>) {
        match self {
            Tree::Scalar(s) => out.push((path, s.clone())),
            Tree::Array(items) if items.is_empty() => out.push((path, "[]".into())),
            Tree::Object(fields) if fields.is_empty() => out.push((path, "{}".into())),
            Tree::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.flatten_into(format!("{path}[{i}]"), out);
                }
            }
            Tree::Object(fields) => {
                for (k, v) in fields {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    v.flatten_into(p, out);
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Scalar(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Scalar(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar("null".into()))
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar("null".into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Tree>()? {
            fields.push((k, v));
        }
        Ok(Tree::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_documents_order_at_any_size() {
        // More keys than simd-json keeps in order (it switches to a hash map past 32).
        let keys: Vec<String> = (0..40).rev().map(|i| format!("k{i}")).collect();
        let body: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
        let mut text = format!(
            "{{{},\"nested\":{{\"b\":true,\"a\":null}},\"list\":[{{\"id\":\"x\"}}],\"none\":[]}}",
            body.join(",")
        )
        .into_bytes();
        let tree: Tree = simd_json::serde::from_slice(&mut text).unwrap();
        let flat = tree.flatten();
        let names: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
        want.extend(["nested.b", "nested.a", "list[0].id", "none"]);
        assert_eq!(names, want);
        assert_eq!(flat[40].1, "true");
        assert_eq!(flat[41].1, "null");
        assert_eq!(flat[43].1, "[]");
    }
}
