//! The network side of a pull, over the OCI distribution API with the `oci-client` crate: the
//! manifest (an image index or manifest list resolved to this host's platform), then the config
//! and layer blobs, streamed into temporary files in the store while their size and sha256 are
//! checked. Nothing here names an image; `pull.rs` commits what this fetched.
//!
//! Plain HTTP is used only for loopback registries and `--insecure-registry` ones (docker's
//! rule); everything else is HTTPS with the system's roots.

use std::fs::{self, File};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_client::RegistryOperation;
use sha2::{Digest as _, Sha256};

use super::auth::Auths;
use super::error::{ImageError, RegistryFailure};
use super::progress::{Progress, PullEvent};
use super::reference::Reference;
use super::spec::{
    digest_of, host_arch, matches_host, Descriptor, ImageIndex, ImageManifest, MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use crate::error::chain;

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;

/// What a pull may use: credentials and the registries reached over plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `HOST[:PORT]` of registries to reach over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Credentials by registry (the node's auth file, then the Pod's imagePullSecrets over it).
    pub auths: Auths,
}

/// A manifest fetched and verified: its bytes, digest and, when it was chosen from an image
/// index, that index's digest.
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub manifest: ImageManifest,
    pub index_digest: Option<String>,
}

/// One registry repository, with the client and credentials to read it.
pub struct Remote {
    client: Client,
    auth: RegistryAuth,
    /// Where the credentials came from (for messages), if any.
    auth_source: Option<String>,
    registry: String,
    repository: String,
    /// The reference as the user gave it (normalized), for messages.
    display: String,
}

impl Remote {
    pub fn new(reference: &Reference, opts: &PullOptions) -> Remote {
        // reqwest is built without a default crypto provider: use ring (a no-op when another
        // pull of this process installed it already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut plain: Vec<String> = opts.insecure_registries.clone();
        if is_loopback(&reference.registry) {
            plain.push(reference.registry.clone());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            // Platforms are chosen here (see `select`), not by the client.
            platform_resolver: None,
            ..Default::default()
        };
        let (auth, auth_source) = match opts.auths.lookup(&reference.registry) {
            Some((c, source)) => (
                RegistryAuth::Basic(c.username.clone(), c.password.clone()),
                Some(source.to_string()),
            ),
            None => (RegistryAuth::Anonymous, None),
        };
        Remote {
            client: Client::new(config),
            auth,
            auth_source,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            display: reference.to_string(),
        }
    }

