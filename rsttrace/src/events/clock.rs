//! Kernel time to wall-clock time. Records carry `bpf_ktime_get_ns()`
//! (CLOCK_MONOTONIC) and jiffies; users want UTC timestamps and milliseconds.

use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Kernel tick rate (CONFIG_HZ).
    pub hz: u32,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    realtime_offset_ns: i128,
}

impl Clock {
    /// Reads the tick rate and the current realtime/monotonic offset.
    pub fn now() -> Self {
        Self { hz: kernel_hz(), realtime_offset_ns: realtime_offset_ns() }
    }

    #[cfg(test)]
    pub fn with(hz: u32, realtime_offset_ns: i128) -> Self {
        Self { hz, realtime_offset_ns }
    }

    /// Re-reads the offset, so a stepped wall clock (NTP) is followed.
    pub fn refresh(&mut self) {
        self.realtime_offset_ns = realtime_offset_ns();
    }

    pub fn wall_time(&self, monotonic_ns: u64) -> SystemTime {
        let ns = (monotonic_ns as i128 + self.realtime_offset_ns).max(0);
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    }

    pub fn jiffies_to_ms(&self, jiffies: u32) -> u64 {
        jiffies as u64 * 1000 / self.hz.max(1) as u64
    }

    pub fn jiffies_to_us(&self, jiffies: u32) -> u64 {
        jiffies as u64 * 1_000_000 / self.hz.max(1) as u64
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and pointer to a live timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_MONOTONIC now, the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

fn realtime_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

/// CONFIG_HZ of the running kernel: the coarse clocks tick once per jiffy,
/// so their resolution is 1/HZ seconds.
fn kernel_hz() -> u32 {
    let mut res = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and pointer to a live timespec.
    let ok = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } == 0;
    if !ok || res.tv_sec != 0 || res.tv_nsec <= 0 {
        log::warn!("cannot read the kernel tick rate; assuming HZ=250");
        return 250;
    }
    (1_000_000_000f64 / res.tv_nsec as f64).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_is_one_of_the_kernel_choices() {
        assert!([100, 250, 300, 1000].contains(&kernel_hz()), "{}", kernel_hz());
    }

    #[test]
    fn converts_jiffies_and_monotonic_time() {
        let clock = Clock::with(250, 1_000_000_000_000_000_000);
        assert_eq!(clock.jiffies_to_ms(250), 1000);
        assert_eq!(clock.jiffies_to_ms(1), 4);
        let t = clock.wall_time(500_000_000);
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap(), Duration::from_nanos(1_000_000_000_500_000_000));
    }

    #[test]
    fn wall_time_is_close_to_now() {
        let clock = Clock::now();
        let mono = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let diff = SystemTime::now().duration_since(clock.wall_time(mono)).unwrap_or_default();
        assert!(diff < Duration::from_secs(1), "{diff:?}");
    }
}
