//! Cron expressions in a time zone: parsing with errors that name the problem, and the next
//! firing time after an instant. Pure.
//!
//! Accepted: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, as
//! croner reads them (ranges, steps, names, `L`, `#`, `W`, `@daily`-style aliases); a year
//! field is refused. Times are computed in the schedule's IANA time zone (empty = UTC), so
//! `0 2 * * *` in Europe/Berlin fires at 02:00 local time across daylight-saving changes.

use chrono::TimeZone;
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// How many firings [`CronTime::shortest_gap_ms`] looks at.
pub const GAP_FIRINGS: usize = 64;

/// A parsed cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct CronTime {
    cron: Cron,
    tz: Tz,
}

/// Parses an IANA time zone name; empty means UTC.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone '{name}'; use an IANA name such as Europe/Berlin or UTC")
    })
}

/// croner's "Invalid pattern: ... ." as "invalid pattern: ...".
fn tidy(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parse_cron(expr: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
}

/// The names and ranges of the fields of a 5-field expression (a 6-field one has seconds
/// first).
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat"),
];

/// Which field of a refused expression is wrong, in the user's terms ("hour field '25' is not
/// valid; hour values are 0-23"): each field is tried alone, the others `*`. `None` when every field
/// passes alone (e.g. an alias such as `@often`).
fn culprit(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let names: Vec<(&str, &str)> = match fields.len() {
        5 => FIELDS.to_vec(),
        6 => std::iter::once(("second", "0-59")).chain(FIELDS).collect(),
        _ => return None,
    };
    (0..fields.len()).find_map(|i| {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { fields[i] } else { "*" })
            .collect();
        parse_cron(&alone.join(" ")).err().map(|_| {
            let (name, range) = names[i];
            format!(
                "{name} field '{}' is not valid; {name} values are {range}",
                fields[i]
            )
        })
    })
}

impl CronTime {
    /// Parses `expr` in `timezone`. Errors start with "cron expression 'EXPR': " or name the
    /// time zone.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, String> {
        let trimmed = expr.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && fields != 5 && fields != 6 {
            return Err(format!(
                "cron expression '{expr}': has {fields} field(s); write 5 (minute hour day month weekday) or 6 (seconds first)"
            ));
        }
        let cron = parse_cron(trimmed).map_err(|e| match culprit(trimmed) {
            Some(field) => format!("cron expression '{expr}': {field}"),
            None => format!("cron expression '{expr}': {}", tidy(&e.to_string())),
        })?;
        Ok(CronTime {
            cron,
            tz: parse_timezone(timezone)?,
        })
    }

    /// The shortest time between two consecutive firings among the next [`GAP_FIRINGS`] after
    /// `after_ms`, in ms; `None` when it fires fewer than twice.
    pub fn shortest_gap_ms(&self, after_ms: i64) -> Option<i64> {
        let mut previous = self.next_after(after_ms)?;
        let mut shortest = None;
        for _ in 1..GAP_FIRINGS {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            let gap = next - previous;
            shortest = Some(shortest.map_or(gap, |s: i64| s.min(gap)));
            previous = next;
        }
        shortest
    }

    /// The first firing strictly after `after_ms` (Unix ms); `None` when there is none.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let mut from = self.tz.timestamp_millis_opt(after_ms).single()?;
        // croner works in whole seconds; step past a result that is not later than `after_ms`.
        for _ in 0..3 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            let ms = next.timestamp_millis();
            if ms > after_ms {
                return Some(ms);
            }
            from = next;
        }
        None
    }
}
