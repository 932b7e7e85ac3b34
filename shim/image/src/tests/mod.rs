//! Tests of the image store. They run as root (ownership, device nodes, trusted xattrs) and
//! build a busybox image with umoci and skopeo, failing with a reason when those are missing.

mod busybox;
mod fixtures;
mod layers;
mod store;
