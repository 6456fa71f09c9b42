//! Finding the line of a key in cairn.toml, for errors found after the
//! file parsed (a policy that cannot work, a name that matches nothing).

/// The line (1-based) where dotted `key` is set, else where its table
/// starts, else where `key` is itself a table; `None` if none is in `text`.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, leaf) = key.rsplit_once('.')?;
    let header = format!("[{table}]");
    let mut in_table = false;
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t == header;
            if in_table {
                header_line = Some(i + 1);
            }
            continue;
        }
        let set = t
            .split_once('=')
            .is_some_and(|(k, _)| k.trim().trim_matches('"') == leaf);
        if in_table && set {
            return Some(i + 1);
        }
    }
    header_line.or_else(|| {
        let own = format!("[{key}]");
        text.lines().position(|l| l.trim() == own).map(|i| i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn keys_are_found_in_their_table_or_at_its_header() {
        let text = "[llm]\norder = 1\n\n[router]\nrestricted = \"route\"\norder = [\"x\"]\n[providers.local]\ndata = []\n";
        assert_eq!(line_of(text, "router.order"), Some(6));
        assert_eq!(line_of(text, "providers.local.data"), Some(8));
        assert_eq!(line_of(text, "router.tools"), Some(4));
        assert_eq!(line_of(text, "cluster.heartbeat_ms"), None);
        assert_eq!(line_of(text, "providers.local"), Some(7));
    }
}
