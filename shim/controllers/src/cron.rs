//! Cron schedules as the CronJob controller reads them (robfig/cron's standard parser: five
//! fields, names for months and weekdays, `*`, `?`, ranges, lists, steps and the `@hourly`-style
//! descriptors), and the next time a schedule fires after a given time.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};

use crate::zone::Zone;

/// A parsed schedule: for each field, the set of values that match (as bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day-of-month or day-of-week was `*`/`?`: then both must match (else either may).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => return Err(format!("unrecognized descriptor: {t}")),
            t => t,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text}",
                fields.len()
            ));
        }
        let dom_star = matches!(fields[2], "*" | "?");
        let dow_star = matches!(fields[4], "*" | "?");
        let mut dow = field(fields[4], 0, 7, &DAYS)?;
        if dow & (1 << 7) != 0 {
            // 7 is Sunday too.
            dow = (dow & !(1 << 7)) | 1;
        }
        Ok(Schedule {
            minute: field(fields[0], 0, 59, &[])?,
            hour: field(fields[1], 0, 23, &[])?,
            dom: field(fields[2], 1, 31, &[])?,
            month: field(fields[3], 1, 12, &MONTHS)?,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `after` (whole minutes) that the schedule matches in UTC;
    /// None if none within five years (e.g. February 30th).
    pub fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_in(after, &Zone::utc())
    }

    /// The first time strictly after `after` that the schedule matches on `zone`'s wall clock,
    /// walked as robfig/cron's `SpecSchedule.Next` walks it (the CronJob controller's): months
    /// and days on the wall clock, hours and minutes as elapsed time. So across a DST change a
    /// wall-clock hour that is skipped never fires (`30 2 * * *` skips the spring-forward
    /// night), one that is repeated fires in both of its occurrences, and a daily schedule
    /// stays at its wall-clock hour on both sides.
    pub fn next_in(&self, after: DateTime<Utc>, zone: &Zone) -> Option<DateTime<Utc>> {
        let mut t = after.with_nanosecond(0)? + Duration::seconds(1);
        // `added`: the walk has moved, so the lower fields start from zero.
        let mut added = false;
        let year_limit = zone.local_time(t).year() + 5;
        'wrap: loop {
            let mut l = zone.local_time(t);
            if l.year() > year_limit {
                return None;
            }
            while self.month & (1 << l.month()) == 0 {
                if !added {
                    added = true;
                    t = zone.date(l.year(), l.month().into(), 1, 0, 0, 0)?;
                    l = zone.local_time(t);
                }
                // time.AddDate(0, 1, 0): the same wall clock a month later.
                t = zone.date(
                    l.year(),
                    i64::from(l.month()) + 1,
                    l.day().into(),
                    l.hour(),
                    l.minute(),
                    l.second(),
                )?;
                l = zone.local_time(t);
                if l.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(l.date()) {
                if !added {
                    added = true;
                    t = zone.date(l.year(), l.month().into(), l.day().into(), 0, 0, 0)?;
                    l = zone.local_time(t);
                }
                t = zone.date(
                    l.year(),
                    l.month().into(),
                    i64::from(l.day()) + 1,
                    l.hour(),
                    l.minute(),
                    l.second(),
                )?;
                l = zone.local_time(t);
                // A DST change moved midnight: back to the day's first hour, as robfig does.
                if l.hour() != 0 {
                    let h = i64::from(l.hour());
                    t += Duration::hours(if h > 12 { 24 - h } else { -h });
                    l = zone.local_time(t);
                }
                if l.day() == 1 {
                    continue 'wrap;
                }
            }
            while self.hour & (1 << l.hour()) == 0 {
                if !added {
                    added = true;
                    t = zone.date(l.year(), l.month().into(), l.day().into(), l.hour(), 0, 0)?;
                }
                t += Duration::hours(1);
                l = zone.local_time(t);
                if l.hour() == 0 {
                    continue 'wrap;
                }
            }
            while self.minute & (1 << l.minute()) == 0 {
                if !added {
                    added = true;
                    t -= Duration::seconds(l.second().into());
                }
                t += Duration::minutes(1);
                l = zone.local_time(t);
                if l.minute() == 0 {
                    continue 'wrap;
                }
            }
            // The seconds field of a standard schedule is 0.
            if l.second() != 0 {
                t += Duration::seconds(60 - i64::from(l.second()));
                added = true;
                continue 'wrap;
            }
            return Some(t);
        }
    }
}

/// `cron.ParseStandard` as the API server calls it: a `TZ=ZONE ` or `CRON_TZ=ZONE ` prefix is
/// read (the zone must load) and the rest parsed. The API server then refuses any schedule
/// holding `TZ` (`timeZone` is the field for it), so a stored CronJob never has one.
pub fn parse_standard(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        let (prefix, rest) = text.split_once(' ').unwrap_or((text, ""));
        let name = prefix.split_once('=').map_or("", |(_, n)| n);
        Zone::load(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        return Schedule::parse(rest);
    }
    Schedule::parse(text)
}

