//! File ops: copy, mkdir and mkfile chained on one state, marshalled as one
//! FileOp (mirrors client/llb/fileop.go). Pure.

use std::collections::BTreeSet;

use bollard_buildkit_proto::pb;

use super::*;

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

impl Action {
    /// The action as protobuf; `index` is its place in the chain (a named
    /// owner is looked up in that action's input).
    fn to_pb(&self, index: i64) -> pb::file_action::Action {
        // Seconds to BuildKit's int64 nanoseconds; -1 leaves the time unset.
        let ns = |t: Option<i64>| t.map(|s| s.saturating_mul(1_000_000_000)).unwrap_or(EMPTY);
        match self {
            Action::Copy {
                src_path,
                dest,
                opts,
                ..
            } => pb::file_action::Action::Copy(pb::FileActionCopy {
                src: src_path.clone(),
                dest: dest.clone(),
                owner: chown(opts.user.as_ref(), opts.group.as_ref(), index),
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
        }
    }
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
    pub(super) fn new(base: State) -> FileOpBuilder {
        FileOpBuilder {
            base,
            actions: Vec::new(),
            name: None,
            locations: Vec::new(),
        }
    }

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
                let action = a.to_pb(i as i64);
                pb::FileAction {
                    input,
                    secondary_input: secondary[i],
                    output: if i == last { 0 } else { EMPTY },
                    action: Some(action),
                }
            })
            .collect();
        let mut op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp { actions })),
            ..Default::default()
        };
        let mut caps = BTreeSet::from([CAP_FILE_BASE]);
        set_platform(&mut op, &mut caps, &self.base.platform);
        let vertex = Vertex::new(op, inputs.list, self.name, caps, self.locations);
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
