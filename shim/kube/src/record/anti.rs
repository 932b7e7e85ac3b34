//! Which Pods' records hold a `podAntiAffinity`: an empty marker file `<key>.anti` next to the
//! record, kept by every record write and removal. A new Pod without affinity terms of its own
//! must still keep away from the running Pods whose required anti-affinity it would violate
//! (the scheduler's symmetry), and finding those by reading every record made each `run` slower
//! the more Pods ran; the markers make it a directory listing. The first look after an upgrade
//! (no `.records-anti-marked` in the state directory) reads every record once and marks what
//! it finds.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use podshim_engine::config::Config;

use super::{dir, entry, list_where, Entry, Record};

/// Says that every record with an anti-affinity has its marker (beside the records directory,
/// which holds Pods' files only).
const MARKED: &str = ".records-anti-marked";
const ANTI: &[u8] = b"\"podAntiAffinity\"";

fn marker(records: &Path, key: &str) -> std::path::PathBuf {
    records.join(format!("{key}.anti"))
}

/// Keep the marker of the record at `path` (`<dir>/<key>.json`) in step with its Pod.
pub(super) fn mark(record: &Record, path: &Path) -> std::io::Result<()> {
    let has = record
        .pod
        .pointer("/spec/affinity/podAntiAffinity")
        .is_some_and(|a| !a.is_null());
    if !has {
        return Ok(());
    }
    let (Some(records), Some(key)) = (path.parent(), path.file_stem()) else {
        return Ok(());
    };
    let marker = marker(records, &key.to_string_lossy());
    if !marker.exists() {
        podshim_engine::private::write_file(&marker, b"")?;
    }
    Ok(())
}

/// Remove the marker of `key` (with its record).
pub(super) fn unmark(cfg: &Config, key: &str) {
    let _ = fs::remove_file(marker(&dir(cfg), key));
}

/// The Pods whose record holds a `podAntiAffinity`, sorted by namespace and name.
pub fn list(cfg: &Config) -> Vec<Entry> {
    let records = dir(cfg);
    let names: BTreeSet<String> = fs::read_dir(&records)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let sentinel = cfg.state.join(MARKED);
    // No records yet (nor a state directory, which a dry run must not make): nothing to mark,
    // and every record written from now on is marked as it is written.
    if !records.is_dir() {
        return Vec::new();
    }
    if !sentinel.exists() {
        let found = list_where(cfg, |bytes| bytes.windows(ANTI.len()).any(|w| w == ANTI));
        let marked = found
            .iter()
            .all(|e| podshim_engine::private::write_file(&marker(&records, &e.key), b"").is_ok());
        if marked {
            let _ = podshim_engine::private::write_file(&sentinel, b"");
        }
        return found;
    }
    names
        .iter()
        .filter_map(|n| n.strip_suffix(".anti"))
        .filter(|key| names.contains(&format!("{key}.json")))
        .filter_map(|key| entry(cfg, key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, anti: bool) -> Record {
        let affinity = match anti {
            true => {
                serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}})
            }
            false => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "namespace": "default", "name": name, "uid": name,
            "pod": {"spec": {"affinity": affinity}},
            "status": {"phase": "Running"},
            "supervisor": {"pid": 1, "startTime": 0},
            "detached": true, "logDir": "/tmp",
        }))
        .unwrap()
    }

    #[test]
    fn only_marked_records_are_read_and_old_directories_are_marked_once() {
        let state = tempfile::tempdir().unwrap();
        let cfg = Config {
            root: state.path().join("root"),
            state: state.path().join("state"),
            bridge: "podshim0".into(),
            subnet: "10.88.0.0/16".parse().unwrap(),
            pause: "/pause".into(),
            keep_bridge: true,
            masquerade: true,
            cni_conf: None,
            cni_path: String::new(),
        };
        let write = |name: &str, anti: bool| {
            record(name, anti)
                .write(&super::super::path(&cfg, &format!("default_{name}")))
                .unwrap()
        };
        write("plain", false);
        write("away", true);
        // A record written before markers existed: anti-affinity, no marker.
        write("old", true);
        fs::remove_file(marker(&dir(&cfg), "default_old")).unwrap();
        let keys = |v: Vec<Entry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(keys(list(&cfg)), ["default_away", "default_old"]);
        assert!(cfg.state.join(MARKED).exists());
        assert!(marker(&dir(&cfg), "default_old").exists());
        // From now on only the markers are looked at.
        assert_eq!(keys(list(&cfg)), ["default_away", "default_old"]);
        super::super::remove(&cfg, "default_away").unwrap();
        assert_eq!(keys(list(&cfg)), ["default_old"]);
        assert!(!marker(&dir(&cfg), "default_away").exists());
    }
}
