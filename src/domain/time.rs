//! Times: stored as milliseconds since the Unix epoch (UTC), shown as ISO 8601 with
//! milliseconds, `2024-01-31T12:00:00.000Z`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Where "now" comes from for what expires (idempotency keys): the system clock, or one a
/// test moves forward. Cheap to clone.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock(std::sync::Arc::new(now_ms))
    }

    /// A clock that reads `now` (milliseconds since the Unix epoch).
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(std::sync::Arc::new(now))
    }

    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// `2024-01-31T12:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        // without a format string to interpret for every timestamp of every list item
        Some(t) if (0..=9999).contains(&t.year()) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => String::new(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for years 0 to 9999 (`None` outside them), as `format_ms`
/// writes it, in ASCII bytes. Hand-written for the list hot path: chrono's formatter
/// allocates a `String` per timestamp, 80 of them on a page of 20 exports. The date is Howard
/// Hinnant's `civil_from_days`; a test compares it with `format_ms` across the whole range.
pub fn rfc3339_ms(ms: i64) -> Option<[u8; 24]> {
    const DAY: i64 = 86_400_000;
    let (days, in_day) = (ms.div_euclid(DAY), ms.rem_euclid(DAY));
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (secs, milli) = (in_day / 1000, in_day % 1000);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 3, milli);
    Some(b)
}

/// The UTC calendar date of a time, `2024-01-31`.
pub fn format_date(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => String::new(),
    }
}

/// Which end of a day a bare date (`2024-01-31`) stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEnd {
    /// 00:00:00.000
    Start,
    /// 23:59:59.999
    End,
}

/// Parses an ISO 8601 date-time or a bare date into milliseconds since the epoch (UTC).
///
/// Accepted: `2024-01-31T12:00:00Z`, `2024-01-31T12:00:00.123Z`, `2024-01-31T12:00:00+02:00`,
/// `2024-01-31T12:00:00` (read as UTC), `2024-01-31 12:00:00Z`, and a bare date
/// `2024-01-31`, which stands for the start or the end of that day as `bare` says.
/// Sub-millisecond digits are truncated. Years are limited to 0000–9999.
pub fn parse_instant(input: &str, bare: DayEnd) -> Result<i64, String> {
    let s = input.trim();
    let err = || format!("'{input}' is not an ISO 8601 date-time (e.g. 2024-01-31T12:00:00.000Z) or date (2024-01-31)");
    if s.is_empty() {
        return Err(err());
    }
    if s.len() == 10 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| err())?;
        let t = match bare {
            DayEnd::Start => d.and_hms_milli_opt(0, 0, 0, 0),
            DayEnd::End => d.and_hms_milli_opt(23, 59, 59, 999),
        }
        .ok_or_else(err)?;
        return Ok(t.and_utc().timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return check_range(t.with_timezone(&Utc).timestamp_millis(), &err);
    }
    // RFC 3339 with a space, or with a lower-case 'z'
    let alt = s.replacen(' ', "T", 1).replace('z', "Z");
    if let Ok(t) = DateTime::parse_from_rfc3339(&alt) {
        return check_range(t.with_timezone(&Utc).timestamp_millis(), &err);
    }
    // no offset at all: UTC
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&alt, fmt) {
            return check_range(t.and_utc().timestamp_millis(), &err);
        }
    }
    Err(err())
}

fn check_range(ms: i64, err: &dyn Fn() -> String) -> Result<i64, String> {
    // 0000-01-01 .. 9999-12-31T23:59:59.999Z
    const MIN: i64 = -62_167_219_200_000;
    const MAX: i64 = 253_402_300_799_999;
    if (MIN..=MAX).contains(&ms) {
        Ok(ms)
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ms_writes_what_the_format_string_wrote() {
        let mut ms: i64 = -62_167_219_200_000; // 0000-01-01
        while ms < 253_402_300_800_000 {
            let t = Utc.timestamp_millis_opt(ms).single().unwrap();
            assert_eq!(format_ms(ms), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), "{ms}");
            ms += 7_919_993_117; // about three months, never a whole second
        }
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rfc3339_ms_writes_what_format_ms_writes_for_years_0_to_9999() {
        let check = |ms: i64| {
            let year = Utc.timestamp_millis_opt(ms).single().map(|t| t.year());
            match rfc3339_ms(ms) {
                Some(b) => assert_eq!(std::str::from_utf8(&b).unwrap(), format_ms(ms), "{ms}"),
                None => assert!(!year.is_some_and(|y| (0..=9999).contains(&y)), "{ms} is in year {year:?}"),
            }
            assert_eq!(rfc3339_ms(ms).is_some(), year.is_some_and(|y| (0..=9999).contains(&y)), "{ms}");
        };
        let mut ms: i64 = -62_167_219_200_000 - 86_400_000 * 400; // well before 0000-01-01
        while ms < 253_402_300_800_000 + 86_400_000 * 400 {
            check(ms);
            ms += 1_234_567_891; // about two weeks, never a whole second
        }
        let edges = [0, -1, 1, 951_782_400_000, 951_868_799_999, 4_107_542_400_000, -62_167_219_200_000];
        for ms in edges.into_iter().chain([-62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000]) {
            check(ms);
        }
        for ms in [i64::MIN, i64::MAX, i64::MIN + 1] {
            check(ms);
        }
    }

    #[test]
    fn formats_with_millis() {
        assert_eq!(format_ms(1_706_702_400_000), "2024-01-31T12:00:00.000Z");
        assert_eq!(format_ms(1_706_702_400_123), "2024-01-31T12:00:00.123Z");
        assert_eq!(format_date(1_706_702_400_123), "2024-01-31");
    }

    #[test]
    fn parses_forms() {
        let noon = 1_706_702_400_000;
        assert_eq!(parse_instant("2024-01-31T12:00:00.000Z", DayEnd::Start), Ok(noon));
        assert_eq!(parse_instant("2024-01-31T12:00:00Z", DayEnd::End), Ok(noon));
        assert_eq!(parse_instant("2024-01-31T14:00:00+02:00", DayEnd::Start), Ok(noon));
        assert_eq!(parse_instant("2024-01-31T12:00:00", DayEnd::Start), Ok(noon));
        assert_eq!(parse_instant("2024-01-31 12:00:00Z", DayEnd::Start), Ok(noon));
        assert_eq!(parse_instant("2024-01-31T12:00:00.123999Z", DayEnd::Start), Ok(noon + 123));
        let day = 1_706_659_200_000; // 2024-01-31T00:00:00Z
        assert_eq!(parse_instant("2024-01-31", DayEnd::Start), Ok(day));
        assert_eq!(parse_instant("2024-01-31", DayEnd::End), Ok(day + 86_399_999));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "yesterday", "2024-13-01", "2024-02-30", "2024-01-31T25:00:00Z", "1706702400"] {
            assert!(parse_instant(bad, DayEnd::Start).is_err(), "{bad}");
        }
    }
}
