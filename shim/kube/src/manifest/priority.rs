//! Pod priority as the API server gives it: `scheduling.k8s.io/v1` PriorityClass objects of the
//! manifest (validated as `ValidatePriorityClass` does; at most one `globalDefault`), the two
//! classes every cluster has (`system-node-critical`, `system-cluster-critical`), and the Priority
//! admission plugin (`plugin/pkg/admission/priority`): it sets each Pod's `spec.priority` and
//! `spec.preemptionPolicy` from its class (or the default class, else 0), and refuses a class
//! that does not exist or a `priority`/`preemptionPolicy` that differs from the class's.

use super::error::{FieldError, FieldPath};
use super::types::{Pod, PriorityClass};
use super::validate::scheduling::preemption_policy;
use super::validate::validate_metadata;

/// `scheduling.SystemCriticalPriority`: the built-in classes and their values.
pub const SYSTEM_CLASSES: [(&str, i32); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];
/// `scheduling.HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// The default `preemptionPolicy` (of a PriorityClass, and of a Pod without one).
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// `SetDefaults_PriorityClass`, then `ValidatePriorityClass`.
pub(crate) fn default_and_validate(pc: &mut PriorityClass) -> Vec<FieldError> {
    if pc.preemption_policy.is_none() {
        pc.preemption_policy = Some(PREEMPT_LOWER_PRIORITY.to_string());
    }
    let meta = FieldPath::new("metadata");
    // Cluster-scoped: the namespaced checks of `validate_metadata` minus the namespace itself.
    let mut scoped = pc.metadata.clone();
    let namespace = scoped.namespace.replace("default".to_string());
    let mut errs = validate_metadata(&scoped, &meta);
    if namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        errs.push(FieldError::forbidden(
            &meta.child("namespace"),
            "not allowed on this type",
        ));
    }
    let name = pc.metadata.name.as_str();
    if name.starts_with("system-") {
        if let Err(why) = known_system_class(name, pc.value, pc.global_default == Some(true)) {
            errs.push(FieldError::forbidden(
                &meta.child("name"),
                format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {why}"
                ),
            ));
        }
    } else if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            &FieldPath::new("value"),
            format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    if let Some(p) = &pc.preemption_policy {
        errs.extend(preemption_policy(p, &FieldPath::new("preemptionPolicy")));
    }
    errs
}

/// `IsKnownSystemPriorityClass`.
fn known_system_class(name: &str, value: i32, global_default: bool) -> Result<(), String> {
    match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
        None => Err(format!("{name} is not a known system priority class")),
        Some((n, v)) if *v != value => Err(format!("value of {n} PriorityClass must be {v}")),
        Some((n, _)) if global_default => {
            Err(format!("globalDefault of {n} PriorityClass must be false"))
        }
        Some(_) => Ok(()),
    }
}

/// What the admission plugin computed for a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub class_name: Option<String>,
    pub priority: i32,
    pub preemption_policy: String,
}

/// The PriorityClasses a Pod can name: the manifest's and the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct Classes<'a> {
    pub manifest: &'a [PriorityClass],
}

impl Classes<'_> {
    /// `name`'s value and preemption policy.
    fn find(&self, name: &str) -> Option<(i32, String)> {
        if let Some((_, v)) = SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            return Some((*v, PREEMPT_LOWER_PRIORITY.to_string()));
        }
        self.manifest
            .iter()
            .find(|c| c.metadata.name == name)
            .map(|c| (c.value, policy_of(c)))
    }

    /// The default class (`getDefaultPriorityClass`: the lowest value if several claim it).
    fn default_class(&self) -> Option<&PriorityClass> {
        self.manifest
            .iter()
            .filter(|c| c.global_default == Some(true))
            .min_by_key(|c| c.value)
    }

    /// A second `globalDefault` class is refused when created (the priority plugin's
    /// `validatePriorityClass`): the name of the class already marked as default.
    pub fn earlier_default(&self, index: usize) -> Option<&str> {
        let pc = &self.manifest[index];
        if pc.global_default != Some(true) {
            return None;
        }
        self.manifest[..index]
            .iter()
            .find(|c| c.global_default == Some(true))
            .map(|c| c.metadata.name.as_str())
    }

    /// The Priority admission plugin on Pod create: `Err` is its Forbidden message.
    pub fn admit(&self, pod: &Pod) -> Result<Admitted, String> {
        let spec = &pod.spec;
        let named = spec
            .priority_class_name
            .as_deref()
            .filter(|n| !n.is_empty());
        let (class_name, priority, policy) = match named {
            Some(name) => match self.find(name) {
                Some((value, policy)) => (Some(name.to_string()), value, Some(policy)),
                None => return Err(format!("no PriorityClass with name {name} was found")),
            },
            None => match self.default_class() {
                Some(c) => (Some(c.metadata.name.clone()), c.value, Some(policy_of(c))),
                None => (None, 0, None),
            },
        };
        if let Some(given) = spec.priority.filter(|p| *p != priority) {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ));
        }
        if let (Some(given), Some(computed)) = (&spec.preemption_policy, &policy) {
            if given != computed {
                return Err(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
                ));
            }
        }
        let preemption_policy = policy
            .or_else(|| spec.preemption_policy.clone())
            .unwrap_or_else(|| PREEMPT_LOWER_PRIORITY.to_string());
        Ok(Admitted {
            class_name,
            priority,
            preemption_policy,
        })
    }
}

