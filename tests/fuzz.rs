//! A seeded mutation fuzzer that runs on the stable toolchain: every parser
//! that reads user or registry input must answer with an error, never a panic.
//!
//! I/O: reads the seed files once (the repo's recipes, lockfiles and base
//! config) and writes a crashing input under `target/tmp/fuzz-crashes/`;
//! the loop itself does none (the fetch target parses the plan, it fetches
//! nothing).
//!
//! `cargo test --test fuzz` runs a short pass per target (the default, for
//! CI). Environment: `REPRO_FUZZ_ITERS` (inputs per target),
//! `REPRO_FUZZ_TARGET` (one name, or several comma-separated),
//! `REPRO_FUZZ_SEED` (the run is deterministic by it), `REPRO_FUZZ_REPLAY`
//! (a saved input: run it once, with the panic shown). Positional arguments
//! filter the targets by name like libtest's, so `cargo test -- golden`
//! skips this binary's work.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use repro_frontend::convert::image::{self, BaseConfig, Provenance};
use repro_frontend::convert::{self, Platform};
use repro_frontend::distro::install::{self, Installer};
use repro_frontend::distro::sources;
use repro_frontend::frontend::{local, opts};
use repro_frontend::llb::{LocalOpts, Network, ResolveMode};
use repro_frontend::lockfile::{self, Lockfile};
use repro_frontend::recipe::template::{Template, Vars, basename};
use repro_frontend::recipe::{self, ImageSettings, args, reference};
use repro_frontend::step::fetch::{self, Attempt, Outcome, Plan};

/// Inputs per target when `REPRO_FUZZ_ITERS` is unset: a few seconds each
/// in a debug build.
const DEFAULT_ITERS: u64 = 20_000;
/// Mutated inputs are capped so one input never dominates a run.
const MAX_LEN: usize = 64 * 1024;

/// One fuzz target: its seeds and the code under test.
struct Target {
    name: &'static str,
    seeds: fn(&Repo) -> Vec<Vec<u8>>,
    run: fn(&[u8]),
    /// Runs one input in `cost` inputs' time: the target gets that many
    /// times fewer inputs (a filesystem target builds a tree per input).
    cost: u64,
}

const TARGETS: &[Target] = &[
    Target {
        name: "recipe",
        seeds: recipe_seeds,
        run: run_recipe,
        cost: 1,
    },
    Target {
        name: "lockfile",
        seeds: lockfile_seeds,
        run: run_lockfile,
        cost: 1,
    },
    Target {
        name: "base",
        seeds: base_seeds,
        run: run_base,
        cost: 1,
    },
    Target {
        name: "opts",
        seeds: opts_seeds,
        run: run_opts,
        cost: 1,
    },
    Target {
        name: "plan",
        seeds: plan_seeds,
        run: run_plan,
        cost: 1,
    },
    Target {
        name: "sources",
        seeds: sources_seeds,
        run: run_sources,
        cost: 1,
    },
    Target {
        name: "image",
        seeds: image_seeds,
        run: run_image,
        cost: 1,
    },
    Target {
        name: "verify-report",
        seeds: verify_report_seeds,
        run: run_verify_report,
        cost: 1,
    },
    Target {
        name: "normalize",
        seeds: normalize_seeds,
        run: run_normalize,
        cost: 40,
    },
];

// ---- the targets ----------------------------------------------------------

/// Build args and lockfile lines ride in YAML comments, so mutations reach
/// them too: `#arg NAME=VALUE` and `#sum <lockfile line>`.
fn run_recipe(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let mut build_args = BTreeMap::new();
    let mut sums = String::new();
    for line in text.lines() {
        if let Some((k, v)) = line.strip_prefix("#arg ").and_then(|a| a.split_once('=')) {
            build_args.insert(k.to_string(), v.to_string());
        } else if let Some(l) = line.strip_prefix("#sum ") {
            sums.push_str(l);
            sums.push('\n');
        }
    }
    // The pieces the decoder calls on single strings, on every line as it is.
    let lookup = |n: &str| n.len().is_multiple_of(2).then(|| format!("${{{n}}}é"));
    for line in text.lines() {
        let _ = reference::normalize(line.trim());
        let _ = Template::parse(line).map(|t| {
            t.render(Vars {
                name: "pool/a/é.deb",
                sha256: "00",
                cid: Some(line),
            })
        });
        let _ = repro_frontend::lockfile::cid::Cid::parse(line.trim());
        let _ = args::expand(line, &lookup);
    }
    let Ok(parsed) = recipe::parse("repro.yaml", &text) else {
        return;
    };
    let platform = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let Ok(args) = parsed.arg_values(&build_args, &platform.target_args()) else {
        return;
    };
    let Ok(r) = parsed.expand(&args) else {
        return;
    };
    // What the gateway and the `llb` subcommand do next, minus their I/O.
    let Ok(base_ref) = reference::normalize(&r.base.value) else {
        return;
    };
    let _ = reference::has_digest(&base_ref);
    let base = BaseConfig::parse(BASE_CONFIG.as_bytes()).unwrap_or_default();
    let epoch = convert::choose_epoch(
        build_args.get("SOURCE_DATE_EPOCH").map(String::as_str),
        &r,
        base.created,
    )
    .unwrap_or(0);
    let lock = lockfile::parse_named("SHA256SUMS-amd64", &sums).unwrap_or_default();
    let opts = convert::Opts {
        base_ref,
        base,
        epoch,
        args,
        platform,
        frontend_image: "docker.io/library/repro-frontend:v0".into(),
        frontend_local: None,
        resolve_mode: ResolveMode::Default,
        context_name: "context".into(),
        context: LocalOpts::default(),
        base_note: None,
        extra_providers: convert::extra_providers(&build_args),
        default_providers: Vec::new(),
        network: Network::Sandbox,
        installer: None,
        snapshotter: (sums.len() % 2 == 1).then(|| "overlay2".to_string()),
        skip_content_hash: sums.len() % 3 == 1,
    };
    if let Ok(c) = convert::to_llb(&r, &lock, &opts) {
        let _ = c.state.marshal();
        let _ = c.packages.map(|p| p.marshal());
    }
    if let Ok(s) = convert::lock_llb(&r, &opts) {
        let _ = s.marshal();
    }
}

