//! The image store's error type: one enum, context in fields, sources kept.

use std::io;
use std::path::PathBuf;

/// What went wrong, coarsely, for callers that map errors onto a wire code (CLI exit status,
/// CRI/ttrpc code). The mapping from variants lives in [`ImageError::kind`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageErrorKind {
    /// The caller gave something unusable: a bad reference, an archive that is not an image,
    /// a missing `--name`.
    InvalidArgument,
    /// Content failed verification or is malformed (digest/size mismatch, bad JSON, unsafe
    /// layer entry).
    DataLoss,
    /// The feature is not implemented (encrypted layers, other digest algorithms).
    Unimplemented,
    /// The store or the host failed (I/O, locking).
    Internal,
    /// The registry (or the store) does not have the image.
    NotFound,
    /// The registry refused the credentials, or wants some.
    PermissionDenied,
    /// The registry could not be reached or failed.
    Unavailable,
}

/// Why a registry refused or failed a pull, from its answer (for [`ImageError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryFailure {
    /// 404, or the distribution API's `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `BLOB_UNKNOWN`.
    NotFound,
    /// 401/403, or a failed token exchange.
    Unauthorized,
    /// Connection errors, timeouts, 5xx and answers that break the distribution API.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("unsupported digest {digest:?}: only sha256:<64 lowercase hex> is supported")]
    UnsupportedDigest { digest: String },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot lock the image store at {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("invalid {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{} is not an OCI archive, an OCI layout directory or a docker archive (no index.json or manifest.json)", path.display())]
    UnknownFormat { path: PathBuf },

    #[error("the archive has no file {name:?}")]
    MissingFile { name: String },

    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("blob {digest}: content hashes to {actual}")]
    DigestMismatch { digest: String, actual: String },

    #[error("layer {diff_id}: uncompressed content hashes to {actual}")]
    DiffIdMismatch { diff_id: String, actual: String },

    #[error("cannot name the image(s) in {}: {reason}; pass --name", path.display())]
    NameRequired { path: PathBuf, reason: String },

    #[error("--name {name:?} given but {} holds {count} images; --name needs exactly one", path.display())]
    NameAmbiguous {
        name: String,
        path: PathBuf,
        count: usize,
    },

    #[error("{} holds no images", path.display())]
    NoImages { path: PathBuf },

    #[error("image index {digest} has no manifest for linux/{arch}")]
    NoPlatform { digest: String, arch: String },

    #[error("{digest} has unsupported media type {media_type:?}")]
    UnsupportedMediaType { digest: String, media_type: String },

    #[error("manifest {manifest} lists {layers} layers but its config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        manifest: String,
        layers: usize,
        diff_ids: usize,
    },

    #[error("layer {layer}: entry {entry:?} {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },

    #[error("layer {layer}: cannot unpack {entry:?}")]
    Unpack {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("image store is inconsistent: {reason}")]
    Corrupt { reason: String },

    /// A pull failed at the registry; `reason` is the registry's answer (or the network error).
    #[error("cannot pull {reference}: {reason}")]
    Registry {
        reference: String,
        reason: String,
        failure: RegistryFailure,
    },

    #[error("cannot start the pull's I/O runtime")]
    Runtime {
        #[source]
        source: io::Error,
    },

    #[error("{}: {reason}", path.display())]
    AuthFile { path: PathBuf, reason: String },

    #[error("image {reference:?} is not in the image store")]
    NotFound { reference: String },

    #[error("{manifest} of {reference} is a {found}, expected an image manifest")]
    NotAnImage {
        reference: String,
        manifest: String,
        found: String,
    },
}

impl ImageError {
    /// The one place that classifies errors for the wire.
    pub fn kind(&self) -> ImageErrorKind {
        use ImageError::*;
        match self {
            InvalidReference { .. }
            | UnknownFormat { .. }
            | MissingFile { .. }
            | NameRequired { .. }
            | NameAmbiguous { .. }
            | NoImages { .. }
            | NoPlatform { .. } => ImageErrorKind::InvalidArgument,
            SizeMismatch { .. }
            | DigestMismatch { .. }
            | DiffIdMismatch { .. }
            | Json { .. }
            | LayerCountMismatch { .. }
            | UnsafeEntry { .. }
            | Corrupt { .. } => ImageErrorKind::DataLoss,
            UnsupportedDigest { .. } | UnsupportedMediaType { .. } => ImageErrorKind::Unimplemented,
            Io { .. } | Lock { .. } | Unpack { .. } | Runtime { .. } => ImageErrorKind::Internal,
            AuthFile { .. } => ImageErrorKind::InvalidArgument,
            NotAnImage { .. } => ImageErrorKind::Unimplemented,
            NotFound { .. } => ImageErrorKind::NotFound,
            Registry { failure, .. } => match failure {
                RegistryFailure::NotFound => ImageErrorKind::NotFound,
                RegistryFailure::Unauthorized => ImageErrorKind::PermissionDenied,
                RegistryFailure::Unavailable => ImageErrorKind::Unavailable,
            },
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        ImageError::Json {
            what: what.into(),
            source,
        }
    }
}

/// An error with its whole `source()` chain, for messages kept as text.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = e.source();
    }
    s
}
