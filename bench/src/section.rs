//! A generated section inside a hand-edited markdown document, between a begin and an end
//! marker: the Cluster section of docs/benchmarks.md (`cluster`) and the simulated scaling
//! section of docs/cluster.md (`cluster_sim`). A rerun replaces the section in place and
//! leaves the rest of the document as it is.

/// The section of `doc` from `begin` to `end`, markers included, if it has one.
pub fn kept<'a>(doc: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = doc.find(begin)?;
    let stop = doc[start..].find(end)? + start + end.len();
    Some(&doc[start..stop])
}

/// `doc` with its section replaced by `section` (or `section` appended).
pub fn replaced(doc: &str, begin: &str, end: &str, section: &str) -> String {
    let section = section.trim_end();
    match kept(doc, begin, end) {
        Some(old) => doc.replacen(old, section, 1),
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "<!-- s: begin -->";
    const E: &str = "<!-- s: end -->";

    #[test]
    fn section_is_replaced_or_appended() {
        let sec = format!("{B}\nnew\n{E}\n");
        let appended = replaced("# Doc\n\ntext\n", B, E, &sec);
        assert_eq!(appended, format!("# Doc\n\ntext\n\n{B}\nnew\n{E}\n"));
        let old = format!("# Doc\n\n{B}\nold\n{E}\n\n## After\n");
        let new = replaced(&old, B, E, &sec);
        assert_eq!(new, format!("# Doc\n\n{B}\nnew\n{E}\n\n## After\n"));
        assert_eq!(kept(&new, B, E), Some(&*format!("{B}\nnew\n{E}")));
        assert_eq!(kept("# Doc", B, E), None);
    }
}
