//! Typed errors of the crate and their mapping to CNI spec error codes.

use std::io;
use std::path::PathBuf;

use crate::subnet::Ipv4Net;

/// CNI spec error codes (SPEC.md, "Error"): 1-99 are well-known, 100+ are plugin-specific.
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration (the message names key and value).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const CONTAINER_UNKNOWN: u32 = 3;
    /// Invalid necessary environment variables (CNI_CONTAINERID, CNI_IFNAME, ...).
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (network config, prevResult, a delegated plugin's output).
    pub const DECODE_FAILED: u32 = 6;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// STATUS: the plugin is not available (cannot serve ADD).
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific: the IPAM range has no free address.
    pub const RANGE_EXHAUSTED: u32 = 100;
    /// Plugin-specific: CHECK found the attachment different from what ADD made.
    pub const ATTACHMENT_DRIFTED: u32 = 101;
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

    #[error("nftables: {op}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Nft {
        op: &'static str,
        /// What nft said on stderr.
        detail: String,
        #[source]
        source: io::Error,
    },

    #[error("iptables: {op}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Iptables {
        op: &'static str,
        /// What the iptables command said on stderr (or the lock file's path).
        detail: String,
        #[source]
        source: io::Error,
    },

    #[error("no packet filter for NAT rules: nftables: {nft}; iptables: {iptables}")]
    NoPacketFilter { nft: String, iptables: String },

    #[error("incompatible CNI versions: config is {version:?}, plugin supports {}", supported.join(", "))]
    IncompatibleVersion {
        version: String,
        supported: &'static [&'static str],
    },

    #[error("{command} needs cniVersion {needs} or later, config is {version}")]
    CommandNotInVersion {
        command: &'static str,
        needs: &'static str,
        version: String,
    },

    #[error("unsupported field {field}: {value}")]
    UnsupportedField { field: String, value: String },

    #[error("missing environment variable {var}")]
    MissingEnv { var: &'static str },

    #[error("invalid environment variable {var}={value:?}: {reason}")]
    InvalidEnv {
        var: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("decode {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid network config: {field}: {reason}")]
    InvalidConfig { field: String, reason: String },

    #[error("check failed: {what}")]
    Drifted { what: String },

    #[error("not available: {reason}")]
    Unavailable { reason: String },

    #[error("read network config file {}", path.display())]
    ConfRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("run plugin {}", path.display())]
    DelegateRun {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("plugin {plugin}: {msg}")]
    Delegated {
        plugin: String,
        code: u32,
        msg: String,
        details: String,
    },

    #[error("setup failed and its rollback failed too: {}", chain(rollback))]
    Rollback {
        #[source]
        source: Box<CniError>,
        rollback: Box<CniError>,
    },

    #[error("teardown: {}", errors.iter().map(chain).collect::<Vec<_>>().join("; "))]
    Teardown { errors: Vec<CniError> },

    /// GC of a network configuration list: every plugin ran, these failed.
    #[error("garbage collection: {}", errors.iter().map(chain).collect::<Vec<_>>().join("; "))]
    Gc { errors: Vec<CniError> },
}

impl CniError {
    /// The CNI spec error code for this error: the single place where errors meet the wire.
    pub fn code(&self) -> u32 {
        use codes::*;
        match self {
            Self::InvalidSubnet { .. } | Self::InvalidName { .. } | Self::NotABridge { .. } => {
                INVALID_NETWORK_CONFIG
            }
            Self::InvalidAttachmentId { .. }
            | Self::MissingEnv { .. }
            | Self::InvalidEnv { .. } => INVALID_ENVIRONMENT,
            Self::IncompatibleVersion { .. } | Self::CommandNotInVersion { .. } => {
                INCOMPATIBLE_VERSION
            }
            Self::UnsupportedField { .. } => UNSUPPORTED_FIELD,
            Self::Decode { .. } => DECODE_FAILED,
            Self::InvalidConfig { .. } => INVALID_NETWORK_CONFIG,
            Self::Drifted { .. } => ATTACHMENT_DRIFTED,
            Self::Unavailable { .. } => PLUGIN_NOT_AVAILABLE,
            Self::DelegateRun { .. } | Self::ConfRead { .. } => IO_FAILURE,
            // A delegated plugin's own code goes to the wire unchanged.
            Self::Delegated { code, .. } => *code,
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
            | Self::Sysctl { .. }
            | Self::Nft { .. }
            | Self::Iptables { .. }
            | Self::NoPacketFilter { .. } => IO_FAILURE,
            // The caller cares about why setup failed, not why cleaning up failed.
            Self::Rollback { source, .. } => source.code(),
            Self::Teardown { errors } | Self::Gc { errors } => {
                errors.first().map_or(IO_FAILURE, CniError::code)
            }
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
pub(crate) fn chain(err: &CniError) -> String {
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
            (
                CniError::IncompatibleVersion {
                    version: "9".into(),
                    supported: &["1.1.0"],
                },
                1,
            ),
            (
                CniError::CommandNotInVersion {
                    command: "CHECK",
                    needs: "0.4.0",
                    version: "0.3.1".into(),
                },
                1,
            ),
            (
                CniError::UnsupportedField {
                    field: "vlan".into(),
                    value: "5".into(),
                },
                2,
            ),
            (CniError::MissingEnv { var: "CNI_IFNAME" }, 4),
            (
                CniError::InvalidEnv {
                    var: "CNI_IFNAME",
                    value: "a/b".into(),
                    reason: "r",
                },
                4,
            ),
            (
                CniError::Decode {
                    what: "network config",
                    source: serde_json::from_str::<u8>("x").unwrap_err(),
                },
                6,
            ),
            (
                CniError::InvalidConfig {
                    field: "mtu".into(),
                    reason: "r".into(),
                },
                7,
            ),
            (CniError::Drifted { what: "x".into() }, 101),
            (CniError::Unavailable { reason: "x".into() }, 50),
            (
                CniError::DelegateRun {
                    path: "/x".into(),
                    source: io::Error::other("x"),
                },
                5,
            ),
            (
                CniError::Delegated {
                    plugin: "static".into(),
                    code: 11,
                    msg: "m".into(),
                    details: String::new(),
                },
                11,
            ),
            (
                CniError::ConfRead {
                    path: "/x".into(),
                    source: io::Error::from_raw_os_error(libc::ENOENT),
                },
                5,
            ),
            (netlink(libc::EPERM), 5),
            (
                CniError::Nft {
                    op: "add rules",
                    detail: "Error: x".into(),
                    source: io::Error::other("x"),
                },
                5,
            ),
            (
                CniError::Iptables {
                    op: "add rules",
                    detail: "iptables-restore: line 3 failed".into(),
                    source: io::Error::other("x"),
                },
                5,
            ),
            (
                CniError::NoPacketFilter {
                    nft: "no nft command in PATH".into(),
                    iptables: "no iptables-save command in PATH".into(),
                },
                5,
            ),
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
