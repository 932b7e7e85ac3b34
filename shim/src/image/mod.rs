//! The local image store: import of OCI and docker archives, names, unpacked layers.