/// Two lockfiles split at the first NUL byte (or the whole input twice).
fn run_lockfile(input: &[u8]) {
    let (a, b) = match input.iter().position(|&c| c == 0) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, input),
    };
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let parsed: Vec<Lockfile> = [("SHA256SUMS-a", &a), ("SHA256SUMS-b", &b)]
        .into_iter()
        .filter_map(|(name, text)| lockfile::parse_named(name, text).ok())
        .collect();
    for l in &parsed {
        for e in l.packages() {
            let _ = (e.basename(), e.digest(), e.short_digest());
        }
    }
    if let Ok(merged) = Lockfile::merge(parsed) {
        for e in &merged.entries {
            let _ = (lockfile::role(&e.name), e.short_digest());
        }
        let _ = merged.cids();
    }
    // The header with its release lines, and a release file's fields.
    let _ = lockfile::Header::parse(&a);
    let _ = lockfile::Release::of_list_file("h_debian_dists_bookworm_InRelease", a.as_bytes());
}

/// A base config in both accepted shapes, then the output config built on it.
fn run_base(input: &[u8]) {
    let _ = image::parse_rfc3339(&String::from_utf8_lossy(input));
    let parsed = [
        BaseConfig::parse(input).ok(),
        local::read_base_config(input).ok(),
    ];
    for base in parsed.into_iter().flatten() {
        let _ = base.env();
        let prov = Provenance {
            epoch: base.created.unwrap_or(0),
            architecture: base.architecture.clone().unwrap_or_default(),
            os: base.os.clone().unwrap_or_default(),
            variant: base.variant.clone(),
            comment: "fuzz".into(),
            base_layers: false,
        };
        let _ = image::config(&base, &ImageSettings::default(), &prov);
        let layered = Provenance {
            base_layers: true,
            ..prov
        };
        let _ = image::config(&base, &ImageSettings::default(), &layered);
    }
}

/// One environment entry per line: `BUILDKIT_FRONTEND_OPT_<n>=key=value`
/// for a line `key=value`, or the line as it is when it names a variable
/// itself (`BUILDKIT_SESSION_ID=...`).
fn run_opts(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let vars: Vec<(String, String)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.split_once('=') {
            Some((k, v)) if k.starts_with("BUILDKIT_") => (k.to_string(), v.to_string()),
            _ => (format!("BUILDKIT_FRONTEND_OPT_{i}"), line.to_string()),
        })
        .collect();
    for (_, v) in &vars {
        let _ = (opts::parse_platform(v), opts::parse_platforms(v));
    }
    if let Ok(o) = opts::from_env(vars) {
        for p in &o.platforms {
            let _ = (p.to_string_form(), p.key(), p.target_args());
        }
        let _ = convert::extra_providers(&o.build_args);
    }
}

