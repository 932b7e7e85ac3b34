//! The local image store under `<root>/images`: `blobs/`, `layers/`, the name index
//! `index.json` (replaced atomically) and `lock`, an flock(2) held by every import.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::blobs::{digest_hex, sync_dir, Blobs};
use super::error::ImageError;
use super::import::{parse, Importer};
use super::reference::Reference;
use super::source::Source;
use super::spec::ImageConfiguration;

/// What `list` and `import` report about a named image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Normalized name, e.g. `docker.io/library/busybox:1.35`.
    pub name: String,
    /// Manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// Bytes of content: manifest + config + (compressed) layers.
    pub size: u64,
    /// The config's `created` timestamp (RFC 3339), if any.
    pub created: Option<String>,
}

/// A resolved image, ready for the engine to build a rootfs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub digest: String,
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first; empty for a layer-less image.
    pub layers: Vec<PathBuf>,
}

/// The parts of the image config that define a container's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// `index.json` of the store (podshim's own format, not an OCI index).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct StoreIndex {
    pub version: u32,
    pub images: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IndexEntry {
    pub digest: String,
    pub config: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The image index (manifest list) `digest` was chosen from, when pulled through one: a
    /// reference `name@<index digest>` finds the image too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
}

const INDEX_VERSION: u32 = 1;

#[derive(Debug)]
pub struct Store {
    pub(super) dir: PathBuf,
    pub(super) blobs: Blobs,
    pub(super) layers: PathBuf,
    pub(super) tmp: PathBuf,
}

impl Store {
    /// Opens (creating as needed) the store in `root/images`.
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        let dir = root.join("images");
        let blobs = dir.join("blobs").join("sha256");
        let layers = dir.join("layers").join("sha256");
        let tmp = dir.join("tmp");
        for d in [&blobs, &layers, &tmp] {
            fs::create_dir_all(d).map_err(|e| ImageError::io("create", d, e))?;
        }
        Ok(Store {
            blobs: Blobs::new(blobs, tmp.clone()),
            dir,
            layers,
            tmp,
        })
    }

    /// Imports an OCI archive (plain or gzipped tar), an OCI layout directory or a docker
    /// archive, and names its images (`name` overrides the names in the archive and then
    /// requires exactly one image). All or nothing: on error nothing of this import is kept.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>, ImageError> {
        let _lock = self.lock()?;
        self.clean_temporaries();
        let mut importer = Importer {
            blobs: &self.blobs,
            layers_dir: &self.layers,
            created: Vec::new(),
        };
        let result = self
            .open_source(path)
            .and_then(|(source, unzipped)| {
                let imported = importer.import(&source, path, name);
                if let Some(unzipped) = unzipped {
                    let _ = fs::remove_file(unzipped);
                }
                imported
            })
            .and_then(|imported| {
                let mut index = self.read_index()?;
                let mut infos = Vec::new();
                for image in imported {
                    for name in &image.names {
                        let entry = IndexEntry {
                            digest: image.digest.clone(),
                            config: image.config.clone(),
                            size: image.size,
                            created: image.created.clone(),
                            index_digest: None,
                        };
                        infos.push(info(name, &entry));
                        index.images.insert(name.clone(), entry);
                    }
                }
                self.write_index(&index)?;
                Ok(infos)
            });
        if result.is_err() {
            // Only this import created these, under the lock, and no name refers to them.
            for path in importer.created.iter().rev() {
                let _ = fs::remove_file(path).or_else(|_| fs::remove_dir_all(path));
            }
        }
        result
    }

    /// All named images, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let index = self.read_index()?;
        Ok(index
            .images
            .iter()
            .map(|(name, entry)| info(name, entry))
            .collect())
    }

    /// Looks up a reference (normalized first; `name@sha256:…` matches by manifest digest).
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let wanted: Reference = reference.parse()?;
        let index = self.read_index()?;
        let found = match &wanted.digest {
            None => index.images.get(&wanted.to_string()),
            Some(digest) => index
                .images
                .iter()
                .find(|(name, entry)| {
                    (&entry.digest == digest || entry.index_digest.as_ref() == Some(digest))
                        && name.parse::<Reference>().is_ok_and(|r| {
                            r.name() == wanted.name()
                                && (wanted.tag.is_none() || r.tag == wanted.tag)
                        })
                })
                .map(|(_, entry)| entry),
        };
        let Some(entry) = found else {
            return Ok(None);
        };
        let config: ImageConfiguration = parse(
            &self.blobs.read(&entry.config)?,
            &format!("image config {}", entry.config),
        )?;
        let mut layers = Vec::new();
        for diff_id in config.rootfs().diff_ids() {
            let dir = self.layers.join(digest_hex(diff_id)?);
            if !dir.is_dir() {
                return Err(ImageError::Corrupt {
                    reason: format!("layer {diff_id} of {wanted} is missing"),
                });
            }
            layers.push(dir);
        }
        let c = config.config().clone().unwrap_or_default();
        let text = |v: &Option<String>| v.clone().filter(|t| !t.is_empty());
        Ok(Some(Image {
            name: wanted.to_string(),
            digest: entry.digest.clone(),
            config: ImageConfig {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: text(c.working_dir()),
                user: text(c.user()),
                stop_signal: text(c.stop_signal()),
                labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
            },
            layers,
        }))
    }

    /// The store's directory (`root/images`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn lock(&self) -> Result<Flock<File>, ImageError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io("open", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, source)| ImageError::Lock { path, source })
    }

    /// Removes what an interrupted import left behind. Only called under the lock, so nothing
    /// removed here can belong to a running import.
    pub(super) fn clean_temporaries(&self) {
        for dir in [&self.tmp, &self.layers] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let path = entry.path();
                    let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
                }
            }
        }
    }

    /// Decompresses a gzipped archive into the store's tmp directory first.
    fn open_source(&self, path: &Path) -> Result<(Source, Option<PathBuf>), ImageError> {
        if path.is_file() {
            let mut magic = [0u8; 2];
            let mut file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
            if file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b] {
                let tmp = self.tmp.join(super::blobs::temp_name("archive"));
                let copied = File::create(&tmp).and_then(|mut out| {
                    let file = File::open(path)?;
                    std::io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut out)
                });
                if let Err(e) = copied {
                    let _ = fs::remove_file(&tmp);
                    return Err(ImageError::io("decompress", path, e));
                }
                return match Source::open(&tmp) {
                    Ok(source) => Ok((source, Some(tmp))),
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        Err(e)
                    }
                };
            }
        }
        Ok((Source::open(path)?, None))
    }

    pub(super) fn read_index(&self) -> Result<StoreIndex, ImageError> {
        let path = self.dir.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => parse(&bytes, "image store index.json"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreIndex {
                version: INDEX_VERSION,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(ImageError::io("read", path, e)),
        }
    }

    /// Write to a temporary file, fsync, rename: readers never see a torn index.
    pub(super) fn write_index(&self, index: &StoreIndex) -> Result<(), ImageError> {
        let path = self.dir.join("index.json");
        let tmp = self.dir.join("index.json.tmp");
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|e| ImageError::json("store index", e))?;
        File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| ImageError::io("write", &path, e))?;
        sync_dir(&self.dir)
    }
}

pub(super) fn info(name: &str, entry: &IndexEntry) -> ImageInfo {
    ImageInfo {
        name: name.to_string(),
        digest: entry.digest.clone(),
        size: entry.size,
        created: entry.created.clone(),
    }
}
