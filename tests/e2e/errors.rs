//! Failures reach the user through `docker build` output, with their place.

use sha2::{Digest, Sha256};

use super::example_args;
use crate::support::{
    FAILING_STEP_LINES, docker_build, docker_build_alone, example_context, failing_step_recipe,
    harness, lock_entries, lock_entry, marked_lines, pool::Fault, pool::PoolServer, repo, run,
};

#[test]
fn a_blob_with_wrong_bytes_fails_before_anything_is_installed() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("hello");
    let (sum, name) = lock_entry(ctx.path(), "/hello_");
    let name = name.as_str();
    pool.fault(name, Fault::WrongBytes);
    let mut served = std::fs::read(h.pool_dir().join(name)).unwrap();
    served[0] ^= 0xff;
    let served_sum = hex::encode(Sha256::digest(&served));

    let (r, id) = docker_build_alone(
        &repo().join("examples/hello/repro.yaml"),
        ctx.path(),
        &example_args(&pool),
    );
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    for needle in [
        name.to_string(),
        format!("{}/{name}", pool.url),
        format!("sha256:{sum}"),
        format!("sha256:{served_sum}"),
    ] {
        assert!(
            r.text.contains(&needle),
            "output lacks {needle:?}:\n{}",
            r.text
        );
    }
    assert!(
        !r.text.contains("with dpkg"),
        "the install step must not start:\n{}",
        r.text
    );
}

#[test]
fn a_missing_blob_names_the_package_and_the_url() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("hello");
    let name = lock_entries(&ctx.path().join("SHA256SUMS-amd64"))
        .swap_remove(0)
        .name;
    pool.fault(&name, Fault::NotFound);
    let (r, id) = docker_build_alone(
        &repo().join("examples/hello/repro.yaml"),
        ctx.path(),
        &example_args(&pool),
    );
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    // Docker 20.10's BuildKit does not check the HTTP status: the empty body
    // of the 404 fails the checksum, and the failed fetch names the URL.
    let url = format!("{}/{name}", pool.url);
    assert!(r.text.contains(&url), "{}", r.text);
    assert!(r.text.contains("digest mismatch"), "{}", r.text);
    assert!(!r.text.contains("with dpkg"), "{}", r.text);
}

/// Builds a recipe written into a fresh context and returns the output.
fn build_text(recipe: &str, extra: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repro.yaml");
    std::fs::write(&path, recipe).unwrap();
    let (r, id) = docker_build(&path, dir.path(), extra);
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    r.text
}

#[test]
fn a_bad_recipe_fails_with_its_line_in_the_build_output() {
    let case = repo().join("tests/data/recipes/negative/unknown-step");
    let recipe = std::fs::read_to_string(case.join("repro.yaml")).unwrap();
    let expected = std::fs::read_to_string(case.join("error.txt")).unwrap();
    let text = build_text(&recipe, &[]);
    assert!(
        text.contains(expected.trim()),
        "output lacks {:?}:\n{text}",
        expected.trim()
    );
    // The recipe goes back with the error: buildx prints the line, marked.
    if harness().engine() == "26" {
        let (line, _) = expected.trim().split_once(": ").unwrap();
        let n: usize = line.split(':').nth(1).unwrap().parse().unwrap();
        let wanted = recipe.lines().nth(n - 1).unwrap();
        assert_eq!(marked_lines(&text), [wanted], "{text}");
    }
}

/// Issue 12: a failing `run` step shows the recipe lines it came from.
#[test]
fn a_failing_run_step_points_at_its_recipe_lines() {
    let h = harness();
    let text = build_text(&failing_step_recipe(h.base_ref()), &[]);
    assert!(text.contains("exit code: 3"), "{text}");
    if h.engine() == "26" {
        assert!(text.contains("repro.yaml:6\n"), "{text}");
        assert_eq!(marked_lines(&text), FAILING_STEP_LINES, "{text}");
    } else {
        // Docker 20.10's `docker build` prints no source snippets (not for
        // Dockerfiles either); the step's progress name is what it shows.
        assert!(text.contains("run echo two"), "{text}");
        assert!(marked_lines(&text).is_empty(), "{text}");
    }
}

/// Issue 12: an error found before solving (a bad lockfile line) goes back
/// with the lockfile, and buildx prints the line.
#[test]
fn a_bad_lockfile_line_is_shown_in_the_lockfile() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let good = format!("{}  pool/main/a/a_1_amd64.deb", "a".repeat(64));
    std::fs::write(
        dir.path().join("SHA256SUMS-amd64"),
        format!("{good}\nnot-a-hash  pool/main/b/b_1_amd64.deb\n"),
    )
    .unwrap();
    let recipe = format!(
        "# syntax=repro-frontend:v0\nbase: {}\nepoch: 0\npackages:\n  sums: SHA256SUMS-amd64\n  providers: [\"http://127.0.0.1:9/{{{{.Name}}}}\"]\n",
        h.base_ref()
    );
    let path = dir.path().join("repro.yaml");
    std::fs::write(&path, recipe).unwrap();
    let (r, id) = docker_build(&path, dir.path(), &[]);
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    assert!(r.text.contains("SHA256SUMS-amd64:2:1: "), "{}", r.text);
    if h.engine() == "26" {
        assert!(r.text.contains("SHA256SUMS-amd64:2\n"), "{}", r.text);
        assert_eq!(
            marked_lines(&r.text),
            ["not-a-hash  pool/main/b/b_1_amd64.deb"],
            "{}",
            r.text
        );
    }
}

