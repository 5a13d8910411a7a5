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
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| format!("cron expression '{expr}': {}", tidy(&e.to_string())))?;
        Ok(CronTime {
            cron,
            tz: parse_timezone(timezone)?,
        })
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