    fn tagged(&self, tag: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.into())
    }

    fn digested(&self, digest: &str) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.into(),
        )
    }

    /// The image manifest for this host: by digest when the reference has one, else by tag;
    /// an index is resolved to its `linux/<arch>` entry.
    pub async fn manifest(&self, reference: &Reference) -> Result<FetchedManifest, ImageError> {
        let target = match (&reference.digest, &reference.tag) {
            (Some(d), _) => self.digested(d),
            (None, Some(t)) => self.tagged(t),
            (None, None) => self.tagged("latest"),
        };
        self.authenticate(&target).await?;
        let (bytes, digest) = self
            .raw_manifest(&target, reference.digest.as_deref())
            .await?;
        let kind = manifest_kind(&bytes, &digest, &self.display)?;
        if !kind.is_index {
            let manifest = parse_manifest(&bytes, &digest)?;
            return Ok(FetchedManifest {
                bytes,
                digest,
                manifest,
                index_digest: None,
            });
        }
        let index: ImageIndex = parse_json(&bytes, &format!("image index {digest}"))?;
        let chosen = select(index.manifests()).ok_or_else(|| ImageError::NoPlatform {
            digest: digest.clone(),
            arch: host_arch().into(),
        })?;
        let (child, child_digest) = self
            .raw_manifest(&self.digested(digest_of(chosen)), Some(digest_of(chosen)))
            .await?;
        if child.len() as u64 != chosen.size() {
            return Err(ImageError::SizeMismatch {
                digest: chosen.digest().to_string(),
                expected: chosen.size(),
                actual: child.len() as u64,
            });
        }
        let kind = manifest_kind(&child, &child_digest, &self.display)?;
        if kind.is_index {
            return Err(ImageError::NotAnImage {
                reference: self.display.clone(),
                manifest: child_digest,
                found: "nested image index".into(),
            });
        }
        let manifest = parse_manifest(&child, &child_digest)?;
        Ok(FetchedManifest {
            bytes: child,
            digest: child_digest,
            manifest,
            index_digest: Some(digest),
        })
    }

    /// With credentials, asks the registry how to use them before the first request: for a
    /// token registry this fetches the bearer token from its realm now, so a refusal by the
    /// token service is reported with its reason. (Left to the requests themselves, oci-client
    /// drops a failed token exchange, `Client::get_auth_token`, and goes on anonymously: the
    /// registry's bare 401 is all that would be left.) The token (or, for a basic-auth
    /// registry, the credentials) is cached by the client for the blobs' requests.
    async fn authenticate(&self, target: &oci_client::Reference) -> Result<(), ImageError> {
        if matches!(self.auth, RegistryAuth::Anonymous) {
            return Ok(());
        }
        self.client
            .auth(target, &self.auth, RegistryOperation::Pull)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// A manifest's bytes and their sha256, checked against `expected` when known.
    async fn raw_manifest(
        &self,
        target: &oci_client::Reference,
        expected: Option<&str>,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let accepted = [
            MT_OCI_INDEX,
            MT_DOCKER_LIST,
            MT_OCI_MANIFEST,
            MT_DOCKER_MANIFEST,
        ];
        let (bytes, _) = self
            .client
            .pull_manifest_raw(target, &self.auth, &accepted)
            .await
            .map_err(|e| self.error(e))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(self.unavailable(format!(
                "the manifest is {} bytes, more than the {MAX_MANIFEST} accepted",
                bytes.len()
            )));
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(ImageError::DigestMismatch {
                digest: expected.to_string(),
                actual: digest,
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Streams blob `d` into `tmp` (created here), checking size and sha256 on the way; on
    /// error `tmp` is removed.
    pub async fn blob(
        &self,
        d: &Descriptor,
        tmp: &Path,
        progress: &dyn Progress,
    ) -> Result<(), ImageError> {
        let result = self.blob_inner(d, tmp, progress).await;
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    async fn blob_inner(
        &self,
        d: &Descriptor,
        tmp: &Path,
        progress: &dyn Progress,
    ) -> Result<(), ImageError> {
        let image = self.digested(digest_of(d));
        let mut stream = self
            .client
            .pull_blob_stream(&image, digest_of(d))
            .await
            .map_err(|e| self.error(e))?;
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| ImageError::io("create", tmp, e))?;
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(d, e))?;
            count += chunk.len() as u64;
            if count > d.size() {
                return Err(ImageError::SizeMismatch {
                    digest: d.digest().to_string(),
                    expected: d.size(),
                    actual: count,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| ImageError::io("write", tmp, e))?;
            progress.event(PullEvent::Progress {
                digest: digest_of(d),
                done: count,
            });
        }
        if count != d.size() {
            return Err(ImageError::SizeMismatch {
                digest: d.digest().to_string(),
                expected: d.size(),
                actual: count,
            });
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest_of(d) {
            return Err(ImageError::DigestMismatch {
                digest: d.digest().to_string(),
                actual,
            });
        }
        file.sync_all().map_err(|e| ImageError::io("sync", tmp, e))
    }

    /// A transfer error; the client's own digest check is reported like ours.
    fn stream_error(&self, d: &Descriptor, e: std::io::Error) -> ImageError {
        let digest_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>());
        if let Some(oci_client::errors::DigestError::VerificationError { actual, .. }) =
            digest_error
        {
            return ImageError::DigestMismatch {
                digest: d.digest().to_string(),
                actual: actual.clone(),
            };
        }
        self.unavailable(format!("reading blob {}: {}", d.digest(), chain(&e)))
    }

    fn unavailable(&self, reason: String) -> ImageError {
        ImageError::Registry {
            reference: self.display.clone(),
            reason,
            failure: RegistryFailure::Unavailable,
        }
    }

    /// The registry's answer as the reason of the Pod's `ErrImagePull`.
    fn error(&self, e: OciDistributionError) -> ImageError {
        use OciDistributionError as E;
        let unauthorized = || match &self.auth_source {
            Some(source) => format!(
                "unauthorized: {} refused the credentials for it from {source}",
                self.registry
            ),
            None => format!(
                "unauthorized: {} requires authentication and no credentials for it were given \
                 (--authfile, $REGISTRY_AUTH_FILE, ~/.docker/config.json or imagePullSecrets)",
                self.registry
            ),
        };
        let (failure, reason) = match &e {
            E::UnauthorizedError { .. } => (RegistryFailure::Unauthorized, unauthorized()),
            E::AuthenticationFailure(body) => (
                RegistryFailure::Unauthorized,
                format!(
                    "{}: the token service answered: {}",
                    unauthorized(),
                    token_refusal(body)
                ),
            ),
            E::RegistryError { envelope, .. } => {
                let not_found = envelope.errors.iter().any(|x| {
                    matches!(
                        x.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                });
                let denied = envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
                let text: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|x| match x.message.is_empty() {
                        true => format!("{:?}", x.code),
                        false => x.message.clone(),
                    })
                    .collect();
                let failure = match (not_found, denied) {
                    (true, _) => RegistryFailure::NotFound,
                    (_, true) => RegistryFailure::Unauthorized,
                    _ => RegistryFailure::Unavailable,
                };
                (failure, text.join("; "))
            }
            E::ServerError { code, message, .. } => {
                let failure = match code {
                    404 => RegistryFailure::NotFound,
                    401 | 403 => RegistryFailure::Unauthorized,
                    _ => RegistryFailure::Unavailable,
                };
                let message = message.trim();
                let reason = match message.is_empty() {
                    true => format!("HTTP {code}"),
                    false => format!("HTTP {code}: {message}"),
                };
                (failure, reason)
            }
            E::UnsupportedMediaTypeError(mt) => (
                RegistryFailure::Unavailable,
                format!("unsupported manifest media type {mt:?}"),
            ),
            E::UnsupportedSchemaVersionError(v) => (
                RegistryFailure::Unavailable,
                format!("unsupported manifest schema version {v} (docker schema 1 is obsolete)"),
            ),
            other => (RegistryFailure::Unavailable, chain(other)),
        };
        ImageError::Registry {
            reference: self.display.clone(),
            reason,
            failure,
        }
    }
}

/// The reason in a token service's refusal: the messages of a distribution error envelope
/// (`{"errors": [{"code", "message"}]}`, what distribution's own token servers answer), the
/// `error`/`details` of an OAuth2-style answer, else the body itself (shortened).
fn token_refusal(body: &str) -> String {
    let body = body.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let field = |x: &serde_json::Value, k: &str| {
            x.get(k)
                .and_then(|m| m.as_str())
                .filter(|m| !m.is_empty())
                .map(str::to_string)
        };
        let messages: Vec<String> = v
            .get("errors")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|x| field(x, "message").or_else(|| field(x, "code")))
            .collect();
        if !messages.is_empty() {
            return messages.join("; ");
        }
        if let Some(m) = field(&v, "details").or_else(|| field(&v, "error")) {
            return m;
        }
    }
    match body {
        "" => "an empty refusal".to_string(),
        b if b.chars().count() > 200 => format!("{}...", b.chars().take(200).collect::<String>()),
        b => b.to_string(),
    }
}

/// Whether a registry host is this machine: `localhost`, 127.0.0.0/8 or ::1 (any port).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

struct Kind {
    is_index: bool,
}

/// Tells an index from a manifest by its `mediaType`, or its fields when that is absent.
fn manifest_kind(bytes: &[u8], digest: &str, reference: &str) -> Result<Kind, ImageError> {
    let value: serde_json::Value = parse_json(bytes, &format!("manifest {digest}"))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    match media_type {
        MT_OCI_INDEX | MT_DOCKER_LIST => Ok(Kind { is_index: true }),
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => Ok(Kind { is_index: false }),
        "" if value.get("manifests").is_some() => Ok(Kind { is_index: true }),
        "" if value.get("config").is_some() => Ok(Kind { is_index: false }),
        other => Err(ImageError::NotAnImage {
            reference: reference.to_string(),
            manifest: digest.to_string(),
            found: match other {
                "" => "document without mediaType, config or manifests".into(),
                mt => format!("{mt:?}"),
            },
        }),
    }
}

fn parse_manifest(bytes: &[u8], digest: &str) -> Result<ImageManifest, ImageError> {
    parse_json(bytes, &format!("manifest {digest}"))
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::json(what, e))
}

