//! PromQL functions, after Prometheus' `promql/functions.go` and
//! `quantile.go` (2.x).

use std::collections::HashMap;

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{Call, Expr, VectorSelector};
use regex::Regex;

use super::eval::{Evaluator, check_unique};
use super::{Flavor, InstantSample, QueryError, Value};
use crate::series::{BUCKET_LABEL, Labels, METRIC_NAME, Sample};

pub(super) fn call(ev: &Evaluator, c: &Call) -> Result<Value, QueryError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .ok_or_else(|| QueryError::BadData(format!("missing argument {} to {name}()", i + 1)))
    };
    let out = match name {
        "time" => return Ok(Value::Scalar(ev.ts as f64 / 1000.0)),
        "scalar" => {
            let v = ev.eval_vector(arg(0)?)?;
            return Ok(Value::Scalar(if v.len() == 1 {
                v[0].value
            } else {
                f64::NAN
            }));
        }
        "vector" => vec![InstantSample {
            labels: Labels::new(),
            value: ev.eval_scalar(arg(0)?)?,
        }],
        "abs" => simple(ev.eval_vector(arg(0)?)?, f64::abs),
        "ceil" => simple(ev.eval_vector(arg(0)?)?, f64::ceil),
        "floor" => simple(ev.eval_vector(arg(0)?)?, f64::floor),
        "exp" => simple(ev.eval_vector(arg(0)?)?, f64::exp),
        "sqrt" => simple(ev.eval_vector(arg(0)?)?, f64::sqrt),
        "ln" => simple(ev.eval_vector(arg(0)?)?, f64::ln),
        "log2" => simple(ev.eval_vector(arg(0)?)?, f64::log2),
        "log10" => simple(ev.eval_vector(arg(0)?)?, f64::log10),
        "sgn" => simple(ev.eval_vector(arg(0)?)?, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        "round" => {
            let v = ev.eval_vector(arg(0)?)?;
            let to_nearest = match args.get(1) {
                Some(e) => ev.eval_scalar(e)?,
                None => 1.0,
            };
            let inverse = 1.0 / to_nearest;
            simple(v, |x| (x * inverse + 0.5).floor() / inverse)
        }
        "clamp" => {
            let v = ev.eval_vector(arg(0)?)?;
            let (min, max) = (ev.eval_scalar(arg(1)?)?, ev.eval_scalar(arg(2)?)?);
            if max < min {
                Vec::new()
            } else {
                simple(v, |x| go_max(min, go_min(max, x)))
            }
        }
        "clamp_min" => {
            let v = ev.eval_vector(arg(0)?)?;
            let min = ev.eval_scalar(arg(1)?)?;
            simple(v, |x| go_max(min, x))
        }
        "clamp_max" => {
            let v = ev.eval_vector(arg(0)?)?;
            let max = ev.eval_scalar(arg(1)?)?;
            simple(v, |x| go_min(max, x))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(0)?)?;
            // NaN first either way, as Prometheus' heap comparators put it.
            v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                _ if name == "sort" => a.value.total_cmp(&b.value),
                _ => b.value.total_cmp(&a.value),
            });
            return Ok(Value::Vector(v));
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?)?;
            histogram_quantile(q, ev.eval_vector(arg(1)?)?)
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(0)?)?;
            let s = |i| string_arg(ev, arg(i)?);
            label_replace(v, &s(1)?, &s(2)?, &s(3)?, &s(4)?)?
        }
        "absent" => {
            let e = arg(0)?;
            if ev.eval_vector(e)?.is_empty() {
                let labels = match e {
                    Expr::VectorSelector(vs) => absent_labels(vs),
                    _ => Labels::new(),
                };
                vec![InstantSample { labels, value: 1.0 }]
            } else {
                Vec::new()
            }
        }
        "rate" | "increase" | "delta" | "irate" | "idelta" | "resets" | "changes"
        | "avg_over_time" | "sum_over_time" | "min_over_time" | "max_over_time"
        | "count_over_time" | "last_over_time" | "stddev_over_time" | "stdvar_over_time"
        | "quantile_over_time" | "absent_over_time" => {
            let (param, e) = if name == "quantile_over_time" {
                (ev.eval_scalar(arg(0)?)?, arg(1)?)
            } else {
                (f64::NAN, arg(0)?)
            };
            range_function(ev, name, param, e)?
        }
        _ => return Err(QueryError::unsupported(format!("function {name}()"))),
    };
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

