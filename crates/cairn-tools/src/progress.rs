//! A running call's output as it appears, for whoever watches the run (the
//! CLI, the API's event stream, a coordinator relaying a worker's command).
//! Best effort by design: chunks are dropped when the reader falls behind
//! and past a per-call budget, so a command printing gigabytes can neither
//! fill memory nor the wire; the call's result holds the output that counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// Chunks waiting for the reader before new ones are dropped.
const QUEUE: usize = 64;
/// Bytes streamed per call; the rest is only in the result.
const BUDGET: usize = 1 << 20;

/// The sending end: cheap to clone, one per call.
#[derive(Clone, Debug)]
pub struct Progress {
    tx: mpsc::Sender<String>,
    sent: Arc<AtomicUsize>,
}

impl Progress {
    /// A sink and the receiver its chunks arrive on.
    pub fn channel() -> (Progress, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Progress {
                tx,
                sent: Arc::new(AtomicUsize::new(0)),
            },
            rx,
        )
    }

    /// Offers a chunk; `false` once the budget is spent or the reader is
    /// gone (the caller may stop offering).
    pub fn send(&self, chunk: &str) -> bool {
        if chunk.is_empty() {
            return true;
        }
        let before = self.sent.fetch_add(chunk.len(), Ordering::Relaxed);
        if before >= BUDGET {
            return false;
        }
        match self.tx.try_send(chunk.to_string()) {
            Ok(()) => true,
            // A slow reader loses this chunk, not the next ones.
            Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Turns a byte stream into text chunks without splitting a character:
/// an incomplete sequence at the end of one read waits for the next.
#[derive(Default)]
pub struct Utf8Chunks {
    carry: Vec<u8>,
}

impl Utf8Chunks {
    /// The text of `bytes` (after what was carried), invalid bytes replaced.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let keep = match std::str::from_utf8(&self.carry) {
            Ok(_) => 0,
            // Incomplete at the end (at most 3 bytes): keep it for later.
            Err(e) if e.error_len().is_none() => self.carry.len() - e.valid_up_to(),
            Err(_) => 0,
        };
        let rest = self.carry.split_off(self.carry.len() - keep);
        let text = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry = rest;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_reads_arrives_whole() {
        let mut u = Utf8Chunks::default();
        let bytes = "é→ok".as_bytes();
        assert_eq!(u.push(&bytes[..1]), "");
        assert_eq!(u.push(&bytes[1..3]), "é");
        assert_eq!(u.push(&bytes[3..]), "→ok");
        assert_eq!(u.push(&[0xff, b'a']), "\u{fffd}a");
    }

    #[tokio::test]
    async fn a_flood_stops_at_the_budget_and_a_slow_reader_loses_chunks_not_memory() {
        let (p, mut rx) = Progress::channel();
        let chunk = "x".repeat(64 * 1024);
        let mut offered = 0;
        while p.send(&chunk) {
            offered += 1;
            assert!(offered < 1000, "the budget never ended the stream");
        }
        assert_eq!(offered, BUDGET / chunk.len());
        let mut got = 0;
        while let Ok(c) = rx.try_recv() {
            got += c.len();
        }
        assert!(got <= BUDGET && got > 0, "{got}");
        drop(rx);
        let (p, rx) = Progress::channel();
        drop(rx);
        assert!(!p.send("gone"), "a closed reader ends the stream");
    }
}
