//! Kubernetes v1 Pod manifests: strict decoding, defaults and validation with Kubernetes wording.
