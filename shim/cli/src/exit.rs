//! How a failed command ends: the message on stderr and the exit status, decided here once for
//! every error the libraries return (the engine's and the image store's typed kinds).
//!
//! podshim exits 1 for every failure, as kubectl does, and passes a Pod's own exit status
//! through for `run` (that is not an error). Scripts tell failures apart by the message, so
//! the kinds select no different status today; they are looked up here so that a front-end
//! change (a distinct status for "not found", say) is one edit with its test.

use podshim_engine::error::ErrorKind;
use podshim_image::ImageErrorKind;

/// The kind of the first typed error in the chain, as one of the engine's kinds.
pub fn kind(err: &anyhow::Error) -> Option<ErrorKind> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<podshim_engine::Error>() {
            return Some(e.kind());
        }
        cause
            .downcast_ref::<podshim_image::ImageError>()
            .map(|e| from_image(e.kind()))
    })
}

/// The image store's kinds in the engine's vocabulary.
fn from_image(kind: ImageErrorKind) -> ErrorKind {
    match kind {
        ImageErrorKind::InvalidArgument | ImageErrorKind::DataLoss => ErrorKind::Invalid,
        ImageErrorKind::NotFound => ErrorKind::NotFound,
        ImageErrorKind::PermissionDenied | ImageErrorKind::Unimplemented => {
            ErrorKind::FailedPrecondition
        }
        ImageErrorKind::Unavailable => ErrorKind::Unavailable,
        ImageErrorKind::Internal => ErrorKind::Internal,
    }
}

/// The exit status of a failed command.
pub fn status(kind: Option<ErrorKind>) -> u8 {
    match kind {
        Some(
            ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::Invalid
            | ErrorKind::FailedPrecondition
            | ErrorKind::Unavailable
            | ErrorKind::Internal,
        )
        | None => 1,
    }
}

/// What the user reads: the error and its causes on one line.
pub fn message(err: &anyhow::Error) -> String {
    format!("podshim: {err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn every_failure_exits_1_and_keeps_its_kind_through_context() {
        let exists = podshim_engine::Error::PodExists {
            key: "default_web".into(),
            dir: PathBuf::from("/run/podshim/pods/default_web"),
        };
        let err = anyhow::Error::new(exists).context("pod web");
        assert_eq!(kind(&err), Some(ErrorKind::AlreadyExists));
        assert_eq!(status(kind(&err)), 1);
        assert!(message(&err).starts_with("podshim: pod web: pod default_web already exists"));
        let plain = anyhow::anyhow!("--subnet \"x\": invalid");
        assert_eq!(kind(&plain), None);
        assert_eq!(status(None), 1);
        for k in [
            ErrorKind::NotFound,
            ErrorKind::Invalid,
            ErrorKind::FailedPrecondition,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(status(Some(k)), 1, "{k:?}");
        }
    }

    #[test]
    fn image_kinds_in_the_engine_vocabulary() {
        assert_eq!(from_image(ImageErrorKind::NotFound), ErrorKind::NotFound);
        assert_eq!(from_image(ImageErrorKind::DataLoss), ErrorKind::Invalid);
        assert_eq!(
            from_image(ImageErrorKind::Unavailable),
            ErrorKind::Unavailable
        );
        assert_eq!(
            from_image(ImageErrorKind::PermissionDenied),
            ErrorKind::FailedPrecondition
        );
    }
}
