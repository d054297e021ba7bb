//! An export's time zone (formats.md, "Time zone"): instants written as local date-times
//! with their offset, RFC 3339 strings read back, and Excel's serial date numbers.

use chrono::{DateTime, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

use super::write_timestamp;

/// The zone the times of an export are written in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Zone {
    tz: Tz,
    /// UTC or one of its aliases: written with `Z`.
    utc: bool,
}

/// The days from Excel's day 0 (1899-12-30, given its 1900 leap-year bug) to 1970-01-01.
const EXCEL_UNIX_EPOCH: f64 = 25_569.0;
/// 1900-03-01, the first day Excel's serial numbers count right.
const EXCEL_FIRST_RIGHT_DAY: f64 = 61.0;
const MS_PER_DAY: f64 = 86_400_000.0;

impl Zone {
    pub(super) const UTC: Zone = Zone { tz: Tz::UTC, utc: true };

    /// `None` for a name that is not in the IANA database (checked when the export was
    /// created).
    pub(super) fn named(name: &str) -> Option<Zone> {
        let tz: Tz = name.parse().ok()?;
        let utc = matches!(
            tz,
            Tz::UTC
                | Tz::Etc__UTC
                | Tz::Etc__UCT
                | Tz::Etc__Universal
                | Tz::Etc__Zulu
                | Tz::UCT
                | Tz::Universal
                | Tz::Zulu
        );
        Some(Zone { tz, utc })
    }

    /// The offset from UTC, in seconds, at the instant `ms`.
    fn offset_secs(&self, ms: i64) -> i64 {
        match DateTime::from_timestamp_millis(ms) {
            Some(t) => i64::from(self.tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()),
            None => 0,
        }
    }

    /// The local time of instant `ms`, as milliseconds since 1970-01-01T00:00 local.
    pub(super) fn local_ms(&self, ms: i64) -> i64 {
        ms + self.offset_secs(ms) * 1000
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.sss±HH:MM` (`Z` for UTC) of instant `ms`.
    pub(super) fn write_instant(&self, ms: i64, out: &mut Vec<u8>) {
        if self.utc {
            return write_timestamp(ms, out);
        }
        let offset = self.offset_secs(ms);
        write_timestamp(ms + offset * 1000, out);
        // write_timestamp ends with its `Z`
        out.pop();
        let (sign, abs) = if offset < 0 { (b'-', -offset) } else { (b'+', offset) };
        let (h, m) = (abs / 3600, abs / 60 % 60);
        out.extend_from_slice(&[
            sign,
            b'0' + (h / 10) as u8,
            b'0' + (h % 10) as u8,
            b':',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
        ]);
    }

    /// Appends `text` in this zone when it is an RFC 3339 date-time; false (nothing
    /// appended) otherwise.
    pub(super) fn rewrite(&self, text: &str, out: &mut Vec<u8>) -> bool {
        match parse_rfc3339_ms(text) {
            Some(ms) => {
                self.write_instant(ms, out);
                true
            }
            None => false,
        }
    }

    /// Excel's serial number of instant `ms` as a local date-time here; `None` before
    /// 1900-03-01 (Excel cannot show those).
    pub(super) fn excel_serial(&self, ms: i64) -> Option<f64> {
        excel_serial_of_local(self.local_ms(ms))
    }
}

/// The instant an RFC 3339 date-time names, in ms since the epoch.
pub(super) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// Excel's serial number of a `YYYY-MM-DD` date; `None` when it is not one (or Excel
/// cannot show it).
pub(super) fn excel_date_serial(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    // exactly YYYY-MM-DD: chrono alone would take `+2024-1-5` too
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let days = d.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();
    excel_serial_of_local(days * 86_400_000)
}

fn excel_serial_of_local(local_ms: i64) -> Option<f64> {
    let serial = local_ms as f64 / MS_PER_DAY + EXCEL_UNIX_EPOCH;
    (EXCEL_FIRST_RIGHT_DAY..=2_958_465.0).contains(&serial).then_some(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(zone: &str, text: &str) -> String {
        let mut out = Vec::new();
        assert!(Zone::named(zone).unwrap().rewrite(text, &mut out), "{text}");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn instants_in_zones_with_dst_half_hours_and_utc() {
        // Paris: +01:00 until 2024-03-31 01:00Z, +02:00 until 2024-10-27 01:00Z
        assert_eq!(written("Europe/Paris", "2024-03-31T00:59:59.999Z"), "2024-03-31T01:59:59.999+01:00");
        assert_eq!(written("Europe/Paris", "2024-03-31T01:00:00Z"), "2024-03-31T03:00:00.000+02:00");
        assert_eq!(written("Europe/Paris", "2024-10-27T00:59:59.999Z"), "2024-10-27T02:59:59.999+02:00");
        assert_eq!(written("Europe/Paris", "2024-10-27T01:00:00Z"), "2024-10-27T02:00:00.000+01:00");
        assert_eq!(written("Asia/Kolkata", "2024-01-05T20:00:00-05:00"), "2024-01-06T06:30:00.000+05:30");
        assert_eq!(written("UTC", "2024-01-05T10:00:00.5+02:00"), "2024-01-05T08:00:00.500Z");
        assert_eq!(written("America/St_Johns", "2024-01-05T10:00:00Z"), "2024-01-05T06:30:00.000-03:30");
        assert!(!Zone::UTC.rewrite("2024-01-05", &mut Vec::new()));
        assert!(!Zone::UTC.rewrite("yesterday", &mut Vec::new()));
        assert!(Zone::named("Mars/Olympus").is_none());
    }

    #[test]
    fn excel_serials() {
        assert_eq!(excel_date_serial("2024-01-01"), Some(45_292.0));
        assert_eq!(excel_date_serial("1900-03-01"), Some(61.0));
        assert_eq!(excel_date_serial("1900-02-28"), None);
        assert_eq!(excel_date_serial("2024-1-1"), None);
        assert_eq!(excel_date_serial("2024-02-30"), None);
        let noon = parse_rfc3339_ms("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(Zone::UTC.excel_serial(noon), Some(45_292.5));
        let kolkata = Zone::named("Asia/Kolkata").unwrap().excel_serial(noon).unwrap();
        assert!((kolkata - (45_292.5 + 5.5 / 24.0)).abs() < 1e-9, "{kolkata}");
    }
}
