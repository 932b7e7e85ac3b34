//! podshim's Kubernetes layer: manifests decoded, defaulted and validated as the API server
//! does; Pods planned against the image store (OCI specs, sandboxes) and run over the engine
//! with the kubelet's policy (start order, restarts and back-off, probes and hooks, status,
//! records, CRI logs). The front-ends (the `podshim` CLI, later the controllers) call it.

pub mod collect;
pub mod logs;
pub mod manifest;
pub mod plan;
pub mod pod;
pub mod probe;
pub mod pulling;
pub mod record;
pub mod resize;
pub mod resolve;
pub mod schedule;
pub mod security;
pub mod spec;
pub mod status;
pub mod storage;
pub mod supervise;
pub mod token;
