//! `--since` / `--until`: the time window of a history scan, and the UTC days of
//! CloudTrail's key layout (`YYYY/MM/DD`) that can hold its log files.
//!
//! Dates are parsed and printed by the AWS SDK's own `DateTime`, like `eventTime`.

use serde::{Deserialize, Serialize};

use crate::time::{format_ms, parse_event_time};

const DAY_MS: i64 = 86_400_000;
/// CloudTrail delivers a log file within about 15 minutes of its events; an event
/// just before `--until` may sit in a file of the next day's prefix.
pub const DELIVERY_SLACK_MS: i64 = 3_600_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid time {text:?}: expected an RFC 3339 date (2024-03-15), date-time (2024-03-15T10:00:00Z) or a relative age like 7d, 24h, 30m, 2w")]
pub struct TimeError {
    pub text: String,
}

/// Bounds in epoch milliseconds; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// Parses a `--since` value. A plain date is that day's midnight (UTC).
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    parse_time(text, now_ms, false)
}

/// Parses an `--until` value. A plain date means the end of that day, so
/// `--since 2024-03-01 --until 2024-03-01` is the whole of 1 March.
pub fn parse_until(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    parse_time(text, now_ms, true)
}

fn parse_time(text: &str, now_ms: i64, end_of_day: bool) -> Result<i64, TimeError> {
    let error = || TimeError {
        text: text.to_owned(),
    };
    let text = text.trim();
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic) {
        let amount = &text[..text.len() - 1];
        if !amount.is_empty() && amount.bytes().all(|b| b.is_ascii_digit()) {
            let unit_ms: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => DAY_MS,
                'w' => 7 * DAY_MS,
                _ => return Err(error()),
            };
            let amount: i64 = amount.parse().map_err(|_| error())?;
            return amount
                .checked_mul(unit_ms)
                .and_then(|age| now_ms.checked_sub(age))
                .ok_or_else(error);
        }
    }
    if text.len() == 10 {
        let midnight = parse_event_time(&format!("{text}T00:00:00Z")).ok_or_else(error)?;
        return Ok(if end_of_day {
            midnight + DAY_MS - 1
        } else {
            midnight
        });
    }
    parse_event_time(text).ok_or_else(error)
}

/// Days since the epoch of a time.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// `YYYY/MM/DD` of a day, as in CloudTrail keys.
pub fn day_path(day: i64) -> String {
    format_ms(day * DAY_MS)
        .get(..10)
        .unwrap_or_default()
        .replace('-', "/")
}

/// The day of a `YYYY/MM/DD` key path (or `None` if it is not one).
pub fn parse_day_path(path: &str) -> Option<i64> {
    let bytes = path.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'/'
        && bytes[7] == b'/'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return None;
    }
    parse_event_time(&format!("{}T00:00:00Z", path.replace('/', "-"))).map(day_of)
}

impl Window {
    /// The first and last day prefix that can hold files of the window. The last
    /// day covers delivery after `until`; an open end is `today`.
    pub fn day_range(&self, today: i64) -> (Option<i64>, i64) {
        let first = self.since_ms.map(day_of);
        let last = self.until_ms.map_or(today, |until| {
            day_of(until.saturating_add(DELIVERY_SLACK_MS))
        });
        (first, last)
    }

    /// Whether a key's day can hold files of the window.
    pub fn admits_day(&self, day: i64, today: i64) -> bool {
        let (first, last) = self.day_range(today);
        first.is_none_or(|first| day >= first) && day <= last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_710_498_600_000; // 2024-03-15T10:30:00Z

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(parse_since("24h", NOW), Ok(NOW - 86_400_000));
        assert_eq!(parse_since("7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_since("2w", NOW), Ok(NOW - 14 * 86_400_000));
        assert_eq!(parse_since("90m", NOW), Ok(NOW - 90 * 60_000));
        assert_eq!(
            parse_since("2024-03-15T10:30:00Z", 0),
            Ok(NOW),
            "RFC 3339 date-time"
        );
        assert_eq!(parse_since("2024-03-15", 0), Ok(NOW - 37_800_000));
        assert_eq!(
            parse_until("2024-03-15", 0),
            Ok(NOW - 37_800_000 + 86_400_000 - 1)
        );
        for bad in ["", "7", "d", "7y", "-3d", "2024-13-01", "yesterday", "7 d"] {
            assert!(parse_since(bad, NOW).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn day_paths_round_trip() {
        let day = day_of(NOW);
        assert_eq!(day_path(day), "2024/03/15");
        assert_eq!(parse_day_path("2024/03/15"), Some(day));
        assert_eq!(day_path(day_of(0)), "1970/01/01");
        assert_eq!(parse_day_path("2024/3/15"), None);
        assert_eq!(parse_day_path("2024-03-15"), None);
        assert_eq!(parse_day_path("2024/02/30"), None);
    }

    #[test]
    fn the_last_day_covers_late_delivery() {
        let until = parse_event_time("2024-03-15T23:30:00Z").unwrap();
        let window = Window {
            since_ms: None,
            until_ms: Some(until),
        };
        assert_eq!(window.day_range(0).1, day_of(until) + 1);
        let early = Window {
            since_ms: None,
            until_ms: Some(parse_event_time("2024-03-15T12:00:00Z").unwrap()),
        };
        assert_eq!(early.day_range(0).1, day_of(until));
    }
}
