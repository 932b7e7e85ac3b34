//! Removing images and collecting what no image uses: `image rm` takes names out of the index
//! and then collects; `image prune` only collects. Collection keeps every blob and layer of a
//! named image, of an image a Pod's journal says it runs (the caller reads the journals), and
//! every layer an overlay mount of this host still lists as a lower directory (asking the
//! kernel, which also covers Pods of other `--state` directories sharing this store).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::blobs::digest_hex;
use super::error::ImageError;
use super::import::parse;
use super::reference::Reference;
use super::spec::{digest_of, ImageConfiguration, ImageManifest};
use super::store::Store;

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub blobs: usize,
    pub layers: usize,
    /// Bytes of the removed blobs (unpacked layers are not counted).
    pub bytes: u64,
}

/// An image in full, for `image inspect`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspected {
    pub name: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    pub size: u64,
    pub manifest: serde_json::Value,
    pub config: serde_json::Value,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<String>,
}

impl Store {
    /// The names a reference selects: the exact name for a tag, every name of the repository
    /// with that manifest (or index) digest for a digest.
    fn names_of(&self, reference: &str) -> Result<Vec<String>, ImageError> {
        let wanted: Reference = reference.parse()?;
        let index = self.read_index()?;
        let names: Vec<String> = match &wanted.digest {
            None => index
                .images
                .contains_key(&wanted.to_string())
                .then(|| wanted.to_string())
                .into_iter()
                .collect(),
            Some(digest) => index
                .images
                .iter()
                .filter(|(name, e)| {
                    (&e.digest == digest || e.index_digest.as_ref() == Some(digest))
                        && name.parse::<Reference>().is_ok_and(|r| {
                            r.name() == wanted.name()
                                && (wanted.tag.is_none() || r.tag == wanted.tag)
                        })
                })
                .map(|(n, _)| n.clone())
                .collect(),
        };
        if names.is_empty() {
            return Err(ImageError::NotFound {
                reference: reference.to_string(),
            });
        }
        Ok(names)
    }

    /// Removes the names `reference` selects, then collects what nothing uses any more
    /// (`in_use`: manifest digests of images that Pods run).
    pub fn remove(
        &self,
        reference: &str,
        in_use: &[String],
    ) -> Result<(Vec<String>, Pruned), ImageError> {
        let _lock = self.lock()?;
        let names = self.names_of(reference)?;
        let mut index = self.read_index()?;
        for name in &names {
            index.images.remove(name);
        }
        self.write_index(&index)?;
        let pruned = self.collect(in_use)?;
        Ok((names, pruned))
    }

    /// Removes blobs and layers that no named image and no running Pod uses.
    pub fn prune(&self, in_use: &[String]) -> Result<Pruned, ImageError> {
        let _lock = self.lock()?;
        self.clean_temporaries();
        self.collect(in_use)
    }

    /// Everything about one image: its manifest and config as stored, and its layers.
    pub fn inspect(&self, reference: &str) -> Result<Inspected, ImageError> {
        let name = self.names_of(reference)?.remove(0);
        let index = self.read_index()?;
        let entry = &index.images[&name];
        let json = |digest: &str| -> Result<serde_json::Value, ImageError> {
            parse(&self.blobs.read(digest)?, &format!("blob {digest}"))
        };
        let image = self.resolve(&name)?.ok_or_else(|| ImageError::NotFound {
            reference: name.clone(),
        })?;
        Ok(Inspected {
            name: name.clone(),
            digest: entry.digest.clone(),
            index_digest: entry.index_digest.clone(),
            size: entry.size,
            manifest: json(&entry.digest)?,
            config: json(&entry.config)?,
            layers: image
                .layers
                .iter()
                .map(|l| l.display().to_string())
                .collect(),
        })
    }

    /// The collection itself; the caller holds the lock.
    fn collect(&self, in_use: &[String]) -> Result<Pruned, ImageError> {
        let index = self.read_index()?;
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        let manifests = index
            .images
            .values()
            .map(|e| e.digest.clone())
            .chain(in_use.iter().cloned());
        for manifest in manifests {
            self.keep_image(&manifest, &mut blobs, &mut layers);
        }
        layers.extend(self.mounted_layers());
        let mut pruned = Pruned::default();
        for entry in fs::read_dir(self.blobs.dir())
            .map_err(|e| ImageError::io("read", self.blobs.dir(), e))?
        {
            let entry = entry.map_err(|e| ImageError::io("read", self.blobs.dir(), e))?;
            let hex = entry.file_name().to_string_lossy().to_string();
            if blobs.contains(&hex) || hex.starts_with(".tmp-") {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(entry.path()).is_ok() {
                pruned.blobs += 1;
                pruned.bytes += size;
            }
        }
        for entry in
            fs::read_dir(&self.layers).map_err(|e| ImageError::io("read", &self.layers, e))?
        {
            let entry = entry.map_err(|e| ImageError::io("read", &self.layers, e))?;
            let hex = entry.file_name().to_string_lossy().to_string();
            if layers.contains(&hex) || hex.starts_with(".tmp-") {
                continue;
            }
            if remove_tree(&entry.path()).is_ok() {
                pruned.layers += 1;
            }
        }
        Ok(pruned)
    }

    /// Marks a manifest, its config, layer blobs and unpacked layers as used. A missing or
    /// broken blob marks what can still be read (a journal may name an image removed since).
    fn keep_image(
        &self,
        manifest: &str,
        blobs: &mut BTreeSet<String>,
        layers: &mut BTreeSet<String>,
    ) {
        let Ok(hex) = digest_hex(manifest) else {
            return;
        };
        blobs.insert(hex.to_string());
        let Ok(bytes) = self.blobs.read(manifest) else {
            return;
        };
        let Ok(m) = parse::<ImageManifest>(&bytes, "manifest") else {
            return;
        };
        for d in std::iter::once(m.config()).chain(m.layers()) {
            if let Ok(hex) = digest_hex(digest_of(d)) {
                blobs.insert(hex.to_string());
            }
        }
        let Ok(bytes) = self.blobs.read(digest_of(m.config())) else {
            return;
        };
        let Ok(config) = parse::<ImageConfiguration>(&bytes, "config") else {
            return;
        };
        for diff_id in config.rootfs().diff_ids() {
            if let Ok(hex) = digest_hex(diff_id) {
                layers.insert(hex.to_string());
            }
        }
    }

    /// Layers of this store that an overlay mount on this host lists (`lowerdir=` in
    /// /proc/self/mountinfo's super options).
    fn mounted_layers(&self) -> BTreeSet<String> {
        let layers = fs::canonicalize(&self.layers).unwrap_or_else(|_| self.layers.clone());
        let prefix = format!("{}/", layers.display());
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut found = BTreeSet::new();
        for line in mountinfo.lines() {
            let Some((_, after)) = line.split_once(" - ") else {
                continue;
            };
            let mut fields = after.split(' ');
            if fields.next() != Some("overlay") {
                continue;
            }
            let options = fields.nth(1).unwrap_or("");
            for option in options.split(',') {
                let Some(dirs) = option.strip_prefix("lowerdir=") else {
                    continue;
                };
                for dir in dirs.split(':') {
                    if let Some(rest) = dir.strip_prefix(&prefix) {
                        found.insert(rest.split('/').next().unwrap_or(rest).to_string());
                    }
                }
            }
        }
        found
    }
}

/// Removes a layer directory: renamed aside first, so a half-removed layer never looks whole.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let aside = parent.join(super::blobs::temp_name("rm"));
    fs::rename(path, &aside)?;
    fs::remove_dir_all(&aside)
}