/// The fetch step's plan as `repro-frontend fetch` reads it, everything it
/// works out before the network (templates, locations, file names), and the
/// report; the input's text also goes to the registry challenge parser.
fn run_plan(input: &[u8]) {
    let _ = fetch::bearer_token_url(&String::from_utf8_lossy(input));
    let Ok(plan) = serde_json::from_slice::<Plan>(input) else {
        return;
    };
    let templates: Vec<Template> = plan
        .providers
        .iter()
        .filter_map(|p| Template::parse(p).ok())
        .collect();
    let mut outcomes = Vec::new();
    for blob in &plan.blobs {
        let _ = Path::new("/out").join(basename(&blob.name));
        let mut skipped = 0;
        let mut attempts = Vec::new();
        for t in &templates {
            match fetch::locate(t, blob.vars()) {
                Ok(Some(l)) => attempts.push(Attempt {
                    from: l.shown().to_string(),
                    failure: None,
                }),
                Ok(None) => skipped += 1,
                Err(e) => attempts.push(Attempt {
                    from: t.as_str().to_string(),
                    failure: Some(e.0),
                }),
            }
        }
        outcomes.push(Outcome {
            blob: blob.clone(),
            attempts,
            skipped,
        });
    }
    let _ = fetch::report(&outcomes);
}

/// Files read from the base image: os-release picks the package tool, the
/// package sources give the default providers.
fn run_sources(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = Installer::from_os_release(&text);
    let releasever = install::os_release_field(&text, "VERSION_ID").unwrap_or_default();
    let mut roots = sources::apt_one_line(&text);
    roots.extend(sources::apt_deb822(&text));
    roots.extend(sources::apk_repositories(&text));
    roots.extend(sources::yum_repos(&text, &releasever, "x86_64"));
    roots.extend(sources::pacman_mirrorlist(&text));
    for t in sources::templates(&roots) {
        let _ = Template::parse(&t).map(|t| {
            t.render(Vars {
                name: "pool/main/h/hello/hello.deb",
                sha256: "00",
                cid: None,
            })
        });
    }
}

// ---- seeds ----------------------------------------------------------------

/// The base config the golden tests use, read once.
static BASE_CONFIG: &str = include_str!("data/recipes/base-config.json");

/// The repo's real inputs, by kind.
struct Repo {
    /// (path, text) of every repro.yaml.
    recipes: Vec<(PathBuf, Vec<u8>)>,
    /// (path, text) of every SHA256SUMS*.
    lockfiles: Vec<(PathBuf, Vec<u8>)>,
    /// Every other file under the seed folders (error.txt, ops.txt, ...).
    other: Vec<Vec<u8>>,
}

impl Repo {
    fn load() -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["tests/data/recipes", "tests/corpus", "examples"] {
            walk(&root.join(dir), &mut files);
        }
        files.sort();
        let mut repo = Repo {
            recipes: Vec::new(),
            lockfiles: Vec::new(),
            other: Vec::new(),
        };
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "repro.yaml" {
                repo.recipes.push((path, bytes));
            } else if name.starts_with("SHA256SUMS") {
                repo.lockfiles.push((path, bytes));
            } else {
                repo.other.push(bytes);
            }
        }
        repo
    }

    fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.recipes
            .iter()
            .chain(&self.lockfiles)
            .map(|(_, b)| b.as_slice())
            .chain(self.other.iter().map(Vec::as_slice))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Each recipe as it is, and with its folder's build args and lockfiles
/// folded into comments.
fn recipe_seeds(repo: &Repo) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (path, text) in &repo.recipes {
        seeds.push(text.clone());
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut extra = text.clone();
        if let Ok(args) = std::fs::read_to_string(dir.join("build-args")) {
            for l in args.lines() {
                extra.extend_from_slice(format!("\n#arg {l}").as_bytes());
            }
        }
        extra.extend_from_slice(b"\n#arg SOURCE_DATE_EPOCH=1700000000\n#arg REPRO_PROVIDERS=oci://127.0.0.1:5000/pool context://pool/{{.Basename}} http://127.0.0.1:8080/ipfs/{{.CID}}\n");
        for (lpath, ltext) in &repo.lockfiles {
            if lpath.parent() == Some(dir) {
                for l in String::from_utf8_lossy(ltext).lines() {
                    extra.extend_from_slice(format!("#sum {l}\n").as_bytes());
                }
            }
        }
        seeds.push(extra);
    }
    seeds
}

/// Each lockfile alone, and each pair of lockfiles of one folder.
fn lockfile_seeds(repo: &Repo) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = repo.lockfiles.iter().map(|(_, t)| t.clone()).collect();
    for (pa, a) in &repo.lockfiles {
        for (pb, b) in &repo.lockfiles {
            if pa != pb && pa.parent() == pb.parent() {
                seeds.push([a.as_slice(), b"\0", b.as_slice()].concat());
            }
        }
    }
    // CID lines, as repro-get writes them, and a raw CIDv1 of its own blob.
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    seeds.push(
        format!(
            "{empty}  pool/a.deb\n{empty}  /ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku\n{empty}  /ipfs/QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACUj\n"
        )
        .into_bytes(),
    );
    seeds
}

