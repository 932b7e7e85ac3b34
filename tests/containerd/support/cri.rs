//! A CRI client written for the tests: the `k8s-cri` crate's generated `runtime.v1` clients over
//! tonic on containerd's unix socket, driven from synchronous tests by a current-thread tokio
//! runtime (each call is one `block_on`), plus builders for the sandbox and container configs a
//! kubelet would send.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

use super::daemon::Containerd;
use super::wait_until;

/// The name `ctr -n k8s.io images import` gives scripts/pause-image.sh's archive (from its
/// `io.containerd.image.name` annotation); the CRI plugin's `sandbox_image`.
pub const PAUSE_IMAGE: &str = concat!("localhost/podshim/pause:", env!("CARGO_PKG_VERSION"));

pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

pub type Result<T> = std::result::Result<T, tonic::Status>;

impl Cri {
    /// Connect to the daemon's CRI (its gRPC socket) and wait until the runtime and its network
    /// (the CNI config) are ready, as a kubelet does before it creates Pods.
    pub fn connect(daemon: &Containerd) -> Self {
        let rt = super::grpc::runtime();
        let channel = super::grpc::connect(&rt, &daemon.layout.address);
        let mut cri = Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        };
        wait_until(
            Duration::from_secs(30),
            "CRI runtime and network ready",
            || {
                let status = cri.status().ok()?;
                let conditions = status.status?.conditions;
                (!conditions.is_empty() && conditions.iter().all(|c| c.status)).then_some(())
            },
        );
        cri
    }

    fn call<T>(
        &mut self,
        f: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        self.rt.block_on(f).map(tonic::Response::into_inner)
    }

    pub fn version(&mut self) -> Result<VersionResponse> {
        let mut c = self.runtime.clone();
        self.call(c.version(VersionRequest::default()))
    }

    pub fn status(&mut self) -> Result<StatusResponse> {
        let mut c = self.runtime.clone();
        self.call(c.status(StatusRequest { verbose: false }))
    }

    pub fn image_status(&mut self, image: &str) -> Result<ImageStatusResponse> {
        let mut c = self.images.clone();
        self.call(c.image_status(ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        }))
    }

    pub fn run_pod_sandbox(&mut self, config: &PodSandboxConfig, handler: &str) -> Result<String> {
        let mut c = self.runtime.clone();
        self.call(c.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        }))
        .map(|r| r.pod_sandbox_id)
    }

    /// The status, and containerd's verbose `info` (its JSON: pid, runtime spec...).
    pub fn pod_sandbox_status(
        &mut self,
        id: &str,
    ) -> Result<(PodSandboxStatus, HashMap<String, String>)> {
        let mut c = self.runtime.clone();
        self.call(c.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        }))
        .map(|r| (r.status.unwrap_or_default(), r.info))
    }

    pub fn create_container(
        &mut self,
        pod: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let mut c = self.runtime.clone();
        self.call(c.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        }))
        .map(|r| r.container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(c.start_container(StartContainerRequest {
            container_id: id.to_string(),
        }))
        .map(|_| ())
    }

    /// ExecSync with a timeout in seconds.
    pub fn exec_sync(&mut self, id: &str, cmd: &[&str], timeout: i64) -> Result<ExecSyncResponse> {
        let mut c = self.runtime.clone();
        self.call(c.exec_sync(ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))
    }

    /// The status, and with `verbose` containerd's `info` (its JSON: pid, runtime spec...).
    pub fn container_status(
        &mut self,
        id: &str,
        verbose: bool,
    ) -> Result<(ContainerStatus, HashMap<String, String>)> {
        let mut c = self.runtime.clone();
        self.call(c.container_status(ContainerStatusRequest {
            container_id: id.to_string(),
            verbose,
        }))
        .map(|r| (r.status.unwrap_or_default(), r.info))
    }

    pub fn container_stats(&mut self, id: &str) -> Result<ContainerStats> {
        let mut c = self.runtime.clone();
        self.call(c.container_stats(ContainerStatsRequest {
            container_id: id.to_string(),
        }))
        .map(|r| r.stats.unwrap_or_default())
    }

    pub fn update_container_resources(
        &mut self,
        id: &str,
        resources: &LinuxContainerResources,
    ) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(
            c.update_container_resources(UpdateContainerResourcesRequest {
                container_id: id.to_string(),
                linux: Some(resources.clone()),
                ..Default::default()
            }),
        )
        .map(|_| ())
    }

    pub fn reopen_container_log(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(c.reopen_container_log(ReopenContainerLogRequest {
            container_id: id.to_string(),
        }))
        .map(|_| ())
    }

    pub fn stop_container(&mut self, id: &str, timeout: i64) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(c.stop_container(StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        }))
        .map(|_| ())
    }

    pub fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        }))
        .map(|_| ())
    }

    pub fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        self.call(c.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        }))
        .map(|_| ())
    }

    pub fn list_pod_sandbox(&mut self) -> Result<Vec<PodSandbox>> {
        let mut c = self.runtime.clone();
        self.call(c.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
            .map(|r| r.items)
    }

    pub fn list_containers(&mut self) -> Result<Vec<Container>> {
        let mut c = self.runtime.clone();
        self.call(c.list_containers(ListContainersRequest { filter: None }))
            .map(|r| r.containers)
    }
}

pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// A Pod sandbox as the kubelet asks for one: Pod network and IPC, a PID namespace per
/// container, logs under `log_directory`, cgroups under `cgroup_parent` (cgroupfs driver).
pub fn sandbox_config(
    name: &str,
    uid: &str,
    log_directory: &Path,
    cgroup_parent: &str,
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_directory.display().to_string(),
        labels: HashMap::from([("io.kubernetes.pod.name".to_string(), name.to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pod network and IPC, the container's own PID namespace (the kubelet's default).
pub fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A container of `image` running `command`, its log at `<name>/0.log` of the sandbox's log
/// directory (the kubelet's layout).
pub fn container_config(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(image_spec(image)),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources::default()),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                // The kubelet sends these for every unprivileged container (procMount Default);
                // containerd 1.6's CRI masks nothing by itself.
                masked_paths: MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                readonly_paths: READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The kubelet's `defaultMaskedPaths` (pkg/securitycontext/util.go).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's `defaultReadonlyPaths`.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// containerd's verbose `info` of a container, decoded (`pid`, `runtimeSpec`, ...).
pub fn info(info: &HashMap<String, String>) -> serde_json::Value {
    serde_json::from_str(info.get("info").expect("verbose status has info")).unwrap()
}
