//! What the build hands back to BuildKit: the Result its exporters read (one
//! ref with its image config, or a ref per platform), the SBOM attestations,
//! the answers to subrequests, and a failure as a gRPC status. Pure: it only
//! builds messages; `client` sends them.

use std::collections::HashMap;

use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    Attestation, AttestationKind, Attestations, InTotoSubject, InTotoSubjectKind, Ref, RefMap,
    RefMapDeprecated, Result as GwResult, ReturnRequest, result,
};
use bollard_buildkit_proto::pb;

use crate::convert::Platform;
use crate::frontend::errors::{self, ReadFile};
use crate::frontend::opts::Target;

/// One platform's result: its ref, its image config (when it is an image)
/// and, when the client asked for them, its SBOM's and its provenance's
/// attestation refs.
pub(super) struct Part {
    pub platform: Platform,
    pub id: String,
    pub def: pb::Definition,
    pub config: Option<Vec<u8>>,
    pub sbom: Option<AttestationRef>,
    pub provenance: Option<AttestationRef>,
    /// The solved record of the private keys and identities the build
    /// made (image target), read back into `annotations` before returning.
    pub secrets: Option<String>,
    /// Manifest annotations (key, value), in key order.
    pub annotations: Vec<(String, String)>,
}

/// What a build returns.
pub(super) struct Built {
    /// One per platform, in the order asked; a single part when `multi` is
    /// false.
    pub parts: Vec<Part>,
    /// Several platforms, each with its own ref. (The lock target's
    /// lockfiles for several platforms are one ref: a single part.)
    pub multi: bool,
}

/// A solved attestation's state (the SBOM's, the provenance's) and the
/// platform key BuildKit's exporters look its attestations up by.
pub(super) struct AttestationRef {
    pub key: String,
    pub id: String,
    pub def: pb::Definition,
}

/// The Return for a build's outcome: its Result, or its error with the
/// place it names in a file the build read (`read`). `array_refs` is the
/// engine's `proto.refarray` cap.
pub(super) fn return_request(
    outcome: anyhow::Result<Built>,
    read: &[ReadFile],
    array_refs: bool,
) -> ReturnRequest {
    match outcome {
        Ok(built) => ReturnRequest {
            result: Some(result_of(built, array_refs)),
            error: None,
        },
        Err(e) => ReturnRequest {
            result: None,
            error: Some(errors::status(&e, read)),
        },
    }
}

/// The Result for BuildKit's exporters: one ref with its config, or, for
/// several platforms, a ref per platform keyed as `refs.platforms` lists
/// them, each with `containerimage.config/<platform>` (exptypes.go).
fn result_of(built: Built, array_refs: bool) -> GwResult {
    if !built.multi {
        let mut parts = built.parts;
        // A single-platform build has one part (checked where it is made).
        return single_result(parts.swap_remove(0), array_refs);
    }
    let mut metadata = HashMap::new();
    let mut attestations = HashMap::new();
    metadata.insert(
        "refs.platforms".to_string(),
        platforms_listed(&built.parts).into_bytes(),
    );
    let mut refs = HashMap::new();
    let mut old_refs = HashMap::new();
    for part in built.parts {
        let key = part.platform.key();
        if let Some(config) = part.config {
            metadata.insert(format!("containerimage.config/{key}"), config);
        }
        for (k, v) in part.annotations {
            // exptypes.AnnotationManifestKey with the part's platform.
            metadata.insert(format!("annotation-manifest[{key}].{k}"), v.into_bytes());
        }
        add_attestations(&mut attestations, part.sbom, part.provenance);
        if array_refs {
            let r = Ref {
                id: part.id,
                def: Some(part.def),
            };
            refs.insert(key, r);
        } else {
            old_refs.insert(key, part.id);
        }
    }
    let r = match array_refs {
        true => result::Result::Refs(RefMap { refs }),
        false => result::Result::RefsDeprecated(RefMapDeprecated { refs: old_refs }),
    };
    GwResult {
        result: Some(r),
        metadata,
        attestations,
    }
}