fn string_arg(ev: &Evaluator, e: &Expr) -> Result<String, QueryError> {
    match ev.eval(e)? {
        Value::String(s) => Ok(s),
        other => Err(QueryError::BadData(format!(
            "expected string, got {}",
            other.type_name()
        ))),
    }
}

/// An element-wise function; drops the metric name.
fn simple(v: Vec<InstantSample>, f: impl Fn(f64) -> f64) -> Vec<InstantSample> {
    v.into_iter()
        .map(|s| InstantSample {
            labels: s.labels.without_metric_name(),
            value: f(s.value),
        })
        .collect()
}

/// Go's `math.Max`: NaN wins over anything but +Inf.
fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { y } else { x }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: NaN wins over anything but -Inf.
fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { x } else { y }
    } else if x < y {
        x
    } else {
        y
    }
}

fn range_function(
    ev: &Evaluator,
    name: &str,
    param: f64,
    e: &Expr,
) -> Result<Vec<InstantSample>, QueryError> {
    let ms = match e {
        Expr::MatrixSelector(ms) => ms,
        Expr::Subquery(_) => return Err(QueryError::unsupported("subqueries")),
        _ => {
            return Err(QueryError::BadData(format!(
                "expected a range vector selector in {name}()"
            )));
        }
    };
    let series = ev.range_selector(ms)?;
    if name == "absent_over_time" {
        return Ok(if series.is_empty() {
            vec![InstantSample {
                labels: absent_labels(&ms.vs),
                value: 1.0,
            }]
        } else {
            Vec::new()
        });
    }
    let range_end = ev.selector_time(&ms.vs);
    let range_ms = ms.range.as_millis() as i64;
    let range_start = range_end - range_ms;
    let flavor = ev.options.flavor;
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let p = &s.samples;
        let values = || p.iter().map(|s| s.v);
        let value = match name {
            "rate" => extrapolated_rate(p, range_start, range_end, true, true, flavor),
            "increase" => extrapolated_rate(p, range_start, range_end, true, false, flavor),
            "delta" => extrapolated_rate(p, range_start, range_end, false, false, flavor),
            "irate" => instant_value(p, true),
            "idelta" => instant_value(p, false),
            "resets" => Some(p.windows(2).filter(|w| w[1].v < w[0].v).count() as f64),
            "changes" => Some(
                p.windows(2)
                    .filter(|w| !(w[1].v == w[0].v || (w[1].v.is_nan() && w[0].v.is_nan())))
                    .count() as f64,
            ),
            "count_over_time" => Some(p.len() as f64),
            "last_over_time" => p.last().map(|s| s.v),
            "sum_over_time" => Some(kahan_sum(values())),
            "avg_over_time" => Some(avg_over_time(values())),
            "max_over_time" => {
                Some(values().fold(p[0].v, |m, v| if v > m || m.is_nan() { v } else { m }))
            }
            "min_over_time" => {
                Some(values().fold(p[0].v, |m, v| if v < m || m.is_nan() { v } else { m }))
            }
            "stdvar_over_time" => Some(variance(values())),
            "stddev_over_time" => Some(variance(values()).sqrt()),
            "quantile_over_time" => Some(quantile(param, values().collect())),
            _ => return Err(QueryError::unsupported(format!("function {name}()"))),
        };
        if let Some(value) = value {
            let labels = if name == "last_over_time" {
                s.labels
            } else {
                s.labels.without_metric_name()
            };
            out.push(InstantSample { labels, value });
        }
    }
    Ok(out)
}

