//! podshim: a Kubernetes Pod runtime. This library is the engine; the `podshim` CLI (and later
//! the per-Pod supervisor, the containerd shim and the controllers) are thin front-ends over it.

pub use podshim_engine::{cgroups, config, exe, mounts, private, sys};
pub use podshim_image as image;

pub mod collect;
pub mod logs;
pub mod manifest;
pub mod plan;
pub mod pod;
pub mod probe;
pub mod pulling;
pub mod record;
pub mod resolve;
pub mod spec;
pub mod status;
pub mod supervise;
