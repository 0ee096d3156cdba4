//! A small LLB builder in the manner of Go's `client/llb`.
//!
//! A [`State`] is an immutable, cheap-to-clone handle on one output of an op,
//! plus the exec context (env, working dir, user) that later `run`s inherit.
//! Ops are content-addressed: each [`Vertex`] is marshalled once, when it is
//! made, and identified by the sha256 of those bytes, exactly as BuildKit
//! identifies it. [`State::marshal`] walks the graph into a `pb::Definition`.
//! Every attribute that needs a daemon feature records its cap where it is set.
//! Pure: builds and marshals graphs, no I/O.
//!
//! `source` (image, local, http), `exec` and `file` make the ops; `caps`
//! reads the caps a marshalled Definition needs; `sourcemap` says which
//! recipe lines each op came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bollard_buildkit_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

pub mod caps;
mod exec;
mod file;
mod source;
pub mod sourcemap;

pub use exec::{Exec, ExecOutputs, Mount, Network};
pub use file::{CopyOpts, FileOpBuilder, Owner};
pub use source::{LocalOpts, ResolveMode, http, image, local};
pub use sourcemap::{Location, SourceFile};

/// BuildKit's `pb.Empty`: no input (scratch) / no output.
const EMPTY: i64 = -1;

/// An LLB capability, as BuildKit names it in `solver/pb/caps.go`.
pub type Cap = &'static str;

pub const CAP_SOURCE_IMAGE: Cap = "source.image";
pub const CAP_SOURCE_IMAGE_RESOLVE_MODE: Cap = "source.image.resolvemode";
pub const CAP_SOURCE_LOCAL: Cap = "source.local";
pub const CAP_SOURCE_LOCAL_SESSION_ID: Cap = "source.local.sessionid";
pub const CAP_SOURCE_LOCAL_INCLUDE_PATTERNS: Cap = "source.local.includepatterns";
pub const CAP_SOURCE_LOCAL_SHARED_KEY_HINT: Cap = "source.local.sharedkeyhint";
pub const CAP_SOURCE_HTTP: Cap = "source.http";
pub const CAP_SOURCE_HTTP_CHECKSUM: Cap = "source.http.checksum";
pub const CAP_SOURCE_HTTP_PERM: Cap = "source.http.perm";
pub const CAP_EXEC_META_BASE: Cap = "exec.meta.base";
pub const CAP_EXEC_META_NETWORK: Cap = "exec.meta.network";
pub const CAP_EXEC_MOUNT_BIND: Cap = "exec.mount.bind";
pub const CAP_EXEC_MOUNT_SELECTOR: Cap = "exec.mount.selector";
pub const CAP_EXEC_MOUNT_CONTENT_CACHE: Cap = caps::CAP_EXEC_MOUNT_CONTENT_CACHE;
pub const CAP_FILE_BASE: Cap = "file.base";
pub const CAP_META_DESCRIPTION: Cap = "meta.description";
pub const CAP_META_IGNORE_CACHE: Cap = "meta.ignorecache";
pub const CAP_PLATFORM: Cap = caps::CAP_PLATFORM;

/// Metadata applied to every op of a Definition, as Go's llb.Constraints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Constraints {
    /// `--no-cache`: BuildKit recomputes every op instead of reusing results
    /// of earlier builds. It lives in the metadata, not in the op, so the
    /// op digests (and the image) do not change.
    pub ignore_cache: bool,
}

/// Every cap this builder can record.
pub const ALL_CAPS: &[Cap] = &[
    CAP_SOURCE_IMAGE,
    CAP_SOURCE_IMAGE_RESOLVE_MODE,
    CAP_SOURCE_LOCAL,
    CAP_SOURCE_LOCAL_SESSION_ID,
    CAP_SOURCE_LOCAL_INCLUDE_PATTERNS,
    CAP_SOURCE_LOCAL_SHARED_KEY_HINT,
    CAP_SOURCE_HTTP,
    CAP_SOURCE_HTTP_CHECKSUM,
    CAP_SOURCE_HTTP_PERM,
    CAP_EXEC_META_BASE,
    CAP_EXEC_META_NETWORK,
    CAP_EXEC_MOUNT_BIND,
    CAP_EXEC_MOUNT_SELECTOR,
    CAP_EXEC_MOUNT_CONTENT_CACHE,
    CAP_FILE_BASE,
    CAP_META_DESCRIPTION,
    CAP_META_IGNORE_CACHE,
    CAP_PLATFORM,
];

