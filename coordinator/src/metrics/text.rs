//! The two exposition formats of `/metrics` and the choice between them.
//!
//! prometheus-client writes OpenMetrics 1.0, which Prometheus asks for in its `Accept` header.
//! Everything else (curl, `promtool check metrics`, older scrapers) gets the Prometheus text
//! format 0.0.4, derived from the OpenMetrics text by [`to_prometheus_text`]: the `# EOF` and
//! `# UNIT` lines go, and a counter family is named after its samples (`x_total`), as the older
//! format wants. The registry holds only counters and gauges, whose sample lines are the same in
//! both formats.

/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    PrometheusText,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when the client names it (with a
    /// non-zero quality), else the Prometheus text format. Pure.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// Its content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics text holding counters and gauges. Pure.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match comment {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_others_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::PrometheusText
        );
    }

    #[test]
    fn counters_are_named_after_their_samples_and_openmetrics_lines_go() {
        let om = "# HELP labfleet_enrollments Successful enrollments.\n\
                  # TYPE labfleet_enrollments counter\n\
                  labfleet_enrollments_total 3\n\
                  # HELP labfleet_node_last_seen_timestamp_seconds Last contact.\n\
                  # TYPE labfleet_node_last_seen_timestamp_seconds gauge\n\
                  # UNIT labfleet_node_last_seen_timestamp_seconds seconds\n\
                  labfleet_node_last_seen_timestamp_seconds{node=\"n1\"} 1.5\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP labfleet_enrollments_total Successful enrollments.\n\
             # TYPE labfleet_enrollments_total counter\n\
             labfleet_enrollments_total 3\n\
             # HELP labfleet_node_last_seen_timestamp_seconds Last contact.\n\
             # TYPE labfleet_node_last_seen_timestamp_seconds gauge\n\
             labfleet_node_last_seen_timestamp_seconds{node=\"n1\"} 1.5\n"
        );
    }
}
