//! In-place resize of a running container (Kubernetes' `resize` subresource, GA in 1.35): what
//! `podshim resize` asks, the checks the API server (`ValidatePodResize`) and the kubelet make
//! before they accept it, and what follows from the container's `resizePolicy` (the cgroup
//! changed live, or the container restarted with its new resources).
//!
//! The request travels as a file next to the Pod's record plus SIGUSR1 to its supervisor (as a
//! stop request does); the supervisor, which owns the container, answers in a reply file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use podshim_engine::config::Config;

use crate::manifest::{Container, PodSpec, Quantity, ResourceRequirements};
use crate::pod::pod_level;
use crate::pod::resources::milli_value;
use crate::record;

/// What `podshim resize` asks for one container: new limits (`cpu`, `memory`) and requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub container: String,
    /// By resource name: the new limit (or, for a resource the container only requests, the new
    /// request). A request that equalled the old limit follows it, so a Guaranteed Pod stays so.
    pub set: BTreeMap<String, String>,
    /// By resource name: explicit new requests.
    pub requests: BTreeMap<String, String>,
}

/// The supervisor's answer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// Why the resize was refused (nothing changed then).
    pub error: Option<String>,
    /// The container is restarted for it (a `RestartContainer` policy).
    pub restarted: bool,
    /// The resources now allocated to the container.
    pub resources: Option<ResourceRequirements>,
}

/// The request file (`<records>/<key>.resize`).
pub fn request_path(cfg: &Config, key: &str) -> PathBuf {
    record::dir(cfg).join(format!("{key}.resize"))
}

/// The reply file (`<records>/<key>.resize-reply`).
pub fn reply_path(cfg: &Config, key: &str) -> PathBuf {
    record::dir(cfg).join(format!("{key}.resize-reply"))
}

/// An accepted resize.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `("containers" | "initContainers", index)` of the container in the Pod's spec.
    pub at: (&'static str, usize),
    pub resources: ResourceRequirements,
    /// Resources whose request or limit changed.
    pub changed: Vec<String>,
    /// A changed resource's `resizePolicy` is `RestartContainer`.
    pub restart: bool,
}

/// The container's `resizePolicy` for `resource` (NotRequired when unset).
pub fn policy(c: &Container, resource: &str) -> String {
    c.resize_policy
        .iter()
        .find(|p| p.get("resourceName").and_then(|v| v.as_str()) == Some(resource))
        .and_then(|p| p.get("restartPolicy")?.as_str().map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "NotRequired".into())
}

