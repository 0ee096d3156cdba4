//! A small LLB builder in the manner of Go's `client/llb`.
//!
//! A [`State`] is an immutable, cheap-to-clone handle on one output of an op,
//! plus the exec context (env, working dir, user) that later `run`s inherit.
//! Ops are content-addressed: each [`Vertex`] is marshalled once, when it is
//! made, and identified by the sha256 of those bytes, exactly as BuildKit
//! identifies it. [`State::marshal`] walks the graph into a `pb::Definition`.
//! Every attribute that needs a daemon feature records its cap where it is set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bollard_buildkit_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

pub mod caps;
pub mod sourcemap;

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
pub const CAP_FILE_BASE: Cap = "file.base";
pub const CAP_META_DESCRIPTION: Cap = "meta.description";
pub const CAP_META_IGNORE_CACHE: Cap = "meta.ignorecache";

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
    CAP_FILE_BASE,
    CAP_META_DESCRIPTION,
    CAP_META_IGNORE_CACHE,
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
        // prost writes fields in tag order and maps in BTreeMap order, so the
        // bytes (and the digest) depend only on the op's content.
        let bytes = op.encode_to_vec();
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
}

/// How an image source finds its image: BuildKit's `image.resolvemode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    #[default]
    Default,
    ForcePull,
    PreferLocal,
}

impl ResolveMode {
    /// Reads the `image-resolve-mode` frontend opt.
    pub fn from_opt(value: &str) -> Option<ResolveMode> {
        match value {
            "" | "default" => Some(ResolveMode::Default),
            "pull" => Some(ResolveMode::ForcePull),
            "local" => Some(ResolveMode::PreferLocal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResolveMode::Default => "default",
            ResolveMode::ForcePull => "pull",
            ResolveMode::PreferLocal => "local",
        }
    }
}

fn source(
    identifier: String,
    attrs: BTreeMap<String, String>,
    name: Option<String>,
    caps: BTreeSet<Cap>,
) -> State {
    let op = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp { identifier, attrs })),
        ..Default::default()
    };
    State::from_output(Output {
        vertex: Vertex::new(op, Vec::new(), name, caps, Vec::new()),
        index: 0,
    })
}

/// mirrors client/llb/source.go Image()
pub fn image(reference: &str, mode: ResolveMode, name: Option<String>) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_IMAGE]);
    if mode != ResolveMode::Default {
        attrs.insert("image.resolvemode".to_string(), mode.as_str().to_string());
        caps.insert(CAP_SOURCE_IMAGE_RESOLVE_MODE);
    }
    source(format!("docker-image://{reference}"), attrs, name, caps)
}

/// Options of a local (client directory) source.
#[derive(Clone, Debug, Default)]
pub struct LocalOpts {
    pub session_id: Option<String>,
    pub include_patterns: Vec<String>,
    pub shared_key_hint: Option<String>,
}

/// mirrors client/llb/source.go Local()
pub fn local(name: &str, opts: &LocalOpts, display: Option<String>) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_LOCAL]);
    if let Some(id) = &opts.session_id {
        attrs.insert("local.session".to_string(), id.clone());
        caps.insert(CAP_SOURCE_LOCAL_SESSION_ID);
    }
    if !opts.include_patterns.is_empty() {
        // BuildKit reads this attribute as a JSON array of strings.
        let json = serde_json::to_string(&opts.include_patterns).unwrap_or_default();
        attrs.insert("local.includepattern".to_string(), json);
        caps.insert(CAP_SOURCE_LOCAL_INCLUDE_PATTERNS);
    }
    if let Some(hint) = &opts.shared_key_hint {
        attrs.insert("local.sharedkeyhint".to_string(), hint.clone());
        caps.insert(CAP_SOURCE_LOCAL_SHARED_KEY_HINT);
    }
    source(format!("local://{name}"), attrs, display, caps)
}