fn base_seeds(_: &Repo) -> Vec<Vec<u8>> {
    let oci = BASE_CONFIG.as_bytes().to_vec();
    let inspect = br#"[{"Id":"sha256:00","Created":"2023-11-15T00:13:20.123456789+02:00","Architecture":"arm64","Os":"linux","Config":{"Env":["PATH=/usr/bin","LANG=C.UTF-8","EMPTY"],"WorkingDir":"/srv","Cmd":["bash"],"Labels":{"a":"b"},"ExposedPorts":{"80/tcp":{}}}}]"#;
    let object = br#"{"Config":{"Env":["A=1"]},"Created":"2016-12-31T23:59:60Z","Architecture":"amd64","Os":"linux"}"#;
    let times = br#"{"created":"1970-01-01 00:00:00-00:00","architecture":"riscv64","os":"linux","variant":"v8","config":{"Env":[1,"X"],"Volumes":{"/data":{}}}}"#;
    vec![
        oci,
        inspect.to_vec(),
        object.to_vec(),
        times.to_vec(),
        b"2023-01-01T00:00:00+00:00".to_vec(),
    ]
}

fn opts_seeds(_: &Repo) -> Vec<Vec<u8>> {
    [
        "filename=repro.yaml\ndockerfilekey=dockerfile\ncontextkey=context\nBUILDKIT_SESSION_ID=s1\n",
        "platform=linux/arm64/v8\nimage-resolve-mode=pull\nbuild-arg:MIRROR=http://<mirror>/debian\nbuild-arg:SOURCE_DATE_EPOCH=42\ntarget=lock\n",
        "cache-imports=[{\"Type\":\"registry\",\"Attrs\":{\"ref\":\"127.0.0.1:5000/cache\"}},{\"Type\":\"local\"}]\ncache-from=a,b,,c\nno-cache\n",
        "force-network-mode=host\nrequestid=frontend.targets\nsource=docker.io/library/repro-frontend:v0\nbuild-arg:REPRO_PROVIDERS=oci://127.0.0.1:5000/pool,context://pool/{{.Name}}\n",
        "platform=linux/amd64,linux/arm64\nimage-resolve-mode=local\nforce-network-mode=none\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Plans as the frontend writes them: the blobs of each lockfile under the
/// provider kinds, plus registry challenges for the token parser.
fn plan_seeds(repo: &Repo) -> Vec<Vec<u8>> {
    let providers = vec![
        "http://<mirror>/debian/{{.Name}}".to_string(),
        "oci://127.0.0.1:5000/repro/pool".to_string(),
        "context://pool/{{ .Basename }}".to_string(),
        "https://<mirror>/by-hash/{{.SHA256}}".to_string(),
    ];
    let mut seeds = Vec::new();
    for (_, text) in &repo.lockfiles {
        let Ok(lock) = lockfile::parse(&String::from_utf8_lossy(text)) else {
            continue;
        };
        let plan = Plan {
            providers: providers.clone(),
            blobs: lock
                .entries
                .iter()
                .take(8)
                .map(|e| fetch::Blob {
                    name: e.name.clone(),
                    sha256: e.sha256.clone(),
                    size: e.size,
                    cid: lock.cids().get(e.sha256.as_str()).map(|c| c.to_string()),
                })
                .collect(),
            deadline_secs: None,
        };
        if let Ok(json) = serde_json::to_vec(&plan) {
            seeds.push(json);
        }
    }
    seeds.push(
        br#"Bearer realm="https://auth.example/token",service="registry",scope="repository:repro/pool:pull""#
            .to_vec(),
    );
    seeds
}

fn sources_seeds(_: &Repo) -> Vec<Vec<u8>> {
    [
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nID_LIKE=\"\"\n",
        "ID=fedora\nVERSION_ID=40\nID_LIKE='rhel centos'\n",
        "ID=alpine\nVERSION_ID=3.20.0\n",
        "ID=arch\nID_LIKE=archlinux\n",
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://<mirror>/debian bookworm main # comment\ndeb-src http://<mirror>/debian bookworm main\n",
        "Types: deb deb-src\nURIs: http://<mirror>/debian https://<mirror>/debian-security/\nSuites: bookworm\nEnabled: yes\n\nTypes: deb\nURIs: http://<mirror>/other\nEnabled: no\n",
        "https://<mirror>/alpine/v3.20/main\n@edge https://<mirror>/alpine/edge/community\n",
        "[fedora]\nname=Fedora $releasever\nbaseurl=http://<mirror>/fedora/$releasever/Everything/$basearch/os/\nenabled=1\n[updates]\nenabled=0\nbaseurl=http://<mirror>/updates/\n",
        "## Worldwide\nServer = https://<mirror>/archlinux/$repo/os/$arch\n#Server = http://<mirror>/$repo\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// What the sbom and verify steps read from images: dpkg's status file, and
/// two image configs compared. The input is split at its first NUL byte:
/// before it the status file (and the first config), after it the second.
fn run_image(input: &[u8]) {
    let (a, b) = match input.iter().position(|&c| c == 0) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &b"{}"[..]),
    };
    let _ = repro_frontend::sbom::dpkg::parse_status(&String::from_utf8_lossy(a));
    if let Ok(diffs) = repro_frontend::step::verify::compare_configs(a, b, ("ours", "theirs")) {
        let report = repro_frontend::step::verify::report("img@sha256:0", &diffs);
        let _ = repro_frontend::step::verify::summary(&report);
    }
}

fn image_seeds(_: &Repo) -> Vec<Vec<u8>> {
    let status = "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\nSource: hello (2.10-3)\nDescription: x\n continued\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\n";
    let config = r#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/bin"],"Cmd":["hello"],"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created":"2024-01-01T00:00:00Z"}]}"#;
    let other = config.replace("hello", "bye");
    vec![
        status.as_bytes().to_vec(),
        [config.as_bytes(), b"\0", other.as_bytes()].concat(),
        [config.as_bytes(), b"\0", config.as_bytes()].concat(),
    ]
}

/// The verify step's comparison of two tree listings and what it writes
/// from the differences: the report, its summary and the JSON report. The
/// input is split at its first two NUL bytes: before them the listings,
/// after them two image configs (split at a NUL, as for `image`). Listing
/// records end at a NUL: an attribute byte (its low bit picks the side, the
/// rest the entry's type and fields), then the name's raw bytes. Beyond "no
/// panic": the report and the summary have exactly one line per difference
/// (no name adds one), no control character, and the JSON parses and gives
/// back every name's bytes, two names never shown the same.
fn run_verify_report(input: &[u8]) {
    use repro_frontend::step::verify::{self, Entry, Listing};
    let (listing, configs) = match input.windows(2).position(|w| w == b"\0\0") {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &b""[..]),
    };
    let (mut ours, mut theirs) = (Listing::new(), Listing::new());
    let mut image = String::from("img@sha256:0");
    for record in listing.split(|&b| b == 0) {
        let Some((&a, name)) = record.split_first() else {
            continue;
        };
        let path = [b"/".as_slice(), name].concat();
        let kind = ["file", "directory", "symlink"][usize::from(a >> 1) % 3];
        let entry = Entry {
            kind,
            mode: 0o644 ^ u32::from((a >> 3) & 7),
            uid: u32::from(a >> 7),
            gid: 0,
            size: u64::from(a >> 4),
            sha256: (kind == "file").then(|| format!("{:02x}", a & 0x30)),
            mtime: (i64::from(a >> 5), 0),
            link: (kind == "symlink").then(|| path.iter().rev().copied().collect()),
            xattrs: match a & 0x40 {
                0 => Vec::new(),
                _ => vec![(name.to_vec(), "00".to_string())],
            },
            hardlink_of: (a & 0x80 != 0).then(|| path[..path.len() / 2].to_vec()),
        };
        if a == 0xff {
            image = String::from_utf8_lossy(name).into_owned();
        }
        match a & 1 {
            0 => ours.insert(path, entry),
            _ => theirs.insert(path, entry),
        };
    }
    let (a, b) = match configs.iter().position(|&c| c == 0) {
        Some(i) => (&configs[..i], &configs[i + 1..]),
        None => (configs, &b"{}"[..]),
    };
    let mut diffs = verify::compare_configs(a, b, ("ours", "theirs")).unwrap_or_default();
    diffs.extend(verify::compare_trees(&ours, &theirs));
    let n = diffs.len();

    let report = verify::report(&image, &diffs);
    assert_eq!(report.matches('\n').count(), n + 1, "{report:?}");
    assert!(report.ends_with('\n'));
    let stray = |text: &str| text.chars().any(|c| c != '\n' && c.is_control());
    assert!(!stray(&report), "a control character in {report:?}");
    let summary = verify::summary(&report);
    let lines = 1 + n.min(20) + usize::from(n > 20);
    assert_eq!(summary.matches('\n').count(), lines, "{summary:?}");
    assert_eq!(summary.lines().count(), lines, "{summary:?}");
    assert!(!stray(&summary), "a control character in {summary:?}");

    let json: serde_json::Value = serde_json::from_slice(&verify::report_json(&image, &diffs))
        .expect("the JSON report parses");
    let rows = json["differences"].as_array().expect("differences");
    assert_eq!(rows.len(), n);
    let mut shown: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (row, d) in rows.iter().zip(&diffs) {
        let path = row["path"].as_str().expect("a path");
        let name = match row.get("pathHex") {
            Some(h) => hex::decode(h.as_str().expect("hex")).expect("hex"),
            None => path.as_bytes().to_vec(),
        };
        assert_eq!(name, d.path, "{row}");
        if let Some(other) = shown.insert(path.to_string(), d.path.clone()) {
            assert_eq!(other, d.path, "two names shown as {path:?}");
        }
    }
}

fn verify_report_seeds(_: &Repo) -> Vec<Vec<u8>> {
    let config =
        br#"{"architecture":"amd64","config":{"Env":["A=1"]},"created":"2024-01-01T00:00:00Z"}"#;
    let other = br#"{"architecture":"amd64","config":{"Env":["A=\n2"],"Cmd":["\u2028"]}}"#;
    vec![
        b"\x00usr/bin/hello\x00\x01usr/bin/hello\x00\x02etc\x00\x05etc\x00\x04bin\x00".to_vec(),
        b"\x00a\xff\x00\x01a\xfe\x00\x40a\\xff\x00\x81a\\\\xff\x00".to_vec(),
        b"\x00x\ncontent y: rebuilt a, published b\x00\x01x\r\x1b[2K\xe2\x80\xa8\x00\xffimg\nname\x00".to_vec(),
        [b"\x10same\x00\x11same\x00\x00".as_slice(), config, b"\0", other].concat(),
        (0..30u8).flat_map(|i| [i * 2, b'f', b'0' + i % 10, 0]).collect(),
    ]
}

/// The normalize walk on a small tree built from the input: records end at
/// a NUL, each an operation byte and a relative path (`path=target` for a
/// link). Beside the tree lies an outside directory holding a sentinel, and
/// `@` in a link's target stands for that directory's absolute path, so
/// links out of the root are easy to reach. Beyond "no panic": the source
/// tree and the outside directory are unchanged whatever happens, and a
/// normalized copy has no `.wh.` name and no sparse file made dense.
fn run_normalize(input: &[u8]) {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let (src, out, base, outside) = (
        tmp.path().join("src"),
        tmp.path().join("out"),
        tmp.path().join("base"),
        tmp.path().join("outside"),
    );
    for d in [&src, &out, &base, &outside] {
        std::fs::create_dir(d).expect("a directory");
    }
    std::fs::write(outside.join("sentinel"), b"keep me").expect("the sentinel");
    for record in input.split(|&b| b == 0).take(12) {
        let Some((&op, spec)) = record.split_first() else {
            continue;
        };
        let (name, target) = match spec.iter().position(|&b| b == b'=') {
            Some(i) => (&spec[..i], &spec[i + 1..]),
            None => (spec, &b""[..]),
        };
        let rel = Path::new(std::ffi::OsStr::from_bytes(name));
        // Only plain names: the fixture itself stays inside `src`.
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
            || name.is_empty()
        {
            continue;
        }
        let path = src.join(rel);
        // Nor through a link it made: only normalize is under test.
        if path
            .ancestors()
            .take_while(|a| *a != src)
            .any(|a| a.is_symlink())
        {
            continue;
        }
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            continue;
        }
        let target: Vec<u8> = match target.strip_prefix(b"@") {
            Some(rest) => [outside.as_os_str().as_bytes(), rest].concat(),
            None => target.to_vec(),
        };
        let _ = match op % 7 {
            0 => std::fs::create_dir(&path),
            1 => std::fs::write(&path, name),
            2 | 3 => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path),
            4 => std::ffi::CString::new(path.as_os_str().as_bytes())
                .map_err(std::io::Error::other)
                .and_then(|c| {
                    // SAFETY: a valid NUL-terminated path.
                    match unsafe { libc::mkfifo(c.as_ptr(), 0o600) } {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                }),
            // A private key or an identity for the secrets pass.
            6 => std::fs::write(
                &path,
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            ),
            _ => std::fs::File::create(&path).and_then(|f| {
                use std::io::{Seek as _, Write as _};
                let mut f = f;
                f.seek(std::io::SeekFrom::Start(1 << 30))?;
                f.write_all(b"end")
            }),
        };
    }
    let listing = |dir: &Path| {
        let mut entries = Vec::new();
        tree(dir, &mut entries);
        entries
    };
    let (src_before, outside_before) = (listing(&src), listing(&outside));
    let result =
        repro_frontend::step::normalize::normalize_into(&src, &out, 1_000_000_000, Some(&base));
    let same = |a: &[(PathBuf, std::fs::Metadata)], b: &[(PathBuf, std::fs::Metadata)]| {
        let key = |(p, m): &(PathBuf, std::fs::Metadata)| (p.clone(), m.len(), m.mode(), m.mtime());
        a.iter().map(key).eq(b.iter().map(key))
    };
    assert!(same(&listing(&src), &src_before), "the source tree changed");
    assert!(
        same(&listing(&outside), &outside_before),
        "a file outside the root changed"
    );
    assert_eq!(
        std::fs::read(outside.join("sentinel")).ok().as_deref(),
        Some(&b"keep me"[..])
    );
    if result.is_ok() {
        for (p, m) in listing(&out) {
            let name = p.file_name().map(|n| n.as_bytes()).unwrap_or_default();
            assert!(
                !name.starts_with(b".wh."),
                "a whiteout name was copied: {p:?}"
            );
            assert!(
                !m.is_file() || m.blocks() * 512 < 64 << 20,
                "{p:?} was copied dense"
            );
        }
    }
}

