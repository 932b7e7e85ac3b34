//! podshim: a Kubernetes Pod runtime. This library is the engine; the `podshim` CLI (and later the
//! containerd shim and the controllers) are thin front-ends over it.

pub mod image;
pub mod manifest;
