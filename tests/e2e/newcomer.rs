//! The walls a newcomer hits first, each with a message that says what is
//! wrong and what to do (issue 23). Where the engine answers before our
//! frontend runs, the message is the engine's: the tests check that
//! docs/troubleshooting.md quotes it as the engine prints it.

use crate::e2e::example_args;
use crate::support::pool::PoolServer;
use crate::support::{docker_build, example_context, harness, repo};

/// The example's recipe, edited, in its copied context.
fn edit_recipe(ctx: &std::path::Path, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let recipe = ctx.join("repro.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(&recipe, edit(&text)).unwrap();
    recipe
}

fn stale_lock_allowed(text: &str) -> String {
    text.replace(
        "  install: [hello]\n",
        "  install: [hello]\n  allow-stale-lock: true\n",
    )
}

fn troubleshooting() -> String {
    std::fs::read_to_string(repo().join("docs/troubleshooting.md"))
        .expect("docs/troubleshooting.md")
}

// Issue 23: such a base failed with the runtime's `exec: "dpkg":
// executable file not found`.
#[test]
fn a_base_without_a_package_tool_says_so_and_what_to_do() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let mut args = example_args(&pool);
    let i = args.iter().position(|a| a.starts_with("BASE=")).unwrap();
    args[i] = format!("BASE={}", h.get("NODPKG_BASE_REF"));
    let ctx = example_context("hello");
    let recipe = edit_recipe(ctx.path(), stale_lock_allowed);
    let (r, id) = docker_build(&recipe, ctx.path(), &args);
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    assert!(
        r.text
            .contains("this base image has no dpkg, so its .deb packages cannot be installed")
            && r.text.contains("use a base image that has dpkg")
            && r.text.contains("remove packages: from the recipe"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("executable file not found"), "{}", r.text);
}

#[test]
fn a_lockfile_for_another_architecture_is_refused_at_its_line() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    // The arm64 lockfile under the amd64 name, as a hand-copied file ends up.
    std::fs::copy(
        repo().join("examples/hello/SHA256SUMS-arm64"),
        ctx.path().join("SHA256SUMS-amd64"),
    )
    .unwrap();
    let lock = std::fs::read_to_string(ctx.path().join("SHA256SUMS-amd64")).unwrap();
    let line = 1 + lock
        .lines()
        .position(|l| l.ends_with("  pool/main/h/hello/hello_2.10-3_arm64.deb"))
        .expect("the arm64 lockfile names hello for arm64");
    let recipe = edit_recipe(ctx.path(), stale_lock_allowed);
    let (r, id) = docker_build(&recipe, ctx.path(), &example_args(&pool));
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    let want = format!(
        "SHA256SUMS-amd64:{line}:67: \"pool/main/h/hello/hello_2.10-3_arm64.deb\" is a package for arm64, and this build is for linux/amd64"
    );
    assert!(r.text.contains(&want), "want {want:?} in:\n{}", r.text);
    assert!(
        r.text.contains("--target lock --platform linux/amd64"),
        "{}",
        r.text
    );
    // Refused before anything was fetched.
    assert!(!r.text.contains("fetch hello_2.10-3"), "{}", r.text);
}

/// The engine's own words, which the troubleshooting page must quote.
fn assert_documented(engine_says: &str, text: &str) {
    assert!(
        text.contains(engine_says),
        "the engine no longer says {engine_says:?}:\n{text}"
    );
    assert!(
        troubleshooting().contains(engine_says),
        "docs/troubleshooting.md does not quote {engine_says:?}"
    );
}

#[test]
fn a_recipe_without_the_syntax_line_meets_the_dockerfile_parser_as_documented() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    let recipe = edit_recipe(ctx.path(), |t| {
        t.split_once('\n').expect("a first line").1.to_string()
    });
    let (r, id) = docker_build(&recipe, ctx.path(), &example_args(&pool));
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    // Docker 20.10 upper-cases the word; later Dockerfile frontends keep it.
    let says = if harness().engine() == "20" {
        "unknown instruction: VERSION:"
    } else {
        "unknown instruction: version:"
    };
    assert_documented(says, &r.text);
}

#[test]
fn an_unreachable_frontend_image_is_named_as_documented() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    let missing = format!("{}/repro/no-such-frontend:v0", harness().get("REGISTRY"));
    let recipe = edit_recipe(ctx.path(), |t| {
        let rest = t.split_once('\n').expect("a first line").1;
        format!("# syntax={missing}\n{rest}")
    });
    let (r, id) = docker_build(&recipe, ctx.path(), &example_args(&pool));
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    assert!(
        r.text.contains(&format!("{missing}: not found")),
        "{}",
        r.text
    );
    assert_documented("resolve image config for", &r.text);
}