/// Every entry below `dir` with its metadata, links not followed, in sorted
/// order.
fn tree(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let is_dir = m.is_dir();
        out.push((p.clone(), m));
        if is_dir {
            tree(&p, out);
        }
    }
}

fn normalize_seeds(_: &Repo) -> Vec<Vec<u8>> {
    vec![
        b"\x00var\x00\x03var/log=@\x00\x01var/lib/dpkg/status\x00".to_vec(),
        b"\x03var=@\x00\x02tmp=/\x00\x02run=..\x00".to_vec(),
        b"\x01etc/.wh.passwd\x00\x01etc/passwd\x00\x01etc/x.wh..\x00".to_vec(),
        b"\x05var/log/lastlog\x00\x05opt/big\x00\x04tmp/fifo\x00".to_vec(),
        b"\x03var/cache=@/sentinel\x00\x01var/cache/ldconfig/aux-cache\x00\x03var/lib/dpkg=@\x00".to_vec(),
        b"\x06etc/ssh/ssh_host_rsa_key\x00\x01etc/ssh/ssh_host_rsa_key.pub\x00\x03etc/ssl/certs/a.0=../ssh/ssh_host_rsa_key\x00\x01etc/machine-id\x00\x06srv/x.key\x00".to_vec(),
    ]
}