/// mirrors client/llb/source.go HTTP(): one file, fetched by BuildKit and
/// verified against `checksum` (`sha256:<hex>`) before anything uses it.
pub fn http(
    url: &str,
    checksum: &str,
    filename: &str,
    perm: Option<u32>,
    name: Option<String>,
) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_HTTP]);
    attrs.insert("http.checksum".to_string(), checksum.to_string());
    caps.insert(CAP_SOURCE_HTTP_CHECKSUM);
    attrs.insert("http.filename".to_string(), filename.to_string());
    if let Some(perm) = perm {
        attrs.insert("http.perm".to_string(), format!("{perm:o}"));
        caps.insert(CAP_SOURCE_HTTP_PERM);
    }
    source(url.to_string(), attrs, name, caps)
}

/// Network mode of an exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Sandbox,
    Host,
    None,
}

/// A mount of an exec other than its root.
#[derive(Clone, Debug)]
pub struct Mount {
    pub dest: String,
    /// `None` mounts scratch.
    pub source: Option<State>,
    /// A path inside `source` to mount instead of its root.
    pub selector: Option<String>,
    pub readonly: bool,
}

impl Mount {
    /// `source` mounted read-only at `dest`: nothing written there is kept.
    pub fn readonly(dest: &str, source: State) -> Mount {
        Mount {
            dest: dest.to_string(),
            source: Some(source),
            selector: None,
            readonly: true,
        }
    }

    /// An empty, writable mount at `dest`, whose content becomes an output.
    pub fn scratch(dest: &str) -> Mount {
        Mount {
            dest: dest.to_string(),
            source: None,
            selector: None,
            readonly: false,
        }
    }
}

/// An exec to run on a state; build it with [`State::run`].
#[derive(Clone, Debug)]
pub struct Exec {
    root: State,
    args: Vec<String>,
    extra_env: Vec<(String, String)>,
    network: Network,
    mounts: Vec<Mount>,
    name: Option<String>,
    locations: Vec<Location>,
}

/// The outputs of an exec: its root, then each writable mount in `mounts` order.
#[derive(Clone, Debug)]
pub struct ExecOutputs {
    pub root: State,
    pub mounts: Vec<State>,
}

