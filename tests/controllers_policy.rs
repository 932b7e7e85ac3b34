//! A Job's `podFailurePolicy` and `successPolicy`, and a CronJob's `timeZone`, with real Pods:
//! an ignored failure that does not count against `backoffLimit: 0`, an exit code that fails
//! the Job at once (`PodFailurePolicy`), an Indexed Job that succeeds as soon as its index 1
//! does (`SuccessPolicy`, the other Pods stopped), and a CronJob firing at 09:00 in Tokyo on an
//! injected clock. Each test stops its controllers, also when it fails, and leaves nothing.

mod workload;

use std::time::Duration;

use podshim_tests::*;
use workload::*;

#[test]
fn an_ignored_failure_does_not_count_against_the_backoff_limit() {
    let i = Instance::new(50);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("ign");
    let marks = i.dir.join("marks");
    // The first Pod leaves a mark and exits 3 (ignored); the second finds it and succeeds.
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n    - action: Ignore\n      onExitCodes: {{operator: In, values: [3]}}\n  template:\n    spec:\n      restartPolicy: Never\n      volumes: [{{name: m, hostPath: {{path: '{}', type: DirectoryOrCreate}}}}]\n      containers:\n      - name: c\n        image: busybox:1.35\n        volumeMounts: [{{name: m, mountPath: /m}}]\n        command: [sh, -c, 'if [ -e /m/first ]; then exit 0; fi; touch /m/first; exit 3']\n",
        marks.display()
    );
    ok(&apply(&i, &yaml));
    let s = wait_until(Duration::from_secs(90), "the Job completes", || {
        let s = status(&i, &format!("job/{name}"));
        assert!(!has_condition(&s, "Failed", "BackoffLimitExceeded"), "{s}");
        has_condition(&s, "Complete", "CompletionsReached").then_some(s)
    });
    assert_eq!(s["failed"], 0, "the ignored failure is not counted: {s}");
    assert_eq!(s["succeeded"], 1, "{s}");
    let mut phases: Vec<String> = records(&i, &name).into_iter().map(|p| p.phase).collect();
    phases.sort();
    assert_eq!(phases, ["Failed", "Succeeded"]);
    ok(&i.podshim(&["delete", "job", &name], Duration::from_secs(120)));
    assert_all_gone(&i);
}

#[test]
fn an_exit_code_matching_failjob_fails_the_job_at_once() {
    let i = Instance::new(51);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("fj");
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: Count\n      onExitCodes: {{operator: In, values: [1]}}\n    - action: FailJob\n      onExitCodes: {{containerName: c, operator: NotIn, values: [1, 2]}}\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'exit 42']\n"
    );
    ok(&apply(&i, &yaml));
    let s = wait_until(Duration::from_secs(60), "the Job fails", || {
        let s = status(&i, &format!("job/{name}"));
        has_condition(&s, "Failed", "PodFailurePolicy").then_some(s)
    });
    assert!(
        has_condition(&s, "FailureTarget", "PodFailurePolicy"),
        "{s}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let pods = records(&i, &name);
    assert_eq!(pods.len(), 1, "no second Pod after FailJob");
    let failed = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(
        failed["message"],
        format!(
            "Container c for pod default/{} failed with exit code 42 matching FailJob rule at index 1",
            pods[0].name
        )
    );
    assert_eq!(s["failed"], 1, "{s}");
    let out = i.podshim(&["describe", "job", &name], T);
    let d = stdout(&out);
    assert!(
        d.contains(&format!("job-controller  Created pod: {}", pods[0].name)),
        "{d}"
    );
    assert!(
        d.contains("  Warning  PodFailurePolicy  ")
            && d.contains("job-controller  Container c for pod default/"),
        "{d}"
    );
    ok(&i.podshim(&["delete", "job", &name], Duration::from_secs(120)));
    assert_all_gone(&i);
}

#[test]
fn an_indexed_job_succeeds_by_its_success_policy() {
    let i = Instance::new(52);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("sp");
    // Index 1 succeeds at once; the others would run for minutes.
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  successPolicy:\n    rules: [{{succeededIndexes: '1'}}]\n  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'if [ \"$JOB_COMPLETION_INDEX\" = 1 ]; then exit 0; fi; trap \"exit 0\" TERM; sleep 300 & wait']\n"
    );
    ok(&apply(&i, &yaml));
    let s = wait_until(Duration::from_secs(90), "the Job completes", || {
        let s = status(&i, &format!("job/{name}"));
        has_condition(&s, "Complete", "SuccessPolicy").then_some(s)
    });
    assert!(
        has_condition(&s, "SuccessCriteriaMet", "SuccessPolicy"),
        "{s}"
    );
    let complete = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Complete")
        .unwrap();
    assert_eq!(complete["message"], "Matched rules at index 0");
    assert_eq!(s["completedIndexes"], "1", "{s}");
    wait_until(Duration::from_secs(30), "the other indexes stop", || {
        records(&i, &name)
            .iter()
            .all(|p| matches!(p.phase.as_str(), "Succeeded" | "Failed"))
            .then_some(())
    });
    ok(&i.podshim(&["delete", "job", &name], Duration::from_secs(120)));
    assert_all_gone(&i);
}

#[test]
fn a_cronjob_fires_at_nine_in_tokyo() {
    let mut i = Instance::new(53);
    i.import_busybox();
    let clock = i.dir.join("clock");
    let set = |t: &str| std::fs::write(&clock, t).unwrap();
    // 08:59:30 in Tokyo (UTC+9, no DST).
    set("2030-01-01T23:59:30Z");
    i.env
        .push(("PODSHIM_CLOCK".into(), clock.to_string_lossy().into()));
    let _stop = StopControllers(&i);
    let name = i.name("tokyo");
    let yaml = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: '0 9 * * *'\n  timeZone: Asia/Tokyo\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: c\n            image: busybox:1.35\n            command: [echo, ohayo]\n"
    );
    ok(&apply(&i, &yaml));
    std::thread::sleep(Duration::from_millis(1500));
    let jobs = || get_json(&i, "jobs")["items"].as_array().unwrap().len();
    assert_eq!(jobs(), 0, "nothing before 09:00 in Tokyo");
    set("2030-01-02T00:00:05Z");
    // 2030-01-02T00:00:00Z in minutes since the epoch.
    let job = format!("{name}-{}", (1_893_456_000 + 86_400) / 60);
    wait_until(Duration::from_secs(60), "the 09:00 Job completes", || {
        let s = status(&i, &format!("job/{job}"));
        has_condition(&s, "Complete", "CompletionsReached").then_some(())
    });
    let j = get_json(&i, &format!("job/{job}"));
    assert_eq!(
        j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2030-01-02T00:00:00Z"
    );
    let out = i.podshim(&["get", "cj", &name], T);
    assert!(stdout(&out).contains("Asia/Tokyo"), "{}", stdout(&out));
    let out = i.podshim(&["describe", "cj", &name], T);
    assert!(
        stdout(&out).contains(&format!("cronjob-controller  Created job {job}")),
        "{}",
        stdout(&out)
    );
    // An unknown zone is refused as the API server refuses it, and nothing is changed.
    let out = apply(&i, &yaml.replace("Asia/Tokyo", "Asia/Tokio"));
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("spec.timeZone: Invalid value: \"Asia/Tokio\": unknown time zone Asia/Tokio"),
        "{}",
        stderr(&out)
    );
    ok(&i.podshim(&["delete", "cj", &name], Duration::from_secs(120)));
    wait_until(Duration::from_secs(30), "its Jobs are gone", || {
        (jobs() == 0).then_some(())
    });
    assert_all_gone(&i);
}