// ---- mutation -------------------------------------------------------------

/// SplitMix64: small, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Strings that parsers of this kind tend to trip on.
const INTERESTING: &[&str] = &[
    "é",
    "€",
    "𝄞",
    "\u{301}",
    "\u{200b}",
    "\u{feff}",
    "\u{10ffff}",
    "${",
    "}",
    "${A}",
    "${TARGETARCH}",
    "${SOURCE_DATE_EPOCH}",
    "$$",
    "$",
    "{{",
    "}}",
    "{{.Name}}",
    "{{.Basename}}",
    "{{.SHA256}}",
    "{{ .Nope }}",
    "99999999999999999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "-1",
    "0",
    "1e400",
    "\0",
    "\r",
    "\n",
    "\r\n",
    "\t",
    " ",
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "\"",
    "'",
    "#",
    "*",
    "&a ",
    "*a",
    "!!str ",
    "|",
    ">",
    "? ",
    ",",
    ".",
    "..",
    "/",
    "//",
    "\\",
    "\\u00e9",
    "\\ud800",
    "%",
    "@",
    "@sha256:",
    "sha256:",
    "=",
    "==",
    "build-arg:",
    "BUILDKIT_FRONTEND_OPT_",
    "BUILDKIT_SESSION_ID=",
    "oci://",
    "context://",
    "http://",
    "https://",
    "/ipfs/",
    "{{.CID}}",
    "QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACUj",
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    "# inrelease: debian/dists/bookworm sha256:",
    ".sig",
    "null",
    "~",
    "true",
    "T",
    "Z",
    "+",
    "60",
    "24:00",
    "0000",
    "  ",
    "  *",
    "\n#arg ",
    "\n#sum ",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];

