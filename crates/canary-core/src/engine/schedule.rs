//! The schedule of a rollout: the one place a strategy's steps are written.
//!
//! [`Schedule::of`] turns a resolved spec into values: each step's
//! [`Routing`] (what the router does while the step's checks run), the gate
//! passed before the step is applied, how the step is announced, then the
//! gate passed before promoting and the primary weights of a gradual
//! promotion. The engine ([`super::decide`]) walks these values by index
//! and `canary plan` ([`super::plan`]) lists them, so what a plan shows is
//! what a run does; neither computes a weight or places a gate itself.
//! Adding a strategy is one arm of the `match` in [`Schedule::of`].
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

use crate::spec::resolve::{HookType, ResolvedCanary, Strategy};
use crate::spec::types::HttpMatchRequest;

/// Total traffic weight, as in Flagger.
pub const TOTAL_WEIGHT: u32 = 100;

/// What the router does with the traffic of the apex service: set by the
/// engine, and read back from the router, which is the truth for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Routing {
    /// A weighted split of all traffic between primary and canary.
    Weighted { primary: u32, canary: u32 },
    /// All live traffic to the primary; copies of the requests (the
    /// `mirrorWeight` percentage of them, when set) to the canary, whose
    /// answers are dropped. Flagger's `SetRoutes(100, 0, mirrored=true)`.
    Mirrored {
        #[serde(rename = "mirrorWeight", skip_serializing_if = "Option::is_none")]
        mirror_weight: Option<u32>,
    },
    /// Requests matching any of `matches` go to the canary, the rest to
    /// the primary (A/B testing; Flagger's `SetRoutes(0, 100)` on a route
    /// carrying `analysis.match`).
    Matched { matches: Vec<HttpMatchRequest> },
    /// No live traffic reaches the canary: all of it goes to the primary
    /// while the checks exercise the canary through its own service
    /// (blue/green).
    CanaryService,
}

impl Routing {
    /// All traffic to the primary: the routing at rest, after a rollback
    /// and at the end of a promotion.
    pub fn all_primary() -> Routing {
        Routing::weighted(0)
    }

    /// A weighted split giving the canary `canary` percent.
    pub fn weighted(canary: u32) -> Routing {
        let canary = canary.min(TOTAL_WEIGHT);
        Routing::Weighted {
            primary: TOTAL_WEIGHT - canary,
            canary,
        }
    }

    /// The (primary, canary) weights a router that only splits by weight
    /// writes; `None` when weights cannot express this routing (matching
    /// requests, mirroring), so such a router must refuse it.
    pub fn weights(&self) -> Option<(u32, u32)> {
        match self {
            Routing::Weighted { primary, canary } => Some((*primary, *canary)),
            Routing::CanaryService => Some((TOTAL_WEIGHT, 0)),
            Routing::Mirrored { .. } | Routing::Matched { .. } => None,
        }
    }

    /// The canary's share of all live traffic, by weight: what the state,
    /// the events and `canary status` call the canary weight. Mirrored
    /// copies and matched requests are not a share of all traffic, so they
    /// count 0, as in Flagger's status.
    pub fn canary_weight(&self) -> u32 {
        match self {
            Routing::Weighted { canary, .. } => *canary,
            _ => 0,
        }
    }

    /// The primary's share of all live traffic (see [`canary_weight`](Self::canary_weight)).
    pub fn primary_weight(&self) -> u32 {
        TOTAL_WEIGHT - self.canary_weight().min(TOTAL_WEIGHT)
    }

    /// Whether a router reporting `self` does what `other` asks, as far
    /// as a router's report can tell: the same weights, or the same kind
    /// of routing (mirroring, matching) where weights cannot say it.
    /// Blue/green's routing reads back as all traffic to the primary.
    pub fn agrees_with(&self, other: &Routing) -> bool {
        match (self.weights(), other.weights()) {
            (Some(a), Some(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }

    /// The request matches that reach the canary (A/B testing); empty
    /// otherwise.
    pub fn matches(&self) -> &[HttpMatchRequest] {
        match self {
            Routing::Matched { matches } => matches,
            _ => &[],
        }
    }
}

/// How a step is announced, in Flagger's words (see
/// [`super::message::Message::Advanced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// "Advance podinfo.prod canary weight 5".
    Weight(u32),
    /// "Advance podinfo.prod mirroring traffic to the canary".
    Mirror,
    /// "Advance podinfo.prod canary iteration 1/10".
    Iteration { number: u32, of: u32 },
    /// Blue/green's switch before promotion: "Routing all traffic to
    /// canary", or "Stop traffic mirroring and route all traffic to
    /// canary" after mirroring.
    AllToCanary { after_mirroring: bool },
}

/// One analysis step: once its gate (if any) is open the routing is
/// applied; one interval later the checks run and decide whether to go on.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based; the state keeps the number of the step in place.
    pub number: usize,
    pub routing: Routing,
    /// The gate that must be open before the routing is applied.
    pub gate: Option<HookType>,
    /// The iterations counted once the step is applied (A/B testing and
    /// blue/green count iterations; progressive canaries count weight).
    pub iteration: Option<u32>,
    pub advance: Advance,
}

/// Everything a rollout of one canary walks through, from the first step
/// to the primary taking all traffic back.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The analysis steps, in order; empty when `skipAnalysis` is set.
    pub steps: Vec<Step>,
    /// The gate passed after the last step's checks, before the spec is
    /// copied to the primary (`None` when a step carries it already, or
    /// the analysis is skipped).
    pub promotion_gate: Option<HookType>,
    /// The primary weights a gradual promotion (`stepWeightPromotion`)
    /// sets, one interval apart, from the last step's canary weight; empty
    /// when all traffic goes back to the primary at once.
    pub promotion_weights: Vec<u32>,
}

