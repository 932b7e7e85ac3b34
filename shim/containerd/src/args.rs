//! The command line containerd gives a shim, in Go's `flag` syntax (`-name value`, `-name=value`,
//! `--name value`, bare booleans), followed by the action: `start`, `delete`, or none for the
//! server. Read from containerd 1.6's `runtime/v2/shim/shim.go` and 2.x's `pkg/shim/shim.go`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    Missing(String),
    #[error("unexpected argument {0:?}")]
    Extra(String),
}

/// What the shim was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start (or find) the server for this task and print its address.
    Start,
    /// Clean up after a server that died.
    Delete,
    /// Be the server (what `start` runs in the background).
    Serve,
    /// `-v`: print the version.
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC address: shim socket names are derived from it.
    pub address: String,
    pub publish_binary: String,
    /// `-bundle` (delete only; start and the server run in the bundle directory).
    pub bundle: Option<PathBuf>,
    /// `-socket`: the address the server listens on (set by `start` for its server).
    pub socket: Option<String>,
    /// `-listen-fd`: the descriptor of the socket `start` listens on for its server.
    pub listen_fd: Option<i32>,
    pub debug: bool,
    pub action: Action,
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut out = Args {
        namespace: String::new(),
        id: String::new(),
        address: String::new(),
        publish_binary: String::new(),
        bundle: None,
        socket: None,
        listen_fd: None,
        debug: false,
        action: Action::Serve,
    };
    let mut it = args.into_iter();
    let mut action = None;
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if action.is_some() {
                return Err(ArgsError::Extra(arg));
            }
            action = Some(match arg.as_str() {
                "start" => Action::Start,
                "delete" => Action::Delete,
                _ => return Err(ArgsError::Extra(arg)),
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        match name.as_str() {
            "debug" => out.debug = inline.is_none_or(|v| v != "false"),
            "v" | "version" => out.action = Action::Version,
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| ArgsError::Missing(name.clone()))?,
                };
                match name.as_str() {
                    "namespace" => out.namespace = value,
                    "id" => out.id = value,
                    "address" => out.address = value,
                    "publish-binary" => out.publish_binary = value,
                    "bundle" => out.bundle = Some(PathBuf::from(value)),
                    "socket" => out.socket = Some(value),
                    "listen-fd" => {
                        out.listen_fd = Some(value.parse().map_err(|_| ArgsError::Extra(value))?)
                    }
                    _ => return Err(ArgsError::Unknown(name)),
                }
            }
        }
    }
    if out.action != Action::Version {
        out.action = action.unwrap_or(Action::Serve);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, ArgsError> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn containerd_16_start_and_delete() {
        let a = p("-namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id abc -debug start").unwrap();
        assert_eq!(a.action, Action::Start);
        assert_eq!(a.namespace, "k8s.io");
        assert_eq!(a.id, "abc");
        assert!(a.debug);
        let d = p("-namespace n -address /a -publish-binary /b -id x -bundle /bun delete").unwrap();
        assert_eq!(d.action, Action::Delete);
        assert_eq!(d.bundle, Some(PathBuf::from("/bun")));
        let s = p("--namespace=n -id=x -socket unix:///run/x").unwrap();
        assert_eq!(s.action, Action::Serve);
        assert_eq!(s.socket.as_deref(), Some("unix:///run/x"));
        assert_eq!(p("-listen-fd 3").unwrap().listen_fd, Some(3));
        assert!(p("-listen-fd x").is_err());
    }

    #[test]
    fn wrong_flags_are_refused() {
        assert_eq!(p("-nope 1").unwrap_err(), ArgsError::Unknown("nope".into()));
        assert_eq!(p("-id").unwrap_err(), ArgsError::Missing("id".into()));
        assert_eq!(
            p("start delete").unwrap_err(),
            ArgsError::Extra("delete".into())
        );
        assert_eq!(p("-v").unwrap().action, Action::Version);
    }
}