/// Byte values that are not UTF-8 on their own.
const RAW_BYTES: &[u8] = &[0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff, 0x00, 0x7f];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], pool: &[&[u8]]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let len = data.len();
        let pos = rng.below(len + 1);
        match rng.below(13) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = RAW_BYTES[rng.below(RAW_BYTES.len())];
            }
            2 | 3 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(pos..pos, s.bytes());
            }
            4 => {
                // At the start of a line, where YAML and the line formats
                // decide what a line is.
                let at = data[..pos]
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |i| i + 1);
                let s = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, s.bytes());
            }
            5 if len > 0 => {
                let end = (pos + 1 + rng.below(64)).min(len);
                data.drain(pos.min(len - 1)..end);
            }
            6 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let chunk = data[start..end].to_vec();
                data.splice(pos..pos, chunk);
            }
            7 => {
                let other = pool[rng.below(pool.len())];
                let cut = rng.below(other.len() + 1);
                data.truncate(pos);
                data.extend_from_slice(&other[cut..]);
            }
            8 => data.truncate(pos),
            9 => {
                let digits: Vec<u8> = (0..1 + rng.below(40))
                    .map(|_| b'0' + rng.below(10) as u8)
                    .collect();
                data.splice(pos..pos, digits);
            }
            10 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                let times = 1 + rng.below(300);
                data.splice(pos..pos, s.repeat(times).into_bytes());
            }
            11 => {
                // Swap two lines.
                let mut lines: Vec<Vec<u8>> =
                    data.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                    data = lines.join(&b'\n');
                }
            }
            _ => {
                // Overwrite at a random place with an interesting string.
                let s = INTERESTING[rng.below(INTERESTING.len())].as_bytes();
                let end = (pos + s.len()).min(len);
                data.splice(pos..end, s.iter().copied());
            }
        }
        data.truncate(MAX_LEN);
    }
    data
}

