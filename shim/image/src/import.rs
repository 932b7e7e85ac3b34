//! Import of OCI archives, OCI layout directories and docker archives: works out the images and
//! their names first (so naming errors cost nothing), then copies and verifies blobs and unpacks
//! layers. Everything created is recorded so that a failed import can be undone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::blobs::{digest_hex, sync_dir, temp_name, Blobs};
use super::error::ImageError;
use super::reference::{normalize, valid_tag};
use super::source::{Format, Source};
use super::spec::{
    annotation, digest_of, host_arch, is_index, is_manifest, matches_host, Descriptor,
    DescriptorBuilder, Digest, DockerArchiveEntry, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME,
};
use super::unpack::unpack_layer;

/// JSON documents (index.json, manifests, configs) larger than this are refused.
const MAX_JSON: u64 = 16 << 20;

/// One image written to the store, ready to be named in the index.
#[derive(Debug)]
pub struct Imported {
    pub names: Vec<String>,
    pub digest: String,
    pub config: String,
    pub size: u64,
    pub created: Option<String>,
}

/// Where the import writes, and what it created (removed again if the import fails).
pub struct Importer<'a> {
    pub blobs: &'a Blobs,
    pub layers_dir: &'a Path,
    pub created: Vec<PathBuf>,
}

impl Importer<'_> {
    pub fn import(
        &mut self,
        source: &Source,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<Imported>, ImageError> {
        let name = name.map(normalize).transpose()?;
        match source.format(path)? {
            Format::Oci => self.import_oci(source, path, name),
            Format::Docker => self.import_docker(source, path, name),
        }
    }

    fn import_oci(
        &mut self,
        source: &Source,
        path: &Path,
        name: Option<String>,
    ) -> Result<Vec<Imported>, ImageError> {
        let index: ImageIndex = parse(&source.read_all("index.json", MAX_JSON)?, "index.json")?;
        if index.manifests().is_empty() {
            return Err(ImageError::NoImages {
                path: path.to_path_buf(),
            });
        }
        // Top-level descriptors that carry a platform are per-platform images of one name:
        // keep the host's.
        let descriptors: Vec<&Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| d.platform().as_ref().is_none_or(matches_host))
            .collect();
        if descriptors.is_empty() {
            return Err(ImageError::NoPlatform {
                digest: "index.json".into(),
                arch: host_arch().into(),
            });
        }
        // Group by digest: one layout may name the same manifest several times.
        let mut images: BTreeMap<&str, (&Descriptor, Vec<String>)> = BTreeMap::new();
        for d in &descriptors {
            images.entry(digest_of(d)).or_insert((d, Vec::new()));
        }
        match name {
            Some(name) if images.len() == 1 => {
                images
                    .values_mut()
                    .for_each(|(_, names)| names.push(name.clone()));
            }
            Some(name) => {
                return Err(ImageError::NameAmbiguous {
                    name,
                    path: path.to_path_buf(),
                    count: images.len(),
                })
            }
            None => {
                for d in &descriptors {
                    let name = oci_name(d).map_err(|reason| ImageError::NameRequired {
                        path: path.to_path_buf(),
                        reason,
                    })??;
                    let names = &mut images.get_mut(digest_of(d)).expect("grouped").1;
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (descriptor, names) in images.into_values() {
            let manifest = self.select_manifest(source, descriptor)?;
            self.copy(source, &manifest)?;
            let digest = digest_of(&manifest);
            let parsed: ImageManifest =
                parse(&self.blobs.read(digest)?, &format!("manifest {digest}"))?;
            self.copy(source, parsed.config())?;
            for layer in parsed.layers() {
                self.copy(source, layer)?;
            }
            out.push(self.finish(names, digest, manifest.size(), &parsed)?);
        }
        Ok(out)
    }

    /// A top-level descriptor, or, for an image index, its manifest for the host platform.
    fn select_manifest(
        &mut self,
        source: &Source,
        descriptor: &Descriptor,
    ) -> Result<Descriptor, ImageError> {
        if !is_index(descriptor) {
            return check_manifest(descriptor).map(|()| descriptor.clone());
        }
        self.copy(source, descriptor)?;
        let what = format!("image index {}", descriptor.digest());
        let nested: ImageIndex = parse(&self.blobs.read(digest_of(descriptor))?, &what)?;
        let chosen = nested
            .manifests()
            .iter()
            .find(|d| d.platform().as_ref().is_some_and(matches_host))
            .or_else(|| match nested.manifests().as_slice() {
                // An index without platforms and a single manifest is unambiguous.
                [only] if only.platform().is_none() => Some(only),
                _ => None,
            })
            .ok_or_else(|| ImageError::NoPlatform {
                digest: descriptor.digest().to_string(),
                arch: host_arch().into(),
            })?;
        check_manifest(chosen)?;
        Ok(chosen.clone())
    }

    fn import_docker(
        &mut self,
        source: &Source,
        path: &Path,
        name: Option<String>,
    ) -> Result<Vec<Imported>, ImageError> {
        let entries: Vec<DockerArchiveEntry> = parse(
            &source.read_all("manifest.json", MAX_JSON)?,
            "manifest.json",
        )?;
        if entries.is_empty() {
            return Err(ImageError::NoImages {
                path: path.to_path_buf(),
            });
        }
        let mut named = Vec::new();
        for entry in &entries {
            let names = match &name {
                Some(name) if entries.len() == 1 => vec![name.clone()],
                Some(name) => {
                    return Err(ImageError::NameAmbiguous {
                        name: name.clone(),
                        path: path.to_path_buf(),
                        count: entries.len(),
                    })
                }
                None => {
                    let tags = entry.repo_tags.clone().unwrap_or_default();
                    if tags.is_empty() {
                        return Err(ImageError::NameRequired {
                            path: path.to_path_buf(),
                            reason: format!("image {} has no RepoTags", entry.config),
                        });
                    }
                    tags.iter()
                        .map(|t| normalize(t))
                        .collect::<Result<_, _>>()?
                }
            };
            named.push((entry, names));
        }
        let mut out = Vec::new();
        for (entry, names) in named {
            let (config_digest, config_size) = self.copy_unknown(source, &entry.config)?;
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let (digest, size) = self.copy_unknown(source, layer)?;
                let gzip = fs::File::open(self.blobs.path(&digest)?)
                    .and_then(|mut f| {
                        let mut magic = [0u8; 2];
                        std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic)
                    })
                    .is_ok_and(|m| m == [0x1f, 0x8b]);
                let media_type = if gzip {
                    MediaType::ImageLayerGzip
                } else {
                    MediaType::ImageLayer
                };
                layers.push(descriptor(media_type, &digest, size)?);
            }
            // docker archives have no manifest; synthesize the OCI manifest a registry push
            // of this image would carry, so the image has a manifest digest like any other.
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(descriptor(
                    MediaType::ImageConfig,
                    &config_digest,
                    config_size,
                )?)
                .layers(layers)
                .build()
                .map_err(|e| ImageError::Corrupt {
                    reason: format!("synthesized manifest: {e}"),
                })?;
            let bytes = serde_json::to_vec(&manifest)
                .map_err(|e| ImageError::json("synthesized manifest", e))?;
            let (digest, created) = self.blobs.put_bytes(&bytes, None)?;
            self.created.extend(created);
            out.push(self.finish(names, &digest, bytes.len() as u64, &manifest)?);
        }
        Ok(out)
    }

    /// Unpacks the layers of a manifest whose blobs are all in the store.
    pub fn finish(
        &mut self,
        names: Vec<String>,
        digest: &str,
        manifest_size: u64,
        manifest: &ImageManifest,
    ) -> Result<Imported, ImageError> {
        let config_digest = digest_of(manifest.config());
        let config: ImageConfiguration = parse(
            &self.blobs.read(config_digest)?,
            &format!("image config {config_digest}"),
        )?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::LayerCountMismatch {
                manifest: digest.to_string(),
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            self.ensure_layer(layer, diff_id)?;
        }
        let size = manifest_size
            + manifest.config().size()
            + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        Ok(Imported {
            names,
            digest: digest.to_string(),
            config: config_digest.to_string(),
            size,
            created: config.created().clone(),
        })
    }

    /// Unpacks a layer unless a complete copy is already present. The unpack goes to a
    /// temporary sibling renamed into place only when complete and verified, so a partial
    /// unpack is never used.
    fn ensure_layer(&mut self, layer: &Descriptor, diff_id: &str) -> Result<(), ImageError> {
        let hex = digest_hex(diff_id)?;
        let dest = self.layers_dir.join(hex);
        if dest.is_dir() {
            return Ok(());
        }
        let tmp = self.layers_dir.join(temp_name(hex));
        let blob = self.blobs.path(digest_of(layer))?;
        let media_type = layer.media_type().to_string();
        let result = unpack_layer(&blob, &media_type, digest_of(layer), diff_id, &tmp)
            .and_then(|()| sync_fs(&tmp))
            .and_then(|()| {
                fs::rename(&tmp, &dest).map_err(|e| ImageError::io("store layer", &dest, e))
            });
        if let Err(err) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(err);
        }
        self.created.push(dest);
        sync_dir(self.layers_dir)
    }

    fn copy(&mut self, source: &Source, descriptor: &Descriptor) -> Result<(), ImageError> {
        let digest = digest_of(descriptor);
        let hex = digest_hex(digest)?;
        if self.blobs.path(digest)?.is_file() {
            return Ok(());
        }
        let reader = source.open_file(&format!("blobs/sha256/{hex}"))?;
        let created = self.blobs.put(reader, digest, descriptor.size())?;
        self.created.extend(created);
        Ok(())
    }

    /// Copies a docker-archive file; when its name carries its digest (`<hex>.json`,
    /// `<hex>.tar`, `blobs/sha256/<hex>`), the content is verified against it.
    fn copy_unknown(&mut self, source: &Source, name: &str) -> Result<(String, u64), ImageError> {
        let stem = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".json").trim_end_matches(".tar"))
            .unwrap_or_default();
        let expected = format!("sha256:{stem}");
        let expected = digest_hex(&expected).is_ok().then_some(expected.as_str());
        let reader = source.open_file(name)?;
        let (digest, size, created) = self.blobs.put_unknown(reader, expected)?;
        self.created.extend(created);
        Ok((digest, size))
    }
}

