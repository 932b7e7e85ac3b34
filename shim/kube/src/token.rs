//! `serviceAccountToken` projections: a JSON Web Token with the claims Kubernetes puts in a
//! bound service account token (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the
//! `kubernetes.io` claim naming the namespace, Pod, service account and node), signed ES256
//! with a key of this podshim instance.
//!
//! NO API SERVER VALIDATES THESE TOKENS. podshim has no API server: the token only looks like
//! one Kubernetes would mount. A program that sends it to a real cluster is refused there; a
//! program that verifies it locally can use the instance's public key, published as a JWKS at
//! `<root>/serviceaccount/jwks.json`. The private key is `<root>/serviceaccount/key.p8` (PKCS#8,
//! 0600 in a 0700 directory), made on first use. The token is written when the Pod's sandbox
//! is made, and the Pod's supervisor rotates it as the kubelet does (`crate::supervise`'s
//! token rotation: at 80% of its lifetime, or after 24 hours).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use crate::manifest::Pod;

/// The issuer and default audience of a kubeadm or kind cluster's tokens, so programs that
/// check them behave as in such a cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the service account signing key {path} is not a P-256 PKCS#8 key ({why})")]
    BadKey { path: PathBuf, why: String },
    #[error("cannot sign the service account token")]
    Sign,
}

/// The instance's signing key.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    /// The key under `root`, made (with its JWKS) when there is none.
    pub fn open(root: &Path) -> Result<Signer, TokenError> {
        let dir = root.join("serviceaccount");
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| TokenError::Io { what, path, source }
        };
        podshim_engine::private::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = dir.join("key.p8");
        let rng = SystemRandom::new();
        let pkcs8 = match fs::read(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| TokenError::Sign)?;
                // Written whole under a temporary name, then renamed: a second podshim making
                // its key at the same moment replaces it with an equally good one, never a
                // torn file.
                let tmp = dir.join(format!("key.p8.{}", std::process::id()));
                podshim_engine::private::write_file(&tmp, doc.as_ref())
                    .map_err(io_err("write", &tmp))?;
                fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
                fs::read(&path).map_err(io_err("read", &path))?
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| TokenError::BadKey {
                path: path.clone(),
                why: e.to_string(),
            })?;
        let public = key.public_key().as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        // The public key as a JWKS (RFC 7517), for anyone who wants to check a token here.
        let jwks = dir.join("jwks.json");
        if !jwks.exists() {
            let (x, y) = public[1..].split_at(32);
            let doc = serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }]});
            let tmp = dir.join(format!("jwks.json.{}", std::process::id()));
            fs::write(&tmp, doc.to_string()).map_err(io_err("write", &tmp))?;
            fs::rename(&tmp, &jwks).map_err(io_err("rename", &jwks))?;
        }
        Ok(Signer { key, kid, rng })
    }

    /// A token for `pod` (running with `uid` on node `node`) for `audience` (the issuer when
    /// empty, as the API server's default audiences are), valid `expiration` seconds from `now`.
    pub fn token(
        &self,
        pod: &Pod,
        uid: &str,
        node: &str,
        audience: &str,
        expiration: i64,
        now: i64,
    ) -> Result<String, TokenError> {
        let ns = pod.namespace();
        let sa = (pod.spec.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let audience = if audience.is_empty() {
            ISSUER
        } else {
            audience
        };
        let claims = serde_json::json!({
            "aud": [audience],
            "exp": now + expiration,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": crate::pod::new_uid(),
            "kubernetes.io": {
                "namespace": ns,
                "node": {"name": node},
                "pod": {"name": pod.name(), "uid": uid},
                "serviceaccount": {"name": sa},
            },
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        });
        self.sign(&claims)
    }

    /// A new token for the same Pod, audience and lifetime as `old` (one of this instance's),
    /// issued at `now`: what the kubelet's token manager asks the API server for when it
    /// rotates a projected token. `None` when `old` is not such a token.
    pub fn renew(&self, old: &str, now: i64) -> Option<Result<String, TokenError>> {
        let mut c = claims(old)?;
        let ttl = c["exp"].as_i64()? - c["iat"].as_i64()?;
        c["iat"] = now.into();
        c["nbf"] = now.into();
        c["exp"] = (now + ttl).into();
        c["jti"] = crate::pod::new_uid().into();
        Some(self.sign(&c))
    }

    fn sign(&self, claims: &serde_json::Value) -> Result<String, TokenError> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }
}