impl Schedule {
    /// The schedule of a canary. Each strategy is one arm: its steps and
    /// where its gates go.
    pub fn of(c: &ResolvedCanary) -> Schedule {
        if c.skip_analysis {
            return Schedule {
                steps: Vec::new(),
                promotion_gate: None,
                promotion_weights: Vec::new(),
            };
        }
        let mirrored = Routing::Mirrored {
            mirror_weight: c.mirror_weight,
        };
        let iterations = |routing: Routing| -> Vec<Draft> {
            (1..=c.iterations)
                .map(|i| Draft {
                    routing: routing.clone(),
                    gate: None,
                    iteration: Some(i),
                    advance: Advance::Iteration {
                        number: i,
                        of: c.iterations,
                    },
                })
                .collect()
        };
        let (steps, promotion_gate) = match &c.strategy {
            Strategy::Canary { mirror } => {
                let mut steps = Vec::new();
                if *mirror {
                    // Flagger mirrors for one interval before the first
                    // weight; no live traffic moves, so no gate.
                    steps.push(Draft {
                        routing: mirrored,
                        gate: None,
                        iteration: None,
                        advance: Advance::Mirror,
                    });
                }
                steps.extend(
                    canary_weights(c.step_weight, &c.step_weights, c.max_weight)
                        .into_iter()
                        .map(|w| Draft {
                            routing: Routing::weighted(w),
                            gate: Some(HookType::ConfirmTrafficIncrease),
                            iteration: None,
                            advance: Advance::Weight(w),
                        }),
                );
                (steps, Some(HookType::ConfirmPromotion))
            }
            Strategy::AbTesting => (
                iterations(Routing::Matched {
                    matches: c.matches.clone(),
                }),
                Some(HookType::ConfirmPromotion),
            ),
            Strategy::BlueGreen { mirror } => {
                let mut steps = iterations(if *mirror {
                    mirrored
                } else {
                    Routing::CanaryService
                });
                if c.routes_traffic() {
                    // Flagger checks once more with all traffic on the
                    // canary before it copies the spec to the primary; the
                    // promotion gate guards that switch.
                    steps.push(Draft {
                        routing: Routing::weighted(TOTAL_WEIGHT),
                        gate: Some(HookType::ConfirmPromotion),
                        iteration: Some(c.iterations + 1),
                        advance: Advance::AllToCanary {
                            after_mirroring: *mirror,
                        },
                    });
                    (steps, None)
                } else {
                    (steps, Some(HookType::ConfirmPromotion))
                }
            }
        };
        let steps: Vec<Step> = steps
            .into_iter()
            .enumerate()
            .map(|(i, d)| Step {
                number: i + 1,
                routing: d.routing,
                gate: d.gate,
                iteration: d.iteration,
                advance: d.advance,
            })
            .collect();
        let last = steps.last().map_or(0, |s| s.routing.canary_weight());
        let promotion_weights = if c.routes_traffic() && last > 0 {
            promotion_weights(last, c.step_weight_promotion)
        } else {
            Vec::new()
        };
        Schedule {
            steps,
            promotion_gate,
            promotion_weights,
        }
    }

    /// The routings a promotion sets once the primary runs the new
    /// revision: each gradual shift, or all traffic back at once.
    pub fn promotion_routings(&self) -> Vec<Routing> {
        if self.promotion_weights.is_empty() {
            return vec![Routing::all_primary()];
        }
        self.promotion_weights
            .iter()
            .map(|p| Routing::weighted(TOTAL_WEIGHT - p))
            .collect()
    }

    /// The canary weights of the progressive steps, in order; empty for
    /// strategies that count iterations instead.
    pub fn progressive_weights(&self) -> Vec<u32> {
        self.steps
            .iter()
            .filter_map(|s| match s.advance {
                Advance::Weight(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    /// How many steps a rollout at this canary weight and iteration count
    /// has applied: the leading steps it has reached. Used to resume from
    /// a state document that does not say which step is in place.
    pub fn steps_reached(&self, canary_weight: u32, iterations: u32) -> usize {
        self.steps
            .iter()
            .take_while(|s| match s.iteration {
                Some(i) => i <= iterations,
                None => s.routing.canary_weight() <= canary_weight,
            })
            .count()
    }
}

/// A step before it is numbered.
struct Draft {
    routing: Routing,
    gate: Option<HookType>,
    iteration: Option<u32>,
    advance: Advance,
}

/// Canary weights for a progressive (`stepWeight`/`stepWeights`) analysis.
fn canary_weights(step_weight: u32, step_weights: &[u32], max_weight: u32) -> Vec<u32> {
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
fn promotion_weights(from_canary: u32, step: u32) -> Vec<u32> {
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
