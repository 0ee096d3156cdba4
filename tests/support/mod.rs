//! Shared test support: the harness's environment, running docker, and a
//! package server with fault injection.

pub mod cid;
pub mod pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{OnceLock, RwLock};

/// The values `scripts/setup.sh` wrote to `target/harness/env`.
pub struct Harness {
    pub vars: BTreeMap<String, String>,
}

impl Harness {
    pub fn get(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("the harness env file has no {key}; re-run scripts/setup.sh"))
    }

    /// Which engine the suite runs on: `REPRO_ENGINE` (20 or 26, default 20).
    pub fn engine(&self) -> &'static str {
        match std::env::var("REPRO_ENGINE").as_deref() {
            Ok("26") => "26",
            Ok("20") | Err(_) => "20",
            Ok(other) => panic!("REPRO_ENGINE={other}: expected 20 or 26"),
        }
    }

    /// A docker command for the current engine's CLI.
    pub fn docker(&self) -> Command {
        let mut cmd;
        if self.engine() == "26" {
            cmd = Command::new(self.get("ENGINE26_DOCKER"));
            cmd.env("DOCKER_CONFIG", self.get("ENGINE26_DOCKER_CONFIG"));
        } else {
            cmd = Command::new(self.get("DOCKER"));
            cmd.env("DOCKER_BUILDKIT", "1");
        }
        cmd
    }

    /// The build command as users type it on this engine: `docker build` on
    /// 20.10, `docker buildx build` on 26.
    pub fn build_cmd(&self) -> Command {
        let mut cmd = self.docker();
        if self.engine() == "26" {
            // With the containerd image store buildx adds a provenance
            // attestation that records build times: the README's advice.
            cmd.args(["buildx", "build", "--provenance=false"]);
        } else {
            cmd.arg("build");
        }
        cmd
    }

    pub fn base_ref(&self) -> &str {
        self.get("BASE_REF")
    }

    pub fn pool_dir(&self) -> PathBuf {
        PathBuf::from(self.get("POOL_DIR"))
    }

    pub fn lockfile(&self, example: &str) -> PathBuf {
        Path::new(self.get("LOCK_DIR"))
            .join(example)
            .join("SHA256SUMS-amd64")
    }
}

/// Reads the harness's state file as `state_load` (scripts/state.sh) does:
/// `KEY=VALUE` a line, the value byte for byte to the end of the line, `#`
/// lines and blank lines skipped, nothing evaluated. An error names the line.
pub fn parse_state(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key_ok = |k: &str| {
            let mut chars = k.chars();
            chars
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        };
        match line.split_once('=') {
            Some((key, value)) if key_ok(key) => {
                vars.insert(key.to_string(), value.to_string());
            }
            _ => return Err(format!("{}: not KEY=VALUE", n + 1)),
        }
    }
    Ok(vars)
}

/// The harness, or a panic that says how to get one: end-to-end tests never
/// pass without a real engine.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let path = std::env::var("REPRO_HARNESS_ENV").unwrap_or_else(|_| {
            panic!("REPRO_HARNESS_ENV is not set: the end-to-end tests need a real Docker Engine; run scripts/test.sh (it runs scripts/setup.sh first)")
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read the harness env file {path}: {e}"));
        let vars = parse_state(&text).unwrap_or_else(|e| panic!("{path}:{e}"));
        let h = Harness { vars };
        let out = h
            .docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .expect("run docker version");
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && version.starts_with(h.engine()),
            "the Docker Engine {} is not running (server version {version:?}): {}; run scripts/engine.sh use {}",
            h.engine(),
            String::from_utf8_lossy(&out.stderr),
            h.engine()
        );
        h
    })
}

/// The repository root.
/// Checks an in-toto document against the in-toto attestation framework's
/// published schemas (`scripts/check-intoto.py`, in the venv set-up made):
/// `["statement", FILE]` or `["predicate", TYPE, FILE]`. The checker's run.
pub fn check_intoto(args: &[&str]) -> Run {
    let python = Path::new(harness().get("HARNESS_DIR")).join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/setup.sh installs the in-toto schemas there",
        python.display()
    );
    run(Command::new(python)
        .arg(repo().join("scripts/check-intoto.py"))
        .args(args))
}