/// Check a resize of a Pod with spec `spec` and work out the container's new resources.
pub fn decide(spec: &PodSpec, req: &Request) -> Result<Decision, String> {
    if pod_level::is_set(spec) {
        return Err(
            "Infeasible: resizing a Pod with Pod-level resources needs the \
                    InPlacePodLevelResourcesVerticalScaling feature (alpha, off in a default \
                    kubelet, and not in podshim)"
                .into(),
        );
    }
    let found = (spec.containers.iter().enumerate())
        .map(|(i, c)| (("containers", i), c))
        .chain((spec.init_containers.iter().enumerate()).map(|(i, c)| (("initContainers", i), c)))
        .find(|(_, c)| c.name == req.container);
    let Some((at, c)) = found else {
        return Err(format!("container {:?} is not in the pod", req.container));
    };
    let path = format!("spec.{}[{}].resources", at.0, at.1);
    if at.0 == "initContainers" && c.restart_policy.as_deref() != Some("Always") {
        return Err(format!(
            "{path}: Forbidden: only app containers and sidecars (restartable init containers) \
             can be resized"
        ));
    }
    let old = c.resources.clone().unwrap_or_default();
    let mut new = old.clone();
    let parse = |list: &str, name: &str, v: &str| -> Result<Quantity, String> {
        if !matches!(name, "cpu" | "memory") {
            return Err(format!(
                "{path}.{list}[{name}]: Forbidden: only cpu and memory can be resized"
            ));
        }
        let q = Quantity(v.to_string());
        match q.parse() {
            Ok(p) if !p.is_negative() => Ok(q),
            Ok(_) => Err(format!(
                "{path}.{list}[{name}]: Invalid value: {v:?}: must be greater than or equal to 0"
            )),
            Err(_) => Err(format!(
                "{path}.{list}[{name}]: Invalid value: {v:?}: quantities must match the \
                 regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )),
        }
    };
    for (name, v) in &req.set {
        let q = parse("limits", name, v)?;
        match old.limits.get(name) {
            Some(limit) => {
                if old.requests.get(name) == Some(limit) {
                    new.requests.insert(name.clone(), q.clone());
                }
                new.limits.insert(name.clone(), q);
            }
            None => {
                new.requests.insert(name.clone(), q);
            }
        }
    }
    for (name, v) in &req.requests {
        let q = parse("requests", name, v)?;
        new.requests.insert(name.clone(), q);
    }
    for (name, r) in &new.requests {
        if let Some(l) = new.limits.get(name) {
            if milli_value(r) > milli_value(l) {
                return Err(format!(
                    "{path}.requests: Invalid value: {:?}: must be less than or equal to {name} \
                     limit of {l}",
                    r.as_str()
                ));
            }
        }
    }
    let mut after = spec.clone();
    let list = match at.0 {
        "containers" => &mut after.containers,
        _ => &mut after.init_containers,
    };
    list[at.1].resources = Some(new.clone());
    let (before_qos, after_qos) = (pod_level::pod_qos(spec), pod_level::pod_qos(&after));
    if before_qos != after_qos {
        return Err(format!(
            "spec: Invalid value: \"{before_qos:?}\": Pod QOS Class may not change as a result \
             of resizing (it would be {after_qos:?})"
        ));
    }
    let same = |a: Option<&Quantity>, b: Option<&Quantity>| {
        a.and_then(milli_value) == b.and_then(milli_value)
    };
    let changed: Vec<String> = ["cpu", "memory"]
        .into_iter()
        .filter(|n| {
            !same(old.limits.get(*n), new.limits.get(*n))
                || !same(old.requests.get(*n), new.requests.get(*n))
        })
        .map(str::to_string)
        .collect();
    let restart = changed.iter().any(|n| policy(c, n) == "RestartContainer");
    Ok(Decision {
        at,
        resources: new,
        changed,
        restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml_containers: &str) -> PodSpec {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{yaml_containers}"
        );
        let mut v = crate::manifest::yaml::documents(&text)
            .remove(0)
            .1
            .unwrap()
            .value;
        let mut pod = crate::manifest::decode::decode_pod(&mut v).unwrap();
        crate::manifest::defaults::apply(&mut pod);
        pod.spec
    }

    fn req(container: &str, set: &[(&str, &str)], requests: &[(&str, &str)]) -> Request {
        let map = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Request {
            container: container.into(),
            set: map(set),
            requests: map(requests),
        }
    }

    #[test]
    fn a_guaranteed_container_keeps_requests_equal_to_limits() {
        let s = spec("  - name: a\n    image: i\n    resources: {limits: {cpu: 500m, memory: 64Mi}}\n    resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]\n");
        let d = decide(&s, &req("a", &[("cpu", "1")], &[])).unwrap();
        assert_eq!(d.resources.limits["cpu"].as_str(), "1");
        assert_eq!(d.resources.requests["cpu"].as_str(), "1");
        assert_eq!(
            (d.changed.clone(), d.restart),
            (vec!["cpu".to_string()], false)
        );
        // Memory's policy restarts the container.
        let d = decide(&s, &req("a", &[("memory", "128Mi")], &[])).unwrap();
        assert_eq!((d.changed, d.restart), (vec!["memory".to_string()], true));
    }

    #[test]
    fn refusals() {
        let s =
            spec("  - name: a\n    image: i\n    resources: {limits: {cpu: 500m, memory: 64Mi}}\n");
        let qos = decide(&s, &req("a", &[], &[("cpu", "100m")])).unwrap_err();
        assert!(
            qos.contains("Pod QOS Class may not change as a result of resizing"),
            "{qos}"
        );
        let over = decide(&s, &req("a", &[], &[("memory", "1Gi")])).unwrap_err();
        assert!(
            over.contains("must be less than or equal to memory limit of 64Mi"),
            "{over}"
        );
        let gone = decide(&s, &req("b", &[("cpu", "1")], &[])).unwrap_err();
        assert_eq!(gone, "container \"b\" is not in the pod");
        let other = decide(&s, &req("a", &[("ephemeral-storage", "1Gi")], &[])).unwrap_err();
        assert!(
            other.contains("only cpu and memory can be resized"),
            "{other}"
        );
        let bad = decide(&s, &req("a", &[("cpu", "lots")], &[])).unwrap_err();
        assert!(bad.contains("quantities must match"), "{bad}");
        let mut pl = s.clone();
        pl.resources = Some(ResourceRequirements {
            limits: [("cpu".to_string(), Quantity("1".into()))].into(),
            ..Default::default()
        });
        assert!(decide(&pl, &req("a", &[("cpu", "1")], &[]))
            .unwrap_err()
            .starts_with("Infeasible"));
    }

    #[test]
    fn a_request_only_container_gets_a_new_request() {
        let s = spec("  - name: a\n    image: i\n    resources: {requests: {cpu: 100m}}\n");
        let d = decide(&s, &req("a", &[("cpu", "200m")], &[])).unwrap();
        assert_eq!(d.resources.requests["cpu"].as_str(), "200m");
        assert!(d.resources.limits.is_empty());
    }
}