impl Exec {
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The source lines this op comes from (see [`sourcemap`]).
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.locations.extend(location);
        self
    }

    /// mirrors client/llb/exec.go ExecOp.Marshal
    /// Mounts an empty directory at `dest`, builds the exec, and returns what
    /// the exec left in that directory (a fresh snapshot: one layer).
    pub fn build_into(self, dest: &str) -> State {
        let mut outs = self.mount(Mount::scratch(dest)).build();
        // Writable mounts come back in the order they were added, and the
        // scratch mount was added last.
        let Some(out) = outs.mounts.pop() else {
            unreachable!("a scratch mount is writable, so it has an output")
        };
        out
    }

    pub fn build(self) -> ExecOutputs {
        let mut inputs = Inputs::default();
        let mut input_of =
            |state: &Option<Output>| -> i64 { state.as_ref().map_or(EMPTY, |out| inputs.of(out)) };
        let mut caps = BTreeSet::from([CAP_EXEC_META_BASE, CAP_EXEC_MOUNT_BIND]);
        let mut pb_mounts = vec![pb::Mount {
            input: input_of(&self.root.output),
            dest: "/".to_string(),
            output: 0,
            ..Default::default()
        }];
        let mut order: Vec<&Mount> = self.mounts.iter().collect();
        order.sort_by(|a, b| a.dest.cmp(&b.dest));
        let mut next_output = 1;
        let mut writable = Vec::new();
        for m in order {
            let output = if m.readonly {
                EMPTY
            } else {
                next_output += 1;
                writable.push(m.dest.clone());
                next_output - 1
            };
            if m.selector.is_some() {
                caps.insert(CAP_EXEC_MOUNT_SELECTOR);
            }
            pb_mounts.push(pb::Mount {
                input: input_of(&m.source.as_ref().and_then(|s| s.output.clone())),
                selector: m.selector.clone().unwrap_or_default(),
                dest: m.dest.clone(),
                output,
                readonly: m.readonly,
                ..Default::default()
            });
        }
        let mut env = self.root.env.clone();
        for (k, v) in &self.extra_env {
            set_env(&mut env, k, v);
        }
        let network = match self.network {
            Network::Sandbox => pb::NetMode::Unset,
            Network::Host => pb::NetMode::Host,
            Network::None => pb::NetMode::None,
        };
        if self.network != Network::Sandbox {
            caps.insert(CAP_EXEC_META_NETWORK);
        }
        let op = pb::Op {
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args: self.args.clone(),
                    env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    cwd: self.root.cwd.clone().unwrap_or_else(|| "/".to_string()),
                    user: self.root.user.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                mounts: pb_mounts,
                network: network as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let vertex = Vertex::new(op, inputs.list, self.name.clone(), caps, self.locations);
        let root = State {
            output: Some(Output {
                vertex: vertex.clone(),
                index: 0,
            }),
            ..self.root.clone()
        };
        // Mount outputs are numbered after the root's, in sorted-dest order;
        // hand them back in the order the caller added the mounts.
        let mounts = self
            .mounts
            .iter()
            .filter(|m| !m.readonly)
            .map(|m| {
                let pos = writable.iter().position(|d| d == &m.dest).unwrap_or(0);
                State::from_output(Output {
                    vertex: vertex.clone(),
                    index: pos as i64 + 1,
                })
            })
            .collect();
        ExecOutputs { root, mounts }
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

/// Owner of files made by a file action: numeric ids or names looked up in
/// the destination's `/etc/passwd` and `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Id(u32),
    Name(String),
}

/// Options of a copy action.
#[derive(Clone, Debug, Default)]
pub struct CopyOpts {
    pub user: Option<Owner>,
    pub group: Option<Owner>,
    pub mode: Option<u32>,
    pub dir_contents_only: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    /// Seconds since 1970; sets the mtime of everything copied.
    pub timestamp: Option<i64>,
}

/// One action of a file op; chain them with [`FileOpBuilder`].
#[derive(Clone, Debug)]
enum Action {
    Copy {
        src: State,
        src_path: String,
        dest: String,
        opts: CopyOpts,
    },
    Mkdir {
        path: String,
        mode: u32,
        parents: bool,
        timestamp: Option<i64>,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        timestamp: Option<i64>,
    },
}

/// A chain of file actions applied to one state, marshalled as one FileOp.
#[derive(Clone, Debug)]
pub struct FileOpBuilder {
    base: State,
    actions: Vec<Action>,
    name: Option<String>,
    locations: Vec<Location>,
}

impl FileOpBuilder {
    pub fn copy(mut self, src: &State, src_path: &str, dest: &str, opts: CopyOpts) -> Self {
        self.actions.push(Action::Copy {
            src: src.clone(),
            src_path: src_path.to_string(),
            dest: dest.to_string(),
            opts,
        });
        self
    }

    pub fn mkdir(mut self, path: &str, mode: u32, parents: bool, timestamp: Option<i64>) -> Self {
        self.actions.push(Action::Mkdir {
            path: path.to_string(),
            mode,
            parents,
            timestamp,
        });
        self
    }

    /// A file with the given content; its bytes are part of the op (and so
    /// of its digest).
    pub fn mkfile(mut self, path: &str, mode: u32, data: Vec<u8>, timestamp: Option<i64>) -> Self {
        self.actions.push(Action::Mkfile {
            path: path.to_string(),
            mode,
            data,
            timestamp,
        });
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The source lines this op comes from (see [`sourcemap`]).
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.locations.extend(location);
        self
    }

    /// mirrors client/llb/fileop.go FileOp.Marshal: the base is input 0, each
    /// copy source another input, and action N reads action N-1's result as
    /// "number of inputs + N-1".
    pub fn build(self) -> State {
        if self.actions.is_empty() {
            return self.base;
        }
        let mut inputs = Inputs::default();
        let mut add_input = |out: &Output| -> i64 { inputs.of(out) };
        let base_input = self
            .base
            .output
            .as_ref()
            .map(&mut add_input)
            .unwrap_or(EMPTY);
        // Secondary inputs are resolved first so the input count is final
        // before relative indexes are computed.
        let secondary: Vec<i64> = self
            .actions
            .iter()
            .map(|a| match a {
                Action::Copy { src, .. } => {
                    src.output.as_ref().map(&mut add_input).unwrap_or(EMPTY)
                }
                Action::Mkdir { .. } | Action::Mkfile { .. } => EMPTY,
            })
            .collect();
        let n_inputs = inputs.list.len() as i64;
        let last = self.actions.len() - 1;
        let ns = |t: Option<i64>| t.map(|s| s.saturating_mul(1_000_000_000)).unwrap_or(EMPTY);
        let actions = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let input = if i == 0 {
                    base_input
                } else {
                    n_inputs + i as i64 - 1
                };
                let action = match a {
                    Action::Copy {
                        src_path,
                        dest,
                        opts,
                        ..
                    } => pb::file_action::Action::Copy(pb::FileActionCopy {
                        src: src_path.clone(),
                        dest: dest.clone(),
                        owner: chown(opts.user.as_ref(), opts.group.as_ref(), i as i64),
                        mode: opts.mode.map(|m| m as i32).unwrap_or(-1),
                        follow_symlink: false,
                        dir_copy_contents: opts.dir_contents_only,
                        create_dest_path: opts.create_dest_path,
                        allow_wildcard: opts.allow_wildcard,
                        allow_empty_wildcard: false,
                        timestamp: ns(opts.timestamp),
                        ..Default::default()
                    }),
                    Action::Mkdir {
                        path,
                        mode,
                        parents,
                        timestamp,
                    } => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                        path: path.clone(),
                        mode: *mode as i32,
                        make_parents: *parents,
                        owner: None,
                        timestamp: ns(*timestamp),
                    }),
                    Action::Mkfile {
                        path,
                        mode,
                        data,
                        timestamp,
                    } => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                        path: path.clone(),
                        mode: *mode as i32,
                        data: data.clone(),
                        owner: None,
                        timestamp: ns(*timestamp),
                    }),
                };
                pb::FileAction {
                    input,
                    secondary_input: secondary[i],
                    output: if i == last { 0 } else { EMPTY },
                    action: Some(action),
                }
            })
            .collect();
        let op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp { actions })),
            ..Default::default()
        };
        let vertex = Vertex::new(
            op,
            inputs.list,
            self.name,
            BTreeSet::from([CAP_FILE_BASE]),
            self.locations,
        );
        State {
            output: Some(Output { vertex, index: 0 }),
            ..self.base
        }
    }
}

fn chown(user: Option<&Owner>, group: Option<&Owner>, input: i64) -> Option<pb::ChownOpt> {
    let conv = |o: &Owner| pb::UserOpt {
        user: Some(match o {
            Owner::Id(id) => pb::user_opt::User::ById(*id),
            Owner::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: name.clone(),
                input,
            }),
        }),
    };
    if user.is_none() && group.is_none() {
        return None;
    }
    Some(pb::ChownOpt {
        user: user.map(conv),
        group: group.map(conv),
    })
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

    pub fn with_user(&self, user: &str) -> State {
        State {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    /// Starts an exec of `args` with this state as its root filesystem.
    pub fn run(&self, args: Vec<String>) -> Exec {
        Exec {
            root: self.clone(),
            args,
            extra_env: Vec::new(),
            network: Network::Sandbox,
            mounts: Vec::new(),
            name: None,
            locations: Vec::new(),
        }
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
        FileOpBuilder {
            base: self.clone(),
            actions: Vec::new(),
            name: None,
            locations: Vec::new(),
        }
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

    fn sample() -> State {
        let base = image(
            "reg/x@sha256:00",
            ResolveMode::PreferLocal,
            Some("base".into()),
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
