//! Decoding, defaults and validation of workloads against the API server's messages.

use super::parse::{parse, Applied};
use super::{validate, Kind, Workload};

fn ok(text: &str) -> Applied {
    parse(text, &|_, _, _| None).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse(text, &|_, _, _| None).unwrap_err().to_string()
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox:1.35}]
";

#[test]
fn a_deployment_is_defaulted_as_the_api_server_does() {
    let a = ok(DEPLOY);
    let Workload::Deployment(d) = &a.workloads[0] else {
        panic!("not a deployment")
    };
    assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(d.spec.replicas, Some(1));
    assert_eq!(d.spec.revision_history_limit, Some(10));
    assert_eq!(d.spec.progress_deadline_seconds, Some(600));
    let s = d.spec.strategy.clone().unwrap();
    assert_eq!(s.kind.as_deref(), Some("RollingUpdate"));
    let ru = serde_json::to_value(s.rolling_update.unwrap()).unwrap();
    assert_eq!(
        ru,
        serde_json::json!({"maxUnavailable": "25%", "maxSurge": "25%"})
    );
    assert_eq!(
        d.spec.template.spec.restart_policy.as_deref(),
        Some("Always")
    );
    assert!(d.metadata.uid.is_some());
}

#[test]
fn selector_and_template_problems_have_the_api_servers_words() {
    let e = err(&DEPLOY.replace("matchLabels: {app: web}", "matchLabels: {app: other}"));
    assert_eq!(
        e,
        "The Deployment \"web\" is invalid: spec.template.metadata.labels: Invalid value: \
         map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
    );
    let e = err(&DEPLOY.replace("  selector: {matchLabels: {app: web}}\n", ""));
    assert_eq!(
        e,
        "The Deployment \"web\" is invalid: spec.selector: Required value"
    );
    let e = err(&DEPLOY.replace("matchLabels: {app: web}", "matchLabels: {}"));
    assert!(
        e.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"),
        "{e}"
    );
    let e = err(&DEPLOY.replace("containers:", "restartPolicy: OnFailure\n      containers:"));
    assert!(
        e.ends_with("spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""),
        "{e}"
    );
    let e = err(&DEPLOY.replace("image: busybox:1.35", "image: busybox:1.35, comand: [x]"));
    assert_eq!(
        e,
        "error decoding document 1: spec.template.spec.containers[0].comand: unknown field \"comand\", did you mean \"command\"?"
    );
    let e = err(&DEPLOY.replace("name: c,", "name: C_1,"));
    assert!(
        e.contains("spec.template.spec.containers[0].name: Invalid value: \"C_1\""),
        "{e}"
    );
}

#[test]
fn rollout_numbers_are_checked() {
    let with = |s: &str| DEPLOY.replace("  template:", &format!("{s}\n  template:"));
    let e = err(&with("  replicas: -2"));
    assert!(
        e.ends_with("spec.replicas: Invalid value: -2: must be greater than or equal to 0"),
        "{e}"
    );
    let e = err(&with(
        "  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}",
    ));
    assert!(
        e.ends_with("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
        "{e}"
    );
    let e = err(&with("  strategy: {rollingUpdate: {maxSurge: 150%}}"));
    assert!(e.ends_with("spec.strategy.rollingUpdate.maxSurge: Invalid value: \"150%\": must not be greater than 100%"), "{e}");
    let e = err(&with(
        "  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}",
    ));
    assert!(e.contains("spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"), "{e}");
    let e = err(&with("  strategy: {type: Sometimes}"));
    assert!(e.contains("spec.strategy.type: Unsupported value: \"Sometimes\": supported values: \"Recreate\", \"RollingUpdate\""), "{e}");
    let e = err(&with("  minReadySeconds: 10\n  progressDeadlineSeconds: 5"));
    assert!(
        e.ends_with(
            "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"
        ),
        "{e}"
    );
}

#[test]
fn jobs_and_cronjobs_are_checked() {
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox:1.35}]\n";
    let a = ok(job);
    let Workload::Job(j) = &a.workloads[0] else {
        panic!()
    };
    let uid = j.metadata.uid.clone().unwrap();
    assert_eq!(j.spec.completions, Some(1));
    assert_eq!(j.spec.backoff_limit, Some(6));
    assert_eq!(
        j.spec
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .get("batch.kubernetes.io/controller-uid"),
        Some(&uid)
    );
    assert_eq!(
        j.spec
            .template
            .metadata
            .labels
            .get("job-name")
            .map(String::as_str),
        Some("j")
    );
    let e = err(&job.replace(
        "  template:",
        "  completionMode: Indexed\n  completions: null\n  parallelism: 2\n  template:",
    ));
    assert!(
        e.contains("spec.completions: Required value: when completion mode is Indexed"),
        "{e}"
    );
    let e = err(&job.replace("restartPolicy: Never", "restartPolicy: Always"));
    assert!(e.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"Never\", \"OnFailure\""), "{e}");
    let e = err(&job.replace("  template:", "  backoffLimitPerIndex: 1\n  template:"));
    assert!(
        e.contains("spec.backoffLimitPerIndex: Forbidden: not supported by podshim yet"),
        "{e}"
    );
    let cj = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '*/5 * * *'\n  concurrencyPolicy: Sometimes\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: c, image: busybox:1.35}]\n";
    let e = err(cj);
    assert!(e.contains("spec.schedule: Invalid value: \"*/5 * * *\": expected exactly 5 fields, found 4: */5 * * *"), "{e}");
    assert!(e.contains("spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""), "{e}");
}

#[test]
fn job_policies_are_checked() {
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completionMode: Indexed\n  completions: 4\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: main, image: busybox:1.35}]\n";
    let with = |extra: &str| job.replace("  template:", &format!("{extra}  template:"));
    let a = ok(&with("  podFailurePolicy:\n    rules:\n    - {action: Ignore, onPodConditions: [{type: DisruptionTarget}]}\n    - {action: FailJob, onExitCodes: {containerName: main, operator: In, values: [42]}}\n  successPolicy:\n    rules: [{succeededIndexes: '0,2-3', succeededCount: 2}]\n"));
    let Workload::Job(j) = &a.workloads[0] else {
        panic!()
    };
    let pfp = j.spec.pod_failure_policy.as_ref().unwrap();
    assert_eq!(pfp.rules[0].on_pod_conditions[0].status, "True");
    assert_eq!(j.spec.pod_replacement_policy.as_deref(), Some("Failed"));
    let e = err(&with("  podFailurePolicy:\n    rules:\n    - {action: Retry, onExitCodes: {containerName: other, operator: In, values: [0, 3, 3, 2]}}\n    - {action: FailIndex, onExitCodes: {operator: Between, values: [1]}, onPodConditions: [{type: X, status: Maybe}]}\n    - {action: Count}\n"));
    for want in [
        "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Retry\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
        "spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"other\": must be one of the container or initContainer names in the pod template",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 3",
        "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 3, 3, 2}: must be ordered",
        "spec.podFailurePolicy.rules[1].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
        "spec.podFailurePolicy.rules[1].onExitCodes.operator: Unsupported value: \"Between\": supported values: \"In\", \"NotIn\"",
        "spec.podFailurePolicy.rules[1].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
        "spec.podFailurePolicy.rules[1]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
        "spec.podFailurePolicy.rules[2]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    let e = err(&with("  podFailurePolicy: {rules: [{action: Ignore, onExitCodes: {operator: In, values: [1]}}]}\n").replace("restartPolicy: Never", "restartPolicy: OnFailure"));
    assert!(e.contains("spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"), "{e}");
    let e = err(&with("  successPolicy:\n    rules: [{succeededIndexes: '0-5'}, {succeededIndexes: '2,1', succeededCount: 3}, {}]\n"));
    for want in [
        "spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"0-5\": error parsing succeededIndexes: too large index: \"5\"",
        "spec.successPolicy.rules[1].succeededIndexes: Invalid value: \"2,1\": error parsing succeededIndexes: non-increasing order, previous: 2, current: 1",
        "spec.successPolicy.rules[2]: Required value: at least one of succeededCount or succeededIndexes must be specified",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    let e = err(&with(
        "  successPolicy: {rules: [{succeededIndexes: '0-1', succeededCount: 3}]}\n",
    ));
    assert!(e.contains("spec.successPolicy.rules[0].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)"), "{e}");
    let e = err(&with("  successPolicy: {rules: [{succeededCount: 1}]}\n")
        .replace("  completionMode: Indexed\n", ""));
    assert!(e.contains("spec.successPolicy: Invalid value: batch.SuccessPolicy{Rules:[]batch.SuccessPolicyRule{batch.SuccessPolicyRule{SucceededIndexes:(*string)(nil), SucceededCount:1}}}: requires indexed completion mode"), "{e}");
}

#[test]
fn cronjob_time_zones() {
    let cj = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '30 2 * * *'\n  timeZone: Europe/Berlin\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: c, image: busybox:1.35}]\n";
    ok(cj);
    let e = err(&cj.replace("Europe/Berlin", "Europe/Pariss"));
    assert!(
        e.contains(
            "spec.timeZone: Invalid value: \"Europe/Pariss\": unknown time zone Europe/Pariss"
        ),
        "{e}"
    );
    let e = err(&cj.replace("Europe/Berlin", "Local"));
    assert!(e.contains("spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"), "{e}");
    let e = err(&cj.replace("Europe/Berlin", "../../etc/passwd"));
    assert!(
        e.contains("spec.timeZone: Invalid value: \"../../etc/passwd\": unknown time zone ../../etc/passwd"),
        "{e}"
    );
    let e = err(&cj.replace("Europe/Berlin", "''"));
    assert!(
        e.contains("spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"),
        "{e}"
    );
    // A TZ prefix parses, and is then refused: only the refusal is reported.
    let e = err(&cj
        .replace("  timeZone: Europe/Berlin\n", "")
        .replace("'30 2 * * *'", "'CRON_TZ=UTC 30 2 * * *'"));
    assert_eq!(e.matches("spec.schedule").count(), 1, "{e}");
    assert!(e.contains("spec.schedule: Invalid value: \"CRON_TZ=UTC 30 2 * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"), "{e}");
    let e = err(&cj.replace("'30 2 * * *'", "'TZ=Nowhere/Land 30 2 * * *'"));
    assert!(
        e.contains("provided bad location Nowhere/Land: unknown time zone Nowhere/Land"),
        "{e}"
    );
}

