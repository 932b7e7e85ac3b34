//! The kernel's limits on what `execve(2)` takes, checked before a container is created: a
//! process whose arguments and environment the kernel would refuse (`E2BIG`, "argument list too
//! long") can never start, and its container's init would otherwise fail only after `start`,
//! inside the container, where nobody hears why (the container just exits 255 with an empty
//! log). Refused here, it is a start failure with the kernel's own words, as Kubernetes reports
//! runc's failed exec (`StartError`).
//!
//! The rules are Linux's `fs/exec.c`: each string (argument or `KEY=VALUE`, with its NUL) is at
//! most `MAX_ARG_STRLEN` (32 pages); all strings, the executable's name and one pointer per
//! string fit in a quarter of the stack limit (`RLIMIT_STACK`), at most 3/4 of the 8 MiB
//! `_STK_LIM` and at least `ARG_MAX` (32 pages) (`bprm_stack_limits`).

const PAGE: u64 = 4096;
/// `MAX_ARG_STRLEN`: one string, with its NUL.
pub const MAX_ARG_STRLEN: u64 = 32 * PAGE;
/// `ARG_MAX`: the space every process gets, whatever its stack limit.
const ARG_MAX: u64 = 32 * PAGE;
/// `_STK_LIM`: the kernel caps the space at 3/4 of it.
const STK_LIM: u64 = 8 << 20;

/// Why `execve` would fail with E2BIG, or `Ok` when the kernel takes these.
pub fn check(args: &[String], env: &[String], stack_limit: u64) -> Result<(), String> {
    for (what, list) in [("argument", args), ("environment variable", env)] {
        for (i, s) in list.iter().enumerate() {
            let len = s.len() as u64 + 1;
            if len > MAX_ARG_STRLEN {
                let name = match what {
                    "argument" => format!("argument {i}"),
                    _ => format!("environment variable {}", s.split('=').next().unwrap_or(s)),
                };
                return Err(format!(
                    "{name} is {len} bytes, over the kernel's {MAX_ARG_STRLEN} per string"
                ));
            }
        }
    }
    let space = (STK_LIM / 4 * 3).min(stack_limit / 4).max(ARG_MAX);
    let pointers = (args.len().max(1) + env.len()) as u64 * 8;
    let strings: u64 = args.iter().chain(env).map(|s| s.len() as u64 + 1).sum();
    // The executable's name is copied too (the resolved path: its length is not known here;
    // the name as given is the least it takes), and one pointer at the top.
    let exe = args.first().map_or(0, |a| a.len() as u64 + 1) + 8;
    let needed = pointers + strings + exe;
    if needed > space {
        return Err(format!(
            "arguments and environment take {needed} bytes, over the {space} the kernel allows \
             with a stack limit of {stack_limit} bytes"
        ));
    }
    Ok(())
}

/// The stack limit the container's process gets: its spec's `RLIMIT_STACK`, else this
/// process's (which libcontainer's init inherits).
pub fn stack_limit(spec: &libcontainer::oci_spec::runtime::Spec) -> u64 {
    use libcontainer::oci_spec::runtime::PosixRlimitType;
    let from_spec = spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().as_ref())
        .and_then(|l| l.iter().find(|r| r.typ() == PosixRlimitType::RlimitStack))
        .map(|r| r.soft());
    from_spec.unwrap_or_else(|| {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK)
            .map(|(soft, _)| soft)
            .unwrap_or(STK_LIM)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: usize) -> String {
        "x".repeat(n)
    }

    #[test]
    fn one_string_over_32_pages_is_refused() {
        let ok = format!("BIG={}", s(131_071 - 4));
        assert_eq!(check(&["sh".into()], &[ok], 8 << 20), Ok(()));
        let big = format!("BIG={}", s(131_072 - 4));
        let err = check(&["sh".into()], &[big], 8 << 20).unwrap_err();
        assert_eq!(
            err,
            "environment variable BIG is 131073 bytes, over the kernel's 131072 per string"
        );
        let err = check(&["sh".into(), s(200_000)], &[], 8 << 20).unwrap_err();
        assert!(err.starts_with("argument 1 is 200001 bytes"), "{err}");
    }

    #[test]
    fn the_total_fits_a_quarter_of_the_stack_limit_within_the_kernels_bounds() {
        let env: Vec<String> = (0..20).map(|i| format!("V{i:02}={}", s(110_000))).collect();
        // 2.2 MB: over a quarter of 8 MiB, under 3/4 of _STK_LIM (an unlimited stack).
        let err = check(&["sh".into()], &env, 8 << 20).unwrap_err();
        assert!(err.contains("over the 2097152 the kernel allows"), "{err}");
        assert_eq!(check(&["sh".into()], &env, u64::MAX), Ok(()));
        // A tiny stack limit still leaves ARG_MAX.
        assert_eq!(check(&["sh".into()], &[s(100_000)], 4096), Ok(()));
        assert!(check(&["sh".into()], &[s(100_000), s(100_000)], 4096).is_err());
    }
}
