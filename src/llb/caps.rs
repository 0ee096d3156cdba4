//! The LLB caps a marshalled Definition needs, read from the bytes that are
//! sent (each op decoded, plus its metadata). Pure: no I/O.
//!
//! The builder also records caps where it sets an attribute (they travel in
//! each op's metadata); this reads them back from the wire form instead, so
//! an attribute set without its cap, or by hand, is still checked. The
//! mapping mirrors what client/llb (exec.go, source.go, fileop.go) adds per
//! field; cap names are BuildKit's, from solver/pb/caps.go.

use std::collections::BTreeSet;

use bollard_buildkit_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

use super::{
    CAP_EXEC_META_BASE, CAP_EXEC_META_NETWORK, CAP_EXEC_MOUNT_BIND, CAP_EXEC_MOUNT_SELECTOR,
    CAP_FILE_BASE, CAP_META_DESCRIPTION, CAP_META_IGNORE_CACHE, CAP_SOURCE_HTTP,
    CAP_SOURCE_HTTP_CHECKSUM, CAP_SOURCE_HTTP_PERM, CAP_SOURCE_IMAGE,
    CAP_SOURCE_IMAGE_RESOLVE_MODE, CAP_SOURCE_LOCAL, CAP_SOURCE_LOCAL_INCLUDE_PATTERNS,
    CAP_SOURCE_LOCAL_SESSION_ID, CAP_SOURCE_LOCAL_SHARED_KEY_HINT, Cap,
};

// Caps the builder never records itself but a Definition may still carry.
pub const CAP_SOURCE_IMAGE_LAYER_LIMIT: Cap = "source.image.layerlimit";
pub const CAP_SOURCE_LOCAL_UNIQUE: Cap = "source.local.unique";
pub const CAP_SOURCE_LOCAL_FOLLOW_PATHS: Cap = "source.local.followpaths";
pub const CAP_SOURCE_LOCAL_EXCLUDE_PATTERNS: Cap = "source.local.excludepatterns";
pub const CAP_SOURCE_LOCAL_DIFFER: Cap = "source.local.differ";
pub const CAP_SOURCE_GIT: Cap = "source.git";
pub const CAP_SOURCE_GIT_KEEP_DIR: Cap = "source.git.keepgitdir";
pub const CAP_SOURCE_GIT_FULL_URL: Cap = "source.git.fullurl";
pub const CAP_SOURCE_GIT_HTTP_AUTH: Cap = "source.git.httpauth";
pub const CAP_SOURCE_GIT_KNOWN_SSH_HOSTS: Cap = "source.git.knownsshhosts";
pub const CAP_SOURCE_GIT_MOUNT_SSH_SOCK: Cap = "source.git.mountsshsock";
pub const CAP_SOURCE_GIT_SUBDIR: Cap = "source.git.subdir";
/// BuildKit spells this one "soruce"; the daemon compares the string as is.
pub const CAP_SOURCE_HTTP_UID_GID: Cap = "soruce.http.uidgid";
pub const CAP_SOURCE_OCI_LAYOUT: Cap = "source.ocilayout";
pub const CAP_EXEC_META_CGROUP_PARENT: Cap = "exec.meta.cgroup.parent";
pub const CAP_EXEC_META_PROXY: Cap = "exec.meta.proxyenv";
pub const CAP_EXEC_META_SECURITY: Cap = "exec.meta.security";
pub const CAP_EXEC_META_ULIMIT: Cap = "exec.meta.ulimit";
pub const CAP_EXEC_META_REMOVE_MOUNT_STUBS_RECURSIVE: Cap = "exec.meta.removemountstubs.recursive";
pub const CAP_EXEC_META_CDI: Cap = "exec.meta.cdi";
pub const CAP_EXEC_MOUNT_CACHE: Cap = "exec.mount.cache";
pub const CAP_EXEC_MOUNT_CACHE_SHARING: Cap = "exec.mount.cache.sharing";
pub const CAP_EXEC_MOUNT_TMPFS: Cap = "exec.mount.tmpfs";
pub const CAP_EXEC_MOUNT_TMPFS_SIZE: Cap = "exec.mount.tmpfs.size";
pub const CAP_EXEC_MOUNT_SECRET: Cap = "exec.mount.secret";
pub const CAP_EXEC_MOUNT_SSH: Cap = "exec.mount.ssh";
pub const CAP_EXEC_MOUNT_CONTENT_CACHE: Cap = "exec.mount.cache.content";
pub const CAP_EXEC_SECRET_ENV: Cap = "exec.secretenv";
pub const CAP_EXEC_VALID_EXIT_CODE: Cap = "exec.validexitcode";
pub const CAP_FILE_RM_WILDCARD: Cap = "file.rm.wildcard";
pub const CAP_FILE_COPY_INCLUDE_EXCLUDE_PATTERNS: Cap = "file.copy.includeexcludepatterns";
pub const CAP_FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS: Cap =
    "file.copy.alwaysreplaceexistingdestpaths";
