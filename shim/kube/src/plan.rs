//! From a validated Pod manifest and the image store to what the engine runs: the sandbox spec,
//! one plan per container, the restart policy and the grace period. Every check that can fail
//! (missing images) happens here, before anything is created; pulls happen before this
//! (`crate::pulling`).

use std::time::Duration;

use crate::manifest::{Manifest, Pod, PullPolicy, RestartPolicy};
use crate::pod::container::MountPlan;
use crate::pod::files::Dns;
use crate::pod::order::Role;
use crate::pod::resources;
use crate::pod::restart::Policy;
use crate::pod::sandbox::{SandboxSpec, VolumeSpec};
use crate::pod::{new_uid, ContainerPlan};
use crate::resolve;
use podshim_image::Store;

/// A Pod ready to run (serializable: the CLI hands it to the Pod's supervisor).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PodPlan {
    pub sandbox: SandboxSpec,
    /// `spec.initContainers`, in order (sidecars among them).
    pub init_containers: Vec<InitContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    pub restart: Policy,
    pub grace_period: Duration,
    /// Things the user should know that do not stop the Pod.
    pub warnings: Vec<String>,
    /// `activeDeadlineSeconds`: how long the Pod may be active before the kubelet fails it.
    #[serde(default)]
    pub active_deadline: Option<Duration>,
    /// `status.qosClass`: Guaranteed, Burstable or BestEffort.
    #[serde(default)]
    pub qos_class: String,
}

/// An init container: run to completion, or a sidecar (`restartPolicy: Always`) kept running.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InitContainerPlan {
    pub container: ContainerPlan,
    pub sidecar: bool,
}

impl PodPlan {
    /// Every container in the order the Pod starts them (init containers, then app containers),
    /// with its role.
    pub fn ordered(&self) -> impl Iterator<Item = (Role, &ContainerPlan)> {
        let init = self.init_containers.iter().map(|i| {
            let role = if i.sidecar { Role::Sidecar } else { Role::Init };
            (role, &i.container)
        });
        init.chain(self.containers.iter().map(|c| (Role::App, c)))
    }

    /// The `i`th container of [`PodPlan::ordered`].
    pub fn container(&self, i: usize) -> &ContainerPlan {
        match self.init_containers.get(i) {
            Some(init) => &init.container,
            None => &self.containers[i - self.init_containers.len()],
        }
    }
}

