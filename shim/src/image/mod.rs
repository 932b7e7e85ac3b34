//! The local image store: imports OCI archives, OCI layouts and docker archives, names images
//! by normalized reference, and unpacks each layer once for use as an overlayfs lower directory.

mod blobs;
mod error;
mod import;
mod reference;
mod source;
mod spec;
mod store;
mod unpack;

#[cfg(test)]
mod tests;

pub use error::{ImageError, ImageErrorKind};
pub use reference::{normalize, Reference};
pub use store::{Image, ImageConfig, ImageInfo, Store};
