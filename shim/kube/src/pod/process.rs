//! How a container's process is put together from its image and its Pod spec, as the kubelet and
//! containerd do it: command and args over Entrypoint and Cmd, `$(VAR)` expansion, environment,
//! working directory and user.

use std::fs;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no command specified: the image has no Entrypoint or Cmd and the container sets no command or args")]
    NoCommand,
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error("container has runAsNonRoot and image will run as root")]
    RunsAsRoot,
}

/// Kubernetes' rules (`kuberuntime` + containerd CRI): `command` replaces the Entrypoint and
/// drops the image's Cmd; `args` replaces the Cmd.
pub fn command(
    entrypoint: &[String],
    cmd: &[String],
    command: &[String],
    args: &[String],
) -> Result<Vec<String>, ProcessError> {
    let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (false, _) => command.iter().chain(args).cloned().collect(),
        (true, false) => entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => entrypoint.iter().chain(cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(ProcessError::NoCommand);
    }
    Ok(argv)
}

/// Kubernetes' `$(VAR_NAME)` expansion (`third_party/forked/golang/expansion`): a defined
/// variable is replaced, an undefined reference is left as written, `$$` is an escaped `$`.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One variable of a container's environment, in the kubelet's order (envFrom, then env).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvEntry {
    pub name: String,
    pub value: EnvValue,
}

/// Where an environment value comes from, as far as the start of the container cares.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EnvValue {
    /// `value`: `$(VAR)` references are expanded.
    Literal(String),
    /// From `valueFrom` or `envFrom`: used verbatim (the kubelet expands only `value`).
    Resolved(String),
    /// `fieldRef: status.podIP`/`podIPs`: known once the sandbox's network is up.
    PodIp,
}

impl std::fmt::Debug for EnvEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may come from Secrets: never print them.
        let kind = match self.value {
            EnvValue::Literal(_) => "literal",
            EnvValue::Resolved(_) => "resolved",
            EnvValue::PodIp => "podIP",
        };
        write!(f, "{}=<{kind}>", self.name)
    }
}

impl EnvEntry {
    /// A plain `name: value` variable.
    pub fn literal(name: &str, value: &str) -> Self {
        EnvEntry {
            name: name.into(),
            value: EnvValue::Literal(value.into()),
        }
    }

    /// A variable whose value is used as is.
    pub fn resolved(name: &str, value: &str) -> Self {
        EnvEntry {
            name: name.into(),
            value: EnvValue::Resolved(value.into()),
        }
    }
}

/// The container's environment: the image's, then the container's in order (literal values
/// expanded against the container variables defined before them), a later name overriding an
/// earlier one. Returns `KEY=VALUE` strings and the container variables (for command expansion).
pub fn environment(
    image_env: &[String],
    container_env: &[EnvEntry],
    hostname: &str,
    pod_ip: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        set(
            &mut vars,
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(&mut vars, k.into(), v.into());
    }
    set(&mut vars, "HOSTNAME".into(), hostname.into());
    let mut expanded: Vec<(String, String)> = Vec::new();
    for e in container_env {
        let value = match &e.value {
            EnvValue::Literal(v) => expand(v, &expanded),
            EnvValue::Resolved(v) => v.clone(),
            EnvValue::PodIp => pod_ip.to_string(),
        };
        expanded.retain(|(name, _)| *name != e.name);
        expanded.push((e.name.clone(), value.clone()));
        set(&mut vars, e.name.clone(), value);
    }
    (
        vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        expanded,
    )
}

