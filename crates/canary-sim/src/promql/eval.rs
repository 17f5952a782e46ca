//! The evaluator proper: selectors, aggregations and binary operators, after
//! Prometheus' `promql/engine.go` (2.x).

use std::collections::{HashMap, HashSet};
use std::time::UNIX_EPOCH;

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR,
    T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUB, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};

use super::{EvalOptions, Flavor, InstantSample, QueryError, Value, functions};
use crate::series::{
    Labels, METRIC_NAME, MatchOp, Matcher, SeriesData, SeriesStore, is_stale_marker,
};

pub(super) struct Evaluator<'a> {
    pub(super) store: &'a SeriesStore,
    pub(super) options: &'a EvalOptions,
    /// Evaluation time, ms.
    pub(super) ts: i64,
    /// Query start and end, for `@ start()` / `@ end()`.
    start: i64,
    end: i64,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(
        store: &'a SeriesStore,
        options: &'a EvalOptions,
        ts: i64,
        start: i64,
        end: i64,
    ) -> Self {
        Self {
            store,
            options,
            ts,
            start,
            end,
        }
    }

    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(vector) => {
                    let out: Vec<InstantSample> = vector
                        .into_iter()
                        .map(|s| InstantSample {
                            labels: s.labels.without_metric_name(),
                            value: -s.value,
                        })
                        .collect();
                    check_unique(&out)?;
                    Ok(Value::Vector(out))
                }
                other => Err(QueryError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got: {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant_selector(vs)?)),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.range_selector(ms)?)),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            Expr::Call(c) => functions::call(self, c),
            Expr::Subquery(_) => Err(QueryError::unsupported("subqueries")),
            Expr::Extension(e) => Err(QueryError::unsupported(format!(
                "extension expression {}",
                e.expr.name()
            ))),
        }
    }

    pub(super) fn eval_vector(&self, expr: &Expr) -> Result<Vec<InstantSample>, QueryError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    pub(super) fn eval_scalar(&self, expr: &Expr) -> Result<f64, QueryError> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// The time a selector reads at: `@` and `offset` applied.
    pub(super) fn selector_time(&self, vs: &VectorSelector) -> i64 {
        let base = match &vs.at {
            None => self.ts,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(at)) => match at.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        };
        match &vs.offset {
            None => base,
            Some(Offset::Pos(d)) => base - d.as_millis() as i64,
            Some(Offset::Neg(d)) => base + d.as_millis() as i64,
        }
    }

    pub(super) fn matchers(&self, vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(QueryError::unsupported("`or` inside a selector"));
        }
        let mut out: Vec<Matcher> = vs
            .matchers
            .matchers
            .iter()
            .map(|m| {
                let op = match &m.op {
                    ParserOp::Equal => MatchOp::Equal,
                    ParserOp::NotEqual => MatchOp::NotEqual,
                    ParserOp::Re(re) => MatchOp::Regex(re.clone()),
                    ParserOp::NotRe(re) => MatchOp::NotRegex(re.clone()),
                };
                Matcher::with_op(&m.name, op, &m.value)
            })
            .collect();
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(METRIC_NAME, name));
        }
        Ok(out)
    }

    fn instant_selector(&self, vs: &VectorSelector) -> Result<Vec<InstantSample>, QueryError> {
        let t = self.selector_time(vs);
        let matchers = self.matchers(vs)?;
        let start = match self.options.flavor {
            Flavor::V2 => t - self.options.lookback_delta_ms,
            Flavor::V3 => t - self.options.lookback_delta_ms + 1,
        };
        Ok(self
            .store
            .select_latest(&matchers, start, t)
            .into_iter()
            .filter(|(_, s)| !is_stale_marker(s.v))
            .map(|(labels, s)| InstantSample { labels, value: s.v })
            .collect())
    }

    /// The samples of a range selector, staleness markers dropped.
    pub(super) fn range_selector(
        &self,
        ms: &MatrixSelector,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let t = self.selector_time(&ms.vs);
        let range = ms.range.as_millis() as i64;
        let start = match self.options.flavor {
            Flavor::V2 => t - range,
            Flavor::V3 => t - range + 1,
        };
        let matchers = self.matchers(&ms.vs)?;
        Ok(self
            .store
            .select(&matchers, start, t)
            .into_iter()
            .filter_map(|mut s| {
                s.samples.retain(|p| !is_stale_marker(p.v));
                (!s.samples.is_empty()).then_some(s)
            })
            .collect())
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Value, QueryError> {
        let op = a.op.id();
        let param = match &a.param {
            Some(p) if op == T_QUANTILE || op == T_TOPK || op == T_BOTTOMK => {
                Some(self.eval_scalar(p)?)
            }
            Some(_) => return Err(QueryError::unsupported(format!("aggregation {}", a.op))),
            None => None,
        };
        if ![
            T_SUM, T_AVG, T_COUNT, T_MIN, T_MAX, T_GROUP, T_STDDEV, T_STDVAR, T_QUANTILE, T_TOPK,
            T_BOTTOMK,
        ]
        .contains(&op)
        {
            return Err(QueryError::unsupported(format!("aggregation {}", a.op)));
        }
        let input = self.eval_vector(&a.expr)?;
        let (without, mut grouping) = match &a.modifier {
            None => (false, Vec::new()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        };
        if without {
            grouping.push(METRIC_NAME.to_string());
        }
        let mut k = 0usize;
        if op == T_TOPK || op == T_BOTTOMK {
            let f = param.unwrap_or(f64::NAN);
            if !(f > -9.223_372_036_854_776e18 && f < 9.223_372_036_854_776e18) {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    super::http::format_value(f)
                )));
            }
            if f < 1.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            k = f as usize;
        }

        struct Group {
            labels: Labels,
            value: f64,
            mean: f64,
            count: usize,
            samples: Vec<InstantSample>,
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for s in input {
            let key = if without {
                s.labels.drop_labels(&grouping)
            } else {
                s.labels.keep(&grouping)
            };
            let v = s.value;
            let Some(&i) = index.get(&key) else {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    labels: key,
                    value: match op {
                        T_STDDEV | T_STDVAR => 0.0,
                        T_GROUP => 1.0,
                        _ => v,
                    },
                    mean: v,
                    count: 1,
                    samples: vec![s],
                });
                continue;
            };
            let g = &mut groups[i];
            match op {
                T_SUM => g.value += v,
                T_AVG => {
                    g.count += 1;
                    let n = g.count as f64;
                    if g.mean.is_infinite()
                        && ((v.is_infinite() && (g.mean > 0.0) == (v > 0.0))
                            || (!v.is_infinite() && !v.is_nan()))
                    {
                        continue;
                    }
                    g.mean += v / n - g.mean / n;
                }
                T_MAX if (g.value < v || g.value.is_nan()) => {
                    g.value = v;
                }
                T_MIN if (g.value > v || g.value.is_nan()) => {
                    g.value = v;
                }
                T_COUNT => g.count += 1,
                T_STDDEV | T_STDVAR => {
                    g.count += 1;
                    let delta = v - g.mean;
                    g.mean += delta / g.count as f64;
                    g.value += delta * (v - g.mean);
                }
                T_QUANTILE | T_TOPK | T_BOTTOMK => g.samples.push(s),
                _ => {}
            }
        }

        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let value = match op {
                T_AVG => g.mean,
                T_COUNT => g.count as f64,
                T_STDVAR => g.value / g.count as f64,
                T_STDDEV => (g.value / g.count as f64).sqrt(),
                T_QUANTILE => {
                    let values: Vec<f64> = g.samples.iter().map(|s| s.value).collect();
                    functions::quantile(param.unwrap_or(f64::NAN), values)
                }
                T_TOPK | T_BOTTOMK => {
                    let mut samples = g.samples;
                    // NaN is the least wanted value for both.
                    samples.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == T_TOPK => b.value.total_cmp(&a.value),
                        _ => a.value.total_cmp(&b.value),
                    });
                    out.extend(samples.into_iter().take(k));
                    continue;
                }
                _ => g.value,
            };
            out.push(InstantSample {
                labels: g.labels,
                value,
            });
        }
        Ok(Value::Vector(out))
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Value, QueryError> {
        let op = b.op.id();
        let modifier = b.modifier.clone().unwrap_or_default();
        if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
            return Err(QueryError::unsupported("fill modifiers"));
        }
        let return_bool = modifier.return_bool;
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let out = match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem_binop(op, l, r)?;
                return Ok(Value::Scalar(if is_comparison(op) {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }));
            }
            (Value::Vector(l), Value::Scalar(r)) => vector_scalar(op, l, r, false, return_bool)?,
            (Value::Scalar(l), Value::Vector(r)) => vector_scalar(op, r, l, true, return_bool)?,
            (Value::Vector(l), Value::Vector(r)) => {
                let (on, names) = match &modifier.matching {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, Vec::new()),
                };
                let matching = Matching {
                    on,
                    names,
                    card: modifier.card.clone(),
                };
                match op {
                    T_LAND => set_and(l, r, &matching, false),
                    T_LUNLESS => set_and(l, r, &matching, true),
                    T_LOR => set_or(l, r, &matching),
                    _ => vector_vector(op, l, r, &matching, return_bool)?,
                }
            }
            (l, r) => {
                return Err(QueryError::BadData(format!(
                    "binary expression must contain only scalar and instant vector types, got {} and {}",
                    l.type_name(),
                    r.type_name()
                )));
            }
        };
        check_unique(&out)?;
        Ok(Value::Vector(out))
    }
}

