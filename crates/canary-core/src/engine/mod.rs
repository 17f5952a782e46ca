//! The decision core: pure functions from spec (and, later, state and
//! observations) to decisions. No I/O, no clock.

pub mod decide;
pub mod plan;
pub mod schedule;
pub mod state;
