//! Providers tried in order, through a real engine: fault injection on the
//! package servers, registry blobs, blobs from the build context.

use sha2::{Digest, Sha256};

use super::example_args;
use crate::support::cid::{raw_cid, v0_cid};
use crate::support::pool::{Fault, PoolServer};
use crate::support::{
    docker_build, docker_build_alone, docker_build_output, example_context, harness, lock_entries,
    repo, run,
};

/// The hello example's one blob: (sha256, name).
fn hello_blob() -> (String, String) {
    let lock = std::fs::read_to_string(harness().lockfile("hello")).unwrap();
    let (sum, name) = lock
        .lines()
        .find_map(|l| l.split_once("  "))
        .expect("an entry");
    (sum.to_string(), name.to_string())
}

/// The fetch step runs in the build's network, like a `run` step; these
/// providers listen on the build host's loopback, so the builds use the host
/// network, as a user with a cache on localhost would.
fn host_network() -> Vec<String> {
    let mut a = vec!["--network".to_string(), "host".to_string()];
    if harness().engine() == "26" {
        a.extend(["--allow".to_string(), "network.host".to_string()]);
    }
    a
}

/// Builds examples/hello with `REPRO_PROVIDERS` put in front of the recipe's
/// provider (`mirror`).
fn build_hello(
    front: &[String],
    mirror: &str,
    alone: bool,
) -> (crate::support::Run, Option<String>) {
    build_hello_with(front, mirror, alone, "")
}

/// [`build_hello`] with `more` appended to the lockfile (`/ipfs/` lines).
fn build_hello_with(
    front: &[String],
    mirror: &str,
    alone: bool,
    more: &str,
) -> (crate::support::Run, Option<String>) {
    build_hello_in(example_context("hello"), front, mirror, alone, more)
}

/// [`build_hello_with`] in a context of the caller's (its recipe edited).
fn build_hello_in(
    ctx: tempfile::TempDir,
    front: &[String],
    mirror: &str,
    alone: bool,
    more: &str,
) -> (crate::support::Run, Option<String>) {
    if !more.is_empty() {
        let lock = ctx.path().join("SHA256SUMS-amd64");
        let text = std::fs::read_to_string(&lock).unwrap();
        std::fs::write(&lock, format!("{text}{more}")).unwrap();
    }
    let mut args = vec![
        "--no-cache".to_string(),
        "--build-arg".into(),
        format!("BASE={}", harness().base_ref()),
        "--build-arg".into(),
        format!("MIRROR={mirror}"),
    ];
    args.extend(host_network());
    if !front.is_empty() {
        args.push("--build-arg".into());
        args.push(format!("REPRO_PROVIDERS={}", front.join(" ")));
    }
    let recipe = ctx.path().join("repro.yaml");
    if alone {
        docker_build_alone(&recipe, ctx.path(), &args)
    } else {
        docker_build(&recipe, ctx.path(), &args)
    }
}

/// The image a build with the healthy pool as the only provider gives; built
/// once per test run (five tests compare against it).
fn clean_id() -> String {
    static CLEAN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLEAN
        .get_or_init(|| {
            let pool = PoolServer::start(harness().pool_dir());
            let ctx = example_context("hello");
            let (r, id) = docker_build(
                &repo().join("examples/hello/repro.yaml"),
                ctx.path(),
                &example_args(&pool),
            );
            assert!(r.ok, "{}", r.text);
            id.expect("image id")
        })
        .clone()
}

#[test]
fn a_down_first_provider_falls_through_to_the_second_and_the_image_is_the_same() {
    let pool = PoolServer::start(harness().pool_dir());
    let down = format!("{}/{{{{.Name}}}}", PoolServer::closed_url());
    let (r, id) = build_hello(&[down], &pool.url, false);
    assert!(r.ok, "{}", r.text);
    let (_, name) = hello_blob();
    let base = name.rsplit('/').next().unwrap();
    assert!(
        r.text.contains(&format!(
            "fetched {base} from {}/{name} (after 1 failed provider(s))",
            pool.url
        )),
        "{}",
        r.text
    );
    assert_eq!(
        id.expect("image id"),
        clean_id(),
        "the provider that answered changed the image"
    );
}