/// The index entry for this host: `linux/<arch>`; an index whose only entry has no platform is
/// unambiguous.
fn select(manifests: &[Descriptor]) -> Option<&Descriptor> {
    manifests
        .iter()
        .find(|d| d.platform().as_ref().is_some_and(matches_host))
        .or(match manifests {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
}

/// A temporary path in the store's tmp dir for a blob being fetched.
pub fn temp_blob(tmp_dir: &Path) -> PathBuf {
    tmp_dir.join(super::blobs::temp_name("pull"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example:5000",
            "[::2]:1",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn platform_selection() {
        let d = |arch: &str, os: &str, digest: &str| -> Descriptor {
            serde_json::from_value(serde_json::json!({
                "mediaType": MT_OCI_MANIFEST, "digest": format!("sha256:{}", digest.repeat(64)), "size": 1,
                "platform": {"architecture": arch, "os": os}
            }))
            .unwrap()
        };
        let host = host_arch();
        let other = if host == "arm64" { "amd64" } else { "arm64" };
        let list = [
            d(other, "linux", "a"),
            d(host, "windows", "b"),
            d(host, "linux", "c"),
        ];
        assert_eq!(
            digest_of(select(&list).unwrap()),
            format!("sha256:{}", "c".repeat(64))
        );
        assert!(select(&list[..2]).is_none());
    }

    #[test]
    fn token_refusals() {
        let envelope =
            r#"{"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]}"#;
        assert_eq!(token_refusal(envelope), "invalid username or password");
        assert_eq!(
            token_refusal(r#"{"errors": [{"code": "DENIED"}]}"#),
            "DENIED"
        );
        assert_eq!(
            token_refusal(r#"{"error": "invalid_grant", "details": "bad password"}"#),
            "bad password"
        );
        assert_eq!(token_refusal(" forbidden\n"), "forbidden");
        assert_eq!(token_refusal(""), "an empty refusal");
        assert!(token_refusal(&"x".repeat(300)).ends_with("..."));
    }

    #[test]
    fn kinds() {
        let k = |j: &str| manifest_kind(j.as_bytes(), "sha256:x", "r").map(|k| k.is_index);
        assert!(k(r#"{"manifests": []}"#).unwrap());
        assert!(!k(r#"{"schemaVersion": 2, "config": {}}"#).unwrap());
        assert!(k(&format!(r#"{{"mediaType": "{MT_DOCKER_LIST}"}}"#)).unwrap());
        let err = k(r#"{"mediaType": "application/vnd.cncf.helm.config.v1+json"}"#).unwrap_err();
        assert!(err.to_string().contains("helm"), "{err}");
    }
}
