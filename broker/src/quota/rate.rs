//! Kafka's windowed rate, the measure every client quota is checked against.
//!
//! A rate keeps `quota.window.num` samples, each covering up to
//! `quota.window.size.seconds`: a value is added to the current sample, a
//! new sample starts (reusing the oldest) once the current one is a window
//! old, and a sample older than all the windows together counts nothing.
//! The rate is the samples' total over the time they cover — never less
//! than `num - 1` whole windows, so a client's first bytes are not measured
//! over a few milliseconds. A rate above its bound earns the throttle time
//! that brings it back down to the bound over that same span:
//! `(rate - bound) / bound * span`.
//!
//! Pure: times are milliseconds handed in by the caller; no clock is read.

/// `quota.window.num` and `quota.window.size.seconds`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Number of samples (at least 1).
    pub samples: usize,
    /// Span of one sample in milliseconds (at least 1).
    pub window_ms: u64,
}

impl RateConfig {
    /// A config with both values at least 1.
    pub fn new(samples: usize, window_ms: u64) -> Self {
        RateConfig { samples: samples.max(1), window_ms: window_ms.max(1) }
    }

    /// The span of all samples together.
    pub fn total_ms(&self) -> u64 {
        self.window_ms.saturating_mul(self.samples as u64)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// One measured rate (per second).
#[derive(Debug, Clone)]
pub struct WindowedRate {
    samples: Vec<Sample>,
    current: usize,
}

impl WindowedRate {
    /// An empty rate whose first sample starts at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        WindowedRate { samples: vec![Sample { start_ms: now_ms, value: 0.0 }], current: 0 }
    }

    /// Adds `value` (negative to take back what was recorded) at `now_ms`.
    pub fn record(&mut self, config: RateConfig, value: f64, now_ms: u64) {
        self.purge(config, now_ms);
        let start = self.samples[self.current].start_ms;
        if now_ms.saturating_sub(start) >= config.window_ms {
            self.current = (self.current + 1) % config.samples;
            let fresh = Sample { start_ms: now_ms, value: 0.0 };
            if self.current < self.samples.len() {
                self.samples[self.current] = fresh;
            } else {
                self.samples.push(fresh);
                self.current = self.samples.len() - 1;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Samples older than every window together start over, empty.
    fn purge(&mut self, config: RateConfig, now_ms: u64) {
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= config.total_ms() {
                *s = Sample { start_ms: now_ms, value: 0.0 };
            }
        }
    }

    /// The span the rate is measured over at `now_ms`: from the oldest
    /// sample's start, and at least `samples - 1` whole windows.
    pub fn span_ms(&self, config: RateConfig, now_ms: u64) -> u64 {
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        let floor = config.window_ms.saturating_mul(config.samples as u64 - 1);
        elapsed.max(floor).max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn rate(&mut self, config: RateConfig, now_ms: u64) -> f64 {
        self.purge(config, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total * 1000.0 / self.span_ms(config, now_ms) as f64
    }

    /// How long to wait, in ms, for the rate to fall back to `bound`; 0 when
    /// it is not above. A zero bound allows nothing: the whole quota span.
    pub fn throttle_ms(&mut self, config: RateConfig, bound: f64, now_ms: u64) -> u64 {
        let rate = self.rate(config, now_ms);
        if rate <= bound {
            return 0;
        }
        if bound <= 0.0 {
            return config.total_ms();
        }
        let span = self.span_ms(config, now_ms) as f64;
        let wait = ((rate - bound) / bound * span).round();
        if wait >= i32::MAX as f64 { i32::MAX as u64 } else { wait as u64 }
    }

    /// When the rate last had a sample started: idle rates can be dropped.
    pub fn last_start_ms(&self) -> u64 {
        self.samples.iter().map(|s| s.start_ms).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: RateConfig = RateConfig { samples: 11, window_ms: 1000 };

    #[test]
    fn a_fresh_rate_is_measured_over_at_least_all_windows_but_one() {
        let mut r = WindowedRate::new(0);
        r.record(CONFIG, 10_000.0, 0);
        // 10 000 bytes over the 10 s floor, not over 0 ms.
        assert_eq!(r.rate(CONFIG, 0), 1000.0);
        assert_eq!(r.throttle_ms(CONFIG, 1000.0, 0), 0);
        r.record(CONFIG, 10_000.0, 500);
        // 20 000 over 10 s = 2000/s against 1000/s: 10 s more brings it to the bound.
        assert_eq!(r.throttle_ms(CONFIG, 1000.0, 500), 10_000);
    }

    #[test]
    fn old_samples_stop_counting() {
        let mut r = WindowedRate::new(0);
        r.record(CONFIG, 50_000.0, 0);
        for t in 1..=10 {
            r.record(CONFIG, 0.0, t * 1000);
        }
        assert!(r.rate(CONFIG, 10_500) > 0.0);
        // Eleven windows after the first sample began, its bytes are gone.
        r.record(CONFIG, 0.0, 11_000);
        assert_eq!(r.rate(CONFIG, 11_000), 0.0);
        assert_eq!(r.throttle_ms(CONFIG, 1.0, 11_000), 0);
    }

    #[test]
    fn waiting_the_throttle_brings_the_rate_back_to_the_bound() {
        let config = RateConfig::new(2, 1000);
        let mut r = WindowedRate::new(0);
        r.record(config, 3000.0, 0);
        let wait = r.throttle_ms(config, 1000.0, 0);
        assert_eq!(wait, 2000, "3000 over the 1 s floor against 1000/s");
        // Measured again once the wait is over: at (or under) the bound.
        assert!(r.rate(config, wait) <= 1000.0 + 1e-9, "{}", r.rate(config, wait));
    }

    #[test]
    fn unrecording_takes_a_value_back_and_a_zero_bound_waits_the_whole_span() {
        let mut r = WindowedRate::new(0);
        r.record(CONFIG, 5000.0, 100);
        r.record(CONFIG, -5000.0, 100);
        assert_eq!(r.rate(CONFIG, 100), 0.0);
        r.record(CONFIG, 1.0, 200);
        assert_eq!(r.throttle_ms(CONFIG, 0.0, 200), 11_000);
        assert_eq!(RateConfig::new(0, 0), RateConfig { samples: 1, window_ms: 1 });
    }
}
