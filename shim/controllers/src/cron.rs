//! Cron schedules as the CronJob controller reads them (robfig/cron's standard parser: five
//! fields, names for months and weekdays, `*`, `?`, ranges, lists, steps and the `@hourly`-style
//! descriptors), and the next time a schedule fires after a given time.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

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

    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let dom = self.dom & (1 << t.day()) != 0;
        let dow = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `after` (whole minutes) that the schedule matches; None
    /// if none within five years (e.g. February 30th).
    pub fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut t = start;
        let limit = start + Duration::days(366 * 5);
        while t < limit {
            if self.month & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = (t + Duration::days(1)).with_hour(0)?.with_minute(0)?;
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = (t + Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
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

/// The time zones podshim can compute schedules in: UTC (a CronJob without `timeZone` follows
/// this host's zone in Kubernetes; podshim takes UTC, which is what the kube-controller-manager
/// of most clusters runs in).
pub fn zone(tz: &str) -> Option<()> {
    matches!(tz, "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT").then_some(())
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
