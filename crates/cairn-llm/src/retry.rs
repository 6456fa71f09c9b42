//! Retries with jittered exponential backoff for transient failures (429,
//! 5xx, broken connections, timeouts), honouring the provider's retry-after.

use std::time::Duration;

use cairn_core::{ModelRequest, ModelResponse};

use crate::{EventSink, LlmError, Provider};

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each attempt.
    pub base_delay: Duration,
    /// Longest single wait; a retry-after beyond it gives up instead.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Wait before attempt `attempt + 1` after `err` on attempt `attempt`.
    pub fn delay(&self, attempt: u32, err: &LlmError) -> Duration {
        if let Some(asked) = err.retry_after() {
            return asked;
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        // "Equal jitter": half fixed, half random, so many clients that failed
        // together do not come back together.
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Calls `provider`, retrying transient failures per `policy`. `on_retry`
/// hears about each retry (attempt about to be made, wait, cause).
pub async fn complete_with_retry(
    provider: &dyn Provider,
    req: &ModelRequest,
    policy: &RetryPolicy,
    on_event: EventSink<'_>,
    on_retry: &(dyn Fn(u32, Duration, &LlmError) + Send + Sync),
) -> Result<ModelResponse, LlmError> {
    let mut attempt = 1;
    loop {
        match provider.complete(req, on_event).await {
            Ok(r) => return Ok(r),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                let wait = policy.delay(attempt, &e);
                if wait > policy.max_delay {
                    return Err(e);
                }
                tracing::warn!(provider = provider.name(), attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying model call");
                on_retry(attempt + 1, wait, &e);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let transient = LlmError::Connect {
            provider: "x".into(),
            url: "u".into(),
            message: "m".into(),
        };
        for attempt in 1..6 {
            let d = p.delay(attempt, &transient);
            let full = p.base_delay * (1 << (attempt - 1));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        let asked = LlmError::RateLimited {
            provider: "x".into(),
            message: "m".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(p.delay(1, &asked), Duration::from_secs(7));
        assert!(p.delay(40, &transient) <= p.max_delay);
    }
}
