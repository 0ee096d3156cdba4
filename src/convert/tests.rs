//! The conversion's tests: whole recipes converted, the ops decoded and
//! checked field by field.

use super::image::BaseConfig;
use super::image_llb::to_llb;
use super::opts::{
    BASE_DIR, ConvertError, Converted, DELTA_SNAPSHOTTER, FRONTEND_BINARY, OUT_DIR, Opts,
    PACKAGES_DIR, TARGET_DIR, TOOL_DIR,
};
use super::platform::Platform;
use super::sbom;
use crate::llb::{LocalOpts, Network, ResolveMode};
use crate::lockfile::{self, Lockfile};
use crate::recipe::{self, ArgValues};
use bollard_buildkit_proto::pb;
use prost::Message;
use std::collections::BTreeMap;

const RECIPE: &str = r#"
args:
  MIRROR: http://mirror.invalid/debian
base: reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111
packages:
  sums: SHA256SUMS-amd64
  providers: ["${MIRROR}/{{.Name}}"]
steps:
  - run: hello > /hello.txt
  - copy: {src: hello.c, dest: src/, owner: "1000:1000", mode: "0600"}
image:
  cmd: [hello]
"#;
const SUMS: &str = "\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  pool/main/h/hello/hello_2.10-3_amd64.deb
bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  pool/main/libx/libx1_1.0_amd64.deb
";

