//! Event time: CloudTrail's `eventTime` (RFC 3339, UTC) as epoch milliseconds.
//!
//! Parsing and formatting are the AWS SDK's own (`aws-smithy-types` `DateTime`),
//! the same code the SDK uses for timestamps on the wire.

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};

/// Milliseconds since the epoch, or `None` when the text is not an RFC 3339 time.
pub fn parse_event_time(text: &str) -> Option<i64> {
    DateTime::from_str(text, DateTimeFormat::DateTime)
        .ok()
        .and_then(|t| t.to_millis().ok())
}

/// RFC 3339 text of an epoch-milliseconds time (`2024-01-15T10:30:00Z`).
pub fn format_ms(ms: i64) -> String {
    DateTime::from_millis(ms)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| ms.to_string())
}

/// The wall clock, for records without a usable `eventTime`.
pub fn now_ms() -> i64 {
    DateTime::from(std::time::SystemTime::now())
        .to_millis()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_cloudtrail_times() {
        let ms = parse_event_time("2024-01-15T10:30:00Z").unwrap();
        assert_eq!(ms, 1_705_314_600_000);
        assert_eq!(format_ms(ms), "2024-01-15T10:30:00Z");
        assert_eq!(parse_event_time("2024-01-15T10:30:00.250Z"), Some(ms + 250));
        assert_eq!(parse_event_time("yesterday"), None);
        assert_eq!(parse_event_time(""), None);
    }
}
