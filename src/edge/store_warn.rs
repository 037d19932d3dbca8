//! Warnings about responses the store could not keep (disk full, over capacity, write
//! errors). Under a full disk every miss would log one; instead each reason logs at most
//! one line per interval, carrying how many were left out since the previous line. The
//! refusals themselves are counted by the store (`cairn_store_*_refusals`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::StoreError;

/// At most one line per reason in this long.
pub const STORE_WARN_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Reason {
    last: Option<Instant>,
    suppressed: u64,
}

/// Rate-limited "cannot store" warnings, keyed by [`StoreError::kind`].
#[derive(Debug, Default)]
pub struct StoreWarnings {
    reasons: Mutex<HashMap<&'static str, Reason>>,
}

impl StoreWarnings {
    /// Logs `what` (e.g. "cannot store this response; passing it through") with the error,
    /// unless a line for the same kind of error went out less than an interval ago.
    pub fn warn(&self, distribution: &str, what: &str, e: &StoreError) {
        let Some(suppressed) = self.admit(e.kind(), Instant::now()) else {
            return;
        };
        tracing::warn!(
            distribution,
            reason = e.kind(),
            error = %e,
            suppressed,
            interval_s = STORE_WARN_INTERVAL.as_secs(),
            "{what}"
        );
    }

    /// Whether a line for `kind` may go out at `now`; if so, how many were suppressed
    /// since the last one.
    fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        let r = reasons.entry(kind).or_default();
        match r.last {
            Some(t) if now.saturating_duration_since(t) < STORE_WARN_INTERVAL => {
                r.suppressed += 1;
                None
            }
            _ => {
                r.last = Some(now);
                Some(std::mem::take(&mut r.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_with_the_suppressed_count() {
        let w = StoreWarnings::default();
        let t0 = Instant::now();
        assert_eq!(w.admit("disk_full", t0), Some(0));
        assert_eq!(w.admit("disk_full", t0 + Duration::from_secs(1)), None);
        assert_eq!(w.admit("disk_full", t0 + Duration::from_secs(9)), None);
        // Another reason has its own budget.
        assert_eq!(
            w.admit("over_capacity", t0 + Duration::from_secs(2)),
            Some(0)
        );
        assert_eq!(
            w.admit("disk_full", t0 + STORE_WARN_INTERVAL),
            Some(2),
            "the next line says how many were left out"
        );
        assert_eq!(w.admit("disk_full", t0 + STORE_WARN_INTERVAL), None);
    }
}
