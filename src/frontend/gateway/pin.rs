//! The frontend's own image, pinned once per build: the helper execs (fetch,
//! install, normalize, sbom, verify, lock) run exactly the image the gateway
//! was started from, by digest, never a tag resolved again at solve time.
//!
//! BuildKit v0.12 and later mount the Definition it started the frontend
//! from at `/run/config/buildkit/metadata/frontend.bin` (mirrors
//! frontend/gateway/gateway.go metadataMount): its image source op names the
//! reference with the digest BuildKit resolved. Older engines (Docker
//! 20.10's v0.8) have no such file; there the `source` opt is resolved once,
//! the way BuildKit resolved it to start us (the tag, default mode, the
//! worker's platform), and pinned to the digest that answers. Docker's
//! classic image store answers a locally built image with no digest at all:
//! there the helpers run the tag, and each checks that its binary hashes
//! the same as the gateway's (`convert::LocalFrontend`), while the records
//! name the tag and its image ID.

use anyhow::{Result, anyhow};
use bollard_buildkit_proto::pb;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use super::client::{Bridge, ImageRef};
use crate::convert::{LocalFrontend, Platform};
use crate::llb::ResolveMode;
use crate::recipe::reference;

/// Where BuildKit puts the frontend's own Definition.
pub(super) const FRONTEND_METADATA: &str = "/run/config/buildkit/metadata/frontend.bin";

/// How the frontend's digest was learnt (said in the daemon's log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Pinned {
    /// From the Definition BuildKit started the frontend from.
    Started(String),
    /// The `source` opt already named a digest.
    Given(String),
    /// The `source` opt's tag, resolved once by this build.
    Resolved(String),
    /// A tag the engine holds locally, with no digest (Docker's classic
    /// image store).
    Local(String, LocalFrontend),
}

impl Pinned {
    /// The reference every helper exec uses: `name[:tag]@sha256:<hex>`, or
    /// the local tag.
    pub(super) fn reference(&self) -> &str {
        match self {
            Pinned::Started(r) | Pinned::Given(r) | Pinned::Resolved(r) | Pinned::Local(r, _) => r,
        }
    }

    /// The identity the helpers check, for a local tag.
    pub(super) fn local(&self) -> Option<&LocalFrontend> {
        match self {
            Pinned::Local(_, local) => Some(local),
            _ => None,
        }
    }
}

/// The image reference (with its digest) of the image source op in the
/// frontend's own Definition, when it holds exactly one such op. None when
/// the bytes do not decode or name no pinned image.
pub(super) fn from_definition(bytes: &[u8]) -> Option<String> {
    let def = pb::Definition::decode(bytes).ok()?;
    let mut images =
        def.def
            .iter()
            .filter_map(|op| match pb::Op::decode(op.as_slice()).ok()?.op? {
                pb::op::Op::Source(s) => s
                    .identifier
                    .strip_prefix("docker-image://")
                    .map(str::to_string),
                _ => None,
            });
    let image = images.next()?;
    // Two image sources would leave it open which one runs us.
    if images.next().is_some() || !has_digest(&image) {
        return None;
    }
    Some(image)
}

fn has_digest(reference: &str) -> bool {
    reference
        .rsplit_once("@sha256:")
        .is_some_and(|(_, hex)| crate::digest::is_sha256_hex(hex))
}

/// Pins the frontend image for this build (see the module's doc).
/// `metadata` is the content of [`FRONTEND_METADATA`], if the engine wrote it.
pub(super) async fn pin(
    bridge: &mut Bridge,
    source: &str,
    metadata: Option<&[u8]>,
    platform: &Platform,
    session_id: Option<&str>,
) -> Result<Pinned> {
    if let Some(started) = metadata.and_then(from_definition) {
        return Ok(Pinned::Started(started));
    }
    let named = reference::normalize(source).map_err(|e| {
        anyhow!("the \"source\" opt (this frontend's own image) \"{source}\" is not an image reference: {e}")
    })?;
    if has_digest(&named) {
        return Ok(Pinned::Given(named));
    }
    let image = ImageRef {
        reference: &named,
        platform,
        mode: ResolveMode::Default,
    };
    let (digest, config) = bridge
        .resolve_named("frontend image", &image, session_id)
        .await?;
    if digest.is_empty() && !config.is_empty() {
        return Ok(Pinned::Local(named, local_frontend(&config)?));
    }
    if !digest
        .strip_prefix("sha256:")
        .is_some_and(crate::digest::is_sha256_hex)
    {
        return Err(anyhow!(
            "the engine resolved this frontend's own image \"{named}\" to no sha256 digest (\"{digest}\"), so its helper steps cannot be pinned to it"
        ));
    }
    Ok(Pinned::Resolved(format!("{named}@{digest}")))
}

/// The local image's ID (the sha256 of the config the engine answered) and
/// this process's own binary's sha256.
fn local_frontend(config: &[u8]) -> Result<LocalFrontend> {
    let binary = std::fs::read("/proc/self/exe").map_err(|e| {
        anyhow!("cannot read this frontend's own binary to pin its helper steps: {e}")
    })?;
    Ok(LocalFrontend {
        image_id: format!("sha256:{}", hex::encode(Sha256::digest(config))),
        binary_sha256: hex::encode(Sha256::digest(&binary)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_op(identifier: &str) -> Vec<u8> {
        pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: identifier.into(),
                attrs: Default::default(),
            })),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn definition(ops: Vec<Vec<u8>>) -> Vec<u8> {
        pb::Definition {
            def: ops,
            ..Default::default()
        }
        .encode_to_vec()
    }

    const PINNED: &str = "docker.io/library/repro-frontend:v0@sha256:2f4c3d8c52f608ce7caadfbe72109b79126c19586b5b9c921ed54f4a19ec7dab";

    #[test]
    fn the_started_definition_names_the_pinned_image() {
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest: "sha256:00".into(),
                index: 0,
            }],
            ..Default::default()
        }
        .encode_to_vec();
        let bytes = definition(vec![
            source_op(&format!("docker-image://{PINNED}")),
            terminal,
        ]);
        assert_eq!(from_definition(&bytes).as_deref(), Some(PINNED));
    }

    #[test]
    fn a_definition_without_one_pinned_image_names_none() {
        let tag = definition(vec![source_op("docker-image://docker.io/library/x:v0")]);
        assert_eq!(from_definition(&tag), None);
        let two = definition(vec![
            source_op(&format!("docker-image://{PINNED}")),
            source_op(&format!("docker-image://{PINNED}")),
        ]);
        assert_eq!(from_definition(&two), None);
        let local = definition(vec![source_op("local://context")]);
        assert_eq!(from_definition(&local), None);
        assert_eq!(from_definition(b"\xff\xff not protobuf"), None);
    }
}
