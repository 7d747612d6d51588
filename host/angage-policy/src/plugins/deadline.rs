//! Call deadlines that count the plugin's own running time. Epoch ticks measure wall-clock
//! time, and a busy host deschedules threads for tens of milliseconds: a call caught by that
//! would be stopped (and its request refused) for the host's hiccup. So when a call's deadline
//! passes, the call gets another window, and is stopped only if its thread then spends a good
//! part of that window on the CPU (or after `MAX_WINDOWS` windows whatever happened). A plugin
//! that loops is stopped within about two deadlines; a call that was only descheduled finishes.

use std::time::Duration;

use wasmtime::UpdateDeadline;

/// Windows after which a call is stopped however little it ran: the hard ceiling.
const MAX_WINDOWS: u32 = 20;

/// A call's deadline state; reset as each call starts.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    /// Epoch ticks (milliseconds) per window.
    ticks: u64,
    /// The thread's CPU time when the current extra window began.
    window_start: Option<Duration>,
    /// Windows this call has had after its deadline.
    extra_windows: u32,
}

/// What to do when a window ends.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Stop,
    Extend,
}

impl Deadline {
    pub(crate) fn new(ticks: u64) -> Self {
        Self { ticks, ..Self::default() }
    }

    /// A call starts: its first window is the deadline itself.
    pub(crate) fn start(&mut self) {
        self.window_start = None;
        self.extra_windows = 0;
    }

    /// The epoch deadline passed while the call runs (wasmtime's epoch callback).
    pub(crate) fn on_expiry(&mut self) -> UpdateDeadline {
        let now = thread_cpu_time();
        let window = Duration::from_millis(self.ticks);
        match judge(self.window_start, now, window, self.extra_windows) {
            Verdict::Stop => UpdateDeadline::Interrupt,
            Verdict::Extend => {
                self.window_start = now;
                self.extra_windows += 1;
                UpdateDeadline::Continue(self.ticks.max(1))
            }
        }
    }
}

/// `window_start`: the thread's CPU time when the extra window that ends now began (none at the
/// deadline itself); `now`: its CPU time now (none where it cannot be read).
fn judge(window_start: Option<Duration>, now: Option<Duration>, window: Duration, extra: u32) -> Verdict {
    let Some(now) = now else { return Verdict::Stop };
    if extra >= MAX_WINDOWS {
        return Verdict::Stop;
    }
    match window_start {
        // The wall-clock deadline: how much of it the plugin ran is unknown, so measure the next.
        None => Verdict::Extend,
        // A call that was only descheduled runs for microseconds once it is back on the CPU.
        Some(start) if now.saturating_sub(start) < window / 4 => Verdict::Extend,
        Some(_) => Verdict::Stop,
    }
}

/// This thread's time on the CPU (Linux: `/proc/thread-self/schedstat`); read only when a
/// deadline passes, never on a call's common path.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(10);

    const T: Duration = Duration::from_secs(7);

    fn ms(n: u64) -> Option<Duration> {
        Some(T + Duration::from_millis(n))
    }

    #[test]
    fn a_call_that_keeps_running_is_stopped_after_one_more_window() {
        assert_eq!(judge(None, ms(0), WINDOW, 0), Verdict::Extend, "the deadline itself");
        assert_eq!(judge(ms(0), ms(9), WINDOW, 1), Verdict::Stop);
        assert_eq!(judge(ms(0), ms(3), WINDOW, 1), Verdict::Stop);
    }

    #[test]
    fn a_descheduled_call_goes_on_up_to_the_ceiling() {
        let (start, now) = (ms(0), Some(T + Duration::from_micros(40)));
        for extra in 1..MAX_WINDOWS {
            assert_eq!(judge(start, now, WINDOW, extra), Verdict::Extend, "window {extra}");
        }
        assert_eq!(judge(start, now, WINDOW, MAX_WINDOWS), Verdict::Stop);
    }

    #[test]
    fn without_a_cpu_clock_the_deadline_is_wall_clock() {
        assert_eq!(judge(None, None, WINDOW, 0), Verdict::Stop);
    }

    #[test]
    fn this_threads_cpu_time_is_readable_and_grows_with_work() {
        let Some(before) = thread_cpu_time() else {
            panic!("/proc/thread-self/schedstat is readable on Linux");
        };
        let mut x = 0u64;
        let mut after = before;
        for i in 0..200_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
            if i % 1_000_000 == 0 {
                after = thread_cpu_time().unwrap_or(before);
                if after > before {
                    break;
                }
            }
        }
        std::hint::black_box(x);
        assert!(after > before, "work on this thread shows in its CPU time");
    }
}