pub const CAP_FILE_COPY_MODE_STRING: Cap = "file.copy.modestring";
pub const CAP_FILE_SYMLINK_CREATE: Cap = "file.symlink.create";
pub const CAP_CONSTRAINTS: Cap = "constraints";
pub const CAP_PLATFORM: Cap = "platform";
pub const CAP_META_EXPORT_CACHE: Cap = "meta.exportcache";
pub const CAP_MERGE_OP: Cap = "mergeop";
pub const CAP_DIFF_OP: Cap = "diffop";

/// Why the caps of a Definition could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("op {index} of the definition does not decode: {source}")]
    Decode {
        index: usize,
        source: prost::DecodeError,
    },
    #[error("op {digest}: source {identifier:?} has a scheme with no known cap")]
    UnknownSource { digest: String, identifier: String },
    #[error("op {digest}: source attribute {attr:?} has no known cap")]
    UnknownAttr { digest: String, attr: String },
    #[error("op {digest}: {what} is not supported")]
    Unsupported { digest: String, what: &'static str },
}

/// Every cap the ops and metadata of `def` need, decoded from its bytes.
pub fn required(def: &pb::Definition) -> Result<BTreeSet<Cap>, CapsError> {
    let mut caps = BTreeSet::new();
    for (index, bytes) in def.def.iter().enumerate() {
        let op = pb::Op::decode(bytes.as_slice())
            .map_err(|source| CapsError::Decode { index, source })?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        op_caps(&op, &digest, &mut caps)?;
    }
    for md in def.metadata.values() {
        if md.ignore_cache {
            caps.insert(CAP_META_IGNORE_CACHE);
        }
        if !md.description.is_empty() {
            caps.insert(CAP_META_DESCRIPTION);
        }
        if md.export_cache.is_some() {
            caps.insert(CAP_META_EXPORT_CACHE);
        }
    }
    Ok(caps)
}

/// The caps each op's metadata declares (what the builder recorded), which
/// BuildKit also checks before it solves.
pub fn declared(def: &pb::Definition) -> BTreeSet<String> {
    def.metadata
        .values()
        .flat_map(|md| {
            md.caps
                .iter()
                .filter(|(_, on)| **on)
                .map(|(c, _)| c.clone())
        })
        .collect()
}

fn op_caps(op: &pb::Op, digest: &str, caps: &mut BTreeSet<Cap>) -> Result<(), CapsError> {
    if op.platform.is_some() {
        caps.insert(CAP_PLATFORM);
    }
    if op
        .constraints
        .as_ref()
        .is_some_and(|c| !c.filter.is_empty())
    {
        caps.insert(CAP_CONSTRAINTS);
    }
    let unsupported = |what| CapsError::Unsupported {
        digest: digest.to_string(),
        what,
    };
    match &op.op {
        // The terminal op names the result and needs nothing.
        None => {}
        Some(pb::op::Op::Source(s)) => source_caps(s, digest, caps)?,
        Some(pb::op::Op::Exec(e)) => exec_caps(e, caps),
        Some(pb::op::Op::File(f)) => file_caps(f, caps),
        Some(pb::op::Op::Merge(_)) => {
            caps.insert(CAP_MERGE_OP);
        }
        Some(pb::op::Op::Diff(_)) => {
            caps.insert(CAP_DIFF_OP);
        }
        Some(pb::op::Op::Build(_)) => return Err(unsupported("a build op")),
    }
    Ok(())
}

