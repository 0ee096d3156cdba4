//! The frontend behaves the same whoever calls it and wherever its image
//! comes from: a frontend image pulled from a registry builds the same image
//! as the one in the engine's local store.

use super::{ImageGuard, example_args};
use crate::support::{docker_build, example_context, harness, pool::PoolServer, repo, run};

#[test]
fn a_frontend_image_from_a_registry_builds_the_same_image() {
    let h = harness();
    let local = h.get("FRONTEND_IMAGE");
    let remote = format!("{}/repro-frontend:e2e-{}", h.get("REGISTRY"), h.engine());
    let r = run(h.docker().args(["tag", local, &remote]));
    assert!(r.ok, "{}", r.text);
    let r = run(h.docker().args(["push", &remote]));
    assert!(r.ok, "{}", r.text);
    // Drop the local tag so the engine has to pull it.
    let r = run(h.docker().args(["rmi", &remote]));
    assert!(r.ok, "{}", r.text);

    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("hello");
    let args = example_args(&pool);
    let recipe = repo().join("examples/hello/repro.yaml");
    let (a, id_local) = docker_build(&recipe, ctx.path(), &args);
    assert!(a.ok, "{}", a.text);
    let _guard = ImageGuard(id_local.clone());

    // The same recipe with only its syntax line changed.
    let text = std::fs::read_to_string(&recipe).unwrap();
    let rest = text.split_once('\n').unwrap().1;
    let moved = ctx.path().join("repro-remote.yaml");
    std::fs::write(&moved, format!("# syntax={remote}\n{rest}")).unwrap();
    let (b, id_remote) = docker_build(&moved, ctx.path(), &args);
    assert!(b.ok, "{}", b.text);
    assert!(
        b.text.contains(&format!("frontend image {remote}")),
        "{}",
        b.text
    );
    assert_eq!(
        id_local, id_remote,
        "the frontend's source changed the image"
    );
}