/// The name an OCI layout gives a descriptor; the outer error is the reason to ask for --name.
fn oci_name(descriptor: &Descriptor) -> Result<Result<String, ImageError>, String> {
    let ref_name = annotation(descriptor, ANNOTATION_REF_NAME);
    let containerd = annotation(descriptor, ANNOTATION_CONTAINERD_NAME);
    // In an OCI layout, ref.name is usually just a tag ("1", "latest").
    let tag_only = |r: &str| !r.contains(['/', ':', '@']) && valid_tag(r);
    match (containerd, ref_name) {
        (Some(full), Some(tag)) if tag_only(tag) && !has_tag_or_digest(full) => {
            Ok(normalize(&format!("{full}:{tag}")))
        }
        (Some(full), _) => Ok(normalize(full)),
        (None, Some(r)) if tag_only(r) => Err(format!(
            "{} of {} is only a tag ({r:?})",
            ANNOTATION_REF_NAME,
            descriptor.digest()
        )),
        (None, Some(r)) => Ok(normalize(r)),
        (None, None) => Err(format!(
            "{} has no {} annotation",
            descriptor.digest(),
            ANNOTATION_REF_NAME
        )),
    }
}

fn has_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains([':', '@'])
}

fn check_manifest(descriptor: &Descriptor) -> Result<(), ImageError> {
    if is_manifest(descriptor) {
        Ok(())
    } else {
        Err(ImageError::UnsupportedMediaType {
            digest: descriptor.digest().to_string(),
            media_type: descriptor.media_type().to_string(),
        })
    }
}

/// A descriptor of a blob this import wrote (its digest computed here, so valid).
fn descriptor(media_type: MediaType, digest: &str, size: u64) -> Result<Descriptor, ImageError> {
    let digest: Digest = digest.parse().map_err(|e| ImageError::Corrupt {
        reason: format!("digest {digest}: {e}"),
    })?;
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest)
        .size(size)
        .build()
        .expect("media type, digest and size are set"))
}

pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::json(what, e))
}

/// Flushes a freshly unpacked layer to disk before it is renamed into place, so a crash cannot
/// leave a complete-looking layer with missing data (one syncfs instead of an fsync per file).
fn sync_fs(dir: &Path) -> Result<(), ImageError> {
    let file = fs::File::open(dir).map_err(|e| ImageError::io("open", dir, e))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&file))
        .map_err(|e| ImageError::io("sync", dir, e.into()))
}
