//! The registries of the registry tests, started once per test process: Debian's
//! `docker-registry` on 127.0.0.1, one open, one with htpasswd basic auth and one with token
//! auth (bearer JWTs from `token_server.py`, also on 127.0.0.1), each with its own storage
//! under a temporary directory, filled with images built offline and pushed with `skopeo copy`.
//! Each server runs under a `sh` that kills it (by PID) and removes the registries' directory
//! when this test process exits and its stdin pipe closes, so nothing is left running even
//! after a failed test.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use podshim_tests::base64_encode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const USER: &str = "podshim";
pub const PASSWORD: &str = "s3cret-pw";
/// The token registry's `auth.token.service` (the JWTs' `aud`) and `issuer` (their `iss`).
pub const TOKEN_SERVICE: &str = "podshim-test-registry";
const TOKEN_ISSUER: &str = "podshim-test-issuer";
/// The repositories of busybox on the token registry, one per test (so that each test finds
/// its own requests in the token server's log).
pub const TOKEN_REPOS: [&str; 3] = ["private/busybox", "secret/busybox", "envfile/busybox"];

pub struct Registries {
    /// `127.0.0.1:PORT` of the open registry and of the one with basic auth.
    pub open: String,
    pub auth: String,
    /// `127.0.0.1:PORT` of the registry with token auth; its token server's request log (one
    /// JSON object a line: user, scope, service, granted).
    pub token: String,
    pub token_log: PathBuf,
    /// The number of lines of that log written by the setup's pushes (skopeo asks for `pull`
    /// scopes too), which `token_requests` leaves out.
    token_log_setup: usize,
    pub open_storage: PathBuf,
    /// Manifest digest of `busybox:1.35` on the open registry.
    pub busybox_digest: String,
    /// Digest of the image index `multi:1`, and of its amd64 manifest.
    pub multi_index_digest: String,
    pub multi_amd64_digest: String,
    /// The gzip blob of the unique layer of `tamper:1` (tampered by the corrupted-blob test).
    pub tamper_layer: String,
    /// The number of blobs (config + layers) of `layered:1`, and of its layers.
    pub layered_blobs: usize,
    pub layered_layers: usize,
    /// Keeps the registries' stdin pipes open until the process exits.
    _guards: Mutex<Vec<Child>>,
}

static REGISTRIES: OnceLock<Registries> = OnceLock::new();

pub fn registries() -> &'static Registries {
    REGISTRIES.get_or_init(setup)
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (scripts/install-deps.sh installs it)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a registry authenticates its clients.
enum Auth<'a> {
    None,
    /// Basic auth with this htpasswd file.
    Htpasswd(&'a Path),
    /// Bearer tokens from `realm`, signed by the key of the certificate `rootcertbundle`.
    Token {
        realm: &'a str,
        cert: &'a Path,
    },
}

/// Runs `program args` (output to `log`) under a `sh` that kills it by PID and removes `dir`
/// when its stdin closes (when this test process exits), and waits until `addr` accepts.
fn guarded(program: &str, args: &[&std::ffi::OsStr], log: &Path, dir: &Path, addr: &str) -> Child {
    assert!(
        Path::new(program).is_file(),
        "{program} missing: scripts/install-deps.sh installs it"
    );
    let child = Command::new("sh")
        .args([
            "-c",
            "\"$@\" >\"$GUARD_LOG\" 2>&1 & pid=$!; read _; kill $pid; wait $pid; rm -rf \"$GUARD_DIR\"",
            "sh",
            program,
        ])
        .args(args)
        .env("GUARD_LOG", log)
        .env("GUARD_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program} did not listen on {addr}: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Starts a registry with `auth`.
fn start(dir: &Path, name: &str, auth: Auth) -> (String, PathBuf, Child) {
    let port = free_port();
    let storage = dir.join(format!("{name}-storage"));
    fs::create_dir_all(&storage).unwrap();
    let auth = match auth {
        Auth::None => String::new(),
        Auth::Htpasswd(p) => format!(
            "auth:\n  htpasswd:\n    realm: podshim-test\n    path: {}\n",
            p.display()
        ),
        Auth::Token { realm, cert } => format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
             issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            cert.display()
        ),
    };
    let config = dir.join(format!("{name}.yml"));
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            storage.display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let addr = format!("127.0.0.1:{port}");
    let child = guarded(
        "/usr/bin/docker-registry",
        &["serve".as_ref(), config.as_os_str()],
        &log,
        dir,
        &addr,
    );
    (addr, storage, child)
}

/// Starts the token server (`token_server.py`) with a fresh RSA key and its self-signed
/// certificate (the token registry's `rootcertbundle`): its `realm` URL, the certificate, its
/// request log.
fn start_token_server(dir: &Path) -> (String, PathBuf, PathBuf, Child) {
    let key = dir.join("token-key.pem");
    let cert = dir.join("token-cert.pem");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=podshim-test-token",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    // Embedded, so that a test binary moved elsewhere (into a container) still has it.
    let script = dir.join("token_server.py");
    fs::write(&script, include_str!("token_server.py")).unwrap();
    let port = free_port().to_string();
    let requests = dir.join("token-requests.log");
    let args: Vec<&std::ffi::OsStr> = vec![
        script.as_os_str(),
        port.as_ref(),
        key.as_os_str(),
        cert.as_os_str(),
        USER.as_ref(),
        PASSWORD.as_ref(),
        TOKEN_ISSUER.as_ref(),
        requests.as_os_str(),
    ];
    let addr = format!("127.0.0.1:{port}");
    let child = guarded(
        "/usr/bin/python3",
        &args,
        &dir.join("token-server.log"),
        dir,
        &addr,
    );
    (format!("http://{addr}/token"), cert, requests, child)
}

/// One request the token server answered.
#[derive(Debug)]
pub struct TokenRequest {
    pub user: Option<String>,
    pub scope: String,
    pub service: String,
    pub granted: bool,
}

/// The token server's requests for `repository` (any actions) since the setup, oldest first.
pub fn token_requests(repository: &str) -> Vec<TokenRequest> {
    let r = registries();
    let prefix = format!("repository:{repository}:");
    fs::read_to_string(&r.token_log)
        .unwrap_or_default()
        .lines()
        .skip(r.token_log_setup)
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| TokenRequest {
            user: v["user"].as_str().map(str::to_string),
            scope: v["scope"].as_str().unwrap().to_string(),
            service: v["service"].as_str().unwrap().to_string(),
            granted: v["granted"].as_bool().unwrap(),
        })
        .filter(|r| r.scope.starts_with(&prefix))
        .collect()
}