/// Prometheus' `extrapolatedRate` for `rate`, `increase` and `delta` over
/// the samples of `[range_start, range_end]` (times in ms).
pub(super) fn extrapolated_rate(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    flavor: Flavor,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut result = last.v - first.v;
    if is_counter {
        // A drop is a counter reset: the counter restarted from 0.
        for w in samples.windows(2) {
            if w[1].v < w[0].v {
                result += w[0].v;
            }
        }
    }
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_between_samples * 1.1;
    // Counters cannot be negative: do not extrapolate the start past the
    // point where the counter would have been 0.
    let zero_point = (is_counter && result > 0.0 && first.v >= 0.0)
        .then(|| sampled_interval * (first.v / result));
    let extrapolate_to = match flavor {
        Flavor::V2 => {
            if let Some(to_zero) = zero_point
                && to_zero < duration_to_start
            {
                duration_to_start = to_zero;
            }
            let mut interval = sampled_interval;
            interval += if duration_to_start < threshold {
                duration_to_start
            } else {
                average_between_samples / 2.0
            };
            interval += if duration_to_end < threshold {
                duration_to_end
            } else {
                average_between_samples / 2.0
            };
            interval
        }
        Flavor::V3 => {
            if duration_to_start >= threshold {
                duration_to_start = average_between_samples / 2.0;
            }
            if let Some(to_zero) = zero_point
                && to_zero < duration_to_start
            {
                duration_to_start = to_zero;
            }
            if duration_to_end >= threshold {
                duration_to_end = average_between_samples / 2.0;
            }
            sampled_interval + duration_to_start + duration_to_end
        }
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Prometheus' `instantValue` for `irate` and `idelta`: the last two samples.
fn instant_value(samples: &[Sample], is_rate: bool) -> Option<f64> {
    let [.., previous, last] = samples else {
        return None;
    };
    let mut value = if is_rate && last.v < previous.v {
        last.v // counter reset
    } else {
        last.v - previous.v
    };
    let interval = last.t - previous.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        value /= interval as f64 / 1000.0;
    }
    Some(value)
}

/// Prometheus' `kahanSumInc` (Neumaier's variant).
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

fn avg_over_time(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
    for v in values {
        count += 1.0;
        if mean.is_infinite()
            && ((v.is_infinite() && (mean > 0.0) == (v > 0.0)) || (!v.is_infinite() && !v.is_nan()))
        {
            continue;
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus' `quantile` (the `quantile` aggregation and
/// `quantile_over_time`): linear interpolation between the closest ranks.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `histogram_quantile(q, v)` over classic `le` buckets.
fn histogram_quantile(q: f64, input: Vec<InstantSample>) -> Vec<InstantSample> {
    // Grouped by all labels but `le` (the metric name included, as in
    // Prometheus); the result drops both.
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let Some(upper) = s.labels.get(BUCKET_LABEL).and_then(parse_go_float) else {
            continue; // no or malformed `le`: skipped, as Prometheus does
        };
        let mut key = s.labels;
        key.remove(BUCKET_LABEL);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key.without_metric_name(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((upper, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| InstantSample {
            labels,
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

/// Prometheus' `bucketQuantile` (2.x): `buckets` are (upper bound,
/// cumulative count).
pub(super) fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    // Force monotonic counts (rates of different buckets may disagree).
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    let n = merged.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = search(n - 1, |i| merged[i].1 >= rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Go's `sort.Search`: the smallest i in [0, n) with f(i), else n.
fn search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if !f(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Go's `strconv.ParseFloat` for the values labels hold (`+Inf`, `0.5`,
/// `1e+06`).
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let special = body.to_ascii_lowercase();
    if matches!(special.as_str(), "inf" | "infinity" | "nan") {
        let v = if special == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if s.starts_with('-') { -v } else { v });
    }
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    s.parse().ok()
}

fn label_replace(
    v: Vec<InstantSample>,
    dst: &str,
    replacement: &str,
    src: &str,
    pattern: &str,
) -> Result<Vec<InstantSample>, QueryError> {
    let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|_| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    let valid_name = !dst.is_empty()
        && dst
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid_name {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    Ok(v.into_iter()
        .map(|mut s| {
            let value = s.labels.value(src).to_string();
            if let Some(caps) = re.captures(&value) {
                let mut out = String::new();
                caps.expand(replacement, &mut out);
                s.labels.set(dst, out);
            }
            s
        })
        .collect())
}

/// The labels `absent()` gives its one sample: the selector's equality
/// matchers (a label matched twice is left out, as in Prometheus).
fn absent_labels(vs: &VectorSelector) -> Labels {
    let mut labels = Labels::new();
    let mut seen = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, ParserOp::Equal) && !seen.contains(&m.name) {
            labels.set(m.name.clone(), m.value.clone());
            seen.push(m.name.clone());
        } else {
            labels.remove(&m.name);
        }
    }
    labels
}
