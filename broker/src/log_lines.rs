//! Rate limits for log lines a client can cause, one limiter per kind of line.
//!
//! A hostile client must not be able to make the broker write a line per
//! name it sends (a topic it asks to create, a request it gets refused):
//! each such line goes through a [`LineLimit`], which lets a few lines a
//! second through and counts the rest; the next line written says how many
//! were left out. Limiters are `static`s beside the line they guard.
//!
//! Must never: block, or hold its lock while a line is written.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lets at most `per_second` lines of one kind through each second.
#[derive(Debug)]
pub struct LineLimit {
    per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    written: u32,
    left_out: u64,
}

impl LineLimit {
    /// A limiter letting `per_second` lines through each second.
    pub const fn new(per_second: u32) -> LineLimit {
        LineLimit { per_second, window: Mutex::new(Window { started: None, written: 0, left_out: 0 }) }
    }

    /// `Some(n)` when a line may be written now, `n` being the lines left
    /// out since the last one written; `None` when this one is left out.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut w = self.window.lock();
        if w.started.is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1)) {
            w.started = Some(now);
            w.written = 0;
        }
        if w.written >= self.per_second {
            w.left_out += 1;
            return None;
        }
        w.written += 1;
        Some(std::mem::take(&mut w.left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_few_lines_through_a_second_and_counts_the_rest() {
        let limit = LineLimit::new(2);
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.admit(), None);
        }
        limit.window.lock().started = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(limit.admit(), Some(1000), "the next line says how many were left out");
        assert_eq!(limit.admit(), Some(0));
    }
}
