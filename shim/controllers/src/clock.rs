//! The controllers' clock, injectable: the system clock, or (for tests and demonstrations) a
//! clock file named by `PODSHIM_CLOCK` that holds an RFC 3339 time, read at every look, so a
//! test moves a CronJob's time forward by writing the file instead of waiting for minutes.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// Where time comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// A file holding the time; a file that cannot be read gives the system time.
    File(PathBuf),
}

impl Clock {
    /// `PODSHIM_CLOCK=FILE`, else the system clock.
    pub fn from_env() -> Clock {
        match std::env::var_os("PODSHIM_CLOCK") {
            Some(p) if !p.is_empty() => Clock::File(p.into()),
            _ => Clock::System,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::File(p) => std::fs::read_to_string(p)
                .ok()
                .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(Utc::now),
        }
    }
}

/// A time as the API shows it (`2024-01-01T10:00:00Z`).
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