#[test]
fn wrong_bytes_everywhere_fail_with_the_package_and_both_digests() {
    let (sum, name) = hello_blob();
    let a = PoolServer::start(harness().pool_dir());
    let b = PoolServer::start(harness().pool_dir());
    a.fault(&name, Fault::WrongBytes);
    b.fault(&name, Fault::WrongBytes);
    let mut served = std::fs::read(harness().pool_dir().join(&name)).unwrap();
    served[0] ^= 0xff;
    let served = hex::encode(Sha256::digest(&served));
    let (r, id) = build_hello(&[format!("{}/{{{{.Name}}}}", a.url)], &b.url, true);
    assert!(!r.ok && id.is_none(), "{}", r.text);
    for needle in [
        "1 of 1 package(s) could not be fetched and verified; nothing was installed:".to_string(),
        format!("{name} (sha256:{sum}):"),
        format!(
            "{}/{name}: wrong bytes: got sha256:{served}, the lockfile says sha256:{sum}",
            a.url
        ),
        format!("{}/{name}: wrong bytes: got sha256:{served}", b.url),
    ] {
        assert!(
            r.text.contains(&needle),
            "output lacks {needle:?}:\n{}",
            r.text
        );
    }
    assert!(!r.text.contains("with dpkg (no network)\n#"), "{}", r.text);
}

#[test]
fn when_every_provider_fails_each_attempt_is_listed() {
    let (_, name) = hello_blob();
    let down = PoolServer::closed_url();
    let broken = PoolServer::start(harness().pool_dir());
    broken.fault(&name, Fault::ServerError);
    let missing = PoolServer::start(harness().pool_dir());
    missing.fault(&name, Fault::NotFound);
    let (r, id) = build_hello(
        &[
            format!("{down}/{{{{.Name}}}}"),
            format!("{}/{{{{.Name}}}}", broken.url),
        ],
        &missing.url,
        true,
    );
    assert!(!r.ok && id.is_none(), "{}", r.text);
    for needle in [
        format!("{down}/{name}: "),
        format!("{}/{name}: HTTP 500", broken.url),
        format!("{}/{name}: HTTP 404", missing.url),
    ] {
        assert!(
            r.text.contains(&needle),
            "output lacks {needle:?}:\n{}",
            r.text
        );
    }
}

#[test]
fn registry_blobs_by_digest_via_oci_providers() {
    let h = harness();
    let (sum, name) = hello_blob();
    let repo_path = format!("repro/blobs-{}", h.engine());
    let registry = h.get("REGISTRY");
    // Upload the blob with the registry's HTTP API (monolithic upload).
    let r = run(std::process::Command::new("curl").args([
        "-fsS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("http://{registry}/v2/{repo_path}/blobs/uploads/"),
    ]));
    assert!(r.ok, "{}", r.text);
    let location = r
        .text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("an upload location")
        .trim()
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{registry}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = run(std::process::Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", h.pool_dir().join(&name).display()),
        &format!("{location}{sep}digest=sha256:{sum}"),
    ]));
    assert!(put.ok, "{}", put.text);

    // The registry first; the recipe's mirror is down.
    let (r, id) = build_hello(
        &[format!("oci://{registry}/{repo_path}")],
        &PoolServer::closed_url(),
        false,
    );
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text
            .contains(&format!("from oci://{registry}/{repo_path}")),
        "{}",
        r.text
    );
    assert_eq!(id.expect("image id"), clean_id());
}

/// Builds examples/hello in `ctx` with its blobs read from `ctx/blobs` and
/// the recipe's mirror closed.
fn build_air_gapped(ctx: &std::path::Path) -> (crate::support::Run, Option<String>) {
    let args = vec![
        "--no-cache".to_string(),
        "--build-arg".into(),
        format!("BASE={}", harness().base_ref()),
        "--build-arg".into(),
        format!("MIRROR={}", PoolServer::closed_url()),
        "--build-arg".into(),
        "REPRO_PROVIDERS=context://blobs/{{.Basename}}".into(),
    ];
    docker_build(&repo().join("examples/hello/repro.yaml"), ctx, &args)
}

#[test]
fn air_gapped_blobs_come_from_the_build_context() {
    let (_, name) = hello_blob();
    let ctx = example_context("hello");
    let base = name.rsplit('/').next().unwrap().to_string();
    std::fs::create_dir_all(ctx.path().join("blobs")).unwrap();
    std::fs::copy(
        harness().pool_dir().join(&name),
        ctx.path().join("blobs").join(&base),
    )
    .unwrap();
    let (r, id) = build_air_gapped(ctx.path());
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text
            .contains(&format!("fetched {base} from context://blobs/{base}")),
        "{}",
        r.text
    );
    assert_eq!(id.expect("image id"), clean_id());
}

