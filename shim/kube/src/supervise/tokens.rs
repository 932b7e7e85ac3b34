//! Rotation of a running Pod's projected `serviceAccountToken` files, as the kubelet's token
//! manager (`pkg/kubelet/token/token_manager.go` `requiresRefresh`) and volume manager do: a
//! token is renewed once it is older than 80% of its lifetime or older than 24 hours, and the
//! volume's payload is rewritten the way the atomic writer updates it (a new timestamped
//! directory, `..data` renamed over), so a reader never sees a partial file.
//!
//! `PODSHIM_TEST_TOKEN_REFRESH_SECONDS` (FOR TESTS ONLY: it makes tokens rotate far more often
//! than any cluster would) renews a token once it is that many seconds old.

use std::time::{Duration, Instant};

use super::slot::PodRun;

/// The kubelet's `maxTTL`: a token is renewed after a day whatever its lifetime.
const MAX_AGE: i64 = 24 * 3600;
/// The test-only override of when a token is renewed (seconds after it was issued).
pub const TEST_REFRESH_ENV: &str = "PODSHIM_TEST_TOKEN_REFRESH_SECONDS";

/// The token files of the Pod (`object`): volume name and path in it, per projected source.
fn token_paths(object: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in object["spec"]["volumes"].as_array().into_iter().flatten() {
        for src in v["projected"]["sources"].as_array().into_iter().flatten() {
            if let (Some(name), Some(path)) = (
                v["name"].as_str(),
                src["serviceAccountToken"]["path"].as_str(),
            ) {
                out.push((name.to_string(), path.to_string()));
            }
        }
    }
    out
}

/// When a token issued at `iat` that expires at `exp` is renewed (seconds since the epoch).
pub(super) fn renew_at(iat: i64, exp: i64, test_after: Option<i64>) -> i64 {
    if let Some(after) = test_after {
        return iat + after;
    }
    let ttl = exp - iat;
    (iat + ttl * 8 / 10).min(iat + MAX_AGE)
}

fn test_after() -> Option<i64> {
    std::env::var(TEST_REFRESH_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s: &i64| s > 0)
}

/// When the soonest of the Pod's tokens is due (`None`: it has none).
pub(super) fn next_due(pod: &PodRun) -> Option<Instant> {
    let paths = token_paths(&pod.object);
    let paths = &paths;
    let test = test_after();
    let now = chrono::Utc::now().timestamp();
    let due = pod
        .plan
        .sandbox
        .volumes
        .iter()
        .filter_map(|v| Some((v.name.as_str(), v.contents.as_ref()?)))
        .flat_map(|(name, c)| {
            c.files
                .iter()
                .filter(move |f| paths.iter().any(|(n, p)| n == name && *p == f.path))
        })
        .filter_map(|f| {
            let c = crate::token::claims(std::str::from_utf8(&f.data).ok()?)?;
            Some(renew_at(c["iat"].as_i64()?, c["exp"].as_i64()?, test))
        })
        .min()?;
    let wait = u64::try_from(due - now).unwrap_or(0);
    Some(Instant::now() + Duration::from_secs(wait))
}

/// Renews the Pod's tokens that are due and rewrites their volumes; returns a problem to
/// report, if any (the old token stays in place then, and is tried again later).
pub(super) fn rotate(cfg: &podshim_engine::config::Config, pod: &mut PodRun) -> Option<String> {
    let paths = token_paths(&pod.object);
    let test = test_after();
    let now = chrono::Utc::now().timestamp();
    let sandbox = pod.sandbox.as_ref()?;
    let mut signer = None;
    for v in pod.plan.sandbox.volumes.iter_mut() {
        let Some(contents) = v.contents.as_mut() else {
            continue;
        };
        let mut changed = false;
        for f in contents.files.iter_mut() {
            if !paths.iter().any(|(n, p)| *n == v.name && *p == f.path) {
                continue;
            }
            let Ok(old) = std::str::from_utf8(&f.data) else {
                continue;
            };
            let Some(c) = crate::token::claims(old) else {
                continue;
            };
            let (Some(iat), Some(exp)) = (c["iat"].as_i64(), c["exp"].as_i64()) else {
                continue;
            };
            if renew_at(iat, exp, test) > now {
                continue;
            }
            if signer.is_none() {
                match crate::token::Signer::open(&cfg.root) {
                    Ok(s) => signer = Some(s),
                    Err(e) => return Some(crate::pod::chain(&e)),
                }
            }
            match signer.as_ref()?.renew(old, now)? {
                Ok(t) => {
                    f.data = t.into_bytes();
                    changed = true;
                }
                Err(e) => return Some(crate::pod::chain(&e)),
            }
        }
        let dir = sandbox.volumes.get(&v.name);
        if let (true, Some(dir)) = (changed, dir) {
            if let Err(e) = crate::pod::projection::update(dir, contents) {
                return Some(format!(
                    "rotate the service account token in {}: {e}",
                    dir.display()
                ));
            }
            if let Some(gid) = pod.plan.sandbox.fs_group {
                if let Err(e) = crate::pod::sandbox::set_volume_ownership(dir, gid, true) {
                    return Some(format!("give the fsGroup {}: {e}", dir.display()));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_at_80_percent_of_its_lifetime_or_after_a_day() {
        assert_eq!(renew_at(1000, 4600, None), 1000 + 2880);
        let week = 7 * 24 * 3600;
        assert_eq!(renew_at(0, week, None), MAX_AGE);
        assert_eq!(renew_at(1000, 4600, Some(2)), 1002);
        let object = serde_json::json!({"spec": {"volumes": [
            {"name": "t", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"configMap": {"name": "x"}}]}},
            {"name": "e", "emptyDir": {}}]}});
        assert_eq!(token_paths(&object), vec![("t".into(), "token".into())]);
    }
}