#[test]
fn kinds_and_duplicates() {
    let e = err("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\n");
    assert!(
        e.starts_with(
            "error in document 1: kind \"StatefulSet\" (apiVersion \"apps/v1\") is not supported"
        ),
        "{e}"
    );
    let e = err("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: s}\n");
    assert!(
        e.contains("apiVersion \"extensions/v1beta1\" is not supported for kind \"Deployment\""),
        "{e}"
    );
    let e = err(&format!("{DEPLOY}---\n{DEPLOY}"));
    assert!(e.contains("metadata.name: Duplicate value: \"web\""), "{e}");
    let a = ok(&format!(
        "{DEPLOY}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{a: b}}\n"
    ));
    assert_eq!((a.workloads.len(), a.config_maps.len()), (1, 1));
    assert_eq!(Kind::from_arg("deploy"), Some(Kind::Deployment));
    assert_eq!(Kind::from_arg("CJ"), Some(Kind::CronJob));
    assert_eq!(Kind::from_arg("replicasets.apps"), Some(Kind::ReplicaSet));
    assert_eq!(Kind::Job.typed(), "job.batch");
}

#[test]
fn immutable_fields() {
    let old = ok(DEPLOY).workloads.remove(0);
    let new = ok(&DEPLOY
        .replace("app: web}}\n  template", "app: web, tier: x}}\n  template")
        .replace("labels: {app: web}", "labels: {app: web, tier: x}"))
    .workloads
    .remove(0);
    let errs = validate::validate_update(&old, &new);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    assert!(validate::validate_update(&old, &old).is_empty());
}