/// The verify statement at `file`, once the in-toto schemas accepted it.
pub fn checked_statement(file: &Path) -> serde_json::Value {
    let checked = check_intoto(&["statement", file.to_str().expect("a UTF-8 path")]);
    assert!(checked.ok, "{}", checked.text);
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Where `engine`'s suite leaves the reference of an image it pushed, for
/// engine 3 to verify (a second, independent builder).
fn pushed_record(engine: &str, name: &str) -> PathBuf {
    Path::new(harness().get("HARNESS_DIR"))
        .join("out")
        .join(engine)
        .join(format!("{name}.pushed"))
}

/// Keeps `pushed` as this engine's record `name` (see [`pushed_by`]).
pub fn keep_pushed(name: &str, pushed: &str) {
    let path = pushed_record(harness().engine(), name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, pushed).unwrap();
}

/// The reference `engine`'s suite pushed and kept as `name`.
pub fn pushed_by(engine: &str, name: &str) -> String {
    let path = pushed_record(engine, name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (engine {engine}'s suite pushes it; scripts/test.sh runs it first)",
                path.display()
            )
        })
        .trim()
        .to_string()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The result of a docker command.
pub struct Run {
    pub ok: bool,
    /// stdout and stderr together (BuildKit's plain progress goes to stderr).
    pub text: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        ok: status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// `docker run --rm <args>` whose output the caller checks. Docker 26.1
/// once returned success with no output at all for a container that prints
/// at once and exits (an attach race, seen in CI on a fast `date`), so an
/// empty successful run is tried again, up to three times.
pub fn docker_run(args: &[&str]) -> Run {
    let mut last = None;
    for _ in 0..3 {
        let r = run(harness().docker().arg("run").arg("--rm").args(args));
        if !r.ok || !r.text.trim().is_empty() {
            return r;
        }
        last = Some(r);
    }
    last.expect("three runs")
}

/// Builds that serve faulty blobs run alone. BuildKit merges in-flight
/// vertices with the same cache key across builds, and an HTTP source with a
/// checksum is keyed by that checksum: a concurrent build fetching the same
/// blob from a healthy server would share the faulty fetch and fail too.
static FAULTS: RwLock<()> = RwLock::new(());

/// `docker build` the way a user runs it, with BuildKit and plain progress.
pub fn docker_build(recipe: &Path, context: &Path, extra: &[String]) -> (Run, Option<String>) {
    let _shared = FAULTS.read().unwrap_or_else(|e| e.into_inner());
    build_now(recipe, context, extra)
}

/// [`docker_build`] with no other build running: for builds whose package
/// server injects faults.
pub fn docker_build_alone(
    recipe: &Path,
    context: &Path,
    extra: &[String],
) -> (Run, Option<String>) {
    let _alone = FAULTS.write().unwrap_or_else(|e| e.into_inner());
    build_now(recipe, context, extra)
}

/// [`docker_build`] for targets exported with `--output` (no image, so no
/// `--iidfile`: Docker 20.10's CLI fails a build whose iidfile stays empty).
pub fn docker_build_output(recipe: &Path, context: &Path, extra: &[String]) -> Run {
    let _shared = FAULTS.read().unwrap_or_else(|e| e.into_inner());
    let mut cmd = harness().build_cmd();
    cmd.arg("--progress=plain")
        .arg("-f")
        .arg(recipe)
        .args(extra)
        .arg(context);
    run(&mut cmd)
}

thread_local! {
    /// The tags this thread's builds put on their images, with the image ID:
    /// see [`remove_image`].
    static TAGS: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Removes what this thread's builds made of image `id`: the tags they put
/// on it, so the image goes with its last tag. Two tests that built the same
/// bytes hold one image under two tags, and one test's end leaves the other
/// its image. An image no build of this thread tagged is removed by ID.
pub fn remove_image(id: &str) {
    let tags: Vec<String> = TAGS.with(|t| {
        let mut t = t.borrow_mut();
        let (mine, rest) = t.drain(..).partition(|(i, _)| i == id);
        *t = rest;
        mine.into_iter().map(|(_, tag)| tag).collect()
    });
    let h = harness();
    if tags.is_empty() {
        let _ = h.docker().args(["rmi", "-f", id]).output();
    } else {
        let _ = h.docker().arg("rmi").args(&tags).output();
    }
}

fn build_now(recipe: &Path, context: &Path, extra: &[String]) -> (Run, Option<String>) {
    static BUILDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let h = harness();
    let iid = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = h.build_cmd();
    cmd.arg("--progress=plain");
    // Each image build tags its image (see `remove_image`).
    let exports = extra
        .iter()
        .any(|a| a == "--output" || a == "-o" || a.starts_with("--output="));
    let tag = (!exports).then(|| {
        let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("repro-test/build:{}-{n}", std::process::id())
    });
    if let Some(tag) = &tag {
        cmd.args(["-t", tag]);
    }
    if h.engine() == "26" {
        // With the containerd image store, buildx 0.13's --iidfile holds the
        // config digest, which `docker run` and `docker save` do not know;
        // the image ID they take is the manifest digest.
        cmd.arg("--metadata-file");
    } else {
        cmd.arg("--iidfile");
    }
    cmd.arg(iid.path())
        .arg("-f")
        .arg(recipe)
        .args(extra)
        .arg(context);
    let r = run(&mut cmd);
    let text = std::fs::read_to_string(iid.path()).unwrap_or_default();
    let id = if h.engine() == "26" {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|m| m["containerimage.digest"].as_str().map(str::to_string))
    } else {
        Some(text).filter(|s| !s.is_empty())
    };
    if let (Some(id), Some(tag)) = (&id, tag) {
        TAGS.with(|t| t.borrow_mut().push((id.clone(), tag)));
    }
    (r, id)
}

/// Tags an image as `<registry>/<repository>:<tag>`, pushes it, and returns
/// `name@sha256:<digest>` as the push reported it (the digest of what the
/// registry holds).
pub fn push_image(id: &str, repository: &str, tag: &str) -> String {
    let h = harness();
    let name = format!("{}/{repository}", h.get("REGISTRY"));
    let tagged = format!("{name}:{tag}");
    let r = run(h.docker().args(["tag", id, &tagged]));
    assert!(r.ok, "{}", r.text);
    let r = run(h.docker().args(["push", &tagged]));
    assert!(r.ok, "{}", r.text);
    let digest = r
        .text
        .split_whitespace()
        .find(|w| w.starts_with("sha256:") && w.len() == 71)
        .unwrap_or_else(|| panic!("no digest in the push output: {}", r.text));
    let _ = run(h.docker().args(["rmi", &tagged]));
    format!("{name}@{digest}")
}

/// A blob or manifest (an image's, or an index or manifest list) of the
/// harness's registry, by `name@sha256:...` or (`kind` "blobs") by digest;
/// JSON.
pub fn registry_json(name: &str, kind: &str, digest: &str) -> serde_json::Value {
    let (host, path) = name.split_once('/').expect("registry/name");
    let r = run(Command::new("curl").args([
        "-fsS",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json",
        &format!("http://{host}/v2/{path}/{kind}/{digest}"),
    ]));
    assert!(r.ok, "{}", r.text);
    serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{e}: {}", r.text))
}

/// A blob of an OCI layout folder (`index.json` for the empty digest), as
/// JSON.
pub fn oci_json(oci: &Path, digest: &str) -> serde_json::Value {
    let path = match digest.strip_prefix("sha256:") {
        Some(hex) => oci.join("blobs/sha256").join(hex),
        None => oci.join("index.json"),
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `digest` of each entry of a manifest's `layers`.
pub fn layer_digests_of(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest}"))
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// A lockfile's entries, read by the frontend's own parser.
pub fn lock_entries(path: &Path) -> Vec<repro_frontend::lockfile::Entry> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    repro_frontend::lockfile::parse_named(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .entries
}

/// The (sha256, name) of the first entry of the context's lockfile whose
/// name contains `needle`.
pub fn lock_entry(ctx: &Path, needle: &str) -> (String, String) {
    lock_entries(&ctx.join("SHA256SUMS-amd64"))
        .into_iter()
        .find(|e| e.name.contains(needle))
        .map(|e| (e.sha256, e.name))
        .unwrap_or_else(|| panic!("no {needle} in the lockfile"))
}

/// A copy of a corpus set's folder (tests/corpus/<set>) with the lockfile
/// setup.sh made for it with the lock target.
pub fn corpus_context(set: &str) -> tempfile::TempDir {
    let h = harness();
    let dir = tempfile::tempdir().expect("temp dir");
    let src = repo().join("tests").join("corpus").join(set);
    copy_files(&src, dir.path());
    let lock = Path::new(h.get("LOCK_DIR"))
        .join(format!("corpus-{set}"))
        .join("SHA256SUMS-amd64");
    std::fs::copy(&lock, dir.path().join("SHA256SUMS-amd64")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/setup.sh locks every corpus set)",
            lock.display()
        )
    });
    dir
}

/// Copies the files (not the folders) of `src` into `dest`.
pub fn copy_files(src: &Path, dest: &Path) {
    for entry in std::fs::read_dir(src).expect("read folder") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).expect("copy");
        }
    }
}

