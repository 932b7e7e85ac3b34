//! Waits on the wall clock, stretched on slow hosts. Under qemu's software emulation (the cgroup
//! v2 + systemd VM of scripts/test-in-vm.sh) every process start, fork and syscall is some ten
//! times slower than on the host, so a deadline that is generous here expires there before the
//! thing waited for happens. `PODSHIM_TEST_TIME_SCALE` (a factor, at least 1, default 1)
//! stretches how long the tests wait; it never changes what they assert about order or values,
//! nor the timings podshim is asked for (probe periods, back-off, grace periods), except where a
//! test asserts a duration against a slow host's jitter (a back-off's growth across container
//! starts, a stop well within its grace period): there the timing asked for and the margin are
//! stretched together, so the assertion keeps its strength.

use std::time::Duration;

/// `PODSHIM_TEST_TIME_SCALE`, or 1. A value that is no number of at least 1 fails loudly.
pub fn time_scale() -> f64 {
    match std::env::var("PODSHIM_TEST_TIME_SCALE") {
        Err(_) => 1.0,
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(f) if f >= 1.0 && f.is_finite() => f,
            _ => panic!("PODSHIM_TEST_TIME_SCALE={s:?}: want a number of at least 1"),
        },
    }
}

/// `d` stretched by [`time_scale`]: for deadlines and for waits that only give something time
/// to happen.
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(time_scale())
}