#[test]
fn without_providers_the_base_images_own_sources_are_used() {
    let h = harness();
    let ctx = example_context("hello");
    // The example with its providers removed.
    let text = std::fs::read_to_string(repo().join("examples/hello/repro.yaml")).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.trim_start().starts_with("providers:") {
            skipping = true;
            continue;
        }
        if skipping && line.trim_start().starts_with("- ") {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    assert!(!out.contains("{{.Name}}"), "{out}");
    let recipe = ctx.path().join("repro.yaml");
    std::fs::write(&recipe, out).unwrap();
    let args = vec![
        "--no-cache".to_string(),
        "--build-arg".into(),
        format!("BASE={}", h.base_ref()),
    ];
    let (r, id) = docker_build(&recipe, ctx.path(), &args);
    assert!(r.ok, "{}", r.text);
    // The mirror the base image's apt sources name (the harness wrote down
    // where its lockfile's URLs pointed).
    let mirror =
        std::fs::read_to_string(std::path::Path::new(h.get("LOCK_DIR")).join("hello/mirror"))
            .unwrap();
    let (_, name) = hello_blob();
    let url = format!("{}/{name}", mirror.trim().trim_end_matches('/'));
    assert!(r.text.contains(&url), "output lacks {url:?}:\n{}", r.text);
    assert_eq!(id.expect("image id"), clean_id());
}

#[test]
fn a_hanging_first_provider_times_out_and_the_next_one_serves() {
    let (_, name) = hello_blob();
    let hanging = PoolServer::start(harness().pool_dir());
    hanging.fault(&name, Fault::Hang);
    let pool = PoolServer::start(harness().pool_dir());
    let (r, id) = build_hello(
        &[format!("{}/{{{{.Name}}}}", hanging.url)],
        &pool.url,
        false,
    );
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text.contains("(after 1 failed provider(s))"),
        "{}",
        r.text
    );
    assert!(id.is_some());
}

// Issue 24: with one http provider BuildKit's HTTP source fetched the
// blobs, and a mirror that sent more than the lockfile's size was read to
// its end (the engine's disk the only limit); the fetch step now cuts it
// at the size. The mirror is off the loopback (on the engine's bridge):
// one there keeps the engine's source.
#[test]
fn one_mirror_that_sends_more_than_the_size_is_cut_off_at_it() {
    let pool = PoolServer::start_on_bridge(harness().pool_dir());
    let (_, name) = hello_blob();
    pool.fault(&name, Fault::Oversized);
    let (r, id) = build_hello(&[], &pool.url, true);
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    for needle in [
        "1 of 1 package(s) could not be fetched and verified; nothing was installed:".to_string(),
        format!(
            "{}/{name}: more than the lockfile's {} bytes: not this file (stopped reading)",
            pool.url,
            std::fs::metadata(harness().pool_dir().join(&name))
                .unwrap()
                .len()
        ),
    ] {
        assert!(
            r.text.contains(&needle),
            "output lacks {needle:?}:\n{}",
            r.text
        );
    }
}

// Issue 24: a mirror that trickles a byte a second held the fetch; one try
// at one provider now ends at the fetch step's deadline (10 minutes, or
// the recipe's packages.fetch-timeout: 5s here), and the next provider
// serves.
#[test]
fn a_trickling_first_provider_is_dropped_at_the_deadline() {
    let (_, name) = hello_blob();
    let slow = PoolServer::start(harness().pool_dir());
    slow.fault(&name, Fault::Trickle);
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    let recipe = ctx.path().join("repro.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    let text = text.replace(
        "  install: [hello]\n",
        "  install: [hello]\n  fetch-timeout: 5s\n",
    );
    std::fs::write(&recipe, text).unwrap();
    let started = std::time::Instant::now();
    let (r, id) = build_hello_in(
        ctx,
        &[format!("{}/{{{{.Name}}}}", slow.url)],
        &pool.url,
        false,
        "",
    );
    assert!(r.ok, "{}", r.text);
    let base = name.rsplit('/').next().unwrap();
    assert!(
        r.text.contains(&format!(
            "fetched {base} from {}/{name} (after 1 failed provider(s))",
            pool.url
        )),
        "{}",
        r.text
    );
    // Generous: the deadline plus the build, far below the trickle's end
    // (a byte a second for the whole file: 15 hours).
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
    assert_eq!(id.expect("image id"), clean_id());
}

