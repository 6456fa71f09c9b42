//! Incremental Server-Sent Events parser (the subset model APIs use: `event:`
//! and `data:` fields, comments, blank-line framing, LF or CRLF). Written here
//! because it is forty lines and must report malformed input as an error
//! rather than skip it. Also used by the CLI to read cairn's own event streams.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field, empty when absent.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Buffers bytes and yields complete events.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Adds bytes from the wire.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, String> {
        loop {
            let Some((end, sep)) = find_blank_line(&self.buf) else {
                return Ok(None);
            };
            let block: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = std::str::from_utf8(&block[..end])
                .map_err(|e| format!("stream is not UTF-8: {e}"))?;
            let mut ev = SseEvent {
                event: String::new(),
                data: String::new(),
            };
            let mut has_data = false;
            for line in text.lines().map(|l| l.trim_end_matches('\r')) {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => ev.event = value.to_string(),
                    "data" => {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        has_data = true;
                    }
                    "id" | "retry" => {}
                    other => return Err(format!("unexpected SSE field {other:?}")),
                }
            }
            if has_data || !ev.event.is_empty() {
                return Ok(Some(ev));
            }
        }
    }

    /// Whether unparsed bytes remain (a stream that ends here was cut off).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Position and length of the first blank line (`\n\n` or `\r\n\r\n`).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\n' && buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events_and_crlf() {
        let mut p = SseParser::default();
        p.push(b"event: a\ndata: {\"x\":");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"1}\n\n: comment\r\n\r\ndata: one\r\ndata: two\r\n\r\n");
        assert_eq!(
            p.next_event().unwrap(),
            Some(SseEvent {
                event: "a".into(),
                data: "{\"x\":1}".into()
            })
        );
        assert_eq!(p.next_event().unwrap().unwrap().data, "one\ntwo");
        assert!(!p.has_partial());
    }

    #[test]
    fn utf8_split_across_chunks() {
        let mut p = SseParser::default();
        let bytes = "data: héllo\n\n".as_bytes();
        p.push(&bytes[..8]);
        assert_eq!(p.next_event().unwrap(), None);
        p.push(&bytes[8..]);
        assert_eq!(p.next_event().unwrap().unwrap().data, "héllo");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut p = SseParser::default();
        p.push(b"this is not sse\n\n");
        assert!(p.next_event().is_err());
    }
}
