//! The Prometheus text exposition format (version 0.0.4) of the store's
//! current values, so a real Prometheus can scrape the sim at `/metrics`.
//!
//! One `# HELP` (when set) and `# TYPE` line per family, then its series
//! sorted by label set; a histogram's buckets in `le` order followed by
//! its `_sum` and `_count`. No timestamps: the scraper stamps samples
//! itself, as with any live target.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::series::{
    BUCKET_LABEL, Labels, METRIC_NAME, MetricKind, SeriesStore, format_go_float, now_ms,
};

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every live series' value at `at` (ms).
pub fn render(store: &SeriesStore, at: i64) -> String {
    let mut out = String::new();
    for family in store.snapshot(at) {
        if let Some(help) = &family.help {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {} {}", family.name, help);
        }
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        let mut series = family.series;
        if matches!(family.kind, MetricKind::Histogram | MetricKind::Summary) {
            series.sort_by(|a, b| histogram_order(&a.0, &b.0));
        }
        for (labels, value) in &series {
            write_sample(&mut out, labels, *value);
        }
    }
    out
}

/// A router serving `GET /metrics` from `store` at the wall clock time.
pub fn router(store: Arc<SeriesStore>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(store)
}

async fn metrics(State(store): State<Arc<SeriesStore>>) -> impl IntoResponse {
    let at = store.now().max(now_ms());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&store, at))
}

/// Series of one histogram or summary: by label set without `le` and name, then
/// buckets by bound, then `_sum`, then `_count`.
fn histogram_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    let key = |l: &Labels| {
        let name = l.metric_name().unwrap_or_default();
        let rank = if name.ends_with("_bucket") {
            0
        } else if name.ends_with("_sum") {
            1
        } else {
            2
        };
        let mut rest = l.clone().without_metric_name();
        rest.remove(BUCKET_LABEL);
        let bound = l
            .get(BUCKET_LABEL)
            .map(|le| {
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                }
            })
            .unwrap_or(0.0);
        (rest, rank, bound)
    };
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0)
        .then(ka.1.cmp(&kb.1))
        .then(ka.2.total_cmp(&kb.2))
}

fn write_sample(out: &mut String, labels: &Labels, value: f64) {
    out.push_str(labels.metric_name().unwrap_or_default());
    let mut first = true;
    for (k, v) in labels.iter().filter(|(k, _)| *k != METRIC_NAME) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_go_float(value));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::StoreConfig;

    #[test]
    fn renders_text_format_0_0_4() {
        let store = SeriesStore::new(StoreConfig::on_change());
        store.set_help("response_total", "A counter of responses");
        store.counter_add(
            "response_total",
            &[("deployment", "podinfo"), ("path", "/a\"b\\c\nd")],
            3.0,
            1000,
        );
        store.histogram_observe_n("latency_ms", &[("pod", "p")], 20.0, 4, &[10.0, 1e6], 1000);
        store.summary_observe_n("upstream_seconds", &[("ingress", "i")], 0.25, 2, 1000);
        store.gauge_set("up", &[], 1.0, 1000);
        assert_eq!(
            render(&store, 1000),
            "# TYPE latency_ms histogram\n\
             latency_ms_bucket{le=\"10\",pod=\"p\"} 0\n\
             latency_ms_bucket{le=\"1e+06\",pod=\"p\"} 4\n\
             latency_ms_bucket{le=\"+Inf\",pod=\"p\"} 4\n\
             latency_ms_sum{pod=\"p\"} 80\n\
             latency_ms_count{pod=\"p\"} 4\n\
             # HELP response_total A counter of responses\n\
             # TYPE response_total counter\n\
             response_total{deployment=\"podinfo\",path=\"/a\\\"b\\\\c\\nd\"} 3\n\
             # TYPE up gauge\n\
             up 1\n\
             # TYPE upstream_seconds summary\n\
             upstream_seconds_sum{ingress=\"i\"} 0.5\n\
             upstream_seconds_count{ingress=\"i\"} 2\n"
        );
        // Nothing written yet at that time.
        assert_eq!(render(&store, 999), "");
    }
}
