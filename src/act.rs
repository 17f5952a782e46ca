//! `canary abort`, `promote`, `pause` and `resume`: requests to a rollout.

use crate::cli::ActArgs;
use crate::exit::Outcome;

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Abort,
    Promote,
    Pause,
    Resume,
}

pub async fn act(request: Request, args: ActArgs) -> Outcome {
    let _ = (request, args);
    crate::ui::error("not built yet");
    Outcome::Usage
}
