//! Test fixtures: hand-built layers and OCI layouts (tar + flate2), and a real busybox image
//! made with umoci and skopeo as in the runtime notes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A layer tar built entry by entry, with raw header writes so that hostile names (`..`)
/// that the tar crate's own setters refuse can be produced.
pub struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

pub const MTIME: u64 = 1_234_567_890;

impl LayerTar {
    pub fn new() -> Self {
        LayerTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with the given raw name, type, link name, mode and owner.
    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(self, name: &str, mode: u32) -> Self {
        self.raw(name, tar::EntryType::Directory, "", b"", mode, 0, 0)
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name, tar::EntryType::Regular, "", data, 0o644, 0, 0)
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name, tar::EntryType::Symlink, target, b"", 0o777, 0, 0)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(name, tar::EntryType::Link, target, b"", 0o644, 0, 0)
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// An OCI layout directory being written.
pub struct Layout {
    pub dir: PathBuf,
    manifests: Vec<Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        }
    }

    /// Writes a blob, returning its descriptor (without media type).
    pub fn blob(&self, bytes: &[u8]) -> (String, u64) {
        let digest = sha(bytes);
        let path = self.dir.join("blobs/sha256").join(&digest[7..]);
        fs::write(path, bytes).unwrap();
        (digest, bytes.len() as u64)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(&digest[7..])
    }

    /// Writes the config, layers (gzipped when asked) and manifest of one image and returns
    /// the manifest descriptor (not yet listed in index.json).
    pub fn image(&self, layers: &[Vec<u8>], gzipped: bool, config: Value) -> Value {
        self.image_with_diff_ids(layers, gzipped, config, None)
    }

    pub fn image_with_diff_ids(
        &self,
        layers: &[Vec<u8>],
        gzipped: bool,
        config: Value,
        diff_ids: Option<Vec<String>>,
    ) -> Value {
        let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha(l)).collect());
        let config = json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (config_digest, config_size) = self.blob(&serde_json::to_vec(&config).unwrap());
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| {
                let (bytes, mt) = if gzipped {
                    (gzip(l), "application/vnd.oci.image.layer.v1.tar+gzip")
                } else {
                    (l.clone(), "application/vnd.oci.image.layer.v1.tar")
                };
                let (digest, size) = self.blob(&bytes);
                json!({"mediaType": mt, "digest": digest, "size": size})
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": layer_descs,
        });
        let (digest, size) = self.blob(&serde_json::to_vec(&manifest).unwrap());
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": digest, "size": size})
    }

    /// Lists a descriptor in index.json with the given annotations.
    pub fn add(&mut self, mut descriptor: Value, annotations: Value) -> &mut Self {
        descriptor["annotations"] = annotations;
        self.manifests.push(descriptor);
        self
    }

    pub fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// Tars the layout into `out` (an OCI archive).
    pub fn archive(&self, out: &Path) -> PathBuf {
        let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
        builder.append_dir_all(".", &self.dir).unwrap();
        builder.finish().unwrap();
        out.to_path_buf()
    }
}

/// Runs a command, failing the test with its output if it fails or is missing.
pub fn run(program: &str, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Paths of a busybox image built once per test run with umoci (recipe in
/// runtime-notes.md): the OCI layout directory, the OCI archive and a docker archive made
/// from it with skopeo. The test fails, not skips, when a tool is missing.
pub struct Busybox {
    pub layout: PathBuf,
    pub oci_archive: PathBuf,
    pub docker_archive: PathBuf,
}

pub fn busybox() -> &'static Busybox {
    static BUSYBOX: OnceLock<Busybox> = OnceLock::new();
    BUSYBOX.get_or_init(|| {
        let work = tempfile::tempdir().unwrap().keep();
        let w = work.as_path();
        for tool in ["umoci", "skopeo"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok(),
                "{tool} is not installed; the busybox image tests need it (apt-get install {tool})"
            );
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (apt-get install busybox-static)");
        run("umoci", &["init", "--layout", "layout"], w);
        run("umoci", &["new", "--image", "layout:1"], w);
        run("umoci", &["unpack", "--image", "layout:1", "bundle"], w);
        let rootfs = w.join("bundle/rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "ls", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        run("umoci", &["repack", "--image", "layout:1", "bundle"], w);
        run(
            "umoci",
            &[
                "config",
                "--image",
                "layout:1",
                "--config.cmd=/bin/sh",
                "--config.env=PATH=/bin",
                "--architecture=amd64",
                "--os=linux",
            ],
            w,
        );
        run("umoci", &["gc", "--layout", "layout"], w);
        run("tar", &["-C", "layout", "-cf", "busybox-oci.tar", "."], w);
        run(
            "skopeo",
            &[
                "copy",
                "oci-archive:busybox-oci.tar:1",
                "docker-archive:busybox-docker.tar:busybox:1.35",
            ],
            w,
        );
        Busybox {
            layout: w.join("layout"),
            oci_archive: w.join("busybox-oci.tar"),
            docker_archive: w.join("busybox-docker.tar"),
        }
    })
}