/// The Result of one part: its ref, its config and its attestation.
fn single_result(part: Part, array_refs: bool) -> GwResult {
    let mut metadata = HashMap::new();
    let mut attestations = HashMap::new();
    if let Some(config) = part.config {
        metadata.insert("containerimage.config".to_string(), config);
    }
    for (k, v) in part.annotations {
        metadata.insert(format!("annotation-manifest.{k}"), v.into_bytes());
    }
    add_attestations(&mut attestations, part.sbom, part.provenance);
    let r = match array_refs {
        true => result::Result::Ref(Ref {
            id: part.id,
            def: Some(part.def),
        }),
        false => result::Result::RefDeprecated(part.id),
    };
    GwResult {
        result: Some(r),
        metadata,
        attestations,
    }
}

/// The manifest annotations for a record of the private keys and
/// identities the build made (`step::secrets`): per action, the image
/// paths, comma-separated. None for an empty record.
pub(super) fn secrets_annotations(record: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        path: String,
        action: String,
    }
    let entries: Vec<Entry> = serde_json::from_slice(record).map_err(|e| {
        anyhow::anyhow!("the normalize step's record of removed keys is not valid: {e}")
    })?;
    let mut by_action: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in entries {
        by_action.entry(e.action).or_default().push(e.path);
    }
    Ok(by_action
        .into_iter()
        .map(|(action, paths)| (format!("{SECRETS_ANNOTATION}.{action}"), paths.join(",")))
        .collect())
}

/// The prefix of the manifest annotations naming what the frontend did
/// with the private keys and identities the build made.
pub const SECRETS_ANNOTATION: &str = "repro-frontend.secrets";

/// `refs.platforms`: each part's platform key and OCI platform, in order.
fn platforms_listed(parts: &[Part]) -> String {
    let listed: Vec<serde_json::Value> = parts
        .iter()
        .map(|p| {
            let mut spec = serde_json::json!({
                "architecture": p.platform.architecture,
                "os": p.platform.os,
            });
            if let Some(v) = &p.platform.variant {
                spec["variant"] = serde_json::Value::String(v.clone());
            }
            serde_json::json!({"ID": p.platform.key(), "Platform": spec})
        })
        .collect();
    serde_json::json!({ "Platforms": listed }).to_string()
}

/// A part's attestations, under its platform key: the SBOM, then the
/// provenance.
fn add_attestations(
    into: &mut HashMap<String, Attestations>,
    sbom: Option<AttestationRef>,
    provenance: Option<AttestationRef>,
) {
    let sbom = sbom.map(|s| {
        in_toto(
            s,
            "sbom",
            crate::convert::sbom::SBOM_FILE,
            "https://spdx.dev/Document",
        )
    });
    let provenance = provenance.map(|p| {
        in_toto(
            p,
            "provenance",
            crate::convert::provenance::FILE,
            crate::convert::provenance::ATTACHED_TYPE,
        )
    });
    for (key, attestation) in sbom.into_iter().chain(provenance) {
        into.entry(key).or_default().attestation.push(attestation);
    }
}

/// An in-toto attestation of the file `file` in the ref, about the image
/// itself (subject kind Self), as BuildKit's Dockerfile frontend returns
/// its SBOM; keyed by the platform (exporter/containerimage writer.go looks
/// up `Attestations[p.ID]`). With `reason` "sbom" BuildKit's own scanner
/// stays off (solver/llbsolver/proc/sbom.go: `HasSBOM` is true); BuildKit's
/// own provenance has no such switch (see docs/provenance.md).
fn in_toto(
    a: AttestationRef,
    reason: &str,
    file: &str,
    predicate_type: &str,
) -> (String, Attestation) {
    let attestation = Attestation {
        kind: AttestationKind::InToto as i32,
        metadata: HashMap::from([("reason".to_string(), reason.as_bytes().to_vec())]),
        r#ref: Some(Ref {
            id: a.id,
            def: Some(a.def),
        }),
        path: format!("/{file}"),
        in_toto_predicate_type: predicate_type.into(),
        in_toto_subjects: vec![InTotoSubject {
            kind: InTotoSubjectKind::Self_ as i32,
            ..Default::default()
        }],
    };
    (a.key, attestation)
}

