//! Pulls from the registry with token auth (distribution's bearer-token flow): the registry
//! answers 401 with `WWW-Authenticate: Bearer realm=...,service=...`, podshim asks the realm
//! (setup.rs's token server) for a JWT with the node's or the Pod's credentials, and the
//! registry verifies the JWT against its `rootcertbundle`. Credentials from `--authfile`, from
//! `$REGISTRY_AUTH_FILE` alone and from a Pod's `imagePullSecrets` alone; wrong ones fail with
//! the token service's reason; the token server must have seen exactly the pull scope.

use std::path::Path;
use std::process::{Output, Stdio};

use podshim_tests::base64_encode;
use podshim_tests::{lines_of, ok, stderr, uid, wait_output, Instance};

use super::setup::{
    authfile, registries, token_requests, PASSWORD, TOKEN_REPOS, TOKEN_SERVICE, USER,
};
use super::{failed_with, ls, pod_yaml, podshim, SUITE, T};

/// An instance that sees no credentials but those a test gives it: `$HOME` is its own
/// directory (no `~/.docker/config.json`), `$REGISTRY_AUTH_FILE` unset.
fn bare_instance() -> Instance {
    let mut inst = Instance::new(SUITE);
    inst.env
        .push(("HOME".into(), inst.dir.display().to_string()));
    inst
}

/// `podshim --authfile FILE run` of `yaml`.
fn run_with_authfile(inst: &Instance, file: &Path, yaml: &str, name: &str) -> Output {
    let manifest = inst.dir.join(format!("{name}.yaml"));
    std::fs::write(&manifest, yaml).unwrap();
    let child = inst
        .command()
        .arg("--authfile")
        .arg(file)
        .arg("run")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, T)
}

/// A `kubernetes.io/dockerconfigjson` Secret named `name` for `registry`.
fn pull_secret(name: &str, registry: &str, user: &str, password: &str) -> String {
    let config = serde_json::json!({"auths": {registry: {
        "auth": base64_encode(format!("{user}:{password}").as_bytes())}}})
    .to_string();
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\n\
         data:\n  .dockerconfigjson: {}\n",
        base64_encode(config.as_bytes())
    )
}

/// The token server's requests for `repo` since the setup, as (user, granted), each checked
/// to ask for `pull` on `repo` only, for the token registry's service.
fn pull_requests(repo: &str) -> Vec<(Option<String>, bool)> {
    let wanted = format!("repository:{repo}:pull");
    token_requests(repo)
        .into_iter()
        .inspect(|t| {
            assert_eq!(t.scope, wanted, "podshim asks for pull only: {t:?}");
            assert_eq!(t.service, TOKEN_SERVICE, "{t:?}");
        })
        .map(|t| (t.user, t.granted))
        .collect()
}

#[test]
fn token_auth_with_authfile() {
    let r = registries();
    let repo = TOKEN_REPOS[0];
    let image = format!("{}/{repo}:1.35", r.token);
    let inst = bare_instance();

    // No credentials: the token service refuses an anonymous token, the registry answers 401.
    let out = podshim(&inst, &["image", "pull", &image]);
    failed_with(&out, &["requires authentication", &r.token]);

    // Wrong password: the token service's own reason, and where the credentials came from.
    let wrong = authfile(&inst.dir, &r.token, USER, "wrong");
    let wrong_s = wrong.to_str().unwrap();
    let out = podshim(&inst, &["--authfile", wrong_s, "image", "pull", &image]);
    failed_with(
        &out,
        &[
            "refused the credentials",
            wrong_s,
            "the token service answered: invalid username or password",
        ],
    );
    // A Pod with them: ErrImagePull with that reason, nothing created.
    let u = uid(30);
    let yaml = pod_yaml(&inst.name("tokbad"), &u, &image, "echo never", "", "");
    let out = run_with_authfile(&inst, &wrong, &yaml, "tokbad");
    failed_with(
        &out,
        &[
            "spec.containers[0].image: ErrImagePull",
            "invalid username or password",
        ],
    );
    assert!(lines_of(&podshim_tests::stdout(&out), "c").is_empty());
    inst.assert_clean(&[&u]);
    assert!(ls(&inst).is_empty(), "nothing pulled");

    // The right password: a Pod pulls the image itself and runs from it.
    let good = authfile(&inst.dir, &r.token, USER, PASSWORD);
    let u = uid(31);
    let yaml = pod_yaml(
        &inst.name("tokgood"),
        &u,
        &image,
        "echo pulled-with-token",
        "",
        "",
    );
    let out = run_with_authfile(&inst, &good, &yaml, "tokgood");
    ok(&out);
    assert_eq!(
        lines_of(&podshim_tests::stdout(&out), "c"),
        ["pulled-with-token"]
    );
    inst.assert_clean(&[&u]);

    // The token server saw: the anonymous request, the two refused ones, one granted (the
    // token is reused for the manifest and every blob).
    let seen = pull_requests(repo);
    let user = Some(USER.to_string());
    assert_eq!(
        seen,
        [
            (None, false),
            (user.clone(), false),
            (user.clone(), false),
            (user, true)
        ],
        "{}",
        stderr(&out)
    );
}

