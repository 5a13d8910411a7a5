//! A byte budget (token bucket) that bounds how fast one peer can make the coordinator write:
//! it holds up to `capacity` bytes and regains `refill_per_sec` bytes a second. Pure: the caller
//! passes the time, so the rule is tested without a clock.

/// Bytes a peer may still spend, regained over time up to a cap.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    capacity: u64,
    refill_per_sec: u64,
    available: u64,
    last_ms: i64,
}

impl ByteBudget {
    /// A full budget of `capacity` bytes at `now_ms`, regaining `refill_per_sec` bytes a second.
    pub fn new(capacity: u64, refill_per_sec: u64, now_ms: i64) -> Self {
        ByteBudget {
            capacity,
            refill_per_sec,
            available: capacity,
            last_ms: now_ms,
        }
    }

    /// Spends `bytes` at `now_ms` if the budget has them; `false` (and nothing spent) otherwise.
    pub fn take(&mut self, bytes: u64, now_ms: i64) -> bool {
        let elapsed_ms = u64::try_from(now_ms.saturating_sub(self.last_ms)).unwrap_or(0);
        if elapsed_ms > 0 {
            let regained = elapsed_ms.saturating_mul(self.refill_per_sec) / 1000;
            self.available = self.available.saturating_add(regained).min(self.capacity);
            self.last_ms = now_ms;
        }
        if bytes > self.available {
            return false;
        }
        self.available -= bytes;
        true
    }

    /// Bytes regained per second (for messages).
    pub fn refill_per_sec(&self) -> u64 {
        self.refill_per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;

    #[test]
    fn spends_up_to_the_capacity_then_refuses() {
        let mut b = ByteBudget::new(100, 10, 0);
        assert!(b.take(60, 0));
        assert!(b.take(40, 0));
        assert!(!b.take(1, 0));
    }

    #[test]
    fn a_refusal_spends_nothing() {
        let mut b = ByteBudget::new(100, 10, 0);
        assert!(!b.take(101, 0));
        assert!(b.take(100, 0));
    }

    #[test]
    fn regains_bytes_over_time_up_to_the_capacity() {
        let mut b = ByteBudget::new(100, 10, 0);
        assert!(b.take(100, 0));
        assert!(!b.take(20, 1_000));
        assert!(b.take(20, 2_000));
        assert!(b.take(100, 60_000));
        assert!(!b.take(1, 60_000));
    }

    #[test]
    fn a_clock_going_backwards_regains_nothing() {
        let mut b = ByteBudget::new(100, 10, 5_000);
        assert!(b.take(100, 5_000));
        assert!(!b.take(1, 0));
    }
}
