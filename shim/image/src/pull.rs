//! `Store::pull`: an image from a registry into the store, all or nothing.
//!
//! Under the store's lock (so two podshim processes pulling one image download it once: the
//! second finds every blob present), on a current-thread tokio runtime that is shut down before
//! this returns, so the caller is single-threaded again before it creates any container
//! (libcontainer forks the calling process). The manifest is fetched and verified first, then
//! the missing blobs, a few at a time, each into a temporary file checked for size and sha256
//! before it is renamed into the store; then the layers are unpacked (each once, verified
//! against its diff_id) and only then is the name written to the index. A failure removes what
//! this pull created; temporaries of a killed pull are removed by the next one.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::error::ImageError;
use super::import::Importer;
use super::progress::{Progress, PullEvent};
use super::reference::Reference;
use super::registry::{temp_blob, FetchedManifest, PullOptions, Remote};
use super::spec::{digest_of, Descriptor};
use super::store::{info, IndexEntry, Store};
use super::ImageInfo;

/// Blobs fetched at the same time (containerd's default is 3).
const CONCURRENT_BLOBS: usize = 3;
/// How long the runtime's shutdown may wait for its threads (a DNS lookup stuck in the
/// blocking pool); the caller checks that none is left before creating containers.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

impl Store {
    /// Pulls `reference` (normalized first: `busybox` → `docker.io/library/busybox:latest`) and
    /// names it in the store. Blobs already present are not fetched again.
    pub fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<ImageInfo, ImageError> {
        let wanted: Reference = reference.parse()?;
        let name = wanted.to_string();
        let _lock = self.lock()?;
        self.clean_temporaries();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ImageError::Runtime { source })?;
        let mut created = Vec::new();
        let fetched = runtime.block_on(self.fetch(&wanted, opts, progress, &mut created));
        // Every thread of the runtime (the blocking pool resolves host names) ends here.
        runtime.shutdown_timeout(SHUTDOWN_WAIT);

        let mut importer = Importer {
            blobs: &self.blobs,
            layers_dir: &self.layers,
            created: Vec::new(),
        };
        let result = fetched.and_then(|fetched| {
            for layer in fetched.manifest.layers() {
                progress.event(PullEvent::Unpacking {
                    digest: digest_of(layer),
                });
            }
            let imported = importer.finish(
                vec![name.clone()],
                &fetched.digest,
                fetched.bytes.len() as u64,
                &fetched.manifest,
            )?;
            let entry = IndexEntry {
                digest: imported.digest.clone(),
                config: imported.config.clone(),
                size: imported.size,
                created: imported.created.clone(),
                index_digest: fetched.index_digest.clone(),
            };
            let mut index = self.read_index()?;
            index.images.insert(name.clone(), entry.clone());
            self.write_index(&index)?;
            Ok(info(&name, &entry))
        });
        match &result {
            Ok(i) => progress.event(PullEvent::Done {
                reference: &name,
                digest: &i.digest,
            }),
            Err(_) => {
                // Only this pull created these, under the lock, and no name refers to them;
                // downloads cut short left temporaries.
                created.extend(importer.created);
                for path in created.iter().rev() {
                    let _ = fs::remove_file(path).or_else(|_| fs::remove_dir_all(path));
                }
                self.clean_temporaries();
            }
        }
        result
    }

    /// The network part: manifest, then the blobs the store lacks.
    async fn fetch(
        &self,
        wanted: &Reference,
        opts: &PullOptions,
        progress: &dyn Progress,
        created: &mut Vec<PathBuf>,
    ) -> Result<FetchedManifest, ImageError> {
        let remote = Remote::new(wanted, opts);
        let fetched = remote.manifest(wanted).await?;
        let manifest = &fetched.manifest;
        let mut blobs: Vec<&Descriptor> = vec![manifest.config()];
        blobs.extend(manifest.layers());
        let mut listed = Vec::new();
        let mut missing = Vec::new();
        for d in blobs {
            let present = self.blobs.path(digest_of(d))?.is_file();
            if !listed.iter().any(|(digest, _, _)| digest == digest_of(d)) {
                listed.push((d.digest().to_string(), d.size(), present));
                if !present {
                    missing.push(d);
                }
            }
        }
        progress.event(PullEvent::Resolved {
            reference: &wanted.to_string(),
            digest: &fetched.digest,
            blobs: &listed,
        });
        let remote = &remote;
        let downloaded: Vec<(PathBuf, &Descriptor)> = stream::iter(missing)
            .map(|d| async move {
                let tmp = temp_blob(&self.tmp);
                remote.blob(d, &tmp, progress).await?;
                progress.event(PullEvent::Fetched {
                    digest: digest_of(d),
                });
                Ok::<_, ImageError>((tmp, d))
            })
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect()
            .await?;
        for (tmp, d) in downloaded {
            created.extend(self.blobs.adopt(&tmp, digest_of(d))?);
        }
        // The manifest itself is a blob of the store, like an imported one.
        let (_, manifest_created) = self
            .blobs
            .put_bytes(&fetched.bytes, Some(&fetched.digest))?;
        created.extend(manifest_created);
        Ok(fetched)
    }
}