/// Prometheus refuses results with two elements of the same label set.
pub(super) fn check_unique(v: &[InstantSample]) -> Result<(), QueryError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Prometheus' `shouldDropMetricName`.
fn drops_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD | T_ATAN2)
}

/// Prometheus' `vectorElemBinop`: the value and, for comparisons, whether
/// the element is kept.
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => return Err(QueryError::unsupported(format!("operator {op}"))),
    })
}

fn vector_scalar(
    op: TokenId,
    vector: Vec<InstantSample>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
) -> Result<Vec<InstantSample>, QueryError> {
    if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
        return Err(QueryError::BadData(
            "set operator not allowed in binary scalar expression".into(),
        ));
    }
    let mut out = Vec::with_capacity(vector.len());
    for s in vector {
        let (l, r) = if scalar_left {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        // A comparison keeps the vector's value, whichever side it is on.
        if is_comparison(op) && scalar_left {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool {
                s.labels.without_metric_name()
            } else {
                s.labels
            };
            out.push(InstantSample { labels, value });
        }
    }
    Ok(out)
}

struct Matching {
    on: bool,
    names: Vec<String>,
    card: VectorMatchCardinality,
}

impl Matching {
    /// The labels two elements must share to match.
    fn signature(&self, labels: &Labels) -> Labels {
        if self.on {
            labels.keep(&self.names)
        } else {
            let mut names = self.names.clone();
            names.push(METRIC_NAME.to_string());
            labels.drop_labels(&names)
        }
    }
}