#[test]
fn the_packages_target_writes_verified_blobs_an_air_gapped_build_then_uses() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("hello");
    let r = run(h
        .build_cmd()
        .args(example_args(&pool))
        .args(["--target", "packages", "--output"])
        .arg(format!(
            "type=local,dest={}",
            ctx.path().join("blobs").display()
        ))
        .arg("-f")
        .arg(repo().join("examples/hello/repro.yaml"))
        .arg(ctx.path()));
    assert!(r.ok, "{}", r.text);
    // Every entry of the lockfile, by basename, with the bytes it names.
    let lock = std::fs::read_to_string(h.lockfile("hello")).unwrap();
    let mut wanted = Vec::new();
    for (sum, name) in lock.lines().filter_map(|l| l.split_once("  ")) {
        let base = name.rsplit('/').next().unwrap();
        let bytes = std::fs::read(ctx.path().join("blobs").join(base))
            .unwrap_or_else(|e| panic!("the packages target did not write {base}: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{base}");
        wanted.push(base.to_string());
    }
    let mut written: Vec<String> = std::fs::read_dir(ctx.path().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    wanted.sort();
    assert_eq!(written, wanted, "only the lockfile's blobs");

    // Those blobs are enough to build with no package server at all.
    let (r, id) = build_air_gapped(ctx.path());
    assert!(r.ok, "{}", r.text);
    assert_eq!(id.expect("image id"), clean_id());
}

/// A gateway on 127.0.0.1 serving the harness's pool by CID, as an IPFS
/// gateway serves `/ipfs/<cid>`.
fn gateway(cids: &[(&str, &str)]) -> PoolServer {
    let gw = PoolServer::start(harness().pool_dir());
    for (cid, name) in cids {
        gw.alias(&format!("ipfs/{cid}"), name);
    }
    gw
}

#[test]
fn ipfs_gateways_serve_by_cid_and_one_with_wrong_bytes_falls_through() {
    let (sum, name) = hello_blob();
    let cid = raw_cid(&sum);
    let bad = gateway(&[(&cid, &name)]);
    bad.fault(&format!("ipfs/{cid}"), Fault::WrongBytes);
    let good = gateway(&[(&cid, &name)]);
    let front = [
        format!("{}/ipfs/{{{{.CID}}}}", bad.url),
        format!("{}/ipfs/{{{{.CID}}}}", good.url),
    ];
    // The recipe's own provider is down: only the gateways can serve.
    let (r, id) = build_hello_with(
        &front,
        &PoolServer::closed_url(),
        true,
        &format!("{sum}  /ipfs/{cid}\n"),
    );
    assert!(r.ok, "{}", r.text);
    let basename = name.rsplit('/').next().unwrap();
    assert!(
        r.text.contains(&format!(
            "fetched {basename} from {}/ipfs/{cid} (after 1 failed provider(s))",
            good.url
        )),
        "{}",
        r.text
    );
    assert_eq!(bad.hits(), [format!("/ipfs/{cid}")]);
    assert_eq!(good.hits(), [format!("/ipfs/{cid}")]);
    assert_eq!(id.unwrap(), clean_id(), "the image is the same");
}

#[test]
fn blobs_without_a_cid_skip_the_gateways_which_is_said_once() {
    let h = harness();
    let ctx = example_context("gcc");
    let lock = ctx.path().join("SHA256SUMS-amd64");
    let entries = lock_entries(&lock);
    // One blob has a CIDv0 (a gateway's name for a chunked file).
    let first = &entries[0];
    let cid = v0_cid(&first.name);
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, format!("{text}{}  /ipfs/{cid}\n", first.sha256)).unwrap();
    let gw = gateway(&[(&cid, &first.name)]);
    let mirror = PoolServer::start(h.pool_dir());
    let dest = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--no-cache".to_string(),
        "--target".into(),
        "packages".into(),
        "--build-arg".into(),
        format!("BASE={}", h.base_ref()),
        "--build-arg".into(),
        format!("MIRROR={}", mirror.url),
        "--build-arg".into(),
        format!("REPRO_PROVIDERS={}/ipfs/{{{{.CID}}}}", gw.url),
        "--output".into(),
        format!("type=local,dest={}", dest.path().display()),
    ];
    args.extend(host_network());
    let r = docker_build_output(&repo().join("examples/gcc/repro.yaml"), ctx.path(), &args);
    assert!(r.ok, "{}", r.text);
    let n = entries.len();
    let note = format!(
        "gather {n} package(s) ({} without a CID in the lockfile: the {{{{.CID}}}} provider(s) skip them)",
        n - 1
    );
    // BuildKit prints a step's name when it starts and when it is done.
    let said: Vec<&str> = r
        .text
        .lines()
        .filter(|l| l.contains("without a CID"))
        .collect();
    assert!(
        !said.is_empty() && said.iter().all(|l| l.ends_with(&note)),
        "{}",
        r.text
    );
    assert_eq!(
        gw.hits(),
        [format!("/ipfs/{cid}")],
        "only the blob with a CID"
    );
    let written = std::fs::read_dir(dest.path()).unwrap().count();
    assert_eq!(written, n, "every blob, verified");
    let from_gateway = dest.path().join(first.name.rsplit('/').next().unwrap());
    let bytes = std::fs::read(&from_gateway).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), first.sha256);
}