/// The Pod's hostname as the kubelet derives it (`GeneratePodHostNameAndDomain`): `spec.hostname`
/// or the Pod name, truncated to 63 characters without a trailing `-` or `.`.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod.name().to_string());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// Resolve a Pod against the image store and the manifest's ConfigMaps and Secrets. Errors name
/// the field and say how to fix it.
pub fn plan(pod: &Pod, manifest: &Manifest, store: &Store) -> Result<PodPlan, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let spec = &pod.spec;
    let uid = pod
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(new_uid);
    let host_network = spec.host_network == Some(true);
    // The kubelet: a hostNetwork Pod keeps the node's hostname.
    let host = match host_network {
        true => crate::pod::ports::node_hostname(),
        false => hostname(pod),
    };
    let host_ports = crate::pod::ports::host_ports(pod).unwrap_or_else(|e| {
        errors.extend(e);
        Vec::new()
    });
    let fqdn = spec
        .subdomain
        .as_ref()
        .map(|sub| format!("{host}.{sub}.{}.svc.cluster.local", pod.namespace()));
    let mut dns_config = Dns::default();
    if let Some(c) = &spec.dns_config {
        dns_config.nameservers = c.nameservers.clone();
        dns_config.searches = c.searches.clone();
        dns_config.options = c
            .options
            .iter()
            .map(|o| match &o.value {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            })
            .collect();
    }
    for (i, v) in spec.volumes.iter().enumerate() {
        if let Some(e) = &v.empty_dir {
            if e.size_limit.is_some() && e.medium.as_deref() != Some("Memory") {
                warnings.push(format!(
                    "spec.volumes[{i}].emptyDir.sizeLimit: not enforced for a disk emptyDir \
                     (the kubelet evicts the Pod; podshim does not); it sizes Memory emptyDirs"
                ));
            }
        }
    }
    let node = resolve::Node::detect();
    let cx = resolve::Context {
        pod,
        uid: &uid,
        manifest,
        node: &node,
    };
    let mut volumes = Vec::new();
    let mut volume_images = Vec::new();
    // configMap and secret volumes: mounted read-only whatever the mount says, as Kubernetes does.
    let mut read_only_volumes = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        if let Some(h) = &v.host_path {
            let type_ = h.type_.clone().unwrap_or_default();
            let path = std::path::PathBuf::from(&h.path);
            // Checked now, so a Pod this host cannot mount is refused before anything is made;
            // the `…OrCreate` ones are made when the sandbox is, in order, so a file may go into
            // a directory an earlier volume makes.
            let made_by_earlier = spec.volumes[..i].iter().any(|e| {
                e.host_path.as_ref().is_some_and(|h| {
                    h.type_.as_deref() == Some("DirectoryOrCreate")
                        && path.parent().is_some_and(|p| p.starts_with(&h.path))
                })
            });
            let check = if made_by_earlier { "" } else { type_.as_str() };
            if let Err(e) = crate::pod::host_path::prepare(&path, check, false) {
                errors.push(format!(
                    "spec.volumes[{i}].hostPath: FailedMount: MountVolume.SetUp failed for \
                     volume {:?} : {e}",
                    v.name
                ));
            }
            volumes.push(VolumeSpec {
                name: v.name.clone(),
                memory: false,
                size_limit: None,
                contents: None,
                host_path: Some((path, type_)),
                image: None,
                claim: false,
            });
        } else if let Some(c) = &v.persistent_volume_claim {
            // The claim's directory, bind-mounted as a hostPath is (the sandbox checks it is
            // still a directory); `readOnly` makes every mount of it read-only.
            match crate::storage::volume_path(store, pod.namespace(), &c.claim_name) {
                Ok(path) => {
                    if c.read_only == Some(true) {
                        read_only_volumes.push(v.name.clone());
                    }
                    volumes.push(VolumeSpec {
                        name: v.name.clone(),
                        memory: false,
                        size_limit: None,
                        contents: None,
                        host_path: Some((path, "Directory".into())),
                        image: None,
                        claim: true,
                    });
                }
                Err(e) => errors.push(format!("spec.volumes[{i}].persistentVolumeClaim: {e}")),
            }
        } else if v.image.is_some() {
            // Read-only whatever the mount says, as the kubelet mounts an image volume.
            if let Some((layers, digest)) =
                crate::pod::image_volume::resolve(store, i, v, &mut errors)
            {
                read_only_volumes.push(v.name.clone());
                volume_images.push(digest);
                volumes.push(VolumeSpec {
                    name: v.name.clone(),
                    memory: false,
                    size_limit: None,
                    contents: None,
                    host_path: None,
                    image: Some(layers),
                    claim: false,
                });
            }
        } else if let Some(e) = &v.empty_dir {
            volumes.push(VolumeSpec {
                name: v.name.clone(),
                memory: e.medium.as_deref() == Some("Memory"),
                size_limit: e
                    .size_limit
                    .as_ref()
                    .and_then(|q| q.to_bytes())
                    .map(|b| b.max(0) as u64),
                contents: None,
                host_path: None,
                image: None,
                claim: false,
            });
        } else if let Some(mut c) = resolve::volume_contents(&cx, i, v, &mut errors) {
            crate::token::project(store, pod, &uid, &node.name, i, v, &mut c, &mut errors);
            read_only_volumes.push(v.name.clone());
            volumes.push(VolumeSpec {
                name: v.name.clone(),
                memory: c.secret,
                // A small tmpfs: the payload plus room for the atomic writer's metadata.
                size_limit: c.secret.then(|| c.projection.size() + (1 << 20)),
                contents: Some(c.projection),
                host_path: None,
                image: None,
                claim: false,
            });
        }
    }
    let psc = spec.security_context.clone().unwrap_or_default();
    let node_security = crate::security::Host::detect();
    // The kubelet's OS admission: a Pod for another OS is refused here.
    if let Some(os) = spec
        .os
        .as_ref()
        .and_then(|o| o.get("name"))
        .and_then(|n| n.as_str())
    {
        if os != std::env::consts::OS {
            errors.push(format!(
                "spec.os.name: PodOSNotSupported: Failed to admit pod as the OS field doesn't \
                 match node OS (the Pod asks for {os:?}; this node is {:?})",
                std::env::consts::OS
            ));
        }
    }
    let sysctls = crate::security::sysctls(&node_security, pod).unwrap_or_else(|e| {
        errors.extend(e);
        Default::default()
    });
    let qos = crate::pod::pod_level::pod_qos(spec);
    let node_memory = resources::node_memory();
    let mut containers = Vec::new();
    let mut init_containers = Vec::new();
    let mut images = Vec::new();
    let all = (spec.init_containers.iter().enumerate())
        .map(|(i, c)| ("initContainers", i, c))
        .chain((spec.containers.iter().enumerate()).map(|(i, c)| ("containers", i, c)));
    for (list, i, c) in all {
        let (errs_before, warns_before) = (errors.len(), warnings.len());
        let env = resolve::container_env(&cx, i, c, &mut errors, &mut warnings);
        if list != "containers" {
            // `container_env` names `spec.containers[i]`: name the init container instead.
            let (from, to) = (format!("spec.containers[{i}]"), format!("spec.{list}[{i}]"));
            for m in errors[errs_before..]
                .iter_mut()
                .chain(&mut warnings[warns_before..])
            {
                if let Some(rest) = m.strip_prefix(&from) {
                    *m = format!("{to}{rest}");
                }
            }
        }
        let image_ref = c.image.clone().unwrap_or_default();
        let image = match store.resolve(&image_ref) {
            Ok(Some(image)) => image,
            Ok(None) => {
                // The pulls (`crate::pulling`) ran before: only `Never` gets here normally.
                let message = match c.pull_policy() {
                    // The kubelet's wording (`ErrImageNeverPull`).
                    PullPolicy::Never => format!(
                        "ErrImageNeverPull: container image {image_ref:?} is not present with pull \
                         policy of Never; pull it (podshim image pull) or import it \
                         (podshim image import --name {image_ref} ARCHIVE)"
                    ),
                    _ => {
                        format!("ErrImagePull: image {image_ref:?} is not in podshim's image store")
                    }
                };
                errors.push(format!("spec.{list}[{i}].image: {message}"));
                continue;
            }
            Err(e) => {
                errors.push(format!("spec.{list}[{i}].image: {}", crate::pod::chain(&e)));
                continue;
            }
        };
        if !images.contains(&image.digest) {
            images.push(image.digest.clone());
        }
        // This node advertises no extended resources: kube-scheduler's Fit filter leaves the
        // Pod Pending with its message.
        let extended: Vec<&String> = c
            .resources
            .iter()
            .flat_map(|r| r.requests.keys().chain(r.limits.keys()))
            .filter(|n| crate::manifest::unsupported::is_extended_resource(n))
            .collect();
        if let Some(name) = extended.first() {
            errors.push(format!(
                "spec.{list}[{i}].resources: Unschedulable: 0/1 nodes are available: 1 \
                 Insufficient {name}. (this node has no {name} to give)"
            ));
        }
        let sc = c.security_context.clone().unwrap_or_default();
        let caps = sc.capabilities.clone().unwrap_or_default();
        let security =
            crate::security::container(&node_security, pod, c, &format!("spec.{list}[{i}]"))
                .unwrap_or_else(|e| {
                    errors.extend(e);
                    Default::default()
                });
        let plan = ContainerPlan {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: format!("{}@{}", image.name, image.digest),
            layers: image.layers.clone(),
            entrypoint: image.config.entrypoint.clone(),
            cmd: image.config.cmd.clone(),
            image_env: image.config.env.clone(),
            image_working_dir: image.config.working_dir.clone(),
            image_user: image.config.user.clone(),
            stop_signal: image.config.stop_signal.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            env,
            working_dir: c.working_dir.clone(),
            run_as_user: sc.run_as_user.or(psc.run_as_user),
            run_as_group: sc.run_as_group.or(psc.run_as_group),
            run_as_non_root: sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false),
            // containerd's CRI adds fsGroup to the container's supplementary groups.
            supplemental_groups: psc
                .supplemental_groups
                .iter()
                .copied()
                .chain(psc.fs_group)
                .collect(),
            cap_add: caps.add.clone(),
            cap_drop: caps.drop.clone(),
            no_new_privileges: sc.allow_privilege_escalation == Some(false),
            readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
            mounts: c
                .volume_mounts
                .iter()
                .map(|m| MountPlan {
                    volume: m.name.clone(),
                    path: m.mount_path.clone(),
                    read_only: m.read_only.unwrap_or(false) || read_only_volumes.contains(&m.name),
                    sub_path: m.sub_path_expr.clone().or_else(|| m.sub_path.clone()),
                    expand: m.sub_path_expr.is_some(),
                    propagation: match m.mount_propagation.as_deref() {
                        Some("HostToContainer") => "rslave",
                        Some("Bidirectional") => "rshared",
                        _ => "rprivate",
                    }
                    .into(),
                    // `IfPossible` is `Enabled` on the kernels podshim runs on (mount_setattr(2)
                    // since 5.12).
                    recursive_read_only: matches!(
                        m.recursive_read_only.as_deref(),
                        Some("Enabled" | "IfPossible")
                    ) && m.read_only == Some(true),
                })
                .collect(),
            resources: resources::container_resources(c, qos, node_memory),
            checks: crate::probe::checks(c, &format!("spec.{list}[{i}]")).unwrap_or_else(|e| {
                errors.push(e);
                Default::default()
            }),
            termination_message_path: c.termination_message_path.clone().unwrap_or_default(),
            termination_message_fallback: c.termination_message_policy.as_deref()
                == Some("FallbackToLogsOnError"),
            security,
            strict_groups: psc.supplemental_groups_policy.as_deref() == Some("Strict"),
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
        };
        if list == "containers" {
            containers.push(plan);
        } else {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            init_containers.push(InitContainerPlan {
                container: plan,
                sidecar,
            });
        }
    }
    for d in volume_images {
        if !images.contains(&d) {
            images.push(d);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PodPlan {
        sandbox: SandboxSpec {
            namespace: pod.namespace().to_string(),
            name: pod.name().to_string(),
            uid,
            hostname: host,
            fqdn,
            dns_none: spec.dns_policy.as_deref() == Some("None"),
            dns_config,
            host_aliases: spec
                .host_aliases
                .iter()
                .map(|a| (a.ip.clone(), a.hostnames.clone()))
                .collect(),
            volumes,
            host_network,
            // Host ports of a hostNetwork Pod are its own sockets: only checked free.
            host_ports,
            masquerade: !host_network,
            images,
            host_pid: spec.host_pid == Some(true),
            host_ipc: spec.host_ipc == Some(true),
            share_pid: spec.share_process_namespace == Some(true),
            user_namespace: spec.host_users == Some(false),
            sysctls,
            fs_group: psc.fs_group.map(|g| g as u32),
            fs_group_on_root_mismatch: psc.fs_group_change_policy.as_deref()
                == Some("OnRootMismatch"),
            pod_limits: crate::pod::pod_level::cgroup_limits(spec, qos),
        },
        init_containers,
        containers,
        restart: match spec.restart_policy() {
            RestartPolicy::Always => Policy::Always,
            RestartPolicy::OnFailure => Policy::OnFailure,
            RestartPolicy::Never => Policy::Never,
        },
        warnings,
        grace_period: Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
        ),
        qos_class: format!("{qos:?}"),
        active_deadline: spec
            .active_deadline_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    })
}