/// A copy of an example's folder with the lockfile the harness computed for
/// its base image (mirrors drop old versions, so it is made at test time).
pub fn example_context(example: &str) -> tempfile::TempDir {
    let h = harness();
    let dir = tempfile::tempdir().expect("temp dir");
    copy_files(&repo().join("examples").join(example), dir.path());
    std::fs::copy(h.lockfile(example), dir.path().join("SHA256SUMS-amd64")).expect("copy lockfile");
    dir
}

/// The lines BuildKit's clients mark with `>>>` in a source snippet (the
/// text after the marker), in order.
pub fn marked_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_once(" | >>> ").map(|(_, rest)| rest))
        .collect()
}

/// A recipe whose second `run` step (lines 6-8) fails with exit code 3. It
/// declares BASE and MIRROR, which the engine-3 helper always passes.
pub fn failing_step_recipe(base: &str) -> String {
    format!(
        "# syntax=repro-frontend:v0\nargs: {{BASE: \"{base}\", MIRROR: \"\"}}\nbase: ${{BASE}}\nsteps:\n  - run: echo one\n  - run: |\n      echo two\n      exit 3\n  - run: echo three\n"
    )
}

/// The recipe lines [`failing_step_recipe`]'s failing step is written on.
pub const FAILING_STEP_LINES: [&str; 3] = ["  - run: |", "      echo two", "      exit 3"];