#[test]
fn token_auth_with_pull_secret_only() {
    let r = registries();
    let repo = TOKEN_REPOS[1];
    let image = format!("{}/{repo}:1.35", r.token);

    // A Secret with a wrong password: ErrImagePull naming the secret and the token service's
    // reason.
    let inst = bare_instance();
    let u = uid(32);
    let yaml = pod_yaml(
        &inst.name("secbad"),
        &u,
        &image,
        "echo never",
        "",
        "  imagePullSecrets:\n  - name: regcred\n",
    ) + &pull_secret("regcred", &r.token, USER, "wrong");
    let out = inst.run(&yaml, T);
    failed_with(
        &out,
        &[
            "ErrImagePull",
            "refused the credentials for it from secret \"regcred\"",
            "invalid username or password",
        ],
    );
    inst.assert_clean(&[&u]);

    // The right one, in a fresh instance without any auth file: the Pod runs.
    let inst = bare_instance();
    let u = uid(33);
    let yaml = pod_yaml(
        &inst.name("secgood"),
        &u,
        &image,
        "echo pulled-with-secret",
        "",
        "  imagePullSecrets:\n  - name: regcred\n",
    ) + &pull_secret("regcred", &r.token, USER, PASSWORD);
    let out = inst.run(&yaml, T);
    ok(&out);
    assert_eq!(
        lines_of(&podshim_tests::stdout(&out), "c"),
        ["pulled-with-secret"]
    );
    inst.assert_clean(&[&u]);
    let user = Some(USER.to_string());
    assert_eq!(pull_requests(repo), [(user.clone(), false), (user, true)]);
}

#[test]
fn token_auth_with_registry_auth_file() {
    let r = registries();
    let repo = TOKEN_REPOS[2];
    let image = format!("{}/{repo}:1.35", r.token);

    // $REGISTRY_AUTH_FILE alone: a Pod pulls with it and runs.
    let mut inst = bare_instance();
    let good = authfile(&inst.dir, &r.token, USER, PASSWORD);
    inst.env
        .push(("REGISTRY_AUTH_FILE".into(), good.display().to_string()));
    let u = uid(34);
    let out = inst.run(
        &pod_yaml(
            &inst.name("envfile"),
            &u,
            &image,
            "echo env-authfile",
            "",
            "",
        ),
        T,
    );
    ok(&out);
    assert_eq!(
        lines_of(&podshim_tests::stdout(&out), "c"),
        ["env-authfile"]
    );
    inst.assert_clean(&[&u]);

    // --authfile takes precedence over it: a wrong $REGISTRY_AUTH_FILE is not used.
    let mut inst = bare_instance();
    let wrong = authfile(&inst.dir, &r.token, USER, "wrong");
    let good = authfile(&inst.dir, &r.token, USER, PASSWORD);
    inst.env
        .push(("REGISTRY_AUTH_FILE".into(), wrong.display().to_string()));
    let out = podshim(&inst, &["image", "pull", &image]);
    failed_with(
        &out,
        &["invalid username or password", wrong.to_str().unwrap()],
    );
    let out = podshim(
        &inst,
        &[
            "--authfile",
            good.to_str().unwrap(),
            "image",
            "pull",
            &image,
        ],
    );
    ok(&out);
    let user = Some(USER.to_string());
    assert_eq!(
        pull_requests(repo),
        [(user.clone(), true), (user.clone(), false), (user, true)]
    );
    inst.assert_clean(&[]);
}