/// One field: `*`, `?`, `N`, `A-B`, `NAME`, each with an optional `/STEP`, comma-separated.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("failed to parse int from {s}"))?;
                if step == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, lo)?, value(b, names, lo)?)
        } else {
            let a = value(range, names, lo)?;
            // `N/STEP` runs from N to the end of the range.
            (a, if step.is_some() { hi } else { a })
        };
        if a < lo || b > hi {
            return Err(format!("end of range ({b}) above maximum ({hi}): {part}"));
        }
        if a > b {
            return Err(format!(
                "beginning of range ({a}) beyond end of range ({b}): {part}"
            ));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step.unwrap_or(1);
        }
    }
    Ok(bits)
}

fn value(s: &str, names: &[&str], lo: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + lo.min(1) * u32::from(names.len() == 12));
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_minute_and_steps() {
        let s = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            s.next(at("2024-01-01T10:00:30Z")),
            Some(at("2024-01-01T10:01:00Z"))
        );
        let s = Schedule::parse("*/15 9-17 * * MON-FRI").unwrap();
        // 2024-01-06 is a Saturday.
        assert_eq!(
            s.next(at("2024-01-05T17:50:00Z")),
            Some(at("2024-01-08T09:00:00Z"))
        );
        let s = Schedule::parse("@monthly").unwrap();
        assert_eq!(
            s.next(at("2024-01-15T00:00:00Z")),
            Some(at("2024-02-01T00:00:00Z"))
        );
        let s = Schedule::parse("0 0 1 jan,jul *").unwrap();
        assert_eq!(
            s.next(at("2024-02-01T00:00:00Z")),
            Some(at("2024-07-01T00:00:00Z"))
        );
    }

    #[test]
    fn day_of_month_or_week() {
        // Both restricted: either matches (the 13th, or any Friday).
        let s = Schedule::parse("0 0 13 * 5").unwrap();
        assert_eq!(
            s.next(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-05T00:00:00Z"))
        );
    }

    fn berlin() -> Zone {
        Zone::load("Europe/Berlin").expect("the host has /usr/share/zoneinfo")
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // 2024-03-31 in Berlin: 02:00 CET becomes 03:00 CEST; there is no 02:30 that night.
        let s = Schedule::parse("30 2 * * *").unwrap();
        let z = berlin();
        let first = s.next_in(at("2024-03-30T00:00:00Z"), &z).unwrap();
        assert_eq!(first, at("2024-03-30T01:30:00Z")); // 02:30 CET
        assert_eq!(s.next_in(first, &z), Some(at("2024-04-01T00:30:00Z"))); // 02:30 CEST
                                                                            // Every 15 minutes between 1 and 3: 01:45 CET is followed by 03:00 CEST.
        let s = Schedule::parse("*/15 1-3 * * *").unwrap();
        assert_eq!(
            s.next_in(at("2024-03-31T00:45:00Z"), &z),
            Some(at("2024-03-31T01:00:00Z"))
        );
    }

    #[test]
    fn fall_back_fires_in_both_occurrences() {
        // 2024-10-27 in Berlin: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, and
        // robfig/cron (so the CronJob controller) fires at both.
        let s = Schedule::parse("30 2 * * *").unwrap();
        let z = berlin();
        let first = s.next_in(at("2024-10-26T12:00:00Z"), &z).unwrap();
        assert_eq!(first, at("2024-10-27T00:30:00Z")); // 02:30 CEST
        let second = s.next_in(first, &z).unwrap();
        assert_eq!(second, at("2024-10-27T01:30:00Z")); // 02:30 CET
        assert_eq!(s.next_in(second, &z), Some(at("2024-10-28T01:30:00Z")));
    }

    #[test]
    fn daily_keeps_its_wall_clock_hour() {
        let s = Schedule::parse("0 9 * * *").unwrap();
        let z = Zone::load("America/New_York").unwrap();
        // 2024-03-10: EST (-5) to EDT (-4).
        let a = s.next_in(at("2024-03-09T00:00:00Z"), &z).unwrap();
        assert_eq!(a, at("2024-03-09T14:00:00Z"));
        assert_eq!(s.next_in(a, &z), Some(at("2024-03-10T13:00:00Z")));
        // Weekly on Mondays, and the first of the month, in Asia/Tokyo (no DST, +9).
        let s = Schedule::parse("0 0 * * MON").unwrap();
        let z = Zone::load("Asia/Tokyo").unwrap();
        assert_eq!(
            s.next_in(at("2024-01-01T00:00:00Z"), &z),
            Some(at("2024-01-07T15:00:00Z"))
        );
        let s = Schedule::parse("@monthly").unwrap();
        assert_eq!(
            s.next_in(at("2024-01-15T00:00:00Z"), &z),
            Some(at("2024-01-31T15:00:00Z"))
        );
    }

    #[test]
    fn tz_prefixes_parse_as_robfig_reads_them() {
        assert!(parse_standard("CRON_TZ=Europe/Berlin 0 * * * *").is_ok());
        assert!(parse_standard("TZ=UTC @hourly").is_ok());
        assert_eq!(
            parse_standard("TZ=Mars/Olympus 0 * * * *").unwrap_err(),
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
        );
    }

    #[test]
    fn errors() {
        assert!(Schedule::parse("* * * *")
            .unwrap_err()
            .contains("exactly 5 fields"));
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("@every 5m").is_err());
        assert!(Schedule::parse("0 0 30 2 *")
            .unwrap()
            .next(Utc::now())
            .is_none());
    }
}
