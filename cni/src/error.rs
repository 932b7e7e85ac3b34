//! Typed errors of the crate and their mapping to CNI spec error codes.

use std::io;
use std::path::PathBuf;

use crate::subnet::Ipv4Net;

/// CNI spec error codes (SPEC.md, "Error"): 1-99 are well-known, 100+ are plugin-specific.
pub mod codes {
    /// Container unknown or does not exist.
    pub const CONTAINER_UNKNOWN: u32 = 3;
    /// Invalid necessary environment variables (CNI_CONTAINERID, CNI_IFNAME, ...).
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Plugin-specific: the IPAM range has no free address.
    pub const RANGE_EXHAUSTED: u32 = 100;
}

/// Everything that can go wrong while setting up or tearing down a Pod's network.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("invalid subnet {input:?}: {reason}")]
    InvalidSubnet { input: String, reason: &'static str },

    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    #[error("invalid attachment id {id:?}: {reason}")]
    InvalidAttachmentId { id: String, reason: &'static str },

    #[error("interface {name} exists and is not a bridge")]
    NotABridge { name: String },

    #[error("no free address left in {subnet}")]
    RangeExhausted { subnet: Ipv4Net },

    #[error("ipam: {op} {}", path.display())]
    Ipam {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("open network namespace {}", path.display())]
    NetnsOpen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} is not a network namespace", path.display())]
    NotANetns { path: PathBuf },

    #[error("enter network namespace {}", path.display())]
    Setns {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("network namespace worker thread")]
    NetnsThread {
        #[source]
        source: io::Error,
    },

    #[error("netlink: {op} {name}")]
    Netlink {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },

    #[error("write sysctl {}", path.display())]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("setup failed and its rollback failed too: {}", chain(rollback))]
    Rollback {
        #[source]
        source: Box<CniError>,
        rollback: Box<CniError>,
    },

    #[error("teardown: {}", errors.iter().map(chain).collect::<Vec<_>>().join("; "))]
    Teardown { errors: Vec<CniError> },
}

impl CniError {
    /// The CNI spec error code for this error: the single place where errors meet the wire.
    pub fn code(&self) -> u32 {
        use codes::*;
        match self {
            Self::InvalidSubnet { .. } | Self::InvalidName { .. } | Self::NotABridge { .. } => {
                INVALID_NETWORK_CONFIG
            }
            Self::InvalidAttachmentId { .. } => INVALID_ENVIRONMENT,
            Self::RangeExhausted { .. } => RANGE_EXHAUSTED,
            Self::NetnsOpen { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                CONTAINER_UNKNOWN
            }
            Self::NotANetns { .. } => CONTAINER_UNKNOWN,
            Self::Ipam { .. }
            | Self::NetnsOpen { .. }
            | Self::Setns { .. }
            | Self::NetnsThread { .. }
            | Self::Netlink { .. }
            | Self::Sysctl { .. } => IO_FAILURE,
            // The caller cares about why setup failed, not why cleaning up failed.
            Self::Rollback { source, .. } => source.code(),
            Self::Teardown { errors } => errors.first().map_or(IO_FAILURE, CniError::code),
        }
    }

    /// The errno behind a netlink error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Netlink { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// An error and its sources on one line, for errors that are listed rather than chained.
fn chain(err: &CniError) -> String {
    let mut out = err.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netlink(errno: i32) -> CniError {
        CniError::Netlink {
            op: "delete link",
            name: "veth0".into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn codes_match_the_cni_spec() {
        let subnet: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let cases: Vec<(CniError, u32)> = vec![
            (
                CniError::InvalidSubnet {
                    input: "x".into(),
                    reason: "r",
                },
                7,
            ),
            (
                CniError::InvalidName {
                    what: "bridge",
                    name: "x".into(),
                    reason: "r",
                },
                7,
            ),
            (CniError::NotABridge { name: "x".into() }, 7),
            (
                CniError::InvalidAttachmentId {
                    id: String::new(),
                    reason: "r",
                },
                4,
            ),
            (CniError::RangeExhausted { subnet }, 100),
            (
                CniError::NetnsOpen {
                    path: "/x".into(),
                    source: io::Error::from_raw_os_error(libc::ENOENT),
                },
                3,
            ),
            (
                CniError::NetnsOpen {
                    path: "/x".into(),
                    source: io::Error::from_raw_os_error(libc::EACCES),
                },
                5,
            ),
            (CniError::NotANetns { path: "/x".into() }, 3),
            (netlink(libc::EPERM), 5),
            (
                CniError::Ipam {
                    op: "read",
                    path: "/x".into(),
                    source: io::Error::other("x"),
                },
                5,
            ),
            (
                CniError::Rollback {
                    source: Box::new(CniError::RangeExhausted { subnet }),
                    rollback: Box::new(netlink(libc::EBUSY)),
                },
                100,
            ),
            (
                CniError::Teardown {
                    errors: vec![netlink(libc::EBUSY)],
                },
                5,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn messages_are_lower_case_and_keep_sources() {
        let err = CniError::Rollback {
            source: Box::new(netlink(libc::EEXIST)),
            rollback: Box::new(netlink(libc::EBUSY)),
        };
        let msg = err.to_string();
        assert!(msg.starts_with("setup failed"), "{msg}");
        assert!(msg.contains("netlink: delete link veth0: "), "{msg}");
        assert!(!msg.ends_with('.'));
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "netlink: delete link veth0");
        assert_eq!(netlink(libc::ENODEV).errno(), Some(libc::ENODEV));
    }
}
