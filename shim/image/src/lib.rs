//! The local image store: pulls from OCI registries, imports OCI archives, OCI layouts and
//! docker archives, names images by normalized reference, unpacks each layer once for use as an
//! overlayfs lower directory, and removes what no image and no running Pod uses.

mod auth;
mod blobs;
mod error;
mod import;
mod manage;
mod progress;
mod pull;
mod reference;
mod registry;
mod source;
mod spec;
mod store;
mod unpack;

#[cfg(test)]
mod tests;

pub use auth::{Auths, Credentials};
pub use error::{ImageError, ImageErrorKind, RegistryFailure};
pub use manage::{Inspected, Pruned};
pub use progress::{human, Progress, PullEvent, Quiet, Terminal};
pub use reference::{normalize, Reference};
pub use registry::{is_loopback, PullOptions};
pub use store::{Image, ImageConfig, ImageInfo, Store};
