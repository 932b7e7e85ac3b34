//! This host as the one node of the cluster: its name (the kubelet's: the host name, lower
//! case), the labels the kubelet gives every node plus those configured (`--node-label`), and the
//! taints configured (`--node-taint`, none by default), parsed and validated as the kubelet's
//! `--node-labels` and `--register-with-taints` are.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::validate::names;

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

impl fmt::Display for Taint {
    /// `kubectl describe node`'s form: `key=value:Effect` (`key:Effect` without a value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.as_str() {
            "" => write!(f, "{}:{}", self.key, self.effect),
            v => write!(f, "{}={v}:{}", self.key, self.effect),
        }
    }
}

/// The node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

/// The well-known labels the kubelet sets on its node (`kubelet_node_status.go` `initialNode`):
/// hostname, os and arch, and the deprecated beta os/arch labels it still sets. None of the
/// `node.kubernetes.io/*` labels apply: `instance-type` comes from a cloud provider and
/// `exclude-from-external-load-balancers` from kubeadm on control-plane nodes.
pub fn well_known_labels(name: &str) -> BTreeMap<String, String> {
    let arch = go_arch(std::env::consts::ARCH);
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Go's `runtime.GOARCH` for a Rust target architecture.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl Node {
    /// The node `name` with the well-known labels, then `labels` (which may override them), and
    /// `taints`.
    pub fn new(name: &str, labels: &[(String, String)], taints: Vec<Taint>) -> Node {
        let mut all = well_known_labels(name);
        all.extend(labels.iter().cloned());
        Node {
            name: name.to_string(),
            labels: all,
            taints,
        }
    }

    /// This host (`resolve::Node`'s name, so `spec.nodeName` and the downward API agree).
    pub fn this_host(labels: &[(String, String)], taints: Vec<Taint>) -> Node {
        Node::new(&crate::resolve::Node::detect().name, labels, taints)
    }

    /// `k=v, k=v` for messages.
    pub fn describe_labels(&self) -> String {
        let parts: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(", ")
    }

    /// `t, t` or `none`.
    pub fn describe_taints(&self) -> String {
        if self.taints.is_empty() {
            return "none".to_string();
        }
        let parts: Vec<String> = self.taints.iter().map(Taint::to_string).collect();
        parts.join(", ")
    }
}

/// `KEY=VALUE` of `--node-label`, checked as the kubelet checks `--node-labels` (a qualified
/// name and a label value).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!("{s:?}: want KEY=VALUE"));
    };
    let mut why = names::qualified_name(k);
    why.extend(names::label_value(v));
    match why.is_empty() {
        true => Ok((k.to_string(), v.to_string())),
        false => Err(format!("{s:?}: {}", why.join("; "))),
    }
}

/// `KEY[=VALUE]:EFFECT` of `--node-taint`, as `ParseTaints` reads `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let Some((kv, effect)) = s.rsplit_once(':') else {
        return Err(format!("{s:?}: want KEY[=VALUE]:EFFECT"));
    };
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    let mut why = names::qualified_name(key);
    why.extend(names::label_value(value));
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        why.push(format!(
            "invalid taint effect: {effect}, unsupported taint effect (want NoSchedule, PreferNoSchedule or NoExecute)"
        ));
    }
    match why.is_empty() {
        true => Ok(Taint {
            key: key.to_string(),
            value: value.to_string(),
            effect: effect.to_string(),
        }),
        false => Err(format!("{s:?}: {}", why.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints_parse_as_the_kubelet_reads_them() {
        assert_eq!(parse_label("disk=ssd"), Ok(("disk".into(), "ssd".into())));
        assert_eq!(
            parse_label("example.com/zone="),
            Ok(("example.com/zone".into(), "".into()))
        );
        assert!(parse_label("disk").unwrap_err().contains("want KEY=VALUE"));
        assert!(parse_label("bad key=x")
            .unwrap_err()
            .contains("name part must consist"));
        assert_eq!(
            parse_taint("dedicated=gpu:NoSchedule").unwrap().to_string(),
            "dedicated=gpu:NoSchedule"
        );
        let t = parse_taint("example.com/maint:NoExecute").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_str()),
            ("example.com/maint", "")
        );
        assert!(parse_taint("k=v:Sometimes")
            .unwrap_err()
            .contains("invalid taint effect"));
        assert!(parse_taint("k=v")
            .unwrap_err()
            .contains("KEY[=VALUE]:EFFECT"));
    }

    #[test]
    fn well_known_labels_and_overrides() {
        let n = Node::new(
            "host-a",
            &[
                ("disk".into(), "ssd".into()),
                ("kubernetes.io/os".into(), "x".into()),
            ],
            vec![],
        );
        assert_eq!(n.labels["kubernetes.io/hostname"], "host-a");
        assert_eq!(n.labels["kubernetes.io/os"], "x");
        assert_eq!(n.labels["disk"], "ssd");
        assert!(
            ["amd64", "arm64", "386", "ppc64le", "riscv64", "s390x", "loong64", "arm"]
                .contains(&n.labels["kubernetes.io/arch"].as_str())
        );
        assert_eq!(n.describe_taints(), "none");
    }
}
