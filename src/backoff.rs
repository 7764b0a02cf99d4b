//! Capped exponential back-off: the one retry policy of logalarm.
//!
//! Role: [`Backoff`] says how long to wait before the next attempt — `base`, doubling per
//! failure up to `cap`, back to `base` after a success (or a healthy run). Deliveries
//! (`action::delivery`) add "equal jitter" ([`Backoff::jittered`]) so that alarms failing
//! together do not retry together; supervised-process restarts and XMPP reconnects use the plain
//! delay, which they print ("restarting in 4s").
//! Invariants: the delay never exceeds `cap`; doubling saturates (no overflow after many
//! failures); the jitter source is not for anything secret.
//! Rejected alternative: the `backoff` crate — it brings its own clock and retry loop, and
//! logalarm's three callers each keep their own loop (a thread, the reactor, a libstrophe
//! event loop).

use std::time::Duration;

/// The delay policy and the current delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    /// The delay the next failure waits: `base <= current <= cap`.
    current: Duration,
}

impl Backoff {
    pub(crate) const fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            current: base,
        }
    }

    /// The delay for this failure; the next one waits twice as long (up to the cap).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = self.current.saturating_mul(2).min(self.cap);
        d
    }

    /// The delay before attempt `n` (1-based) of a series: `base * 2^(n-1)`, capped.
    pub(crate) fn nth(&self, n: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.cap)
    }

    /// [`Backoff::nth`] with equal jitter: a uniform draw from its upper half.
    pub(crate) fn jittered(&self, n: u32, jitter: &mut Jitter) -> Duration {
        let half = self.nth(n) / 2;
        half + half.mul_f64(jitter.next_unit())
    }

    /// It worked (or ran long enough): the next failure waits `base` again.
    pub(crate) fn reset(&mut self) {
        self.current = self.base;
    }
}

/// A small xorshift generator for jitter (not for anything secret).
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        Jitter(t ^ ((std::process::id() as u64) << 32) | 1)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.nth(1), Duration::from_secs(1));
        assert_eq!(b.nth(3), Duration::from_secs(4));
        assert_eq!(b.nth(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut j = Jitter::new();
        for n in 1..40 {
            let d = b.jittered(n, &mut j);
            assert!(d >= b.nth(n) / 2 && d <= b.nth(n), "{n}: {d:?}");
        }
    }
}