/// The subrequests this frontend answers (BuildKit's frontend/subrequests).
const SUBREQUEST_DESCRIBE: &str = "frontend.subrequests.describe";
const SUBREQUEST_TARGETS: &str = "frontend.targets";
const SUBREQUEST_VERSION: &str = "1.0.0";

/// The Return answering a subrequest: its metadata, or a failure for one
/// this frontend does not know.
pub(super) fn subrequest_answer(id: &str) -> ReturnRequest {
    match subrequest(id) {
        Ok(metadata) => ReturnRequest {
            result: Some(GwResult {
                metadata,
                ..Default::default()
            }),
            error: None,
        },
        Err(e) => ReturnRequest {
            result: None,
            error: Some(errors::status(&e, &[])),
        },
    }
}

/// The metadata answering a subrequest, or an error for an unknown one.
pub fn subrequest(id: &str) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let mut meta = HashMap::new();
    match id {
        SUBREQUEST_DESCRIBE => {
            meta.insert(
                "result.json".into(),
                serde_json::to_vec_pretty(&described())?,
            );
        }
        SUBREQUEST_TARGETS => {
            let list = serde_json::json!({"targets": targets_listed(), "sources": []});
            meta.insert("result.json".into(), serde_json::to_vec_pretty(&list)?);
            meta.insert("result.txt".into(), targets_table().into_bytes());
        }
        other => anyhow::bail!(
            "unsupported subrequest \"{other}\" (this frontend answers {SUBREQUEST_DESCRIBE} and {SUBREQUEST_TARGETS})"
        ),
    }
    meta.insert("version".into(), SUBREQUEST_VERSION.as_bytes().to_vec());
    Ok(meta)
}

/// `frontend.subrequests.describe`'s answer: the subrequests answered.
fn described() -> serde_json::Value {
    serde_json::json!([
        {
            "name": SUBREQUEST_DESCRIBE,
            "version": SUBREQUEST_VERSION,
            "type": "rpc",
            "description": "List available subrequest types",
            "metadata": [{"name": "result.json"}]
        },
        {
            "name": SUBREQUEST_TARGETS,
            "version": SUBREQUEST_VERSION,
            "type": "rpc",
            "description": "List all targets current build supports",
            "opts": [],
            "metadata": [{"name": "result.json"}, {"name": "result.txt"}]
        }
    ])
}

/// The targets as `frontend.targets` lists them in `result.json`.
fn targets_listed() -> Vec<serde_json::Value> {
    Target::ALL
        .into_iter()
        .map(|t| {
            let mut j = serde_json::json!({"name": t.name(), "description": t.description()});
            if t == Target::Image {
                j["default"] = serde_json::Value::Bool(true);
            }
            j
        })
        .collect()
}

