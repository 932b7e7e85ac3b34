//! Files of a `configMap` or `secret` volume, written the way the kubelet's atomic writer
//! (`pkg/volume/util/atomic_writer.go`) lays them out: the payload in a timestamped directory
//! `..2006_01_02_15_04_05.N`, a `..data` symlink to it, and one symlink per top-level entry
//! pointing through `..data`. Programs that watch `..data` for updates work unchanged.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// One file of a projected volume.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectedFile {
    /// Relative path inside the volume (validated: no `..`, not absolute).
    pub path: String,
    pub data: Vec<u8>,
    /// Permission bits (`items[].mode`, else `defaultMode`).
    pub mode: u32,
}

impl fmt::Debug for ProjectedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret contents never go to logs.
        write!(
            f,
            "{} ({} bytes, {:o})",
            self.path,
            self.data.len(),
            self.mode
        )
    }
}

/// The payload of a `configMap` or `secret` volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Projection {
    pub files: Vec<ProjectedFile>,
}

impl Projection {
    /// Total payload size in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum()
    }
}

/// Write `p` into the (existing, empty) directory `dir` with the atomic writer's layout.
pub fn write(dir: &Path, p: &Projection) -> io::Result<()> {
    update(dir, p)
}

/// Replace the payload in `dir` by `p` as the atomic writer's `Write` does: the new files in a
/// new timestamped directory, `..data` switched to it by a rename (a reader sees the old
/// payload or the new one, never a mix or a partial file), the top-level symlinks the new
/// payload needs added, then the old directory removed.
pub fn update(dir: &Path, p: &Projection) -> io::Result<()> {
    let old = fs::read_link(dir.join("..data")).ok();
    let ts = format!(
        "..{}.{}",
        timestamp(SystemTime::now()),
        rand::random::<u32>()
    );
    let data_dir = dir.join(&ts);
    fs::create_dir(&data_dir)?;
    fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o755))?;
    let mut top = BTreeSet::new();
    for f in &p.files {
        let rel = f.path.trim_start_matches('/');
        let path = data_dir.join(rel);
        if let Some(parent) = path.parent() {
            if parent != data_dir {
                fs::create_dir_all(parent)?;
            }
        }
        fs::write(&path, &f.data)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))?;
        if let Some(first) = rel.split('/').next() {
            top.insert(first.to_string());
        }
    }
    let _ = fs::remove_file(dir.join("..data_tmp"));
    symlink(&ts, dir.join("..data_tmp"))?;
    fs::rename(dir.join("..data_tmp"), dir.join("..data"))?;
    for name in top {
        let link = dir.join(&name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(&name), link)?;
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&ts)) {
        fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

/// `2006_01_02_15_04_05` in UTC (Go's layout the atomic writer uses).
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}_{m:02}_{d:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_like_go() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "2023_11_14_22_13_20");
        assert_eq!(timestamp(UNIX_EPOCH), "1970_01_01_00_00_00");
    }

    #[test]
    fn writes_the_atomic_writer_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = Projection {
            files: vec![
                ProjectedFile {
                    path: "a.conf".into(),
                    data: b"x=1\n".to_vec(),
                    mode: 0o600,
                },
                ProjectedFile {
                    path: "sub/b".into(),
                    data: b"b".to_vec(),
                    mode: 0o644,
                },
            ],
        };
        write(dir.path(), &p).unwrap();
        let d = dir.path();
        assert_eq!(fs::read_to_string(d.join("a.conf")).unwrap(), "x=1\n");
        assert_eq!(fs::read_to_string(d.join("sub/b")).unwrap(), "b");
        assert_eq!(
            fs::read_link(d.join("a.conf")).unwrap(),
            Path::new("..data/a.conf")
        );
        let target = fs::read_link(d.join("..data")).unwrap();
        assert!(target.to_str().unwrap().starts_with("..20"), "{target:?}");
        let mode = fs::metadata(d.join("a.conf")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!d.join("..data_tmp").exists());
    }

    #[test]
    fn an_update_switches_data_at_once_and_removes_the_old_payload() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = |data: &[u8]| Projection {
            files: vec![ProjectedFile {
                path: "token".into(),
                data: data.to_vec(),
                mode: 0o600,
            }],
        };
        write(d, &file(b"one")).unwrap();
        let first = fs::read_link(d.join("..data")).unwrap();
        update(d, &file(b"two")).unwrap();
        let second = fs::read_link(d.join("..data")).unwrap();
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(d.join("token")).unwrap(), "two");
        assert!(!d.join(&first).exists(), "the old payload is removed");
        let names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "..data, one payload, the link: {names:?}");
    }
}