/// The user a container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolve `runAsUser`/`runAsGroup` over the image's `User` (`uid`, `uid:gid`, `name`,
/// `name:group`) with the root filesystem's /etc/passwd and /etc/group, as containerd does.
pub fn resolve_user(
    rootfs: &Path,
    image_user: Option<&str>,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    supplemental: &[i64],
    run_as_non_root: bool,
) -> Result<User, ProcessError> {
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let passwd = entries(&passwd);
    let groups = entries(&group);
    let (user_part, group_part) = match image_user.filter(|u| !u.is_empty()) {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (u.to_string(), None),
        },
        None => ("0".to_string(), None),
    };
    let by_name = |name: &str| {
        passwd
            .iter()
            .find(|e| e.first().map(String::as_str) == Some(name) && e.len() >= 4)
    };
    let by_uid = |uid: u32| {
        passwd
            .iter()
            .find(|e| e.get(2).and_then(|u| u.parse().ok()) == Some(uid))
    };
    let (uid, mut gid) = match run_as_user {
        Some(u) => (
            u as u32,
            by_uid(u as u32)
                .and_then(|e| e[3].parse().ok())
                .unwrap_or(0),
        ),
        None => match user_part.parse::<u32>() {
            Ok(uid) => (
                uid,
                by_uid(uid).and_then(|e| e[3].parse().ok()).unwrap_or(0),
            ),
            Err(_) => {
                let e = by_name(&user_part).ok_or_else(|| ProcessError::UnknownUser {
                    user: user_part.clone(),
                })?;
                (e[2].parse().unwrap_or(0), e[3].parse().unwrap_or(0))
            }
        },
    };
    if let Some(g) = group_part.filter(|_| run_as_user.is_none()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.first() == Some(&g))
                .and_then(|e| e.get(2)?.parse().ok())
                .ok_or(ProcessError::UnknownGroup { group: g })?,
        };
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    if run_as_non_root && uid == 0 {
        return Err(ProcessError::RunsAsRoot);
    }
    // Groups that list the user by name, then the Pod's supplementalGroups.
    let name = by_uid(uid).and_then(|e| e.first().cloned());
    let mut additional_gids: Vec<u32> = groups
        .iter()
        .filter(|e| {
            e.len() >= 4
                && name
                    .as_ref()
                    .is_some_and(|n| e[3].split(',').any(|m| m == n))
        })
        .filter_map(|e| e[2].parse().ok())
        .collect();
    additional_gids.extend(supplemental.iter().map(|g| *g as u32));
    // The primary group too, as containerd gives it since CVE-2023-25173 (`id` in the
    // Kubernetes documentation shows it in `groups=`).
    additional_gids.push(gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// `supplementalGroupsPolicy: Strict`: only the Pod's `supplementalGroups` (and `fsGroup`
/// and the primary group), none of the groups the image's `/etc/group` gives the user (what
/// `Merge`, the default, adds).
pub fn strict_groups(user: &mut User, supplemental: &[i64]) {
    let gid = user.gid;
    user.additional_gids = supplemental.iter().map(|g| *g as u32).collect();
    user.additional_gids.push(gid);
    user.additional_gids.sort_unstable();
    user.additional_gids.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_keeps_only_the_pods_groups() {
        let mut u = User {
            uid: 1000,
            gid: 3000,
            additional_gids: vec![10, 50, 4000],
        };
        strict_groups(&mut u, &[4000, 3000, 2000, 4000]);
        assert_eq!(u.additional_gids, vec![2000, 3000, 4000]);
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_and_args_combine_like_kubernetes() {
        let (ep, cmd) = (v(&["/ep"]), v(&["default"]));
        assert_eq!(
            command(&ep, &cmd, &[], &[]).unwrap(),
            v(&["/ep", "default"])
        );
        assert_eq!(
            command(&ep, &cmd, &[], &v(&["a"])).unwrap(),
            v(&["/ep", "a"])
        );
        assert_eq!(command(&ep, &cmd, &v(&["sh"]), &[]).unwrap(), v(&["sh"]));
        assert_eq!(
            command(&ep, &cmd, &v(&["sh"]), &v(&["-c", "x"])).unwrap(),
            v(&["sh", "-c", "x"])
        );
        assert!(matches!(
            command(&[], &[], &[], &[]),
            Err(ProcessError::NoCommand)
        ));
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A) $ $(", &vars), "$(A) $ $(");
    }

    #[test]
    fn environment_merges_and_expands_in_order() {
        let (env, _) = environment(
            &v(&["PATH=/bin", "A=img"]),
            &[
                EnvEntry::literal("A", "c"),
                EnvEntry::literal("B", "$(A)-$(PATH)"),
                EnvEntry::resolved("C", "$(A)"),
                EnvEntry {
                    name: "IP".into(),
                    value: EnvValue::PodIp,
                },
                EnvEntry::literal("D", "$(IP)/$(C)"),
            ],
            "pod",
            "10.0.0.2",
        );
        assert_eq!(
            env,
            v(&[
                "PATH=/bin",
                "HOSTNAME=pod",
                "A=c",
                "B=c-$(PATH)",
                "C=$(A)",
                "IP=10.0.0.2",
                "D=10.0.0.2/$(A)"
            ])
        );
        let (env, _) = environment(&[], &[], "p", "");
        assert!(env[0].starts_with("PATH=/usr/local/sbin"));
    }

    #[test]
    fn users_resolve_from_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nwww:x:33:34::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nweb:x:34:\nextra:x:50:www\n",
        )
        .unwrap();
        let r = dir.path();
        assert_eq!(
            resolve_user(r, None, None, None, &[], false).unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        assert_eq!(
            resolve_user(r, Some("www"), None, None, &[7], false).unwrap(),
            User {
                uid: 33,
                gid: 34,
                additional_gids: vec![7, 34, 50]
            }
        );
        assert_eq!(
            resolve_user(r, Some("1000:web"), None, None, &[], false)
                .unwrap()
                .gid,
            34
        );
        assert_eq!(
            resolve_user(r, Some("www"), Some(1001), Some(5), &[], false).unwrap(),
            User {
                uid: 1001,
                gid: 5,
                additional_gids: vec![5]
            }
        );
        assert!(matches!(
            resolve_user(r, Some("nobody"), None, None, &[], false),
            Err(ProcessError::UnknownUser { .. })
        ));
        assert!(matches!(
            resolve_user(r, None, None, None, &[], true),
            Err(ProcessError::RunsAsRoot)
        ));
    }
}