/// A lockfile's text without its `# inrelease:` lines: what the harness's
/// own lockfiles (made from apt's answer outside any build) hold.
pub fn without_release_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("# inrelease: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Checks a lock target's `# inrelease:` lines against the mirror the
/// harness locked from: no host in them, the fields an auditor needs, and
/// each file's sha256 that of the InRelease the mirror serves now.
pub fn check_release_lines(text: &str) {
    let h = harness();
    let root = std::fs::read_to_string(Path::new(h.get("LOCK_DIR")).join("hello/mirror"))
        .expect("the harness's mirror root");
    let root = root
        .lines()
        .next()
        .expect("a mirror root")
        .trim()
        .to_string();
    let (scheme, rest) = root.split_once("://").expect("scheme://host/path");
    let (host, root_path) = rest.split_once('/').expect("host/path");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# inrelease: "))
        .collect();
    assert!(!lines.is_empty(), "no release line:\n{text}");
    assert!(
        !text.contains(host),
        "the mirror's host is in the lockfile:\n{text}"
    );
    let mut checked = 0;
    for line in lines {
        let rest = line.strip_prefix("# inrelease: ").unwrap();
        let (path, tail) = rest.split_once(" sha256:").expect("path sha256:<hex>");
        for field in ["| Origin: ", "| Suite: ", "| Codename: ", "| Date: "] {
            assert!(tail.contains(field), "{field} missing: {line}");
        }
        if !path.starts_with(root_path.trim_end_matches('/')) {
            continue;
        }
        let sum = &tail[..64];
        let url = format!("{scheme}://{host}/{path}/InRelease");
        let out = Command::new("curl")
            .args(["-fsS", &url])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out.stdout));
        assert_eq!(
            got, sum,
            "{path}/InRelease on the mirror is not the one recorded"
        );
        checked += 1;
    }
    assert!(checked > 0, "no release line under {root_path}:\n{text}");
}

/// What the cross-engine checks keep of an exported root filesystem tar:
/// its sha256 and its verbose listing (to say where two differ), in
/// `<dir>/<name>.rootfs.sha256` and `.rootfs.list`. The tar itself (hundreds
/// of MB for each example and corpus set, on each engine) is removed, so the
/// suite's disk use does not grow with the number of sets.
pub fn keep_rootfs_record(tar: &Path, dir: &Path, name: &str) {
    let bytes = std::fs::read(tar).unwrap_or_else(|e| panic!("{}: {e}", tar.display()));
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    drop(bytes);
    let list = run(Command::new("tar").args(["--full-time", "-tvf"]).arg(tar));
    assert!(list.ok, "cannot list {}: {}", tar.display(), list.text);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.rootfs.sha256")), &digest).unwrap();
    std::fs::write(dir.join(format!("{name}.rootfs.list")), &list.text).unwrap();
    std::fs::remove_file(tar).unwrap();
}

/// A root filesystem record kept by `keep_rootfs_record`: (sha256, listing).
pub fn rootfs_record(dir: &Path, name: &str) -> (String, String) {
    let read = |suffix: &str| {
        let p = dir.join(format!("{name}.rootfs.{suffix}"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!("{}: {e} (run the suite on every engine first)", p.display())
        })
    };
    (read("sha256"), read("list"))
}

/// Where two root filesystem records differ: the first differing line of
/// their listings, or that only the contents differ.
pub fn rootfs_difference(a: &(String, String), b: &(String, String)) -> Option<String> {
    if a.0 == b.0 {
        return None;
    }
    let first =
        a.1.lines()
            .zip(b.1.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("first listing difference:\n  {x}\n  {y}"))
            .unwrap_or_else(|| "listings equal; file contents differ".into());
    Some(format!("{} vs {}; {first}", a.0, b.0))
}
