//! podshim: a Kubernetes Pod runtime. This library is the engine; the `podshim` CLI (and later
//! the per-Pod supervisor, the containerd shim and the controllers) are thin front-ends over it.

pub mod cgroups;
pub mod config;
pub mod foreground;
pub mod image;
pub mod manifest;
pub mod mounts;
pub mod plan;
pub mod pod;
pub mod pulling;
pub mod resolve;
pub mod spec;
pub mod sys;
