//! Time zones for CronJob schedules: IANA names read from the host's tz database, as
//! kube-controller-manager's `time.LoadLocation` reads them, and the two conversions a cron
//! schedule needs (an instant to the wall clock, a wall clock to an instant with Go's
//! `time.Date` rule for the hour a DST change skips or repeats).
//!
//! The TZif files are parsed by `tz-rs`: no dependencies and no copy of the tz database in the
//! binary (chrono-tz would add about 1 MB of compiled-in zones to every podshim command, and
//! would disagree with the host's zoneinfo after a tzdata update, which the host's files and
//! Kubernetes do not).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

/// Where `time.LoadLocation` looks on Linux (Go's `platformZoneSources`), in order.
const SOURCES: [&str; 4] = [
    "/usr/share/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/usr/lib/locale/TZ",
    "/etc/zoneinfo",
];

/// Why a zone could not be loaded; the text is Go's, which the API server returns as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZoneError {
    #[error("unknown time zone {0}")]
    Unknown(String),
    #[error("time: invalid location name")]
    InvalidName,
    #[error("malformed time zone information")]
    Malformed,
    #[error("read {}: is a directory", .0.display())]
    Directory(PathBuf),
}

/// A time zone: UTC, or the rules of one TZif file.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    rules: Option<tz::TimeZone>,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            rules: None,
        }
    }

    /// The zone named `name` (`Europe/Berlin`), as `time.LoadLocation` finds it: "" and `UTC`
    /// are UTC, `Local` is the host's zone, anything else a file under one of `SOURCES`.
    pub fn load(name: &str) -> Result<Zone, ZoneError> {
        match name {
            "" | "UTC" => return Ok(Zone::utc()),
            "Local" => return Ok(Zone::local()),
            _ => {}
        }
        // Go refuses names that could leave the zoneinfo directory (`containsDotDot`, a leading
        // slash or backslash) before it opens anything.
        if name.starts_with('/') || name.starts_with('\\') || name.split('/').any(|p| p == "..") {
            return Err(ZoneError::InvalidName);
        }
        Self::load_from(name, SOURCES.iter().map(Path::new))
    }

    fn load_from<'a>(name: &str, dirs: impl Iterator<Item = &'a Path>) -> Result<Zone, ZoneError> {
        // As Go: the first error that is not "no such file" wins over "unknown time zone".
        let mut first = None;
        for dir in dirs {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => match tz::TimeZone::from_tz_data(&bytes) {
                    Ok(rules) => {
                        return Ok(Zone {
                            name: name.into(),
                            rules: Some(rules),
                        })
                    }
                    Err(_) => {
                        first.get_or_insert(ZoneError::Malformed);
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    first.get_or_insert(ZoneError::Directory(path));
                }
                Err(_) => {
                    first.get_or_insert(ZoneError::Unknown(name.into()));
                }
            }
        }
        Err(first.unwrap_or_else(|| ZoneError::Unknown(name.into())))
    }

    /// The host's zone, as Go's `time.Local`: `$TZ` (a zone name, `:` allowed before it),
    /// else /etc/localtime, else UTC. A CronJob without `timeZone` follows it, as it follows
    /// kube-controller-manager's.
    pub fn local() -> Zone {
        if let Ok(tz) = std::env::var("TZ") {
            let tz = tz.strip_prefix(':').unwrap_or(&tz);
            return Zone::load(tz).unwrap_or_else(|_| Zone::utc());
        }
        std::fs::read("/etc/localtime")
            .ok()
            .and_then(|b| tz::TimeZone::from_tz_data(&b).ok())
            .map_or_else(Zone::utc, |rules| Zone {
                name: "Local".into(),
                rules: Some(rules),
            })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds east of UTC at the instant `unix`.
    fn offset_at(&self, unix: i64) -> i64 {
        self.rules
            .as_ref()
            .and_then(|r| r.find_local_time_type(unix).ok())
            .map_or(0, |t| i64::from(t.ut_offset()))
    }

    /// The wall clock at `t`.
    pub fn local_time(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + Duration::seconds(self.offset_at(t.timestamp()))
    }

    /// The instant whose wall clock is `wall`, by Go's `time.Date` rule: the offset in force at
    /// `wall` read as UTC, corrected once if the result lies in another period. A wall time a
    /// DST change skips (02:30 on a spring-forward night) comes out an hour later (03:30); one
    /// that occurs twice comes out as Go picks it.
    pub fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let unix = wall.and_utc().timestamp();
        let first = self.offset_at(unix);
        let utc = unix - first;
        let second = self.offset_at(utc);
        let unix = if second == first { utc } else { unix - second };
        DateTime::from_timestamp(unix, 0).unwrap_or_default()
    }

    /// `time.Date(y, m, d, h, mi, s, 0, zone)`, with Go's normalisation of a day or month
    /// beyond the end (the 32nd of January is the 1st of February).
    pub fn date(&self, y: i32, m: i64, d: i64, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        // Months first (13 is January of the next year), then days from the 1st.
        let months = i64::from(y) * 12 + (m - 1);
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        let first = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m as u32, 1)?;
        let day = first.checked_add_signed(Duration::days(d - 1))?;
        Some(self.instant(day.and_hms_opt(h, mi, s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn host_zones_load() {
        let berlin = Zone::load("Europe/Berlin").expect("the host has /usr/share/zoneinfo");
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert_eq!(
            berlin.local_time(at("2024-01-15T12:00:00Z")),
            wall("2024-01-15 13:00")
        );
        assert_eq!(
            berlin.local_time(at("2024-07-15T12:00:00Z")),
            wall("2024-07-15 14:00")
        );
        assert_eq!(Zone::load("UTC").unwrap().name(), "UTC");
        assert_eq!(
            Zone::load("Europe/Pariss").unwrap_err().to_string(),
            "unknown time zone Europe/Pariss"
        );
        assert_eq!(
            Zone::load("../etc/passwd").unwrap_err(),
            ZoneError::InvalidName
        );
        assert!(matches!(
            Zone::load("Europe").unwrap_err(),
            ZoneError::Directory(_)
        ));
    }

    #[test]
    fn wall_clock_around_dst_changes() {
        let berlin = Zone::load("Europe/Berlin").unwrap();
        // 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:30 does not exist: Go's
        // time.Date gives 03:30 CEST.
        assert_eq!(
            berlin.instant(wall("2024-03-31 02:30")),
            at("2024-03-31T01:30:00Z")
        );
        assert_eq!(
            berlin.instant(wall("2024-03-31 01:59")),
            at("2024-03-31T00:59:00Z")
        );
        // 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:30 happens twice.
        assert_eq!(
            berlin.instant(wall("2024-10-27 02:30")),
            at("2024-10-27T01:30:00Z")
        );
        assert_eq!(
            berlin.local_time(at("2024-10-27T00:30:00Z")),
            wall("2024-10-27 02:30")
        );
        // Beyond the file's last transition the POSIX rule at its end takes over.
        assert_eq!(
            berlin.instant(wall("2090-07-01 12:00")),
            at("2090-07-01T10:00:00Z")
        );
    }

    #[test]
    fn date_normalises_like_go() {
        let utc = Zone::utc();
        assert_eq!(
            utc.date(2024, 1, 32, 0, 0, 0),
            Some(at("2024-02-01T00:00:00Z"))
        );
        assert_eq!(
            utc.date(2024, 13, 1, 0, 0, 0),
            Some(at("2025-01-01T00:00:00Z"))
        );
    }
}
