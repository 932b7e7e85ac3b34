//! Image references (`busybox:1.35`, `localhost:5000/x@sha256:…`) parsed and normalized the way
//! docker/distribution's `ParseNormalizedNamed` does, so names match what containerd and kubelet use.

use std::fmt;
use std::str::FromStr;

use super::error::ImageError;

const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_REGISTRY: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// distribution/reference: `NameTotalLengthMax`.
const NAME_MAX: usize = 255;

/// A normalized image reference. Parsing fills in the defaults (registry `docker.io`,
/// `library/` for official images, tag `latest` when neither tag nor digest is given), so
/// [`Display`](fmt::Display) prints the normalized full form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Normalizes `reference` to its full form, e.g. `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(reference.parse::<Reference>()?.to_string())
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad(
                "it is empty; expected [registry/]repository[:tag][@sha256:<64 hex>]",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                if !valid_digest(digest) {
                    return Err(bad(
                        "the digest must be sha256: followed by 64 lowercase hex digits",
                    ));
                }
                (rest, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // A tag is the part after the last ':' that has no '/' after it (a ':' before a '/'
        // is a registry port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(bad(
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        if name.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        if name.len() > NAME_MAX {
            return Err(bad("the name is longer than 255 characters"));
        }
        // docker/distribution `splitDockerDomain`: the first component is a registry when it
        // looks like a host (has '.' or ':', is "localhost", or has upper case letters).
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(bad(
                "the registry must be a host name of [A-Za-z0-9-.] with an optional :port",
            ));
        }
        let registry = if registry == LEGACY_REGISTRY {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("the repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "repository components must be [a-z0-9] separated by '.', '_', '__' or '-', joined by '/'",
            ));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_PREFIX}{repository}")
        } else {
            repository
        };
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Only sha256 is accepted: it is the only algorithm the store's layout knows.
pub(crate) fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// distribution/reference: `[\w][\w.-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// distribution/reference `domain`: dot-separated host labels and an optional numeric port.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label_ok)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// distribution/reference `path-component`: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalization_table() {
        let digested = format!("docker.io/library/busybox@{D}");
        let tagged_digested = format!("docker.io/library/busybox:1.35@{D}");
        let cases: Vec<(String, &str)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest"),
            ("busybox:1.35".into(), "docker.io/library/busybox:1.35"),
            (
                "docker.io/library/busybox:1.35".into(),
                "docker.io/library/busybox:1.35",
            ),
            (
                "docker.io/busybox:1.35".into(),
                "docker.io/library/busybox:1.35",
            ),
            (
                "index.docker.io/library/busybox".into(),
                "docker.io/library/busybox:latest",
            ),
            ("library/busybox".into(), "docker.io/library/busybox:latest"),
            ("user/app:v1".into(), "docker.io/user/app:v1"),
            ("localhost/x".into(), "localhost/x:latest"),
            ("localhost:5000/x".into(), "localhost:5000/x:latest"),
            ("localhost:5000/a/b:t".into(), "localhost:5000/a/b:t"),
            (
                "quay.io/coreos/etcd:v3.5.0".into(),
                "quay.io/coreos/etcd:v3.5.0",
            ),
            (
                "registry.k8s.io/pause:3.9".into(),
                "registry.k8s.io/pause:3.9",
            ),
            (
                "127.0.0.1:5000/my_app.x-y__z".into(),
                "127.0.0.1:5000/my_app.x-y__z:latest",
            ),
            (format!("busybox@{D}"), digested.as_str()),
            (format!("busybox:1.35@{D}"), tagged_digested.as_str()),
            ("Registry/app".into(), "Registry/app:latest"),
        ];
        for (input, want) in &cases {
            assert_eq!(normalize(input).unwrap(), *want, "normalize({input:?})");
            // Normalizing is idempotent.
            assert_eq!(normalize(want).unwrap(), *want, "normalize({want:?})");
        }
    }

    #[test]
    fn invalid_references() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("docker.io/Library/busybox", "lowercase"),
            ("busy box", "repository components"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox@sha256:abc", "digest"),
            ("busybox@md5:0123", "digest"),
            ("a//b", "repository components"),
            ("a/b/", "repository components"),
            ("-a", "repository components"),
            ("a..b", "repository components"),
            ("bad_host.-x/y", "registry"),
            ("host:port/x", "registry"),
        ];
        for (input, why) in cases {
            let err = normalize(input).expect_err(input).to_string();
            assert!(
                err.contains(&format!("{input:?}")),
                "{err} names the reference"
            );
            assert!(err.contains(why), "{input:?}: {err} should mention {why}");
        }
        let long = "a".repeat(256);
        assert!(normalize(&long).is_err());
    }

    #[test]
    fn fields() {
        let r: Reference = "localhost:5000/team/app:v2".parse().unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.digest, None);
        assert_eq!(r.name(), "localhost:5000/team/app");
        let r: Reference = format!("app@{D}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
    }
}
