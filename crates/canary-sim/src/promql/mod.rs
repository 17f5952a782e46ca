//! A PromQL evaluator over the sim's [`SeriesStore`] and Prometheus' HTTP
//! query API in front of it.
//!
//! In tests and `canary demo` this *is* the Prometheus the tool talks to,
//! so it answers as Prometheus 2.x does (the version Debian ships, which
//! the agreement test in `tests/sim_promql.rs` runs side by side):
//! parsing is `promql-parser`'s; evaluation follows Prometheus' engine
//! (`promql/engine.go`, `functions.go`, `quantile.go`) for what Flagger's
//! built-in queries and common MetricTemplates use:
//!
//! * vector selectors with `=`, `!=`, `=~`, `!~` (regexes anchored), the
//!   5-minute lookback, staleness, `offset` and `@`; range selectors;
//! * `rate`, `irate`, `increase`, `delta`, `idelta` with Prometheus'
//!   extrapolation and counter-reset handling; `resets`, `changes`,
//!   `{avg,sum,min,max,count,last,quantile,stddev,stdvar}_over_time`,
//!   `absent`, `absent_over_time`;
//! * `histogram_quantile` over classic buckets, `label_replace`, `vector`,
//!   `scalar`, `time`, `sort`, `sort_desc`, `abs`, `ceil`, `floor`,
//!   `round`, `exp`, `sqrt`, `ln`, `log2`, `log10`, `sgn`, `clamp`,
//!   `clamp_min`, `clamp_max`;
//! * `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//!   `quantile`, `topk`, `bottomk`, with `by` / `without`;
//! * arithmetic, comparison (with and without `bool`), `atan2` and the set
//!   operators `and` / `or` / `unless` between scalars and vectors, with
//!   `on` / `ignoring` and `group_left` / `group_right`; unary minus.
//!
//! Anything else (subqueries, `count_values`, native histograms, other
//! functions) is refused with a `bad_data` error instead of being answered
//! differently from Prometheus.

mod eval;
mod functions;
mod http;

use std::fmt;

use promql_parser::parser::Expr;

use crate::series::{Labels, SeriesData, SeriesStore};

pub use http::PrometheusApi;

/// How the evaluator treats window boundaries and extrapolation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavor {
    /// Prometheus 2.x (Debian's 2.42): ranges and the lookback include
    /// their start (`[t - range, t]`); `rate` clamps the start
    /// extrapolation to the counter's zero point before comparing it with
    /// the extrapolation threshold.
    #[default]
    V2,
    /// Prometheus 3.x: ranges and the lookback exclude their start
    /// (`(t - range, t]`); the zero-point clamp applies after the
    /// threshold.
    V3,
}

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// How far back an instant vector selector looks (Prometheus'
    /// `--query.lookback-delta`, 5m).
    pub lookback_delta_ms: i64,
    pub flavor: Flavor,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            flavor: Flavor::V2,
        }
    }
}

/// One element of an instant vector; its time is the evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub value: f64,
}

/// A query result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<InstantSample>),
    Matrix(Vec<SeriesData>),
}

impl Value {
    /// The `resultType` Prometheus reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }

    /// The value of a scalar or of a one-element vector.
    pub fn single(&self) -> Option<f64> {
        match self {
            Value::Scalar(v) => Some(*v),
            Value::Vector(v) if v.len() == 1 => Some(v[0].value),
            _ => None,
        }
    }
}

/// A failed query, with the `errorType` and HTTP status Prometheus uses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query (or a parameter) is invalid, or uses something this
    /// evaluator does not support: `bad_data`, 400.
    #[error("{0}")]
    BadData(String),
    /// The query failed while running (e.g. many-to-many matching):
    /// `execution`, 422.
    #[error("{0}")]
    Execution(String),
}

impl QueryError {
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) => 422,
        }
    }

    pub(crate) fn unsupported(what: impl fmt::Display) -> Self {
        QueryError::BadData(format!("unsupported by the simulated Prometheus: {what}"))
    }
}

/// Parses a query with `promql-parser`.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    promql_parser::parser::parse(query).map_err(QueryError::BadData)
}

/// Evaluates `query` at `time_ms` with the default options.
pub fn instant_query(store: &SeriesStore, query: &str, time_ms: i64) -> Result<Value, QueryError> {
    instant_query_with(store, query, time_ms, &EvalOptions::default())
}

/// Evaluates `query` at `time_ms`, as `GET /api/v1/query` does.
pub fn instant_query_with(
    store: &SeriesStore,
    query: &str,
    time_ms: i64,
    options: &EvalOptions,
) -> Result<Value, QueryError> {
    eval_instant(store, &parse(query)?, time_ms, options)
}

/// Evaluates a parsed query at `time_ms`.
pub fn eval_instant(
    store: &SeriesStore,
    expr: &Expr,
    time_ms: i64,
    options: &EvalOptions,
) -> Result<Value, QueryError> {
    eval::Evaluator::new(store, options, time_ms, time_ms, time_ms).eval(expr)
}

/// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms`, as
/// `GET /api/v1/query_range` does: a matrix sorted by label set.
pub fn range_query(
    store: &SeriesStore,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &EvalOptions,
) -> Result<Value, QueryError> {
    eval_range(store, &parse(query)?, start_ms, end_ms, step_ms, options)
}

/// Evaluates a parsed query over a range, as [`range_query`].
pub fn eval_range(
    store: &SeriesStore,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &EvalOptions,
) -> Result<Value, QueryError> {
    use crate::series::Sample;
    use std::collections::BTreeMap;

    let kind = expr.value_type();
    if !matches!(
        kind,
        promql_parser::parser::value::ValueType::Scalar
            | promql_parser::parser::value::ValueType::Vector
    ) {
        return Err(QueryError::BadData(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            kind_name(kind)
        )));
    }
    let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    let mut t = start_ms;
    while t <= end_ms {
        match eval::Evaluator::new(store, options, t, start_ms, end_ms).eval(expr)? {
            Value::Scalar(v) => series
                .entry(Labels::new())
                .or_default()
                .push(Sample { t, v }),
            Value::Vector(vector) => {
                for s in vector {
                    series
                        .entry(s.labels)
                        .or_default()
                        .push(Sample { t, v: s.value });
                }
            }
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query",
                    other.type_name()
                )));
            }
        }
        t += step_ms;
    }
    Ok(Value::Matrix(
        series
            .into_iter()
            .map(|(labels, samples)| SeriesData { labels, samples })
            .collect(),
    ))
}

fn kind_name(kind: promql_parser::parser::value::ValueType) -> &'static str {
    use promql_parser::parser::value::ValueType;
    match kind {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

#[cfg(test)]
mod tests;