fn policy_of(c: &PriorityClass) -> String {
    c.preemption_policy
        .clone()
        .unwrap_or_else(|| PREEMPT_LOWER_PRIORITY.to_string())
}

/// Sets what admission computed on the Pod, as the API server stores it.
pub fn apply(pod: &mut Pod, a: Admitted) {
    if a.class_name.is_some() {
        pod.spec.priority_class_name = a.class_name;
    }
    pod.spec.priority = Some(a.priority);
    pod.spec.preemption_policy = Some(a.preemption_policy);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i32, default: bool, policy: Option<&str>) -> PriorityClass {
        let mut pc = PriorityClass {
            api_version: "scheduling.k8s.io/v1".into(),
            kind: "PriorityClass".into(),
            value,
            global_default: Some(default),
            preemption_policy: policy.map(str::to_string),
            ..Default::default()
        };
        pc.metadata.name = name.into();
        pc
    }

    fn pod(class: Option<&str>, priority: Option<i32>, policy: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.spec.priority_class_name = class.map(str::to_string);
        p.spec.priority = priority;
        p.spec.preemption_policy = policy.map(str::to_string);
        p
    }

    #[test]
    fn built_in_classes_and_the_default() {
        let none = Classes::default();
        let a = none
            .admit(&pod(Some("system-node-critical"), None, None))
            .unwrap();
        assert_eq!(
            (a.priority, a.preemption_policy.as_str()),
            (2_000_001_000, "PreemptLowerPriority")
        );
        let a = none
            .admit(&pod(Some("system-cluster-critical"), None, None))
            .unwrap();
        assert_eq!(a.priority, 2_000_000_000);
        let a = none.admit(&pod(None, None, Some("Never"))).unwrap();
        assert_eq!(
            (a.class_name, a.priority, a.preemption_policy.as_str()),
            (None, 0, "Never")
        );
        assert_eq!(
            none.admit(&pod(Some("high"), None, None)).unwrap_err(),
            "no PriorityClass with name high was found"
        );
        assert_eq!(
            none.admit(&pod(None, Some(5), None)).unwrap_err(),
            "the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        );
        let classes = [
            class("low", 10, true, Some("Never")),
            class("high", 1000, false, None),
        ];
        let c = Classes { manifest: &classes };
        let a = c.admit(&pod(None, None, None)).unwrap();
        assert_eq!(
            (
                a.class_name.as_deref(),
                a.priority,
                a.preemption_policy.as_str()
            ),
            (Some("low"), 10, "Never")
        );
        assert_eq!(
            c.admit(&pod(Some("high"), Some(1000), Some("Never"))).unwrap_err(),
            "the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name"
        );
        assert_eq!(
            c.admit(&pod(Some("high"), Some(1000), None))
                .unwrap()
                .priority,
            1000
        );
    }

    #[test]
    fn classes_are_validated_as_the_api_server_does() {
        let errs = |mut pc: PriorityClass| -> Vec<String> {
            default_and_validate(&mut pc)
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        assert!(errs(class("high", 1000, false, None)).is_empty());
        assert_eq!(
            errs(class("system-mine", 1, false, None)),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"]
        );
        assert_eq!(
            errs(class("system-node-critical", 5, false, None)),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000"]
        );
        assert_eq!(
            errs(class("huge", 1_000_000_001, false, Some("Sometimes"))),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
                r#"preemptionPolicy: Unsupported value: "Sometimes": supported values: "Never", "PreemptLowerPriority""#,
            ]
        );
        let mut ns = class("x", 1, false, None);
        ns.metadata.namespace = Some("default".into());
        assert_eq!(
            errs(ns),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let classes = [class("a", 1, true, None), class("b", 2, true, None)];
        let c = Classes { manifest: &classes };
        assert_eq!(c.earlier_default(1), Some("a"));
        assert_eq!(c.earlier_default(0), None);
    }
}
