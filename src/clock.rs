//! The wall clock, read in one place.
//!
//! The core takes time as an input and never reads it; the binary reads it
//! here and nowhere else, so what a run decides at a moment is decided
//! from one value it can be given.

use canary_core::time::Time;

/// The wall clock, as the engine's time.
pub(crate) fn now() -> Time {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Time(ms)
}