/// mirrors client/llb/source.go: one cap per scheme, one per attribute.
fn source_caps(s: &pb::SourceOp, digest: &str, caps: &mut BTreeSet<Cap>) -> Result<(), CapsError> {
    let scheme = s
        .identifier
        .split_once("://")
        .map_or("", |(scheme, _)| scheme);
    caps.insert(match scheme {
        "docker-image" => CAP_SOURCE_IMAGE,
        "local" => CAP_SOURCE_LOCAL,
        "http" | "https" => CAP_SOURCE_HTTP,
        "git" => CAP_SOURCE_GIT,
        "oci-layout" => CAP_SOURCE_OCI_LAYOUT,
        _ => {
            return Err(CapsError::UnknownSource {
                digest: digest.to_string(),
                identifier: s.identifier.clone(),
            });
        }
    });
    for attr in s.attrs.keys() {
        let cap = match attr.as_str() {
            "image.resolvemode" => Some(CAP_SOURCE_IMAGE_RESOLVE_MODE),
            "image.layerlimit" => Some(CAP_SOURCE_IMAGE_LAYER_LIMIT),
            // Needs no more than the image source itself.
            "image.recordtype" => None,
            "local.session" => Some(CAP_SOURCE_LOCAL_SESSION_ID),
            "local.unique" => Some(CAP_SOURCE_LOCAL_UNIQUE),
            "local.includepattern" => Some(CAP_SOURCE_LOCAL_INCLUDE_PATTERNS),
            "local.excludepatterns" => Some(CAP_SOURCE_LOCAL_EXCLUDE_PATTERNS),
            "local.followpaths" => Some(CAP_SOURCE_LOCAL_FOLLOW_PATHS),
            "local.sharedkeyhint" => Some(CAP_SOURCE_LOCAL_SHARED_KEY_HINT),
            "local.differ" => Some(CAP_SOURCE_LOCAL_DIFFER),
            "http.checksum" => Some(CAP_SOURCE_HTTP_CHECKSUM),
            "http.perm" => Some(CAP_SOURCE_HTTP_PERM),
            "http.uid" | "http.gid" => Some(CAP_SOURCE_HTTP_UID_GID),
            // Part of the http source from the start.
            "http.filename" => None,
            "git.keepgitdir" => Some(CAP_SOURCE_GIT_KEEP_DIR),
            "git.fullurl" => Some(CAP_SOURCE_GIT_FULL_URL),
            "git.authheadersecret" | "git.authtokensecret" => Some(CAP_SOURCE_GIT_HTTP_AUTH),
            "git.knownsshhosts" => Some(CAP_SOURCE_GIT_KNOWN_SSH_HOSTS),
            "git.mountsshsock" => Some(CAP_SOURCE_GIT_MOUNT_SSH_SOCK),
            "git.subdir" => Some(CAP_SOURCE_GIT_SUBDIR),
            _ => {
                return Err(CapsError::UnknownAttr {
                    digest: digest.to_string(),
                    attr: attr.clone(),
                });
            }
        };
        caps.extend(cap);
    }
    Ok(())
}