#[test]
fn an_unpinned_base_is_refused_with_the_digest_to_paste() {
    let h = harness();
    let (name, _) = h.base_ref().split_once('@').unwrap();
    let recipe = format!("# syntax=repro-frontend:v0\nbase: {name}:bookworm\n");
    let text = build_text(&recipe, &[]);
    // What the tag points at now, asked of the registry itself.
    let digest = registry_digest(name, "bookworm");
    let paste = format!("{name}:bookworm@{digest}");
    assert!(text.contains("repro.yaml:2:7: base image"), "{text}");
    assert!(text.contains(&paste), "output lacks {paste:?}:\n{text}");
}

/// The manifest digest a tag has in the local registry (`repo` is
/// `127.0.0.1:5000/<path>`).
fn registry_digest(repo: &str, tag: &str) -> String {
    let (host, path) = repo.split_once('/').unwrap();
    let r = run(std::process::Command::new("curl").args([
        "-fsSI",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json",
        &format!("http://{host}/v2/{path}/manifests/{tag}"),
    ]));
    assert!(r.ok, "{}", r.text);
    r.text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest header:\n{}", r.text))
}

#[test]
fn an_undeclared_build_arg_is_an_error() {
    let h = harness();
    let recipe = format!(
        "# syntax=repro-frontend:v0\nargs:\n  A: x\nbase: {}\n",
        h.base_ref()
    );
    let text = build_text(&recipe, &["--build-arg".into(), "NOPE=1".into()]);
    assert!(
        text.contains("build arg \"NOPE\" is not declared in the recipe (declared: A)"),
        "{text}"
    );
}

/// The python corpus set's context, with `edit` applied to its lockfile.
fn python_with_lockfile(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let ctx = crate::support::corpus_context("python");
    let path = ctx.path().join("SHA256SUMS-amd64");
    let lock = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&lock)).unwrap();
    ctx
}

/// The last line the engine prints for a failed exec quotes its argv
/// ("executor failed running [...]" on 20.10, "process ... did not complete
/// successfully" later).
fn failed_process_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| {
            l.contains("did not complete successfully") || l.contains("executor failed running")
        })
        .unwrap_or_else(|| panic!("no failed-process line:\n{text}"))
}

#[test]
fn an_install_failure_names_the_package_and_apts_reason_last() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    // A lockfile missing one package of the closure (edited by hand).
    let ctx = python_with_lockfile(|lock| {
        lock.lines()
            .filter(|l| !l.contains("/python3.11-minimal_"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let (r, id) = docker_build(
        &repo().join("tests/corpus/python/repro.yaml"),
        ctx.path(),
        &example_args(&pool),
    );
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    let summary = r
        .text
        .find("repro-frontend: apt-get (offline) failed")
        .unwrap_or_else(|| panic!("no failure summary:\n{}", r.text));
    let tail = &r.text[summary..];
    assert!(
        tail.contains("python3-minimal : PreDepends: python3.11-minimal")
            && tail.contains("E: ")
            && tail.contains("--target lock"),
        "the summary lacks the package, apt's reason or the remedy:\n{tail}"
    );
    // The argv in BuildKit's own error line stays short.
    let line = failed_process_line(&r.text);
    assert!(line.len() < 300, "long error line: {line}");
    assert!(
        line.contains("repro-frontend install --tool dpkg"),
        "{line}"
    );
    // Issue 12: buildx shows the recipe's packages section with the error.
    if h.engine() == "26" {
        let marked = marked_lines(&r.text);
        assert_eq!(
            marked.first().copied(),
            Some("packages:"),
            "{marked:?}:\n{}",
            r.text
        );
        assert!(
            marked.contains(&"  install: [python3, python3-yaml]"),
            "{marked:?}"
        );
    }
}

#[test]
fn a_base_without_apt_installs_with_dpkg_and_says_what_pre_depends_need() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let base = format!("BASE={}", h.get("NOAPT_BASE_REF"));
    let mut args = example_args(&pool);
    let i = args.iter().position(|a| a.starts_with("BASE=")).unwrap();
    args[i] = base;
    // hello has no Pre-Depends: dpkg alone installs it. (The lockfiles were
    // made for the harness's base, hence allow-stale-lock.)
    let ctx = example_context("hello");
    let recipe = ctx.path().join("repro.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(
        &recipe,
        text.replace(
            "  install: [hello]\n",
            "  install: [hello]\n  allow-stale-lock: true\n",
        ),
    )
    .unwrap();
    let (r, id) = docker_build(&recipe, ctx.path(), &args);
    assert!(r.ok, "hello on a base without apt:\n{}", r.text);
    let _guard = super::ImageGuard(id.clone());
    assert!(
        r.text.contains("with dpkg") && r.text.contains("installing 1 verified file(s) with dpkg"),
        "{}",
        r.text
    );
    let out = run(h.docker().args(["run", "--rm", id.as_deref().unwrap()]));
    assert_eq!(out.text.trim(), "Hello, world!", "{}", out.text);

    // python3's Pre-Depends chain needs apt: the error says so.
    let ctx = python_with_lockfile(str::to_string);
    let recipe = ctx.path().join("repro.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(
        &recipe,
        text.replace("  sums:", "  allow-stale-lock: true\n  sums:"),
    )
    .unwrap();
    let (r, id) = docker_build(&recipe, ctx.path(), &args);
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    assert!(
        r.text.contains("pre-dependency problem")
            && r.text.contains("this base image has no apt-get")
            && r.text.contains("use a base image that has apt"),
        "{}",
        r.text
    );
}
