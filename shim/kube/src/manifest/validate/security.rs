//! Security profiles and sysctls as the API server validates them (`validateSeccompProfileField`,
//! `validateAppArmorProfileField`, `validateSysctls`).

use super::volume::local_descending_path;
use crate::manifest::error::{FieldError, FieldPath};
use crate::manifest::types::{PodSpec, SecurityProfile};

const PROFILE_TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];
/// `SysctlSegmentFmt` joined by `.` or `/` (apimachinery `IsValidSysctlName`'s `SysctlFmt`).
const SYSCTL_FMT: &str = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";
const SYSCTL_MAX: usize = 253;
/// `maxLocalhostProfileLength` of AppArmor profile names.
const APPARMOR_PROFILE_MAX: usize = 4095;

/// `seccompProfile` (what = "seccomp") or `appArmorProfile` (what = "AppArmor").
pub fn profile(p: &SecurityProfile, what: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let tp = path.child("type");
    match p.type_.as_str() {
        "" => errs.push(FieldError::required(
            &tp,
            format!("type is required when {} is set", field_name(what)),
        )),
        t if !PROFILE_TYPES.contains(&t) => {
            errs.push(FieldError::not_supported(&tp, t, &PROFILE_TYPES))
        }
        _ => {}
    }
    let lp = path.child("localhostProfile");
    if p.type_ == "Localhost" {
        match p.localhost_profile.as_deref() {
            None | Some("") => errs.push(FieldError::required(
                &lp,
                format!("must be set when {what} type is Localhost"),
            )),
            Some(name) if what == "seccomp" => errs.extend(local_descending_path(name, &lp)),
            Some(name) if name.len() > APPARMOR_PROFILE_MAX => {
                errs.push(FieldError::too_long(&lp, APPARMOR_PROFILE_MAX))
            }
            Some(_) => {}
        }
    } else if let Some(name) = &p.localhost_profile {
        errs.push(FieldError::invalid(
            &lp,
            name.as_str(),
            format!("can only be set when {what} type is Localhost"),
        ));
    }
    errs
}

fn field_name(what: &str) -> &'static str {
    if what == "seccomp" {
        "seccompProfile"
    } else {
        "appArmorProfile"
    }
}

fn is_sysctl_segment(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && ok(b[0])
        && ok(b[b.len() - 1])
        && b.iter().all(|&c| ok(c) || c == b'-' || c == b'_')
}

/// apimachinery `IsValidSysctlName`: segments of `[a-z0-9]([-_a-z0-9]*[a-z0-9])?` separated by
/// `.` or `/`, at most 253 characters.
pub fn valid_sysctl_name(name: &str) -> bool {
    name.len() <= SYSCTL_MAX && name.split(['.', '/']).all(is_sysctl_segment)
}

/// `validateSysctls`' name check, and the profiles of the Pod and its containers.
pub fn validate(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = path.child("securityContext");
    if let Some(sc) = &spec.security_context {
        for (i, s) in sc.sysctls.iter().enumerate() {
            if !s.name.is_empty() && !valid_sysctl_name(&s.name) {
                errs.push(FieldError::invalid(
                    &sp.child("sysctls").index(i).child("name"),
                    s.name.as_str(),
                    format!(
                        "must have at most {SYSCTL_MAX} characters and match regex {SYSCTL_FMT}"
                    ),
                ));
            }
        }
        if let Some(p) = &sc.seccomp_profile {
            errs.extend(profile(p, "seccomp", &sp.child("seccompProfile")));
        }
        if let Some(p) = sc.supplemental_groups_policy.as_deref() {
            const POLICIES: [&str; 2] = ["Merge", "Strict"];
            if !POLICIES.contains(&p) {
                let fp = sp.child("supplementalGroupsPolicy");
                errs.push(FieldError::not_supported(&fp, p, &POLICIES));
            }
        }
        if let Some(p) = sc.fs_group_change_policy.as_deref() {
            const POLICIES: [&str; 2] = ["OnRootMismatch", "Always"];
            if !POLICIES.contains(&p) {
                let fp = sp.child("fsGroupChangePolicy");
                errs.push(FieldError::not_supported(&fp, p, &POLICIES));
            }
        }
        if let Some(p) = &sc.app_armor_profile {
            errs.extend(profile(p, "AppArmor", &sp.child("appArmorProfile")));
        }
    }
    for (list, containers) in [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ] {
        for (i, c) in containers.iter().enumerate() {
            let Some(sc) = &c.security_context else {
                continue;
            };
            let cp = path.child(list).index(i).child("securityContext");
            if let Some(p) = &sc.seccomp_profile {
                errs.extend(profile(p, "seccomp", &cp.child("seccompProfile")));
            }
            if let Some(p) = &sc.app_armor_profile {
                errs.extend(profile(p, "AppArmor", &cp.child("appArmorProfile")));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names() {
        for ok in [
            "net.ipv4.ip_local_port_range",
            "kernel/shm_rmid_forced",
            "a",
        ] {
            assert!(valid_sysctl_name(ok), "{ok}");
        }
        for bad in [
            "",
            "net..ipv4",
            "Net.ipv4",
            "net.ipv4.",
            "-a",
            &"a".repeat(254),
        ] {
            assert!(!valid_sysctl_name(bad), "{bad}");
        }
    }

    #[test]
    fn profiles() {
        let p = FieldPath::new("spec")
            .child("securityContext")
            .child("seccompProfile");
        let prof = |t: &str, l: Option<&str>| SecurityProfile {
            type_: t.into(),
            localhost_profile: l.map(str::to_string),
        };
        let msgs = |e: Vec<FieldError>| e.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert!(profile(&prof("RuntimeDefault", None), "seccomp", &p).is_empty());
        assert_eq!(
            msgs(profile(&prof("Localhost", None), "seccomp", &p)),
            ["spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"]
        );
        assert_eq!(
            msgs(profile(&prof("Localhost", Some("../x.json")), "seccomp", &p)),
            ["spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"../x.json\": must not contain '..'"]
        );
        assert_eq!(
            msgs(profile(&prof("Unconfined", Some("x")), "AppArmor", &p)),
            ["spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"x\": can only be set when AppArmor type is Localhost"]
        );
        assert_eq!(
            msgs(profile(&prof("Strict", None), "seccomp", &p)),
            ["spec.securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""]
        );
    }
}