fn opts(args: ArgValues) -> Opts {
    Opts {
        base_ref: "reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
        base: BaseConfig::parse(br#"{"config":{"Env":["PATH=/usr/bin:/bin"]},"created":"2024-01-01T00:00:00Z"}"#).unwrap(),
        epoch: 1_700_000_000,
        args,
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        frontend_image: "repro-frontend:v0".into(),
        frontend_local: None,
        resolve_mode: ResolveMode::Default,
        context_name: "context".into(),
        context: LocalOpts::default(),
        base_note: None,
        extra_providers: Vec::new(),
        default_providers: Vec::new(),
        network: Network::Sandbox,
        installer: None,
        snapshotter: Some(DELTA_SNAPSHOTTER.to_string()),
        skip_content_hash: true,
    }
}

fn convert(mirror: &str) -> Converted {
    convert_text(RECIPE, mirror)
}

fn convert_text(text: &str, mirror: &str) -> Converted {
    let r = recipe::parse("repro.yaml", text).unwrap();
    let mut build = BTreeMap::new();
    build.insert("MIRROR".to_string(), mirror.to_string());
    let args = r.arg_values(&build, &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let lock = lockfile::parse_named("SHA256SUMS-amd64", SUMS).unwrap();
    to_llb(&r, &lock, &opts(args)).unwrap()
}

fn ops(c: &Converted) -> Vec<(pb::Op, pb::OpMetadata)> {
    let def = c.state.marshal();
    def.def
        .iter()
        .map(|b| {
            let d = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
            );
            (
                pb::Op::decode(b.as_slice()).unwrap(),
                def.metadata.get(&d).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// The marshalled ops as text, to look for what a file's bytes hold.
fn llb_text(c: &Converted) -> String {
    c.state
        .marshal()
        .def
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// The install step's exec (`repro-frontend install ...`) and its name.
fn install_exec(c: &Converted) -> (pb::ExecOp, String) {
    subcommand_exec(c, "install")
}

/// The exec of our binary's subcommand `sub`, and its name.
fn subcommand_exec(c: &Converted, sub: &str) -> (pb::ExecOp, String) {
    execs(c)
        .into_iter()
        .find(|(e, _)| {
            e.meta
                .as_ref()
                .unwrap()
                .args
                .get(1)
                .is_some_and(|a| a == sub)
        })
        .unwrap_or_else(|| panic!("no {sub} step"))
}

fn execs(c: &Converted) -> Vec<(pb::ExecOp, String)> {
    ops(c)
        .into_iter()
        .filter_map(|(op, md)| match op.op {
            Some(pb::op::Op::Exec(e)) => Some((
                e,
                md.description
                    .get("llb.customname")
                    .cloned()
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn one_verified_http_source_per_package() {
    let c = convert("http://127.0.0.1:8000");
    let sources: Vec<pb::SourceOp> = ops(&c)
        .into_iter()
        .filter_map(|(op, _)| match op.op {
            Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http") => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 2);
    assert_eq!(
        sources[0].identifier,
        "http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb"
    );
    assert_eq!(
        sources[0].attrs["http.checksum"],
        format!("sha256:{}", "a".repeat(64))
    );
    assert_eq!(sources[0].attrs["http.filename"], "hello_2.10-3_amd64.deb");
}

// Issue 24: with one http(s) provider, BuildKit's HTTP source fetched the
// blobs with no size or time bound, the lockfile's sizes ignored.
#[test]
fn with_sizes_in_the_lockfile_one_provider_goes_through_the_bounded_fetch_step() {
    let sizes = "# size: 53080 pool/main/h/hello/hello_2.10-3_amd64.deb\n";
    let c = convert_cids(r#"providers: ["http://m.invalid/{{.Name}}"]"#, sizes).unwrap();
    let http_sources = ops(&c)
        .into_iter()
        .filter(|(op, _)| {
            matches!(&op.op, Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http"))
        })
        .count();
    assert_eq!(http_sources, 0);
    let fetches: Vec<String> = execs(&c)
        .into_iter()
        .filter(|(e, _)| {
            e.meta
                .as_ref()
                .unwrap()
                .args
                .get(1)
                .is_some_and(|a| a == "fetch")
        })
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        fetches,
        [
            "fetch 1 package(s) (sha256 a…), trying 1 provider(s) in order",
            "fetch 1 package(s) (sha256 b…), trying 1 provider(s) in order",
        ]
    );
    // The plan carries the size; the blob without one is capped by the step.
    let bytes = llb_text(&c);
    assert!(bytes.contains(r#""size": 53080"#), "{bytes}");
    assert_eq!(bytes.matches(r#""size":"#).count(), 1);
    // A mirror on the build host's loopback stays with the engine's own
    // HTTP source: a step in the build's network could not reach it.
    let c = convert_cids(r#"providers: ["http://127.0.0.1:8000/{{.Name}}"]"#, sizes).unwrap();
    assert!(execs(&c).iter().all(|(e, _)| {
        e.meta
            .as_ref()
            .unwrap()
            .args
            .get(1)
            .is_none_or(|a| a != "fetch")
    }));
    assert!(
        llb_text(&c).contains("http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb")
    );
}

const CID_A: &str = "QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACUj";
const CID_B: &str = "QmQPeNsJPyVWPFDVHb77w8G42Fvo15z4bG2X8D2GhfbSXc";

/// RECIPE with `providers` instead of its one, and SUMS plus `extra`.
#[test]
fn a_fetch_timeout_sends_one_provider_through_the_fetch_step_with_that_deadline() {
    let providers = "providers: [\"http://m.invalid/{{.Name}}\"]\n  fetch-timeout: 2m";
    let c = convert_cids(providers, "").unwrap();
    let http_sources = ops(&c)
        .into_iter()
        .filter(|(op, _)| {
            matches!(&op.op, Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http"))
        })
        .count();
    assert_eq!(http_sources, 0, "BuildKit's HTTP source has no deadline");
    let bytes = llb_text(&c);
    assert!(bytes.contains(r#""deadline_secs": 120"#), "{bytes}");
    // Without the setting the plan has no such key (the digests of
    // existing builds stay).
    let c = convert_cids(
        r#"providers: ["http://m.invalid/{{.Name}}", "http://n.invalid/{{.Name}}"]"#,
        "",
    )
    .unwrap();
    assert!(!llb_text(&c).contains("deadline_secs"));
}

fn convert_cids(providers: &str, extra: &str) -> Result<Converted, ConvertError> {
    let text = RECIPE.replace(r#"providers: ["${MIRROR}/{{.Name}}"]"#, providers);
    let r = recipe::parse("repro.yaml", &text).unwrap();
    let args = r.arg_values(&BTreeMap::new(), &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let lock = lockfile::parse_named("SHA256SUMS-amd64", &format!("{SUMS}{extra}")).unwrap();
    to_llb(&r, &lock, &opts(args))
}

#[test]
fn a_single_cid_gateway_for_blobs_that_all_have_a_cid_is_fetched_by_buildkit() {
    let cids = format!(
        "{}  /ipfs/{CID_A}\n{}  /ipfs/{CID_B}\n",
        "a".repeat(64),
        "b".repeat(64)
    );
    let c = convert_cids(r#"providers: ["http://gw.invalid/ipfs/{{.CID}}"]"#, &cids).unwrap();
    let urls: Vec<String> = ops(&c)
        .into_iter()
        .filter_map(|(op, _)| match op.op {
            Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http") => Some(s.identifier),
            _ => None,
        })
        .collect();
    assert_eq!(
        urls,
        [
            format!("http://gw.invalid/ipfs/{CID_A}"),
            format!("http://gw.invalid/ipfs/{CID_B}")
        ]
    );
}

#[test]
fn a_blob_without_a_cid_goes_to_the_providers_by_name_or_is_refused_at_its_line() {
    let one = format!("{}  /ipfs/{CID_A}\n", "a".repeat(64));
    // The fetch step gets the CID of the blob that has one.
    let c = convert_cids(
        r#"providers: ["http://gw.invalid/ipfs/{{.CID}}", "http://m.invalid/{{.Name}}"]"#,
        &one,
    )
    .unwrap();
    let bytes = llb_text(&c);
    assert!(bytes.contains(&format!(r#""cid": "{CID_A}""#)), "{bytes}");
    assert_eq!(bytes.matches(r#""cid":"#).count(), 1);
    // Said once, in the gather step's name.
    let names: Vec<String> = ops(&c)
        .into_iter()
        .filter_map(|(_, md)| md.description.get("llb.customname").cloned())
        .filter(|n| n.contains("without a CID"))
        .collect();
    assert_eq!(
        names,
        [
            "gather 2 package(s) (1 without a CID in the lockfile: the {{.CID}} provider(s) skip them)"
        ]
    );
    // With only gateways, the blob without a CID has nowhere to come from.
    let err = convert_cids(r#"providers: ["http://gw.invalid/ipfs/{{.CID}}"]"#, &one)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("SHA256SUMS-amd64:2:67: \"pool/main/libx/libx1_1.0_amd64.deb\" has no CID"),
        "{err}"
    );
}

#[test]
fn install_runs_our_binary_offline_with_packages_read_only() {
    let c = convert("http://127.0.0.1:8000");
    let (install, name) = install_exec(&c);
    let meta = install.meta.unwrap();
    // A short argv whatever the package count: the error line BuildKit
    // prints when the step fails quotes it.
    assert_eq!(
        meta.args,
        [
            "/tmp/repro-tool/repro-frontend",
            "install",
            "--tool",
            "dpkg",
            "/tmp/repro-packages",
        ]
    );
    for env in [
        "SOURCE_DATE_EPOCH=1700000000",
        "DEBIAN_FRONTEND=noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN=true",
    ] {
        assert!(meta.env.contains(&env.to_string()), "{env}: {:?}", meta.env);
    }
    let tool = install.mounts.iter().find(|m| m.dest == TOOL_DIR).unwrap();
    assert!(tool.readonly);
    assert_eq!(install.network, pb::NetMode::None as i32);
    let pkgs = install
        .mounts
        .iter()
        .find(|m| m.dest == PACKAGES_DIR)
        .unwrap();
    assert!(pkgs.readonly);
    assert!(name.contains("install 2 package(s)"));
}

#[test]
fn the_names_the_recipe_asked_for_reach_the_install_step() {
    let text = RECIPE.replace(
        "  sums: SHA256SUMS-amd64\n",
        "  install: [hello]\n  sums: SHA256SUMS-amd64\n  allow-stale-lock: true\n",
    );
    let c = convert_text(&text, "http://127.0.0.1:8000");
    let (install, _) = install_exec(&c);
    let argv = install.meta.unwrap().args;
    assert_eq!(argv[4], "--manual=hello");
    assert_eq!(argv.last().unwrap(), PACKAGES_DIR);
}

#[test]
fn steps_see_the_epoch_and_normalize_runs_our_binary_on_the_target() {
    let c = convert("http://127.0.0.1:8000");
    let all = execs(&c);
    let (run, _) = all
        .iter()
        .find(|(e, _)| e.meta.as_ref().unwrap().args[0] == "/bin/sh")
        .unwrap();
    let meta = run.meta.as_ref().unwrap();
    assert_eq!(meta.args[2], "hello > /hello.txt");
    assert!(
        meta.env
            .contains(&"SOURCE_DATE_EPOCH=1700000000".to_string())
    );
    assert!(
        meta.env
            .contains(&"MIRROR=http://127.0.0.1:8000".to_string())
    );
    let (norm, _) = all
        .iter()
        .find(|(e, _)| e.meta.as_ref().unwrap().args[0] == FRONTEND_BINARY)
        .unwrap();
    let args = &norm.meta.as_ref().unwrap().args;
    assert_eq!(
        args[..8],
        [
            FRONTEND_BINARY,
            "normalize",
            "--epoch",
            "1700000000",
            "--base",
            BASE_DIR,
            "--out",
            OUT_DIR,
        ]
    );
    assert_eq!(args.last().map(String::as_str), Some(TARGET_DIR));
    // Who made a private key: the root after the install step and after
    // each step, mounted read-only; and where the record goes.
    let flags: Vec<&str> = args[8..args.len() - 1].iter().map(String::as_str).collect();
    assert_eq!(
        flags,
        [
            "--recipe",
            "repro.yaml",
            "--stage",
            "the install step=/stages/0",
            "--stage",
            "step 1 (repro.yaml:9: run hello > /hello.txt)=/stages/1",
            "--stage",
            "step 2 (repro.yaml:10: copy hello.c src/)=/stages/2",
            "--record",
        ]
    );
    for n in 0..3 {
        let stage = norm
            .mounts
            .iter()
            .find(|m| m.dest == format!("/stages/{n}"))
            .unwrap();
        assert!(stage.readonly && stage.output == -1, "{stage:?}");
    }
    assert!(!norm.mounts.iter().any(|m| m.dest == "/record"));
    assert!(norm.mounts.iter().any(|m| m.dest == BASE_DIR && m.readonly));
    assert_eq!(norm.network, pb::NetMode::None as i32);
    let target = norm.mounts.iter().find(|m| m.dest == TARGET_DIR).unwrap();
    assert!(target.readonly, "the target is only read");
    let out = norm.mounts.iter().find(|m| m.dest == OUT_DIR).unwrap();
    assert_eq!(
        (out.input, out.output),
        (-1, 1),
        "a scratch mount, output 1"
    );
}

#[test]
fn the_recipes_private_keys_reach_normalize_and_the_record_goes_into_the_image() {
    let text = format!(
        "{RECIPE}private-keys:\n  remove: [/etc/app/*.key]\n  keep: [/srv/demo.key, /srv/b.key]\n"
    );
    let c = convert_text(&text, "http://127.0.0.1:8000");
    let (norm, _) = execs(&c)
        .into_iter()
        .find(|(e, _)| e.meta.as_ref().unwrap().args[1] == "normalize")
        .unwrap();
    let args = norm.meta.unwrap().args.join(" ");
    assert!(
        args.contains(
            "--remove-key /etc/app/*.key --keep-key /srv/demo.key --keep-key /srv/b.key --record "
        ),
        "{args}"
    );
    // The record goes into the image: the exec's outputs are its root's and
    // the image's scratch mount, no third.
    assert!(c.secrets);
    assert_eq!(norm.mounts.iter().map(|m| m.output).max(), Some(1));
}

#[test]
fn result_is_the_normalize_steps_scratch_mount() {
    let c = convert("http://127.0.0.1:8000");
    let all = ops(&c);
    let (terminal, _) = &all[all.len() - 1];
    let (last, md) = &all[all.len() - 2];
    let Some(pb::op::Op::Exec(e)) = &last.op else {
        panic!("the op before the terminal one is not the normalize exec")
    };
    assert_eq!(e.meta.as_ref().unwrap().args[1], "normalize");
    assert_eq!(terminal.inputs[0].index, 1, "the image is the /out mount");
    assert!(
        md.description["llb.customname"].starts_with("normalize: squash onto scratch"),
        "{:?}",
        md.description
    );
}

/// The `layers: base` recipe converted for a worker with `snapshotter`:
/// the last exec's base mount and its progress name.
fn layered(snapshotter: Option<&str>) -> (pb::Mount, String) {
    let text = "args: {MIRROR: \"\"}\nbase: reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111\nsteps:\n  - run: rm /etc/issue.net\nimage:\n  layers: base\n";
    let r = recipe::parse("repro.yaml", text).unwrap();
    let args = r.arg_values(&BTreeMap::new(), &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let mut o = opts(args);
    o.snapshotter = snapshotter.map(str::to_string);
    let c = to_llb(&r, &Lockfile::default(), &o).unwrap();
    let all = ops(&c);
    let (terminal, _) = &all[all.len() - 1];
    let (op, md) = &all[all.len() - 2];
    let Some(pb::op::Op::Exec(e)) = &op.op else {
        panic!("the image is not the normalize exec's")
    };
    let base = e.mounts.iter().find(|m| m.dest == BASE_DIR).unwrap();
    let result = e
        .mounts
        .iter()
        .find(|m| m.output == terminal.inputs[0].index)
        .unwrap();
    assert_eq!(e.meta.as_ref().unwrap().args[1], "normalize");
    (
        pb::Mount {
            dest: result.dest.clone(),
            ..base.clone()
        },
        md.description["llb.customname"].clone(),
    )
}

#[test]
fn layers_base_writes_onto_a_mount_of_the_base_on_overlayfs_only() {
    // overlayfs: the image is the base mount, written by --delta.
    let (m, name) = layered(Some("overlayfs"));
    assert_eq!((m.dest.as_str(), m.readonly), (BASE_DIR, false), "{name}");
    assert!(
        name.ends_with("write what differs onto the base image"),
        "{name}"
    );
    // Docker's classic store (no label) and other snapshotters: squashed,
    // and the step's name says why.
    for (label, why) in [
        (
            None,
            "is Docker's classic image store (the worker names no snapshotter)",
        ),
        (Some("native"), "is native"),
    ] {
        let (m, name) = layered(label);
        assert_eq!((m.dest.as_str(), m.readonly), (OUT_DIR, true), "{name}");
        assert!(
            name.ends_with(&format!(
                "(warning: image.layers: base needs the overlayfs snapshotter, and this engine's {why}: the image has one squashed layer)"
            )),
            "{name}"
        );
    }
}

#[test]
fn copy_step_reads_only_its_source_from_the_context() {
    let c = convert("http://127.0.0.1:8000");
    let all = ops(&c);
    let local = all
        .iter()
        .find_map(|(op, _)| match &op.op {
            Some(pb::op::Op::Source(s)) if s.identifier == "local://context" => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(local.attrs["local.includepattern"], "[\"hello.c\"]");
    let copy = all
        .iter()
        .find_map(|(op, md)| match &op.op {
            Some(pb::op::Op::File(f))
                if md.description["llb.customname"].starts_with("copy hello.c") =>
            {
                Some(f.clone())
            }
            _ => None,
        })
        .unwrap();
    let Some(pb::file_action::Action::Copy(cp)) = &copy.actions[0].action else {
        panic!()
    };
    assert_eq!(cp.dest, "/src/");
    assert_eq!(cp.mode, 0o600);
    assert!(cp.owner.is_some());
}

#[test]
fn the_config_comes_with_the_conversion() {
    let c = convert("http://127.0.0.1:8000");
    let v: serde_json::Value = serde_json::from_slice(&c.config).unwrap();
    assert_eq!(v["created"], "2023-11-14T22:13:20Z");
    assert_eq!(v["config"]["Cmd"], serde_json::json!(["hello"]));
}

#[test]
fn non_deb_packages_are_refused_with_their_line() {
    let r = recipe::parse("repro.yaml", RECIPE).unwrap();
    let args = r.arg_values(&BTreeMap::new(), &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let lock = lockfile::parse_named(
        "SHA256SUMS-amd64",
        &format!(
            "{}  a.deb\n{}  x/bash-5.1.16-r2.apk\n",
            "a".repeat(64),
            "b".repeat(64)
        ),
    )
    .unwrap();
    let e = to_llb(&r, &lock, &opts(args)).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("SHA256SUMS-amd64", 2));
    assert!(
        e.message.contains("with dpkg: it installs .deb packages"),
        "{}",
        e.message
    );
}

/// The recipe lines each named op points at, through the Definition's
/// source map.
fn lines_by_name(c: &Converted) -> BTreeMap<String, (i32, i32)> {
    let def = c.state.marshal();
    let src = def.source.clone().expect("a source map");
    assert_eq!(src.infos.len(), 1);
    assert_eq!(src.infos[0].filename, "repro.yaml");
    assert_eq!(src.infos[0].language, "yaml");
    assert_eq!(src.infos[0].data, RECIPE.as_bytes());
    let mut out = BTreeMap::new();
    for (digest, locs) in &src.locations {
        let name = def.metadata[digest].description["llb.customname"].clone();
        let r = &locs.locations[0].ranges[0];
        out.insert(name, (r.start.unwrap().line, r.end.unwrap().line));
    }
    out
}

#[test]
fn ops_point_at_the_recipe_lines_they_come_from() {
    let c = convert("http://127.0.0.1:8000");
    let lines = lines_by_name(&c);
    let find = |prefix: &str| {
        lines
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("no op named {prefix}…: {lines:?}"))
    };
    // RECIPE starts with a blank line: base is line 4, packages 5-7,
    // the run step 9 and the copy step 10.
    assert_eq!(find("base image "), (4, 4));
    assert_eq!(find("install "), (5, 7));
    assert_eq!(find("run hello"), (9, 9));
    assert_eq!(find("copy hello.c"), (10, 10));
    assert!(
        !lines.keys().any(|n| n.starts_with("normalize")),
        "normalize comes from no recipe line"
    );
}

#[test]
fn a_multi_line_run_step_points_at_all_its_lines() {
    let text = RECIPE.replace(
        "  - run: hello > /hello.txt\n",
        "  - run: |\n      hello > /hello.txt\n\n      true\n  # a comment\n",
    );
    let c = convert_text(&text, "http://127.0.0.1:8000");
    let def = c.state.marshal();
    let src = def.source.expect("a source map");
    let run = def
        .metadata
        .iter()
        .find(|(_, m)| m.description["llb.customname"].starts_with("run hello"))
        .map(|(d, _)| d)
        .unwrap();
    let r = &src.locations[run].locations[0].ranges[0];
    assert_eq!((r.start.unwrap().line, r.end.unwrap().line), (9, 12));
}

#[test]
fn the_source_map_leaves_the_op_digests_alone() {
    let c = convert("http://127.0.0.1:8000");
    let def = c.state.marshal();
    let mut r = recipe::parse("repro.yaml", RECIPE).unwrap();
    r.text.clear();
    let mut build = BTreeMap::new();
    build.insert("MIRROR".to_string(), "http://127.0.0.1:8000".to_string());
    let args = r.arg_values(&build, &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let lock = lockfile::parse_named("SHA256SUMS-amd64", SUMS).unwrap();
    let bare = to_llb(&r, &lock, &opts(args)).unwrap().state.marshal();
    assert!(bare.source.is_none());
    assert_eq!(def.def, bare.def);
}

#[test]
fn the_sbom_step_reads_the_normalized_image_and_the_facts() {
    let r = recipe::parse("repro.yaml", RECIPE).unwrap();
    let mut build = BTreeMap::new();
    build.insert("MIRROR".to_string(), "http://127.0.0.1:8000".to_string());
    let args = r.arg_values(&build, &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    let lock = lockfile::parse_named("SHA256SUMS-amd64", SUMS).unwrap();
    let o = opts(args);
    let image = to_llb(&r, &lock, &o).unwrap();
    let facts = sbom::facts(&r, &lock, &o, &crate::sbom::Inputs::default()).unwrap();
    assert_eq!(facts.blobs.len(), 2);
    assert_eq!(
        facts.blobs[0].url.as_deref(),
        Some("http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb")
    );
    assert_eq!(facts.base_repository, "reg.invalid/debian");
    assert_eq!(facts.base_digest, format!("sha256:{}", "1".repeat(64)));
    let c = Converted {
        state: sbom::sbom_llb(&image, &facts, &o),
        config: Vec::new(),
        packages: None,
        secrets: false,
    };
    let (exec, name) = subcommand_exec(&c, "sbom");
    assert_eq!(
        exec.meta.as_ref().unwrap().args,
        [
            FRONTEND_BINARY,
            "sbom",
            "--rootfs",
            TARGET_DIR,
            "--facts",
            "/facts/facts.json",
            "--secrets",
            "--out",
            "/out/sbom.spdx.json"
        ]
    );
    // The normalize step's record of removed keys is read in the image.
    assert!(!exec.mounts.iter().any(|m| m.dest == "/record"));
    assert!(name.starts_with("sbom: "), "{name}");
    assert_eq!(exec.network, pb::NetMode::None as i32);
    assert!(
        exec.mounts
            .iter()
            .any(|m| m.dest == TARGET_DIR && m.readonly)
    );
    // The image's own ops are all in the sbom's graph, unchanged.
    let image_ops: Vec<Vec<u8>> = image.state.marshal().def;
    let sbom_ops = c.state.marshal().def;
    let terminal = image_ops.len() - 1;
    assert!(image_ops[..terminal].iter().all(|op| sbom_ops.contains(op)));
}

// The helper execs' read-only mounts of whole trees are left out of the
// engine's content hashing (which checksums every file before the exec
// starts) where the engine has the cap, and only there.
#[test]
fn tree_mounts_skip_content_hashing_only_where_the_engine_can() {
    let text = "args: {MIRROR: \"\"}\nbase: reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111\nsteps:\n  - run: rm /etc/issue.net\nimage:\n  layers: base\n";
    let r = recipe::parse("repro.yaml", text).unwrap();
    let args = r.arg_values(&BTreeMap::new(), &BTreeMap::new()).unwrap();
    let r = r.expand(&args).unwrap();
    for skip in [true, false] {
        let mut o = opts(args.clone());
        o.skip_content_hash = skip;
        let c = to_llb(&r, &Lockfile::default(), &o).unwrap();
        let all = ops(&c);
        let (op, _) = &all[all.len() - 2];
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            panic!("the image is not the normalize exec's")
        };
        let target = e.mounts.iter().find(|m| m.dest == TARGET_DIR).unwrap();
        let want = match skip {
            true => pb::MountContentCache::Off,
            false => pb::MountContentCache::Default,
        };
        assert_eq!(target.content_cache, want as i32, "skip: {skip}");
        let caps = crate::llb::caps::required(&c.state.marshal()).unwrap();
        assert_eq!(
            caps.contains(crate::llb::CAP_EXEC_MOUNT_CONTENT_CACHE),
            skip,
            "{caps:?}"
        );
    }
}
