//! The schedule of a rollout: which traffic steps a strategy walks through,
//! computed from the resolved spec alone.
//!
//! Flagger's weight arithmetic is kept exactly: from 0 the canary weight
//! grows by `stepWeight` (or to the next `stepWeights` entry) while it is
//! below `maxWeight`, capped at 100, so `stepWeight: 20, maxWeight: 50`
//! walks 20, 40, 60 and then promotes. The timing differs on purpose:
//! Flagger spends one interval only noticing a new revision and three more
//! promoting and finalising; here the first weight is set as soon as the
//! canary is ready and the pre-rollout hooks pass, and promotion starts
//! right after the last check, so an analysis takes `steps x interval`.

use serde::Serialize;

use crate::spec::resolve::{ResolvedCanary, Strategy};

/// Total traffic weight, as in Flagger.
pub const TOTAL_WEIGHT: u32 = 100;

/// What the router sends where during one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Routing {
    /// Weighted split between primary and canary.
    Weighted { primary: u32, canary: u32 },
    /// All traffic to the primary, mirrored to the canary.
    Mirrored,
    /// Requests matching `analysis.match` go to the canary, the rest to the
    /// primary (A/B testing).
    Matched,
    /// No live traffic reaches the canary; checks look at the canary
    /// service alone (blue/green).
    CanaryService,
}

impl Routing {
    /// The (primary, canary) weights the router object carries.
    pub fn weights(self) -> (u32, u32) {
        match self {
            Routing::Weighted { primary, canary } => (primary, canary),
            Routing::Mirrored | Routing::CanaryService => (TOTAL_WEIGHT, 0),
            Routing::Matched => (0, TOTAL_WEIGHT),
        }
    }
}

/// One analysis step: traffic is routed as given, then one interval later
/// the checks run and decide whether to advance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// 1-based.
    pub number: usize,
    pub routing: Routing,
}

/// Canary weights for a progressive (`stepWeight`/`stepWeights`) analysis.
pub fn canary_weights(step_weight: u32, step_weights: &[u32], max_weight: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut w = 0u32;
    while w < max_weight {
        let next = next_step(step_weight, step_weights, w);
        if next == 0 {
            break;
        }
        w = (w + next).min(TOTAL_WEIGHT);
        out.push(w);
    }
    out
}

/// Flagger's `nextStepWeight`: the increment from `current`.
fn next_step(step_weight: u32, step_weights: &[u32], current: u32) -> u32 {
    if step_weight > 0 || step_weights.is_empty() {
        return step_weight;
    }
    let max_step = TOTAL_WEIGHT.saturating_sub(current);
    if max_step == 0 {
        return 1;
    }
    if current == 0 {
        return max_step.min(step_weights[0]);
    }
    for pair in step_weights.windows(2) {
        if pair[0] == current {
            return max_step.min(pair[1].saturating_sub(current));
        }
    }
    max_step
}

/// The primary weights a gradual promotion walks through
/// (`stepWeightPromotion`), starting from the canary weight at promotion.
pub fn promotion_weights(from_canary: u32, step: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if step == 0 {
        return out;
    }
    let mut canary = from_canary;
    while canary > 0 {
        canary = canary.saturating_sub(step);
        out.push(TOTAL_WEIGHT - canary);
    }
    out
}

/// Every analysis step of a canary, in order.
pub fn steps(c: &ResolvedCanary) -> Vec<Step> {
    let routings: Vec<Routing> = match &c.strategy {
        Strategy::Canary { mirror } => {
            let mut r = Vec::new();
            if *mirror {
                r.push(Routing::Mirrored);
            }
            r.extend(
                canary_weights(c.step_weight, &c.step_weights, c.max_weight)
                    .into_iter()
                    .map(|w| Routing::Weighted {
                        primary: TOTAL_WEIGHT - w,
                        canary: w,
                    }),
            );
            r
        }
        Strategy::AbTesting => vec![Routing::Matched; c.iterations as usize],
        Strategy::BlueGreen { mirror } => {
            let each = if *mirror {
                Routing::Mirrored
            } else {
                Routing::CanaryService
            };
            let mut r = vec![each; c.iterations as usize];
            if c.routes_traffic() {
                // Flagger checks once more with all traffic on the canary
                // before it copies the spec to the primary.
                r.push(Routing::Weighted {
                    primary: 0,
                    canary: TOTAL_WEIGHT,
                });
            }
            r
        }
    };
    routings
        .into_iter()
        .enumerate()
        .map(|(i, routing)| Step {
            number: i + 1,
            routing,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_weight_walks_to_max_weight() {
        let w = canary_weights(5, &[], 100);
        assert_eq!(w.len(), 20);
        assert_eq!(w.first(), Some(&5));
        assert_eq!(w.last(), Some(&100));
    }

    #[test]
    fn step_weight_overshoots_max_weight_like_flagger() {
        assert_eq!(canary_weights(20, &[], 50), vec![20, 40, 60]);
        assert_eq!(canary_weights(30, &[], 100), vec![30, 60, 90, 100]);
    }

    #[test]
    fn step_weights_are_followed_and_capped() {
        assert_eq!(canary_weights(0, &[1, 2, 10, 80], 80), vec![1, 2, 10, 80]);
        assert_eq!(canary_weights(0, &[10, 50, 120], 100), vec![10, 50, 100]);
    }

    #[test]
    fn gradual_promotion_raises_the_primary() {
        assert_eq!(promotion_weights(50, 20), vec![70, 90, 100]);
        assert_eq!(promotion_weights(100, 50), vec![50, 100]);
        assert!(promotion_weights(50, 0).is_empty());
    }
}