/// mirrors client/llb/exec.go ExecOp.Marshal's addCap calls.
fn exec_caps(e: &pb::ExecOp, caps: &mut BTreeSet<Cap>) {
    caps.insert(CAP_EXEC_META_BASE);
    if e.network != pb::NetMode::Unset as i32 {
        caps.insert(CAP_EXEC_META_NETWORK);
    }
    if e.security != pb::SecurityMode::Sandbox as i32 {
        caps.insert(CAP_EXEC_META_SECURITY);
    }
    if !e.secretenv.is_empty() {
        caps.insert(CAP_EXEC_SECRET_ENV);
    }
    if !e.cdi_devices.is_empty() {
        caps.insert(CAP_EXEC_META_CDI);
    }
    if let Some(meta) = &e.meta {
        if meta.proxy_env.is_some() {
            caps.insert(CAP_EXEC_META_PROXY);
        }
        if !meta.ulimit.is_empty() {
            caps.insert(CAP_EXEC_META_ULIMIT);
        }
        if !meta.cgroup_parent.is_empty() {
            caps.insert(CAP_EXEC_META_CGROUP_PARENT);
        }
        if meta.remove_mount_stubs_recursive {
            caps.insert(CAP_EXEC_META_REMOVE_MOUNT_STUBS_RECURSIVE);
        }
        if !meta.valid_exit_codes.is_empty() {
            caps.insert(CAP_EXEC_VALID_EXIT_CODE);
        }
    }
    for m in &e.mounts {
        if !m.selector.is_empty() {
            caps.insert(CAP_EXEC_MOUNT_SELECTOR);
        }
        if m.content_cache != pb::MountContentCache::Default as i32 {
            caps.insert(CAP_EXEC_MOUNT_CONTENT_CACHE);
        }
        match pb::MountType::try_from(m.mount_type) {
            // Every exec has its root as a bind mount, scratch or not.
            Ok(pb::MountType::Bind) => {
                caps.insert(CAP_EXEC_MOUNT_BIND);
            }
            Ok(pb::MountType::Cache) => {
                caps.insert(CAP_EXEC_MOUNT_CACHE);
                caps.insert(CAP_EXEC_MOUNT_CACHE_SHARING);
            }
            Ok(pb::MountType::Tmpfs) => {
                caps.insert(CAP_EXEC_MOUNT_TMPFS);
                if m.tmpfs_opt.as_ref().is_some_and(|t| t.size > 0) {
                    caps.insert(CAP_EXEC_MOUNT_TMPFS_SIZE);
                }
            }
            Ok(pb::MountType::Secret) => {
                caps.insert(CAP_EXEC_MOUNT_SECRET);
            }
            Ok(pb::MountType::Ssh) => {
                caps.insert(CAP_EXEC_MOUNT_SSH);
            }
            // An unknown mount type: BuildKit rejects it whatever its caps.
            Err(_) => {}
        }
    }
}

