//! Exec ops: a command on a root filesystem with mounts, network mode and
//! environment (mirrors client/llb/exec.go). Pure.

use std::collections::BTreeSet;

use bollard_buildkit_proto::pb;

use super::*;

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
    /// Ask the engine not to hash the mount's content for the exec's cache
    /// key (BuildKit otherwise checksums every file of a read-only mount
    /// before the exec starts); the key then rests on how the source was
    /// made. Needs the engine's `exec.mount.cache.content` cap.
    pub no_content_hash: bool,
}

impl Mount {
    /// `source` mounted read-only at `dest`: nothing written there is kept.
    pub fn readonly(dest: &str, source: State) -> Mount {
        Mount {
            dest: dest.to_string(),
            source: Some(source),
            selector: None,
            readonly: true,
            no_content_hash: false,
        }
    }

    /// This mount, with the engine told not to hash its content for the
    /// cache key (see the field).
    pub fn without_content_hash(mut self) -> Mount {
        self.no_content_hash = true;
        self
    }

    /// `source` mounted writable at `dest`: what is written there becomes a
    /// new snapshot on top of `source`, an output of the exec.
    pub fn writable(dest: &str, source: State) -> Mount {
        Mount {
            dest: dest.to_string(),
            source: Some(source),
            selector: None,
            readonly: false,
            no_content_hash: false,
        }
    }

    /// An empty, writable mount at `dest`, whose content becomes an output.
    pub fn scratch(dest: &str) -> Mount {
        Mount {
            dest: dest.to_string(),
            source: None,
            selector: None,
            readonly: false,
            no_content_hash: false,
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
    pub(super) fn new(root: State, args: Vec<String>) -> Exec {
        Exec {
            root,
            args,
            extra_env: Vec::new(),
            network: Network::Sandbox,
            mounts: Vec::new(),
            name: None,
            locations: Vec::new(),
        }
    }

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

    pub fn envs(mut self, vars: Vec<(String, String)>) -> Self {
        self.extra_env.extend(vars);
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
        let mut caps = BTreeSet::from([CAP_EXEC_META_BASE, CAP_EXEC_MOUNT_BIND]);
        let (pb_mounts, writable) = self.pb_mounts(&mut inputs, &mut caps);
        let network = match self.network {
            Network::Sandbox => pb::NetMode::Unset,
            Network::Host => pb::NetMode::Host,
            Network::None => pb::NetMode::None,
        };
        if self.network != Network::Sandbox {
            caps.insert(CAP_EXEC_META_NETWORK);
        }
        let mut op = pb::Op {
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: Some(self.meta()),
                mounts: pb_mounts,
                network: network as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        set_platform(&mut op, &mut caps, &self.root.platform);
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

    /// The root mount, then the others sorted by destination (as Go's
    /// ExecOp.Marshal orders them); writable ones get outputs 1, 2, ...
    /// Returns the mounts and the writable destinations in output order.
    fn pb_mounts(
        &self,
        inputs: &mut Inputs,
        caps: &mut BTreeSet<Cap>,
    ) -> (Vec<pb::Mount>, Vec<String>) {
        let mut input_of =
            |state: &Option<Output>| -> i64 { state.as_ref().map_or(EMPTY, |out| inputs.of(out)) };
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
            let content_cache = match m.no_content_hash {
                true => {
                    caps.insert(CAP_EXEC_MOUNT_CONTENT_CACHE);
                    pb::MountContentCache::Off
                }
                false => pb::MountContentCache::Default,
            };
            pb_mounts.push(pb::Mount {
                input: input_of(&m.source.as_ref().and_then(|s| s.output.clone())),
                selector: m.selector.clone().unwrap_or_default(),
                dest: m.dest.clone(),
                output,
                readonly: m.readonly,
                content_cache: content_cache as i32,
                ..Default::default()
            });
        }
        (pb_mounts, writable)
    }

    /// argv, env (the root's, then this exec's own), cwd and user.
    fn meta(&self) -> pb::Meta {
        let mut env = self.root.env.clone();
        for (k, v) in &self.extra_env {
            set_env(&mut env, k, v);
        }
        pb::Meta {
            args: self.args.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: self.root.cwd.clone().unwrap_or_else(|| "/".to_string()),
            user: self.root.user.clone().unwrap_or_default(),
            ..Default::default()
        }
    }
}