// ---- the driver -----------------------------------------------------------

/// The last panic's message and place, filled by the hook while fuzzing.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn quiet_hook() {
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = LAST_PANIC.lock() {
            *slot = Some(format!("{place}: {msg}"));
        }
    }));
}

/// FNV-1a, to name a crash file by its content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let path = dir.join(format!("{target}-{:016x}.bin", fnv(input)));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("fuzz: cannot save the crash to {}: {e}", path.display());
    }
    path
}

struct Report {
    inputs: u64,
    elapsed: Duration,
    slowest: Duration,
    crash: Option<(PathBuf, String)>,
}

fn fuzz(target: &Target, repo: &Repo, iters: u64, seed: u64) -> Report {
    let pool: Vec<&[u8]> = repo.all().collect();
    let mut seeds = (target.seeds)(repo);
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    let mut rng = Rng(seed ^ fnv(target.name.as_bytes()));
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut done = 0;
    // The seeds themselves first, then mutants.
    let mut queue = seeds.clone().into_iter();
    while done < iters {
        let input = queue
            .next()
            .unwrap_or_else(|| mutate(&mut rng, &seeds, &pool));
        let t0 = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        slowest = slowest.max(t0.elapsed());
        done += 1;
        if result.is_err() {
            let msg = LAST_PANIC
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_default();
            return Report {
                inputs: done,
                elapsed: start.elapsed(),
                slowest,
                crash: Some((save_crash(target.name, &input), msg)),
            };
        }
        if done % 100_000 == 0 {
            eprintln!(
                "fuzz {}: {done} inputs, {:.1?}",
                target.name,
                start.elapsed()
            );
        }
    }
    Report {
        inputs: done,
        elapsed: start.elapsed(),
        slowest,
        crash: None,
    }
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // libtest's spelling: bare words are filters, `--skip <word>` leaves out
    // the names that hold the word.
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if a == "--skip" {
            skips.extend(words.next());
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let chosen = std::env::var("REPRO_FUZZ_TARGET").ok();
    let selected: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| {
            let name = format!("fuzz::{}", t.name);
            (filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
                && !skips.iter().any(|s| name.contains(s.as_str()))
        })
        .filter(|t| {
            chosen
                .as_deref()
                .is_none_or(|c| c.split(',').any(|c| c.trim() == t.name))
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for t in &selected {
            println!("fuzz::{}: test", t.name);
        }
        return ExitCode::SUCCESS;
    }
    // Only ignored tests were asked for; this binary has none.
    if args.iter().any(|a| a == "--ignored") {
        println!("test result: ok. 0 passed; 0 failed; 0 ignored");
        return ExitCode::SUCCESS;
    }
    if let Some(c) = &chosen
        && selected.is_empty()
    {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!("fuzz: no target {c:?} (targets: {})", names.join(", "));
        return ExitCode::FAILURE;
    }
    if let Ok(path) = std::env::var("REPRO_FUZZ_REPLAY") {
        let input = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("fuzz: cannot read {path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for t in &selected {
            println!("replay {path} on {}", t.name);
            (t.run)(&input);
        }
        println!("test result: ok. {} passed; 0 failed", selected.len());
        return ExitCode::SUCCESS;
    }
    let (iters, seed) = match (
        env_number("REPRO_FUZZ_ITERS", DEFAULT_ITERS),
        env_number("REPRO_FUZZ_SEED", 1),
    ) {
        (Ok(i), Ok(s)) => (i, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fuzz: {e}");
            return ExitCode::FAILURE;
        }
    };
    let repo = Repo::load();
    println!(
        "\nrunning {} fuzz target(s), {iters} inputs each, seed {seed}",
        selected.len()
    );
    quiet_hook();
    let mut failed = 0;
    for t in &selected {
        let r = fuzz(t, &repo, (iters / t.cost).max(1), seed);
        match &r.crash {
            None => println!(
                "test fuzz::{} ... ok ({} inputs in {:.2?}, slowest input {:.2?})",
                t.name, r.inputs, r.elapsed, r.slowest
            ),
            Some((path, msg)) => {
                failed += 1;
                println!(
                    "test fuzz::{} ... FAILED after {} inputs: panicked at {msg}\n  input saved to {}\n  replay: REPRO_FUZZ_TARGET={} REPRO_FUZZ_REPLAY={} cargo test --test fuzz",
                    t.name,
                    r.inputs,
                    path.display(),
                    t.name,
                    path.display()
                );
            }
        }
    }
    let _ = panic::take_hook();
    let passed = selected.len() - failed;
    if failed == 0 {
        println!("\ntest result: ok. {passed} passed; 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("\ntest result: FAILED. {passed} passed; {failed} failed");
        ExitCode::FAILURE
    }
}