/// mirrors client/llb/fileop.go: file.base for the op, more per action field.
fn file_caps(f: &pb::FileOp, caps: &mut BTreeSet<Cap>) {
    caps.insert(CAP_FILE_BASE);
    for a in &f.actions {
        match &a.action {
            Some(pb::file_action::Action::Copy(c)) => {
                if !c.include_patterns.is_empty() || !c.exclude_patterns.is_empty() {
                    caps.insert(CAP_FILE_COPY_INCLUDE_EXCLUDE_PATTERNS);
                }
                if c.always_replace_existing_dest_paths {
                    caps.insert(CAP_FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS);
                }
                if !c.mode_str.is_empty() {
                    caps.insert(CAP_FILE_COPY_MODE_STRING);
                }
            }
            Some(pb::file_action::Action::Rm(r)) => {
                if r.allow_wildcard {
                    caps.insert(CAP_FILE_RM_WILDCARD);
                }
            }
            Some(pb::file_action::Action::Symlink(_)) => {
                caps.insert(CAP_FILE_SYMLINK_CREATE);
            }
            Some(pb::file_action::Action::Mkdir(_) | pb::file_action::Action::Mkfile(_)) | None => {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        Constraints, CopyOpts, LocalOpts, Mount, Network, ResolveMode, State, http, image, local,
    };
    use super::*;

    fn caps_of(state: &State) -> BTreeSet<Cap> {
        required(&state.marshal()).unwrap()
    }

    /// A Definition of one hand-made op (for fields the builder never sets).
    fn def_of(op: pb::op::Op) -> pb::Definition {
        pb::Definition {
            def: vec![
                pb::Op {
                    op: Some(op),
                    ..Default::default()
                }
                .encode_to_vec(),
            ],
            ..Default::default()
        }
    }

    fn base() -> State {
        image("reg/x@sha256:00", ResolveMode::Default, None, None)
    }

    #[test]
    fn image_source_and_resolve_mode() {
        assert_eq!(caps_of(&base()), BTreeSet::from([CAP_SOURCE_IMAGE]));
        let pulled = image("reg/x@sha256:00", ResolveMode::ForcePull, None, None);
        assert!(caps_of(&pulled).contains(CAP_SOURCE_IMAGE_RESOLVE_MODE));
    }

    #[test]
    fn local_source_and_its_attributes() {
        assert_eq!(
            caps_of(&local("context", &LocalOpts::default(), None)),
            BTreeSet::from([CAP_SOURCE_LOCAL])
        );
        let opts = LocalOpts {
            session_id: Some("s".into()),
            include_patterns: vec!["a".into()],
            shared_key_hint: Some("k".into()),
        };
        assert_eq!(
            caps_of(&local("context", &opts, None)),
            BTreeSet::from([
                CAP_SOURCE_LOCAL,
                CAP_SOURCE_LOCAL_SESSION_ID,
                CAP_SOURCE_LOCAL_INCLUDE_PATTERNS,
                CAP_SOURCE_LOCAL_SHARED_KEY_HINT,
            ])
        );
    }

    #[test]
    fn http_source_checksum_and_perm() {
        let plain = http("http://m/a", "sha256:aa", "a", None, None);
        assert_eq!(
            caps_of(&plain),
            BTreeSet::from([CAP_SOURCE_HTTP, CAP_SOURCE_HTTP_CHECKSUM])
        );
        let exe = http("http://m/a", "sha256:aa", "a", Some(0o755), None);
        assert!(caps_of(&exe).contains(CAP_SOURCE_HTTP_PERM));
    }

    #[test]
    fn exec_base_bind_network_and_selector() {
        let run = base().run(vec!["true".into()]);
        assert_eq!(
            caps_of(&run.clone().build().root),
            BTreeSet::from([CAP_SOURCE_IMAGE, CAP_EXEC_META_BASE, CAP_EXEC_MOUNT_BIND])
        );
        let offline = run.clone().network(Network::None).build().root;
        assert!(caps_of(&offline).contains(CAP_EXEC_META_NETWORK));
        let host = run.clone().network(Network::Host).build().root;
        assert!(caps_of(&host).contains(CAP_EXEC_META_NETWORK));
        let selected = run
            .mount(Mount {
                dest: "/x".into(),
                source: Some(base()),
                selector: Some("/etc".into()),
                readonly: true,
                no_content_hash: false,
            })
            .build()
            .root;
        assert!(caps_of(&selected).contains(CAP_EXEC_MOUNT_SELECTOR));
        // Scratch as the root is still a bind mount.
        let on_scratch = State::scratch().run(vec!["true".into()]).build().root;
        assert!(caps_of(&on_scratch).contains(CAP_EXEC_MOUNT_BIND));
    }

    #[test]
    fn file_ops_need_file_base() {
        let st = State::scratch()
            .file()
            .mkdir("/a", 0o755, true, None)
            .mkfile("/a/b", 0o644, b"x".to_vec(), Some(1))
            .copy(&base(), "/etc", "/c", CopyOpts::default())
            .build();
        assert_eq!(
            caps_of(&st),
            BTreeSet::from([CAP_SOURCE_IMAGE, CAP_FILE_BASE])
        );
    }

    #[test]
    fn a_progress_name_needs_meta_description() {
        let named = image(
            "reg/x@sha256:00",
            ResolveMode::Default,
            Some("base".into()),
            None,
        );
        assert!(caps_of(&named).contains(CAP_META_DESCRIPTION));
        assert!(!caps_of(&base()).contains(CAP_META_DESCRIPTION));
    }

    #[test]
    fn ignore_cache_needs_meta_ignorecache() {
        let st = base().run(vec!["true".into()]).build().root;
        let plain = required(&st.marshal()).unwrap();
        let nocache = required(&st.marshal_with(Constraints { ignore_cache: true })).unwrap();
        assert!(!plain.contains(CAP_META_IGNORE_CACHE));
        assert!(nocache.contains(CAP_META_IGNORE_CACHE));
        assert_eq!(CAP_META_IGNORE_CACHE, "meta.ignorecache");
    }

    #[test]
    fn exec_fields_the_builder_never_sets() {
        let mount = |mount_type: pb::MountType| pb::Mount {
            input: -1,
            dest: "/m".into(),
            output: -1,
            mount_type: mount_type as i32,
            ..Default::default()
        };
        let exec = pb::ExecOp {
            meta: Some(pb::Meta {
                args: vec!["true".into()],
                proxy_env: Some(pb::ProxyEnv::default()),
                ulimit: vec![pb::Ulimit::default()],
                cgroup_parent: "p".into(),
                valid_exit_codes: vec![0],
                ..Default::default()
            }),
            mounts: vec![
                pb::Mount {
                    cache_opt: Some(pb::CacheOpt::default()),
                    ..mount(pb::MountType::Cache)
                },
                pb::Mount {
                    tmpfs_opt: Some(pb::TmpfsOpt { size: 1 }),
                    ..mount(pb::MountType::Tmpfs)
                },
                mount(pb::MountType::Secret),
                mount(pb::MountType::Ssh),
            ],
            security: pb::SecurityMode::Insecure as i32,
            secretenv: vec![pb::SecretEnv::default()],
            ..Default::default()
        };
        let caps = required(&def_of(pb::op::Op::Exec(exec))).unwrap();
        for c in [
            CAP_EXEC_META_BASE,
            CAP_EXEC_META_PROXY,
            CAP_EXEC_META_ULIMIT,
            CAP_EXEC_META_CGROUP_PARENT,
            CAP_EXEC_VALID_EXIT_CODE,
            CAP_EXEC_META_SECURITY,
            CAP_EXEC_SECRET_ENV,
            CAP_EXEC_MOUNT_CACHE,
            CAP_EXEC_MOUNT_CACHE_SHARING,
            CAP_EXEC_MOUNT_TMPFS,
            CAP_EXEC_MOUNT_TMPFS_SIZE,
            CAP_EXEC_MOUNT_SECRET,
            CAP_EXEC_MOUNT_SSH,
        ] {
            assert!(caps.contains(c), "{c}");
        }
        assert!(!caps.contains(CAP_EXEC_META_NETWORK));
        assert!(!caps.contains(CAP_EXEC_MOUNT_BIND));
    }

    #[test]
    fn file_actions_the_builder_never_sets() {
        let action = |a| pb::FileAction {
            input: -1,
            secondary_input: -1,
            output: -1,
            action: Some(a),
        };
        let file = pb::FileOp {
            actions: vec![
                action(pb::file_action::Action::Copy(pb::FileActionCopy {
                    include_patterns: vec!["*.deb".into()],
                    always_replace_existing_dest_paths: true,
                    mode_str: "u+x".into(),
                    ..Default::default()
                })),
                action(pb::file_action::Action::Rm(pb::FileActionRm {
                    path: "/x*".into(),
                    allow_wildcard: true,
                    ..Default::default()
                })),
                action(pb::file_action::Action::Symlink(
                    pb::FileActionSymlink::default(),
                )),
            ],
        };
        assert_eq!(
            required(&def_of(pb::op::Op::File(file))).unwrap(),
            BTreeSet::from([
                CAP_FILE_BASE,
                CAP_FILE_COPY_INCLUDE_EXCLUDE_PATTERNS,
                CAP_FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS,
                CAP_FILE_COPY_MODE_STRING,
                CAP_FILE_RM_WILDCARD,
                CAP_FILE_SYMLINK_CREATE,
            ])
        );
    }

    #[test]
    fn an_unknown_attribute_or_scheme_or_bad_bytes_is_an_error() {
        let src = |identifier: &str, attr: &str| {
            def_of(pb::op::Op::Source(pb::SourceOp {
                identifier: identifier.into(),
                attrs: [(attr.to_string(), "v".to_string())].into(),
            }))
        };
        let err = required(&src("http://m/a", "http.nope")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("source attribute \"http.nope\" has no known cap"),
            "{err}"
        );
        let err = required(&src("ftp://m/a", "http.filename")).unwrap_err();
        assert!(err.to_string().contains("\"ftp://m/a\""), "{err}");
        let bad = pb::Definition {
            def: vec![vec![0xff, 0xff]],
            ..Default::default()
        };
        assert!(
            required(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("op 0 of the definition does not decode"),
        );
    }

    #[test]
    fn what_the_builder_declares_is_what_the_bytes_need() {
        let st = base()
            .run(vec!["true".into()])
            .network(Network::None)
            .mount(Mount::readonly(
                "/pkgs",
                http(
                    "http://m/a",
                    "sha256:aa",
                    "a",
                    Some(0o644),
                    Some("a".into()),
                ),
            ))
            .name("run")
            .build()
            .root;
        let def = st.marshal_with(Constraints { ignore_cache: true });
        let from_bytes: BTreeSet<String> = required(&def)
            .unwrap()
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(from_bytes, declared(&def));
    }
}