/// One marshalled op and what it needs.
#[derive(Debug)]
pub struct Vertex {
    bytes: Vec<u8>,
    digest: String,
    inputs: Vec<Output>,
    description: BTreeMap<String, String>,
    caps: BTreeSet<Cap>,
    /// The source lines this op came from (not part of its bytes).
    locations: Vec<Location>,
}

/// The op's bytes as BuildKit marshals an op again (solver/pb/ops.go:
/// protobuf-go, deterministic), so the digest is the one it keys the op by.
/// protobuf-go writes the fields outside a oneof in field-number order, then
/// the oneof; prost writes every field in number order, so the `op` oneof
/// (2-7) came before `platform` (10). BuildKit v0.26 re-marshals each op and
/// re-keys one whose bytes differ, and then finds no recipe lines for its
/// errors. Maps are in key order in both.
fn canonical_bytes(mut op: pb::Op) -> Vec<u8> {
    let oneof = op.op.take();
    let mut bytes = op.encode_to_vec();
    if let Some(o) = &oneof {
        o.encode(&mut bytes);
    }
    bytes
}

impl Vertex {
    /// Marshals `op` with `inputs` as its input edges.
    fn new(
        mut op: pb::Op,
        inputs: Vec<Output>,
        name: Option<String>,
        mut caps: BTreeSet<Cap>,
        locations: Vec<Location>,
    ) -> Arc<Vertex> {
        op.inputs = inputs
            .iter()
            .map(|o| pb::Input {
                digest: o.vertex.digest.clone(),
                index: o.index,
            })
            .collect();
        let bytes = canonical_bytes(op);
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let mut description = BTreeMap::new();
        if let Some(name) = name {
            description.insert("llb.customname".to_string(), name);
            caps.insert(CAP_META_DESCRIPTION);
        }
        Arc::new(Vertex {
            bytes,
            digest,
            inputs,
            description,
            caps,
            locations,
        })
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// One output of a vertex.
#[derive(Clone, Debug)]
pub struct Output {
    vertex: Arc<Vertex>,
    index: i64,
}

impl Output {
    pub fn vertex(&self) -> &Vertex {
        &self.vertex
    }
}

/// A filesystem (or scratch) plus the context later execs run in.
#[derive(Clone, Debug, Default)]
pub struct State {
    output: Option<Output>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    user: Option<String>,
    /// The platform of the ops made on this state (execs run its programs,
    /// under emulation where the worker is another); `None` is the worker's own.
    platform: Option<Arc<pb::Platform>>,
}

/// Puts `platform` on an op and records the cap it needs (mirrors Go's
/// Constraints.Platform, which every op of a state carries).
fn set_platform(op: &mut pb::Op, caps: &mut BTreeSet<Cap>, platform: &Option<Arc<pb::Platform>>) {
    if let Some(p) = platform {
        op.platform = Some(p.as_ref().clone());
        caps.insert(CAP_PLATFORM);
    }
}

/// An op's inputs, each output once (an output used twice is one input),
/// indexed so that ops with thousands of inputs stay linear.
#[derive(Default)]
struct Inputs {
    list: Vec<Output>,
    index: HashMap<(String, i64), i64>,
}

impl Inputs {
    /// The index of `out` among the inputs, adding it the first time.
    fn of(&mut self, out: &Output) -> i64 {
        let key = (out.vertex.digest.clone(), out.index);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.list.push(out.clone());
        let i = (self.list.len() - 1) as i64;
        self.index.insert(key, i);
        i
    }
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

impl State {
    /// The empty filesystem.
    pub fn scratch() -> State {
        State::default()
    }

    fn from_output(output: Output) -> State {
        State {
            output: Some(output),
            ..State::default()
        }
    }

    pub fn output(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    pub fn with_env(&self, key: &str, value: &str) -> State {
        let mut s = self.clone();
        set_env(&mut s.env, key, value);
        s
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn with_cwd(&self, cwd: &str) -> State {
        State {
            cwd: Some(cwd.to_string()),
            ..self.clone()
        }
    }

    pub fn cwd(&self) -> Option<&str> {
        self.cwd.as_deref()
    }

    /// The platform this state's ops are for (see [`State`]'s field).
    pub fn platform(&self) -> Option<&pb::Platform> {
        self.platform.as_deref()
    }

    pub fn with_user(&self, user: &str) -> State {
        State {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    /// Starts an exec of `args` with this state as its root filesystem.
    pub fn run(&self, args: Vec<String>) -> Exec {
        Exec::new(self.clone(), args)
    }

    /// This state's op, marked as coming from `location` (for ops made by a
    /// plain function, such as sources). The op's bytes and digest stay.
    pub fn at(&self, location: Option<Location>) -> State {
        let (Some(out), Some(location)) = (&self.output, location) else {
            return self.clone();
        };
        let v = &out.vertex;
        let mut locations = v.locations.clone();
        locations.push(location);
        let vertex = Arc::new(Vertex {
            bytes: v.bytes.clone(),
            digest: v.digest.clone(),
            inputs: v.inputs.clone(),
            description: v.description.clone(),
            caps: v.caps.clone(),
            locations,
        });
        State {
            output: Some(Output {
                vertex,
                index: out.index,
            }),
            ..self.clone()
        }
    }

    /// Starts a file op on this state.
    pub fn file(&self) -> FileOpBuilder {
        FileOpBuilder::new(self.clone())
    }

    /// Marshals the graph that ends in this state into a Definition: ops in
    /// dependency order, each once, then the terminal op that names the result.
    pub fn marshal(&self) -> pb::Definition {
        self.marshal_with(Constraints::default())
    }

    /// Marshals with per-build metadata applied to every op.
    pub fn marshal_with(&self, c: Constraints) -> pb::Definition {
        let mut def = Vec::new();
        let mut metadata = BTreeMap::new();
        let mut located: Vec<(String, Vec<Location>)> = Vec::new();
        walk(self.output.as_ref(), &mut BTreeSet::new(), &mut |v| {
            def.push(v.bytes.clone());
            located.push((v.digest.clone(), v.locations.clone()));
            let mut caps: BTreeMap<String, bool> =
                v.caps.iter().map(|c| (c.to_string(), true)).collect();
            if c.ignore_cache {
                caps.insert(CAP_META_IGNORE_CACHE.to_string(), true);
            }
            metadata.insert(
                v.digest.clone(),
                pb::OpMetadata {
                    ignore_cache: c.ignore_cache,
                    description: v.description.clone(),
                    caps,
                    ..Default::default()
                },
            );
        });
        if let Some(out) = &self.output {
            let terminal = pb::Op {
                inputs: vec![pb::Input {
                    digest: out.vertex.digest.clone(),
                    index: out.index,
                }],
                ..Default::default()
            };
            def.push(terminal.encode_to_vec());
        }
        let source = sourcemap::collect(located.iter().map(|(d, l)| (d.as_str(), l.as_slice())));
        pb::Definition {
            def,
            metadata,
            source,
        }
    }
}

/// One line per op of a Definition: short digest, kind, progress name.
pub fn describe(def: &pb::Definition) -> Vec<String> {
    def.def
        .iter()
        .map(|bytes| {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
            let kind = match pb::Op::decode(bytes.as_slice()).ok().and_then(|op| op.op) {
                Some(pb::op::Op::Source(s)) => format!("source {}", s.identifier),
                Some(pb::op::Op::Exec(_)) => "exec".to_string(),
                Some(pb::op::Op::File(f)) => format!("file ({} action(s))", f.actions.len()),
                Some(_) => "other".to_string(),
                None => "terminal".to_string(),
            };
            let name = def
                .metadata
                .get(&digest)
                .and_then(|m| m.description.get("llb.customname"))
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default();
            format!("{} {kind}{name}", &digest[..19])
        })
        .collect()
}

/// Post-order walk: inputs before the ops that read them, each vertex once.
fn walk(out: Option<&Output>, seen: &mut BTreeSet<String>, visit: &mut dyn FnMut(&Vertex)) {
    let Some(out) = out else { return };
    let v = &out.vertex;
    if seen.contains(&v.digest) {
        return;
    }
    for input in &v.inputs {
        walk(Some(input), seen, visit);
    }
    seen.insert(v.digest.clone());
    visit(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(def: &pb::Definition) -> Vec<pb::Op> {
        def.def
            .iter()
            .map(|b| pb::Op::decode(b.as_slice()).unwrap())
            .collect()
    }

    fn digest_of(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// The field numbers of a message's top-level fields, in byte order.
    fn field_numbers(mut bytes: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let key = prost::encoding::decode_varint(&mut bytes).unwrap();
            out.push(key >> 3);
            match key & 7 {
                0 => drop(prost::encoding::decode_varint(&mut bytes).unwrap()),
                2 => {
                    let len = prost::encoding::decode_varint(&mut bytes).unwrap() as usize;
                    bytes = &bytes[len..];
                }
                wire => panic!("wire type {wire} in an op"),
            }
        }
        out
    }

    // Regression: with a platform, prost wrote the exec (2) before the
    // platform (10), BuildKit v0.26 marshalled the op again with the oneof
    // last and re-keyed it, and a failing step lost its recipe lines.
    #[test]
    fn ops_with_a_platform_are_marshalled_as_buildkit_marshals_them() {
        let arm64 = pb::Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            ..Default::default()
        };
        let base = image("reg/x@sha256:00", ResolveMode::Default, None, Some(arm64));
        let def = base.run(vec!["true".into()]).build_into("/out").marshal();
        assert_eq!(
            field_numbers(&def.def[0]),
            [10, 3],
            "platform, then the source"
        );
        assert_eq!(
            field_numbers(&def.def[1]),
            [1, 10, 2],
            "input, platform, exec"
        );
        // Still the same op when decoded.
        let exec = pb::Op::decode(def.def[1].as_slice()).unwrap();
        assert!(matches!(exec.op, Some(pb::op::Op::Exec(_))));
        assert_eq!(exec.platform.unwrap().architecture, "arm64");
    }

    fn sample() -> State {
        let base = image(
            "reg/x@sha256:00",
            ResolveMode::PreferLocal,
            Some("base".into()),
            None,
        );
        let blob = http(
            "http://m/a.deb",
            "sha256:ab",
            "a.deb",
            None,
            Some("fetch a.deb".into()),
        );
        let blobs = State::scratch()
            .file()
            .copy(&blob, "/a.deb", "/a.deb", CopyOpts::default())
            .build();
        base.with_env("PATH", "/usr/bin:/bin")
            .run(vec!["dpkg".into(), "-i".into(), "/pkgs/a.deb".into()])
            .network(Network::None)
            .mount(Mount {
                dest: "/pkgs".into(),
                source: Some(blobs),
                selector: None,
                readonly: true,
                no_content_hash: false,
            })
            .name("install")
            .build()
            .root
    }

    #[test]
    fn marshalling_twice_gives_the_same_bytes() {
        let a = sample().marshal().encode_to_vec();
        let b = sample().marshal().encode_to_vec();
        assert_eq!(a, b);
    }

    #[test]
    fn ops_come_in_dependency_order_with_digests_of_their_bytes() {
        let def = sample().marshal();
        let ops = decode(&def);
        assert_eq!(ops.len(), 5, "image, http, file, exec, terminal");
        let mut known = BTreeSet::new();
        for (op, bytes) in ops.iter().zip(&def.def) {
            for input in &op.inputs {
                assert!(known.contains(&input.digest), "input before use");
            }
            known.insert(digest_of(bytes));
        }
        for bytes in &def.def[..4] {
            assert!(def.metadata.contains_key(&digest_of(bytes)));
        }
        let terminal = ops.last().unwrap();
        assert!(terminal.op.is_none());
        assert_eq!(terminal.inputs.len(), 1);
    }

    #[test]
    fn exec_fields_and_caps() {
        let def = sample().marshal();
        let ops = decode(&def);
        let Some(pb::op::Op::Exec(exec)) = &ops[3].op else {
            panic!("not exec")
        };
        let meta = exec.meta.as_ref().unwrap();
        assert_eq!(meta.args, ["dpkg", "-i", "/pkgs/a.deb"]);
        assert_eq!(meta.env, ["PATH=/usr/bin:/bin"]);
        assert_eq!(exec.network, pb::NetMode::None as i32);
        assert_eq!(exec.mounts.len(), 2);
        assert_eq!(
            (exec.mounts[0].dest.as_str(), exec.mounts[0].output),
            ("/", 0)
        );
        assert_eq!(exec.mounts[1].output, EMPTY);
        assert!(exec.mounts[1].readonly);
        let md = &def.metadata[&digest_of(&def.def[3])];
        assert_eq!(md.description["llb.customname"], "install");
        assert!(md.caps.contains_key(CAP_EXEC_META_NETWORK));
        let caps = caps::required(&def).unwrap();
        for c in [
            CAP_SOURCE_HTTP_CHECKSUM,
            CAP_SOURCE_IMAGE_RESOLVE_MODE,
            CAP_FILE_BASE,
            CAP_EXEC_MOUNT_BIND,
        ] {
            assert!(caps.contains(c), "{c}");
        }
    }

    #[test]
    fn http_and_image_attrs() {
        let def = sample().marshal();
        let ops = decode(&def);
        let Some(pb::op::Op::Source(img)) = &ops[0].op else {
            panic!()
        };
        assert_eq!(img.identifier, "docker-image://reg/x@sha256:00");
        assert_eq!(img.attrs["image.resolvemode"], "local");
        let Some(pb::op::Op::Source(h)) = &ops[1].op else {
            panic!()
        };
        assert_eq!(h.identifier, "http://m/a.deb");
        assert_eq!(h.attrs["http.checksum"], "sha256:ab");
        assert_eq!(h.attrs["http.filename"], "a.deb");
    }

    #[test]
    fn chained_file_actions_use_relative_indexes() {
        let a = http("http://m/a", "sha256:aa", "a", None, None);
        let b = http("http://m/b", "sha256:bb", "b", None, None);
        let st = State::scratch()
            .file()
            .copy(&a, "/a", "/a", CopyOpts::default())
            .copy(
                &b,
                "/b",
                "/b",
                CopyOpts {
                    timestamp: Some(7),
                    ..Default::default()
                },
            )
            .mkdir("/c", 0o755, true, None)
            .build();
        let ops = decode(&st.marshal());
        let Some(pb::op::Op::File(f)) = &ops[2].op else {
            panic!()
        };
        assert_eq!(ops[2].inputs.len(), 2);
        let idx: Vec<_> = f
            .actions
            .iter()
            .map(|a| (a.input, a.secondary_input, a.output))
            .collect();
        assert_eq!(idx, [(EMPTY, 0, EMPTY), (2, 1, EMPTY), (3, EMPTY, 0)]);
        let Some(pb::file_action::Action::Copy(c)) = &f.actions[1].action else {
            panic!()
        };
        assert_eq!(c.timestamp, 7_000_000_000);
        assert_eq!(c.mode, -1);
    }

    #[test]
    fn ignore_cache_marks_every_op_and_keeps_the_digests() {
        let plain = sample().marshal();
        let nocache = sample().marshal_with(Constraints { ignore_cache: true });
        assert_eq!(plain.def, nocache.def);
        assert_eq!(nocache.metadata.len(), 4);
        for md in nocache.metadata.values() {
            assert!(md.ignore_cache);
            assert!(md.caps.contains_key(CAP_META_IGNORE_CACHE));
        }
        assert!(plain.metadata.values().all(|m| !m.ignore_cache));
    }

    #[test]
    fn same_content_same_digest_whatever_the_path_to_it() {
        let a = http("http://m/a", "sha256:aa", "a", None, None);
        let b = http("http://m/a", "sha256:aa", "a", None, None);
        assert_eq!(
            a.output().unwrap().vertex().digest(),
            b.output().unwrap().vertex().digest()
        );
    }
}