/// The targets as `frontend.targets` prints them (`result.txt`).
fn targets_table() -> String {
    let mut txt = String::from("TARGET\tDESCRIPTION\n");
    for t in Target::ALL {
        let name = if t == Target::Image {
            format!("{} (default)", t.name())
        } else {
            t.name().to_string()
        };
        txt.push_str(&format!("{name}\t{}\n", t.description()));
    }
    txt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(annotations: Vec<(String, String)>, arch: &str) -> Part {
        Part {
            platform: Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: None,
            },
            id: format!("ref-{arch}"),
            def: pb::Definition::default(),
            config: Some(b"{}".to_vec()),
            sbom: None,
            provenance: None,
            secrets: None,
            annotations,
        }
    }

    fn attestation(arch: &str, id: &str) -> AttestationRef {
        AttestationRef {
            key: format!("linux/{arch}"),
            id: id.to_string(),
            def: pb::Definition::default(),
        }
    }

    #[test]
    fn the_sbom_and_the_provenance_are_attested_per_platform() {
        let mut amd = part(Vec::new(), "amd64");
        amd.sbom = Some(attestation("amd64", "sbom-amd64"));
        amd.provenance = Some(attestation("amd64", "prov-amd64"));
        let mut arm = part(Vec::new(), "arm64");
        arm.provenance = Some(attestation("arm64", "prov-arm64"));
        let multi = result_of(
            Built {
                parts: vec![amd, arm],
                multi: true,
            },
            true,
        );
        let of = |key: &str| -> Vec<(String, String, String)> {
            multi.attestations[key]
                .attestation
                .iter()
                .map(|a| {
                    (
                        a.r#ref.as_ref().unwrap().id.clone(),
                        a.in_toto_predicate_type.clone(),
                        a.path.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            of("linux/amd64"),
            [
                (
                    "sbom-amd64".to_string(),
                    "https://spdx.dev/Document".to_string(),
                    "/sbom.spdx.json".to_string()
                ),
                (
                    "prov-amd64".to_string(),
                    crate::convert::provenance::ATTACHED_TYPE.to_string(),
                    "/provenance.json".to_string()
                ),
            ]
        );
        assert_eq!(of("linux/arm64").len(), 1);
        let prov = &multi.attestations["linux/arm64"].attestation[0];
        assert_eq!(prov.metadata["reason"], b"provenance");
        assert_eq!(
            prov.in_toto_subjects[0].kind,
            InTotoSubjectKind::Self_ as i32
        );
        // One platform: the same, under its key.
        let mut one = part(Vec::new(), "amd64");
        one.provenance = Some(attestation("amd64", "prov"));
        let single = single_result(one, true);
        assert_eq!(single.attestations["linux/amd64"].attestation.len(), 1);
    }

    #[test]
    fn the_record_of_removed_keys_becomes_manifest_annotations() {
        let record = br#"[
          {"path": "/etc/machine-id", "action": "emptied", "what": "machine identity", "madeBy": "package systemd"},
          {"path": "/etc/ssh/ssh_host_ecdsa_key", "action": "removed", "what": "SSH host key", "madeBy": "package openssh-server", "regenerate": "ssh-keygen -A"},
          {"path": "/etc/ssh/ssh_host_rsa_key", "action": "removed", "what": "SSH host key", "madeBy": "package openssh-server"}
        ]"#;
        let notes = secrets_annotations(record).unwrap();
        assert_eq!(
            notes,
            [
                (
                    "repro-frontend.secrets.emptied".to_string(),
                    "/etc/machine-id".to_string()
                ),
                (
                    "repro-frontend.secrets.removed".to_string(),
                    "/etc/ssh/ssh_host_ecdsa_key,/etc/ssh/ssh_host_rsa_key".to_string()
                ),
            ]
        );
        assert!(secrets_annotations(b"[]").unwrap().is_empty());
        assert!(secrets_annotations(b"{").is_err());

        // BuildKit's exptypes keys: for every manifest of a single image,
        // per platform for several.
        let single = single_result(part(notes.clone(), "amd64"), true);
        assert_eq!(
            single.metadata["annotation-manifest.repro-frontend.secrets.emptied"],
            b"/etc/machine-id"
        );
        let multi = result_of(
            Built {
                parts: vec![part(notes, "amd64"), part(Vec::new(), "arm64")],
                multi: true,
            },
            true,
        );
        let keys: Vec<&String> = multi
            .metadata
            .keys()
            .filter(|k| k.starts_with("annotation"))
            .collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            multi
                .metadata
                .contains_key("annotation-manifest[linux/amd64].repro-frontend.secrets.removed")
        );
    }
}
