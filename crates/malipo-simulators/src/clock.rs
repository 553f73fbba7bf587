//! Wall-clock time in the formats the providers put on the wire.
//!
//! M-Pesa and Relworx stamp times in East Africa Time (UTC+3, no daylight
//! saving), so the civil date is computed here from Unix time instead of
//! pulling in a calendar crate for three formats.

use std::time::{SystemTime, UNIX_EPOCH};

/// East Africa Time is UTC+3 all year round.
const EAST_AFRICA_OFFSET_SECONDS: i64 = 3 * 3600;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A civil date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl CivilTime {
    /// The civil time in East Africa Time at `unix_ms`.
    pub(crate) fn east_africa(unix_ms: i64) -> CivilTime {
        CivilTime::at_offset(unix_ms, EAST_AFRICA_OFFSET_SECONDS)
    }

    /// The civil time in UTC at `unix_ms`.
    pub(crate) fn utc(unix_ms: i64) -> CivilTime {
        CivilTime::at_offset(unix_ms, 0)
    }

    fn at_offset(unix_ms: i64, offset_seconds: i64) -> CivilTime {
        let local_ms = unix_ms + offset_seconds * 1000;
        let seconds = local_ms.div_euclid(1000);
        let millisecond = local_ms.rem_euclid(1000) as u32;
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day % 3600 / 60,
            second: second_of_day % 60,
            millisecond,
        }
    }

    /// `YYYYMMDDHHmmss`, the M-Pesa timestamp format.
    pub(crate) fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `DDMMYYYYHHmmss`, the order M-Pesa uses inside CheckoutRequestIDs.
    pub(crate) fn day_first_compact(&self) -> String {
        format!(
            "{:02}{:02}{:04}{:02}{:02}{:02}",
            self.day, self.month, self.year, self.hour, self.minute, self.second
        )
    }

    /// `DD.MM.YYYY HH:mm:ss`, B2C's TransactionCompletedDateTime.
    pub(crate) fn dotted(&self) -> String {
        format!(
            "{:02}.{:02}.{:04} {:02}:{:02}:{:02}",
            self.day, self.month, self.year, self.hour, self.minute, self.second
        )
    }

    /// `YYYYMMDD`, used in Daraja ConversationIDs.
    pub(crate) fn date(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `YYMMDD`, used in Airtel Money ids.
    pub(crate) fn short_date(&self) -> String {
        format!(
            "{:02}{:02}{:02}",
            self.year.rem_euclid(100),
            self.month,
            self.day
        )
    }

    /// `HHmm`, used in Airtel Money ids.
    pub(crate) fn hour_minute(&self) -> String {
        format!("{:02}{:02}", self.hour, self.minute)
    }

    /// RFC 3339 with milliseconds and the `+03:00` offset, as Relworx sends
    /// `completed_at`.
    pub(crate) fn rfc3339_east_africa(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+03:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

impl CivilTime {
    /// ISO 8601 with milliseconds and `Z` (`2020-12-22T15:00:22.742Z`), as
    /// NOWPayments stamps `created_at`; meaningful for [`CivilTime::utc`].
    pub(crate) fn iso_utc(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// Whether `text` is a real `YYYYMMDDHHmmss` moment (M-Pesa's Timestamp).
pub(crate) fn is_compact_timestamp(text: &str) -> bool {
    if text.len() != 14 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        text.get(range)
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(8..10), number(10..12), number(12..14));
    (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(i64::from(year), month)
        && hour < 24
        && minute < 60
        && second < 60
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a
/// proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn east_africa_time_is_three_hours_ahead_of_utc() {
        // 2019-12-19T07:21:15.123Z is 10:21:15 in Nairobi.
        let time = CivilTime::east_africa(1_576_740_075_123);
        assert_eq!(time.compact(), "20191219102115");
        assert_eq!(time.day_first_compact(), "19122019102115");
        assert_eq!(time.rfc3339_east_africa(), "2019-12-19T10:21:15.123+03:00");
        assert_eq!(time.short_date(), "191219");
        assert_eq!(time.date(), "20191219");
        assert_eq!(time.dotted(), "19.12.2019 10:21:15");
    }

    #[test]
    fn crossing_midnight_and_leap_days() {
        // 2024-02-28T22:30:00Z is 2024-02-29 01:30 in Nairobi.
        assert_eq!(
            CivilTime::east_africa(1_709_159_400_000).compact(),
            "20240229013000"
        );
    }

    #[test]
    fn compact_timestamps_must_be_real_moments() {
        assert!(is_compact_timestamp("20210628092408"));
        assert!(is_compact_timestamp("20240229235959"));
        assert!(!is_compact_timestamp("20230229000000"));
        assert!(!is_compact_timestamp("2021062809240"));
        assert!(!is_compact_timestamp("20211328092408"));
        assert!(!is_compact_timestamp("2021-06-28T09:2"));
    }
}
