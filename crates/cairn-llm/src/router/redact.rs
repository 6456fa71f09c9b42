//! Reversible redaction: each restricted value becomes a placeholder
//! (`<<EMAIL_1>>`) before a call leaves, the same value the same
//! placeholder throughout the call, and the placeholders in the answer —
//! its text, its tool arguments, its streamed deltas — are put back.

use std::collections::HashMap;

/// Placeholders of one call, both ways.
#[derive(Debug, Default)]
pub struct Redactions {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, String>,
    counts: HashMap<String, usize>,
}

impl Redactions {
    /// How many distinct values were replaced.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// `text` with `spans` (sorted, disjoint byte ranges and their kinds)
    /// replaced by placeholders.
    pub fn apply(&mut self, text: &str, spans: &[(usize, usize, &str)]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for &(start, end, kind) in spans {
            let (Some(before), Some(value)) = (text.get(at..start), text.get(start..end)) else {
                continue;
            };
            out.push_str(before);
            out.push_str(&self.placeholder(kind, value));
            at = end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        out
    }

    fn placeholder(&mut self, kind: &str, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let n = self.counts.entry(kind.to_string()).or_insert(0);
        *n += 1;
        let tag: String = kind
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let p = format!("<<{tag}_{n}>>");
        self.by_value.insert(value.to_string(), p.clone());
        self.by_placeholder.insert(p.clone(), value.to_string());
        p
    }

    /// `text` with every known placeholder put back.
    pub fn restore(&self, text: &str) -> String {
        if self.is_empty() || !text.contains("<<") {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("<<") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            match tail.find(">>").map(|j| &tail[..j + 2]) {
                Some(p) if self.by_placeholder.contains_key(p) => {
                    out.push_str(&self.by_placeholder[p]);
                    rest = &tail[p.len()..];
                }
                _ => {
                    out.push_str("<<");
                    rest = &tail[2..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Every string inside a JSON value restored.
    pub fn restore_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.restore(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.restore_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.restore(k), self.restore_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Restores placeholders in a stream of text pieces: a placeholder split
/// across pieces is held back until it is whole.
#[derive(Default)]
pub struct StreamRestorer {
    held: String,
}

/// The longest a placeholder can be; a held `<<` longer than this is text.
const LONGEST: usize = 48;

impl StreamRestorer {
    /// The text ready to show after `piece`.
    pub fn push(&mut self, r: &Redactions, piece: &str) -> String {
        self.held.push_str(piece);
        let cut = match self.held.rfind("<<") {
            Some(i) if !self.held[i..].contains(">>") && self.held.len() - i < LONGEST => i,
            // A lone `<` at the end may start one.
            _ if self.held.ends_with('<') => self.held.len() - 1,
            _ => self.held.len(),
        };
        let ready: String = self.held.drain(..cut).collect();
        r.restore(&ready)
    }

    /// Whatever is still held, at the end of the stream.
    pub fn finish(&mut self, r: &Redactions) -> String {
        let rest = std::mem::take(&mut self.held);
        r.restore(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_placeholders_and_come_back() {
        let mut r = Redactions::default();
        let text = "mail ada@x.org and bob@y.org, again ada@x.org";
        let spans = [(5, 14, "email"), (19, 28, "email"), (36, 45, "email")];
        let sent = r.apply(text, &spans);
        assert_eq!(sent, "mail <<EMAIL_1>> and <<EMAIL_2>>, again <<EMAIL_1>>");
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.restore("Wrote to <<EMAIL_2>>; <<NOT_KNOWN>> <<"),
            "Wrote to bob@y.org; <<NOT_KNOWN>> <<"
        );
        let args = serde_json::json!({"to": ["<<EMAIL_1>>"], "note": "cc <<EMAIL_2>>"});
        assert_eq!(
            r.restore_json(&args),
            serde_json::json!({"to": ["ada@x.org"], "note": "cc bob@y.org"})
        );
        let mut s = StreamRestorer::default();
        let pieces = ["Dear <", "<EMA", "IL_1>", "> and << x", "yz"];
        let shown: String =
            pieces.iter().map(|p| s.push(&r, p)).collect::<String>() + &s.finish(&r);
        assert_eq!(shown, "Dear ada@x.org and << xyz");
    }
}
