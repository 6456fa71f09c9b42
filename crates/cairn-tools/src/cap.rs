//! Output capping that keeps the beginning and the end, which is where
//! commands put what matters (what started, what failed).

/// Collects output up to a limit: the first half and the last half are
/// kept, the middle is counted and dropped.
#[derive(Debug)]
pub struct CappedOutput {
    limit: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: usize,
}

impl CappedOutput {
    /// A collector keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        CappedOutput {
            limit: limit.max(2),
            head: Vec::new(),
            tail: Default::default(),
            total: 0,
        }
    }

    /// Adds bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len();
        let head_cap = self.limit / 2;
        if self.head.len() < head_cap {
            let n = (head_cap - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        let tail_cap = self.limit - head_cap;
        if bytes.len() >= tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Counts `n` bytes that were never read (the middle of a large file);
    /// they count as omitted.
    pub fn skip(&mut self, n: u64) {
        self.total += n as usize;
        self.tail.clear();
    }

    /// Bytes seen in total.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept text, with a marker where bytes were dropped.
    pub fn render(&self) -> String {
        let kept = self.head.len() + self.tail.len();
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.total > kept {
            out.push_str(&format!(
                "\n[… {} bytes omitted of {} …]\n",
                self.total - kept,
                self.total
            ));
        }
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail() {
        let mut c = CappedOutput::new(10);
        for _ in 0..1000 {
            c.push(b"abc");
        }
        c.push(b"END");
        assert_eq!(c.total(), 3003);
        let r = c.render();
        assert!(r.starts_with("abcab"), "{r}");
        assert!(r.ends_with("bcEND"), "{r}");
        assert!(r.contains("2993 bytes omitted"), "{r}");
    }

    #[test]
    fn small_output_untouched() {
        let mut c = CappedOutput::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.render(), "hello world");
    }
}
