//! Registry credentials in docker's `config.json` format (`{"auths": {"host": {"auth":
//! base64("user:password")}}}`), as written by `docker login`, `podman login` and found in
//! `kubernetes.io/dockerconfigjson` Secrets; and the legacy `.dockercfg` format (the `auths`
//! map on its own) of `kubernetes.io/dockercfg` Secrets.
//!
//! Which file: `--authfile`, else `$REGISTRY_AUTH_FILE` (podman, skopeo), else
//! `$HOME/.docker/config.json` (docker). Credential helpers (`credsStore`) are not run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ImageError;
use base64::Engine as _;

/// A user name and password (or token) for one registry. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.username)
    }
}

/// Credentials by registry host (normalized: no scheme, no path, docker.io for Docker Hub).
#[derive(Debug, Clone, Default)]
pub struct Auths {
    entries: BTreeMap<String, Credentials>,
    /// Where each entry came from, for error messages ("credentials from ... were refused").
    sources: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl Auths {
    /// The node's credentials: `authfile` if given (it must exist), else `$REGISTRY_AUTH_FILE`
    /// (must exist too), else `$HOME/.docker/config.json` if present.
    pub fn load(authfile: Option<&Path>) -> Result<Auths, ImageError> {
        let env = std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from);
        let explicit = authfile.map(Path::to_path_buf).or(env);
        let path = match explicit {
            Some(p) => p,
            None => match std::env::var_os("HOME") {
                Some(home) => {
                    let p = Path::new(&home).join(".docker/config.json");
                    if !p.is_file() {
                        return Ok(Auths::default());
                    }
                    p
                }
                None => return Ok(Auths::default()),
            },
        };
        let bytes = std::fs::read(&path).map_err(|e| ImageError::AuthFile {
            path: path.clone(),
            reason: format!("cannot read it: {e}"),
        })?;
        Auths::from_config_json(&bytes, &path.display().to_string()).map_err(|reason| {
            ImageError::AuthFile {
                path: path.clone(),
                reason,
            }
        })
    }

    /// Parses a docker `config.json` (`.dockerconfigjson`); `source` names it in messages.
    pub fn from_config_json(bytes: &[u8], source: &str) -> Result<Auths, String> {
        let config: ConfigJson =
            serde_json::from_slice(bytes).map_err(|e| format!("not a docker config.json: {e}"))?;
        Auths::from_entries(config.auths, source)
    }

    /// Parses a legacy `.dockercfg` (the `auths` map itself).
    pub fn from_dockercfg(bytes: &[u8], source: &str) -> Result<Auths, String> {
        let entries: BTreeMap<String, AuthEntry> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a .dockercfg: {e}"))?;
        Auths::from_entries(entries, source)
    }

    fn from_entries(entries: BTreeMap<String, AuthEntry>, source: &str) -> Result<Auths, String> {
        let mut auths = Auths::default();
        for (key, entry) in entries {
            let creds = match (entry.auth.filter(|a| !a.is_empty()), entry.username) {
                (Some(auth), _) => {
                    // Docker's config.json uses standard base64 with padding.
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| format!("auths[{key:?}].auth is not valid base64"))?;
                    let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                        format!("auths[{key:?}].auth does not decode to user:password")
                    })?;
                    Credentials {
                        username: user.to_string(),
                        password: pass.to_string(),
                    }
                }
                (None, Some(username)) => Credentials {
                    username,
                    password: entry.password.unwrap_or_default(),
                },
                // An entry without credentials (e.g. one served by a credential helper).
                (None, None) => continue,
            };
            let host = normalize_host(&key);
            auths.sources.insert(host.clone(), source.to_string());
            auths.entries.insert(host, creds);
        }
        Ok(auths)
    }

    /// Adds `other`'s entries, which take precedence over this one's.
    pub fn merge_over(&mut self, other: &Auths) {
        for (host, creds) in &other.entries {
            self.entries.insert(host.clone(), creds.clone());
        }
        for (host, source) in &other.sources {
            self.sources.insert(host.clone(), source.clone());
        }
    }

    /// The credentials for `registry` (a reference's registry, e.g. `docker.io`,
    /// `127.0.0.1:5000`) and where they came from.
    pub fn lookup(&self, registry: &str) -> Option<(&Credentials, &str)> {
        let host = normalize_host(registry);
        let creds = self.entries.get(&host)?;
        Some((creds, self.sources.get(&host).map_or("", String::as_str)))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `https://index.docker.io/v1/` → `docker.io`, `http://host:5000/path` → `host:5000`.
fn normalize_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn base64_encode(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn config_json_entries() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "127.0.0.1:5001": {{"username": "u2", "password": "p:2"}},
                "helper.example": {{}}
            }}, "credsStore": "desktop"}}"#,
            base64_encode(b"hub:pa:ss")
        );
        let auths = Auths::from_config_json(json.as_bytes(), "test").unwrap();
        let (hub, source) = auths.lookup("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "pa:ss")
        );
        assert_eq!(source, "test");
        let (local, _) = auths.lookup("127.0.0.1:5001").unwrap();
        assert_eq!(local.password, "p:2");
        assert!(auths.lookup("helper.example").is_none());
        assert!(auths.lookup("127.0.0.1:5000").is_none());
        assert!(!format!("{hub:?}").contains("pa:ss"), "never printed");
    }

    #[test]
    fn bad_config_json() {
        let err = Auths::from_config_json(br#"{"auths": {"h": {"auth": "!!"}}}"#, "t").unwrap_err();
        assert!(err.contains("base64"), "{err}");
        let no_colon = format!(
            r#"{{"auths": {{"h": {{"auth": "{}"}}}}}}"#,
            base64_encode(b"x")
        );
        let err = Auths::from_config_json(no_colon.as_bytes(), "t").unwrap_err();
        assert!(err.contains("user:password"), "{err}");
        assert!(Auths::from_config_json(b"\"x\"", "t").is_err());
    }

    #[test]
    fn dockercfg_and_precedence() {
        let cfg = format!(r#"{{"reg.io": {{"auth": "{}"}}}}"#, base64_encode(b"old:1"));
        let mut node = Auths::from_dockercfg(cfg.as_bytes(), "node").unwrap();
        let secret = format!(
            r#"{{"auths": {{"reg.io": {{"auth": "{}"}}}}}}"#,
            base64_encode(b"new:2")
        );
        let secret = Auths::from_config_json(secret.as_bytes(), "secret").unwrap();
        node.merge_over(&secret);
        let (c, source) = node.lookup("REG.io").unwrap();
        assert_eq!((c.username.as_str(), source), ("new", "secret"));
    }
}