/// Adds the token files of the `serviceAccountToken` sources of projected volume `v`
/// (`spec.volumes[index]`) to its resolved `contents`, which then live in memory as a Secret's
/// do. The key is the instance's under the data root whose image store is `images`.
#[allow(clippy::too_many_arguments)]
pub fn project(
    images: &podshim_image::Store,
    pod: &Pod,
    uid: &str,
    node: &str,
    index: usize,
    v: &crate::manifest::Volume,
    contents: &mut crate::resolve::Contents,
    errors: &mut Vec<String>,
) {
    let Some(p) = &v.projected else { return };
    let mode = p.default_mode.map_or(0o644, |m| m as u32);
    let now = chrono::Utc::now().timestamp();
    let mut signer = None;
    for (j, src) in p.sources.iter().enumerate() {
        let Some(t) = &src.service_account_token else {
            continue;
        };
        let at = format!("spec.volumes[{index}].projected.sources[{j}].serviceAccountToken");
        if signer.is_none() {
            let root = images.dir().parent().unwrap_or(Path::new("/"));
            match Signer::open(root) {
                Ok(s) => signer = Some(s),
                Err(e) => {
                    errors.push(format!("{at}: {}", crate::pod::chain(&e)));
                    return;
                }
            }
        }
        let Some(s) = &signer else { return };
        let audience = t.audience.as_deref().unwrap_or("");
        let expiration = t.expiration_seconds.unwrap_or(3600);
        match s.token(pod, uid, node, audience, expiration, now) {
            Ok(token) => {
                contents.secret = true;
                contents
                    .projection
                    .files
                    .push(crate::pod::projection::ProjectedFile {
                        path: t.path.clone(),
                        data: token.into_bytes(),
                        mode,
                    });
            }
            Err(e) => errors.push(format!("{at}: {}", crate::pod::chain(&e))),
        }
    }
}

/// The payload of `token` if its ES256 signature verifies with the instance key published
/// under `root` (`serviceaccount/jwks.json`), as a local verifier would check it.
pub fn verify(root: &Path, token: &str) -> Option<serde_json::Value> {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let jwks: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("serviceaccount/jwks.json")).ok()?).ok()?;
    let k = &jwks["keys"][0];
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(URL_SAFE_NO_PAD.decode(k[c].as_str()?).ok()?);
    }
    let (input, sig) = token.rsplit_once('.')?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).ok()?)
        .ok()?;
    claims(token)
}

/// The payload of a token, decoded (no signature check), for tests and `inspect`-like tools.
pub fn claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_token_carries_kubernetes_claims_and_verifies_with_the_published_key() {
        let t = tempfile::tempdir().unwrap();
        let s = Signer::open(t.path()).unwrap();
        let token = s
            .token(&pod(), "u-1", "node-a", "vault", 3600, 1000)
            .unwrap();
        let c = claims(&token).unwrap();
        assert_eq!(c["aud"], serde_json::json!(["vault"]));
        assert_eq!(
            (c["iat"].as_i64(), c["exp"].as_i64()),
            (Some(1000), Some(4600))
        );
        assert_eq!(c["sub"], "system:serviceaccount:shop:builder");
        assert_eq!(c["kubernetes.io"]["pod"]["uid"], "u-1");
        assert_eq!(c["kubernetes.io"]["node"]["name"], "node-a");
        // Checked against the JWKS a verifier would read.
        let jwks: serde_json::Value =
            serde_json::from_slice(&fs::read(t.path().join("serviceaccount/jwks.json")).unwrap())
                .unwrap();
        let k = &jwks["keys"][0];
        let mut point = vec![4u8];
        for c in ["x", "y"] {
            point.extend(URL_SAFE_NO_PAD.decode(k[c].as_str().unwrap()).unwrap());
        }
        let (input, sig) = token.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .expect("the signature verifies");
        // The same key next time; the private key is private.
        let again = Signer::open(t.path()).unwrap();
        assert_eq!(again.kid, s.kid);
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &str| fs::metadata(t.path().join(p)).unwrap().mode() & 0o777;
        assert_eq!(mode("serviceaccount"), 0o700);
        assert_eq!(mode("serviceaccount/key.p8"), 0o600);
        // A renewal: same Pod and audience, a new lifetime from `now`, and it verifies.
        let renewed = s.renew(&token, 4000).unwrap().unwrap();
        let r = verify(t.path(), &renewed).expect("the renewed token verifies");
        assert_eq!(
            (r["iat"].as_i64(), r["exp"].as_i64()),
            (Some(4000), Some(7600))
        );
        assert_eq!((&r["aud"], &r["sub"]), (&c["aud"], &c["sub"]));
        assert_ne!(r["jti"], c["jti"]);
        assert!(verify(t.path(), &token.replace('.', ".x")).is_none());
        let default = s.token(&pod(), "u", "n", "", 600, 0).unwrap();
        assert_eq!(
            claims(&default).unwrap()["aud"],
            serde_json::json!([ISSUER])
        );
    }
}
