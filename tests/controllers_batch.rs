//! Jobs, CronJobs and DaemonSets with real Pods: an Indexed Job of 5 completions, 2 at a time,
//! whose first attempt at index 3 fails; a Job exceeding its backoffLimit; a CronJob firing
//! every minute on an injected clock; a DaemonSet's one Pod, rolled out and replaced. Each test
//! deletes what it made and checks nothing of its instance is left.

mod workload;

use std::collections::BTreeSet;
use std::time::Duration;

use podshim_tests::*;
use workload::*;

#[test]
fn indexed_job_completes_five_two_at_a_time_after_index_3_fails_once() {
    let i = Instance::new(45);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("idx");
    // Index 3 waits to be told (SIGUSR1: fail) or 3 s (succeed); the others succeed at once.
    // The 3 s scale with the host's slowness: the test must see index 3 run and exec into it
    // before then (an exec takes seconds under emulation).
    let wait = (3.0 * time_scale()).ceil() as u64;
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  completions: 5\n  parallelism: 2\n  completionMode: Indexed\n  backoffLimit: 2\n  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'echo index $JOB_COMPLETION_INDEX; if [ \"$JOB_COMPLETION_INDEX\" = 3 ]; then trap \"exit 1\" USR1; sleep {wait} & wait; fi; exit 0']\n"
    );
    ok(&apply(&i, &yaml));
    let mut max_active = 0;
    let mut failed_index_3 = None;
    let s = wait_until(Duration::from_secs(120), "the Job completes", || {
        let pods = records(&i, &name);
        let active = pods
            .iter()
            .filter(|p| matches!(p.phase.as_str(), "Pending" | "Running"))
            .count();
        max_active = max_active.max(active);
        if failed_index_3.is_none() {
            if let Some(p) = pods.iter().find(|p| {
                p.phase == "Running"
                    && p.object["metadata"]["annotations"]
                        ["batch.kubernetes.io/job-completion-index"]
                        == "3"
            }) {
                let out = i.podshim(&["exec", &p.name, "--", "kill", "-USR1", "1"], T);
                // The signal makes PID 1 exit, and when a PID namespace's init exits the
                // kernel SIGKILLs every other process in it, which can include this `kill`
                // before it has exited: 137 (128 + SIGKILL) is that race, not a failed exec.
                assert!(
                    matches!(out.status.code(), Some(0 | 137)),
                    "exec kill -USR1 1: {:?}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                failed_index_3 = Some(p.name.clone());
            }
        }
        let s = status(&i, &format!("job/{name}"));
        has_condition(&s, "Complete", "CompletionsReached").then_some(s)
    });
    assert!(
        max_active <= 2,
        "parallelism 2: {max_active} Pods ran at once"
    );
    assert_eq!(s["succeeded"], 5, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["completedIndexes"], "0-4", "{s}");
    assert!(s["completionTime"].is_string());
    let failed = failed_index_3.expect("index 3 ran");
    let pods = records(&i, &name);
    let by_index: BTreeSet<String> = pods
        .iter()
        .map(|p| {
            p.object["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        by_index.into_iter().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );
    for p in &pods {
        let idx = p.object["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap();
        assert!(p.name.starts_with(&format!("{name}-{idx}-")), "{}", p.name);
        let want = if p.name == failed {
            "Failed"
        } else {
            "Succeeded"
        };
        assert_eq!(p.phase, want, "{}", p.name);
    }
    let out = i.podshim(&["get", "jobs"], T);
    assert!(
        stdout(&out).contains("Complete") && stdout(&out).contains("5/5"),
        "{}",
        stdout(&out)
    );
    let logs = i.podshim(&["logs", &pods[0].name], T);
    assert!(stdout(&logs).starts_with("index "), "{}", stdout(&logs));
    ok(&i.podshim(&["delete", "job", &name], Duration::from_secs(120)));
    assert_all_gone(&i);
}

#[test]
fn a_job_failing_more_than_its_backoff_limit_fails() {
    let i = Instance::new(46);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("fail");
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'exit 3']\n"
    );
    ok(&apply(&i, &yaml));
    let s = wait_until(Duration::from_secs(60), "the Job fails", || {
        let s = status(&i, &format!("job/{name}"));
        has_condition(&s, "Failed", "BackoffLimitExceeded").then_some(s)
    });
    assert_eq!(s["failed"], 2, "{s}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(records(&i, &name).len(), 2, "no Pod after the Job failed");
    let out = i.podshim(&["get", "job", &name], T);
    assert!(
        stdout(&out).contains("Failed") && stdout(&out).contains("0/1"),
        "{}",
        stdout(&out)
    );
    ok(&i.podshim(
        &["delete", &format!("job/{name}")],
        Duration::from_secs(120),
    ));
    assert_all_gone(&i);
}

#[test]
fn a_cronjob_fires_every_minute_of_an_injected_clock() {
    let mut i = Instance::new(47);
    i.import_busybox();
    let clock = i.dir.join("clock");
    let set = |t: &str| std::fs::write(&clock, t).unwrap();
    set("2030-01-01T00:00:30Z");
    i.env
        .push(("PODSHIM_CLOCK".into(), clock.to_string_lossy().into()));
    let _stop = StopControllers(&i);
    let name = i.name("cron");
    let yaml = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: '* * * * *'\n  successfulJobsHistoryLimit: 2\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: c\n            image: busybox:1.35\n            command: [echo, tick]\n"
    );
    ok(&apply(&i, &yaml));
    std::thread::sleep(Duration::from_secs(1));
    let jobs = |i: &Instance| -> Vec<String> {
        let v = get_json(i, "jobs");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(jobs(&i).is_empty(), "nothing before the first minute");
    let minute0 = 1_893_456_000 / 60; // 2030-01-01T00:00:00Z in minutes
    for m in 1..=3 {
        set(&format!("2030-01-01T00:0{m}:05Z"));
        let job = format!("{name}-{}", minute0 + m);
        wait_until(
            Duration::from_secs(60),
            &format!("job {job} completes"),
            || {
                let s = status(&i, &format!("job/{job}"));
                has_condition(&s, "Complete", "CompletionsReached").then_some(())
            },
        );
        let j = get_json(&i, &format!("job/{job}"));
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(
            j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
            format!("2030-01-01T00:0{m}:00Z")
        );
    }
    let want = vec![
        format!("{name}-{}", minute0 + 2),
        format!("{name}-{}", minute0 + 3),
    ];
    wait_until(
        Duration::from_secs(30),
        "the history limit keeps 2 Jobs",
        || (jobs(&i) == want).then_some(()),
    );
    let s = status(&i, &format!("cj/{name}"));
    assert_eq!(s["lastScheduleTime"], "2030-01-01T00:03:00Z", "{s}");
    assert!(s["lastSuccessfulTime"].is_string(), "{s}");
    let out = i.podshim(&["get", "cj"], T);
    assert!(stdout(&out).contains("* * * * *"), "{}", stdout(&out));
    ok(&i.podshim(&["delete", "cj", &name], Duration::from_secs(120)));
    wait_until(Duration::from_secs(30), "its Jobs are gone", || {
        jobs(&i).is_empty().then_some(())
    });
    assert_all_gone(&i);
}

#[test]
fn a_daemonset_runs_one_pod_here_and_rolls_it_out() {
    let i = Instance::new(48);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("ds");
    let yaml = |v: &str| {
        format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        env: [{{name: VERSION, value: \"{v}\"}}]\n        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    )
    };
    ok(&apply(&i, &yaml("v1")));
    let p = wait_running(&i, &name, 1, T).remove(0);
    assert_generated_name(&p.name, &name);
    assert!(p.object["metadata"]["labels"]["controller-revision-hash"].is_string());
    ok(&apply(&i, &yaml("v2")));
    let p2 = wait_until(T, "the new Pod", || {
        let r = running_pods(&i, &name);
        (r.len() == 1 && records(&i, &name).len() == 1 && env_of(&r[0], "VERSION") == "v2")
            .then(|| r[0].clone())
    });
    assert_ne!(p.name, p2.name);
    ok(&i.podshim(&["rm", "-f", &p2.name], T));
    wait_replaced(&i, &name, &p2.name, 1);
    let s = status(&i, &format!("ds/{name}"));
    assert_eq!(
        (
            s["desiredNumberScheduled"].as_i64(),
            s["numberReady"].as_i64()
        ),
        (Some(1), Some(1)),
        "{s}"
    );
    ok(&i.podshim(&["delete", "ds", &name], Duration::from_secs(120)));
    assert_all_gone(&i);
}