/// An OCI layout being filled: blobs, and index.json entries named by ref.name.
struct Layout {
    dir: PathBuf,
    index: Vec<Value>,
}

impl Layout {
    fn blob(&self, bytes: &[u8]) -> (String, u64) {
        let digest = sha(bytes);
        let path = self.dir.join("blobs/sha256").join(&digest[7..]);
        fs::write(path, bytes).unwrap();
        (digest, bytes.len() as u64)
    }

    fn read(&self, digest: &str) -> Vec<u8> {
        fs::read(self.dir.join("blobs/sha256").join(&digest[7..])).unwrap()
    }

    fn name(&mut self, mut descriptor: Value, name: &str) {
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.index.push(descriptor);
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// An image of the base's layers plus `layers` (uncompressed tars, stored gzipped), with
    /// `env` added to the base config's and `arch` as its architecture.
    fn image(&self, base: &Value, layers: &[Vec<u8>], env: &[&str], arch: &str) -> Value {
        let base_manifest: Value =
            serde_json::from_slice(&self.read(base["digest"].as_str().unwrap())).unwrap();
        let mut config: Value =
            serde_json::from_slice(&self.read(base_manifest["config"]["digest"].as_str().unwrap()))
                .unwrap();
        let mut descs = base_manifest["layers"].as_array().unwrap().clone();
        for tar in layers {
            config["rootfs"]["diff_ids"]
                .as_array_mut()
                .unwrap()
                .push(json!(sha(tar)));
            let (digest, size) = self.blob(&gzip(tar));
            descs.push(
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest, "size": size}),
            );
        }
        for e in env {
            config["config"]["Env"]
                .as_array_mut()
                .unwrap()
                .push(json!(e));
        }
        config["architecture"] = json!(arch);
        let (cdigest, csize) = self.blob(&serde_json::to_vec(&config).unwrap());
        let manifest = json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cdigest, "size": csize},
            "layers": descs});
        let (digest, size) = self.blob(&serde_json::to_vec(&manifest).unwrap());
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size})
    }
}

