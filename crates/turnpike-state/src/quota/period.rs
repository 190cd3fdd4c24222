//! Calendar periods of quotas: where the day or month containing an instant starts and ends
//! in a time zone (DST days are 23 or 25 hours long; months have their own lengths).

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::error::StateError;

/// The calendar period a quota counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// From local midnight to the next local midnight.
    Day,
    /// From the first of the month, local midnight, to the first of the next month.
    Month,
}

/// One concrete period: its bounds in unix seconds and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWindow {
    /// Unix seconds of the first instant of the period.
    pub start: i64,
    /// Unix seconds of the first instant after the period.
    pub end: i64,
    /// `YYYY-MM-DD` for a day, `YYYY-MM` for a month (local calendar of the zone).
    pub label: String,
}

impl QuotaPeriod {
    /// The period containing `at` in `tz`.
    pub fn window(self, at: Timestamp, tz: &TimeZone) -> Result<QuotaWindow, StateError> {
        let date = at.to_zoned(tz.clone()).date();
        let (first, next, label) = match self {
            Self::Day => {
                let next = date.tomorrow().map_err(time_err)?;
                let label = format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day());
                (date, next, label)
            }
            Self::Month => {
                let first = date.first_of_month();
                let next = first.last_of_month().tomorrow().map_err(time_err)?;
                (
                    first,
                    next,
                    format!("{:04}-{:02}", date.year(), date.month()),
                )
            }
        };
        Ok(QuotaWindow {
            start: day_start(first, tz)?,
            end: day_start(next, tz)?,
            label,
        })
    }

    /// The name used in the quota file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

/// The first instant of `date` in `tz` (midnight, or the end of a DST gap covering it).
fn day_start(date: Date, tz: &TimeZone) -> Result<i64, StateError> {
    let zoned = date
        .to_zoned(tz.clone())
        .and_then(|z| z.start_of_day())
        .map_err(time_err)?;
    Ok(zoned.timestamp().as_second())
}

fn time_err(e: jiff::Error) -> StateError {
    StateError::Time(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn berlin() -> TimeZone {
        // A POSIX rule, so the test needs no zone database; the named zone is checked too.
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn day_in_utc() {
        let w = QuotaPeriod::Day
            .window(ts("2026-11-28T21:10:00Z"), &TimeZone::UTC)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.label, "2026-11-28");
        assert_eq!(w.start, ts("2026-11-28T00:00:00Z").as_second());
        assert_eq!(w.end, ts("2026-11-29T00:00:00Z").as_second());
    }

    #[test]
    fn local_day_differs_from_utc_day() {
        // 23:30 UTC on the 28th is already the 29th in Berlin (UTC+1 in winter).
        let w = QuotaPeriod::Day
            .window(ts("2026-11-28T23:30:00Z"), &berlin())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.label, "2026-11-29");
        assert_eq!(w.start, ts("2026-11-28T23:00:00Z").as_second());
    }

    #[test]
    fn month_ends_and_year_change() {
        let feb = QuotaPeriod::Month
            .window(ts("2028-02-29T12:00:00Z"), &TimeZone::UTC)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(feb.label, "2028-02");
        assert_eq!(feb.end - feb.start, 29 * 86_400);
        let dec = QuotaPeriod::Month
            .window(ts("2026-12-31T23:59:59Z"), &TimeZone::UTC)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dec.label, "2026-12");
        assert_eq!(dec.end, ts("2027-01-01T00:00:00Z").as_second());
        let jan = QuotaPeriod::Month
            .window(ts("2027-01-01T00:00:00Z"), &TimeZone::UTC)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((jan.label.as_str(), jan.start), ("2027-01", dec.end));
    }

    #[test]
    fn dst_days_in_berlin() {
        for tz in [Some(berlin()), TimeZone::get("Europe/Berlin").ok()]
            .into_iter()
            .flatten()
        {
            let spring = QuotaPeriod::Day
                .window(ts("2026-03-29T10:00:00Z"), &tz)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spring.label, "2026-03-29");
            assert_eq!(spring.end - spring.start, 23 * 3600);
            let autumn = QuotaPeriod::Day
                .window(ts("2026-10-25T10:00:00Z"), &tz)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(autumn.end - autumn.start, 25 * 3600);
            // March 2026 in Berlin is one hour short of 31 days.
            let march = QuotaPeriod::Month
                .window(ts("2026-03-15T00:00:00Z"), &tz)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(march.end - march.start, 31 * 86_400 - 3600);
            assert_eq!(march.start, ts("2026-02-28T23:00:00Z").as_second());
        }
    }
}
