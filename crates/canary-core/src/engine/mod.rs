//! The decision core: pure functions from spec, state and observations to
//! decisions. No I/O, no clock.
//!
//! - [`schedule`]: the one definition of a rollout's steps, routings and
//!   gates;
//! - [`decide`]: one round of `canary run`, walking the schedule;
//! - [`message`]: what a round tells people, in Flagger's words;
//! - [`state`]: the document a later run resumes from;
//! - [`plan`]: `canary plan`, the schedule as a reader sees it.

pub mod decide;
pub mod message;
pub mod plan;
pub mod schedule;
pub mod state;

pub use message::Message;