fn set_and(
    lhs: Vec<InstantSample>,
    rhs: Vec<InstantSample>,
    m: &Matching,
    unless: bool,
) -> Vec<InstantSample> {
    let right: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&m.signature(&s.labels)) != unless)
        .collect()
}

fn set_or(lhs: Vec<InstantSample>, rhs: Vec<InstantSample>, m: &Matching) -> Vec<InstantSample> {
    let left: HashSet<Labels> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&m.signature(&s.labels))),
    );
    out
}

/// Prometheus' `VectorBinop` for one-to-one, many-to-one and one-to-many
/// matching.
fn vector_vector(
    op: TokenId,
    lhs: Vec<InstantSample>,
    rhs: Vec<InstantSample>,
    m: &Matching,
    return_bool: bool,
) -> Result<Vec<InstantSample>, QueryError> {
    let (include, one_to_many) = match &m.card {
        VectorMatchCardinality::OneToOne => (Vec::new(), false),
        VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false),
        VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true),
        VectorMatchCardinality::ManyToMany => {
            return Err(QueryError::BadData(
                "many-to-many matching only allowed for set operators".into(),
            ));
        }
    };
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // The control flow handles one-to-one and many-to-one; one-to-many
    // swaps the sides and swaps the operands back below.
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };

    let mut right: HashMap<Labels, InstantSample> = HashMap::with_capacity(rhs.len());
    for rs in rhs {
        let sig = m.signature(&rs.labels);
        if let Some(dup) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                rs.labels, dup.labels
            )));
        }
        right.insert(sig, rs);
    }

    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = m.signature(&ls.labels);
        let Some(rs) = right.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (rs.value, ls.value)
        } else {
            (ls.value, rs.value)
        };
        let (mut value, keep) = elem_binop(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_metric(&ls.labels, &rs.labels, op, m, &include, one_to_one);
        if return_bool {
            metric = metric.without_metric_name();
        }
        match matched.get_mut(&sig) {
            Some(_) if one_to_one => {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            Some(inserted) => {
                if !inserted.insert(metric.clone()) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
            None => {
                matched.insert(sig, HashSet::from([metric.clone()]));
            }
        }
        out.push(InstantSample {
            labels: metric,
            value,
        });
    }
    Ok(out)
}

/// Prometheus' `resultMetric`.
fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    op: TokenId,
    m: &Matching,
    include: &[String],
    one_to_one: bool,
) -> Labels {
    let mut out = lhs.clone();
    if drops_name(op) {
        out.remove(METRIC_NAME);
    }
    if one_to_one {
        out = if m.on {
            out.keep(&m.names)
        } else {
            out.drop_labels(&m.names)
        };
    }
    for name in include {
        match rhs.get(name) {
            Some(v) => out.set(name.clone(), v),
            None => out.remove(name),
        }
    }
    out
}