/// A layer tar: `(path, Some(content))` files, `(path/, None)` directories.
fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match content {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_path(path).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_path(path).unwrap();
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The lower and upper layers of the whiteout image, with a `tag` in their contents so that
/// two variants share no layer.
fn whiteout_layers(tag: &str) -> Vec<Vec<u8>> {
    let old = format!("old-{tag}");
    let new = format!("new-{tag}");
    let lower = layer(&[
        ("data/", None),
        ("data/keep", Some("kept")),
        ("data/gone", Some("must not be seen")),
        ("data/replaced", Some(&old)),
        ("data/sub/", None),
        ("data/sub/deep", Some("gone with sub")),
        ("opq/", None),
        ("opq/a", Some("hidden by opaque")),
        ("opq/b", Some("hidden by opaque")),
    ]);
    let upper = layer(&[
        ("data/", None),
        ("data/.wh.gone", Some("")),
        ("data/.wh.sub", Some("")),
        ("data/replaced", Some(&new)),
        ("opq/", None),
        ("opq/.wh..wh..opq", Some("")),
        ("opq/c", Some("only me")),
    ]);
    vec![lower, upper]
}

fn skopeo(extra: &[&str], from: &str, to: &str) {
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    args.extend(extra);
    args.push(from);
    args.push(to);
    run("skopeo", &args);
}

fn setup() -> Registries {
    let dir = std::env::temp_dir().join(format!("podshim-registry-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let htpasswd = dir.join("htpasswd");
    let line = run("htpasswd", &["-Bbn", USER, PASSWORD]);
    fs::write(&htpasswd, line).unwrap();
    let (open, open_storage, g1) = start(&dir, "open", Auth::None);
    let (auth, _, g2) = start(&dir, "auth", Auth::Htpasswd(&htpasswd));
    let (realm, cert, token_log, g3) = start_token_server(&dir);
    let (token, _, g4) = start(
        &dir,
        "token",
        Auth::Token {
            realm: &realm,
            cert: &cert,
        },
    );

    // The layout: the busybox test image, then images built on it.
    let layout_dir = dir.join("layout");
    fs::create_dir_all(&layout_dir).unwrap();
    run(
        "tar",
        &[
            "-xf",
            podshim_tests::busybox_archive().to_str().unwrap(),
            "-C",
            layout_dir.to_str().unwrap(),
        ],
    );
    let base_index: Value =
        serde_json::from_slice(&fs::read(layout_dir.join("index.json")).unwrap()).unwrap();
    let busybox = base_index["manifests"][0].clone();
    let mut layout = Layout {
        dir: layout_dir.clone(),
        index: Vec::new(),
    };
    let mut busybox_named = busybox.clone();
    busybox_named.as_object_mut().unwrap().remove("annotations");
    layout.name(busybox_named.clone(), "busybox");
    let layered = layout.image(&busybox, &whiteout_layers("gzip"), &[], "amd64");
    layout.name(layered.clone(), "layered");
    let zlayered = layout.image(&busybox, &whiteout_layers("zstd"), &[], "amd64");
    layout.name(zlayered, "zlayered");
    let marker = |arch: &str| layer(&[("arch", Some(arch))]);
    let amd64 = layout.image(&busybox, &[marker("amd64")], &["ARCH=amd64"], "amd64");
    let arm64 = layout.image(&busybox, &[marker("arm64")], &["ARCH=arm64"], "arm64");
    let mut entries = Vec::new();
    for (desc, arch) in [(&arm64, "arm64"), (&amd64, "amd64")] {
        let mut d = desc.clone();
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        entries.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries});
    let (idigest, isize) = layout.blob(&serde_json::to_vec(&index).unwrap());
    layout.name(
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idigest, "size": isize}),
        "multi",
    );
    let tamper_tar = layer(&[("tamper", Some(&"x".repeat(4096)))]);
    let tamper = layout.image(&busybox, &[tamper_tar], &[], "amd64");
    layout.name(tamper.clone(), "tamper");
    let tamper_manifest: Value =
        serde_json::from_slice(&layout.read(tamper["digest"].as_str().unwrap())).unwrap();
    let tamper_layer = tamper_manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let src = |name: &str| format!("oci:{}:{name}", layout_dir.display());
    skopeo(
        &[],
        &src("busybox"),
        &format!("docker://{open}/busybox:1.35"),
    );
    skopeo(&[], &src("layered"), &format!("docker://{open}/layered:1"));
    skopeo(
        &["--dest-compress", "--dest-compress-format", "zstd"],
        &src("zlayered"),
        &format!("docker://{open}/layered:zstd"),
    );
    skopeo(
        &["--all"],
        &src("multi"),
        &format!("docker://{open}/multi:1"),
    );
    skopeo(&[], &src("tamper"), &format!("docker://{open}/tamper:1"));
    let creds = format!("{USER}:{PASSWORD}");
    skopeo(
        &["--dest-creds", &creds],
        &src("busybox"),
        &format!("docker://{auth}/private/busybox:1.35"),
    );
    for repo in TOKEN_REPOS {
        skopeo(
            &["--dest-creds", &creds],
            &src("busybox"),
            &format!("docker://{token}/{repo}:1.35"),
        );
    }
    let token_log_setup = fs::read_to_string(&token_log).unwrap().lines().count();
    let layered_manifest: Value =
        serde_json::from_slice(&layout.read(layered["digest"].as_str().unwrap())).unwrap();
    let layered_layers = layered_manifest["layers"].as_array().unwrap().len();
    Registries {
        open,
        auth,
        token,
        token_log,
        token_log_setup,
        open_storage,
        busybox_digest: busybox["digest"].as_str().unwrap().to_string(),
        multi_index_digest: idigest,
        multi_amd64_digest: amd64["digest"].as_str().unwrap().to_string(),
        tamper_layer,
        layered_blobs: layered_layers + 1,
        layered_layers,
        _guards: Mutex::new(vec![g1, g2, g3, g4]),
    }
}

/// The file holding a blob in a registry's storage.
pub fn registry_blob(storage: &Path, digest: &str) -> PathBuf {
    let hex = &digest[7..];
    storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// A docker config.json with credentials for `registry`.
pub fn authfile(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    let path = dir.join(format!("auth-{user}-{}.json", password.len()));
    let auth = base64_encode(format!("{user}:{password}").as_bytes());
    fs::write(
        &path,
        json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    path
}
