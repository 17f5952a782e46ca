//! The decision core: pure functions from spec (and, later, state and
//! observations) to decisions. No I/O, no clock.

pub mod plan;
pub mod schedule;
