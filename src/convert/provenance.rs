//! The image's SLSA provenance (the v1 predicate), from what the conversion
//! knows: every input by digest, no time, no invocation id, arrays sorted,
//! keys sorted. Two builds of the same inputs give the same bytes, so the
//! image index that carries it keeps its digest. Pure.
//!
//! With `REPRO_PROVENANCE=1` the image carries it as an attestation (under
//! [`ATTACHED_TYPE`]: BuildKit keeps the SLSA type for its own); BuildKit's
//! exporter wraps it in the in-toto Statement and fills its subject with
//! the image manifest's digest. The `provenance` target writes the same
//! predicate as a file.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::convert::Platform;
use crate::llb::State;
use crate::lockfile::header::Header;
use crate::recipe::ArgValues;
use crate::sbom::{Facts, purl, split_reference};

/// The SLSA provenance predicate's type: the `provenance` target's file is
/// this predicate, for `cosign attest --type slsaprovenance1`.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The type the image's attestation carries the same predicate under.
/// BuildKit's exporter refuses every `https://slsa.dev/provenance/` type
/// from a frontend ("frontend may not set provenance attestations",
/// exporter/attestation/unbundle.go), keeping that name for its own.
pub const ATTACHED_TYPE: &str = "https://repro-frontend.invalid/slsa-provenance/v1";

/// Our build type; docs/provenance.md is its definition (the `.invalid`
/// host says no document lives at the address itself).
pub const BUILD_TYPE: &str = "https://repro-frontend.invalid/buildtype/v1";

/// The builder: this frontend, on whichever BuildKit runs it; the frontend
/// image by digest is its builder dependency.
pub const BUILDER_ID: &str = "https://repro-frontend.invalid/builder/v1";

/// The attestation's file name in its ref.
pub const FILE: &str = "provenance.json";

/// The build arg that asks for it.
pub const ARG: &str = "REPRO_PROVENANCE";

/// A bad value of [`ARG`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--build-arg {ARG}={0}: expected 1 (attach the provenance) or 0 (do not)")]
pub struct ArgError(String);

/// Whether the build args ask for the provenance.
pub fn requested(build_args: &BTreeMap<String, String>) -> Result<bool, ArgError> {
    match build_args.get(ARG).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "" | "0" | "false" | "no" | "off" => Ok(false),
            "1" | "true" | "yes" | "on" => Ok(true),
            _ => Err(ArgError(v)),
        },
    }
}

/// What the provenance says beside the facts the SBOM has too.
pub struct Request<'a> {
    /// The target built (`image`).
    pub target: &'a str,
    pub platform: &'a Platform,
    /// The args the recipe declares, with the values the build used (the
    /// predefined ones, proxies among them, are left out: the platform is
    /// recorded on its own, and the rest does not change the image).
    pub args: &'a ArgValues,
    /// Each lockfile's name and text (for its signed-index lines).
    pub lockfiles: &'a [(String, String)],
}

/// A resource descriptor: name, then uri, digest and annotations when set.
fn resource(name: &str, uri: Option<String>, sha256: &str, annotations: Option<Value>) -> Value {
    let mut r = json!({ "name": name });
    if let Some(uri) = uri {
        r["uri"] = json!(uri);
    }
    if !sha256.is_empty() {
        r["digest"] = json!({ "sha256": sha256 });
    }
    if let Some(a) = annotations {
        r["annotations"] = a;
    }
    r
}

/// An image by reference: its purl and its digest's hex.
fn image(name: &str, reference: &str, arch: &str, role: &str) -> Value {
    let (repository, digest) = split_reference(reference);
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    resource(
        name,
        Some(purl::oci(repository, digest, arch)),
        hex,
        Some(json!({ "reference": reference, "role": role })),
    )
}

/// A predicate made by [`predicate`].
#[derive(Debug, PartialEq, Eq)]
pub struct Predicate {
    /// Deterministic JSON, one line and a newline.
    pub bytes: Vec<u8>,
    /// How many resolved dependencies it lists.
    pub dependencies: usize,
}

/// The predicate for these facts.
pub fn predicate(facts: &Facts, req: &Request) -> Predicate {
    let arch = facts.architecture.as_str();
    let mut deps: Vec<Value> = Vec::new();
    if let Some(recipe) = &facts.inputs.recipe {
        deps.push(resource(
            &recipe.name,
            None,
            &recipe.sha256,
            Some(json!({ "role": "recipe" })),
        ));
    }
    for lockfile in &facts.inputs.lockfiles {
        deps.push(resource(
            &lockfile.name,
            None,
            &lockfile.sha256,
            Some(json!({ "role": "lockfile" })),
        ));
    }
    // The signed indexes apt took the lockfile's digests from.
    for (name, text) in req.lockfiles {
        let releases = Header::parse(text).map(|h| h.releases).unwrap_or_default();
        for r in releases {
            let fields: serde_json::Map<String, Value> = r
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            deps.push(resource(
                &format!("{}/InRelease", r.path),
                None,
                &r.sha256,
                Some(json!({ "role": "signed index", "lockfile": name, "fields": fields })),
            ));
        }
    }
    deps.push(image("base", &facts.base_ref, arch, "base image"));
    for blob in &facts.blobs {
        deps.push(resource(
            &blob.name,
            blob.url.clone(),
            &blob.sha256,
            Some(json!({ "role": "package", "lockfile": blob.lockfile })),
        ));
    }
    let frontend = image("frontend", &facts.frontend, arch, "frontend image");
    deps.push(frontend.clone());
    deps.sort_by_key(|d| d.to_string());
    deps.dedup();
    let dependencies = deps.len();

    let mut external = json!({
        "target": req.target,
        "platform": req.platform.key(),
        "sourceDateEpoch": facts.epoch,
        "args": req.args.values,
    });
    if let Some(recipe) = &facts.inputs.recipe {
        external["recipe"] = json!({ "path": recipe.name, "sha256": recipe.sha256 });
    }
    let body = json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": { "repro-frontend": env!("CARGO_PKG_VERSION") },
                "builderDependencies": [frontend],
            },
        },
    });
    let mut bytes = body.to_string().into_bytes();
    bytes.push(b'\n');
    Predicate {
        bytes,
        dependencies,
    }
}

/// The attestation's content: a state holding only [`FILE`].
pub fn provenance_llb(predicate: Predicate) -> State {
    State::scratch()
        .file()
        .mkfile(&format!("/{FILE}"), 0o644, predicate.bytes, Some(0))
        .name(format!(
            "provenance: SLSA v1, {} resolved dependencies by digest",
            predicate.dependencies
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{Blob, InputFile, Inputs};

    fn facts() -> Facts {
        Facts {
            tool: "repro-frontend-0".into(),
            epoch: 1_700_000_000,
            base_ref: format!("registry.example/library/debian@sha256:{}", "b".repeat(64)),
            base_repository: "registry.example/library/debian".into(),
            base_digest: format!("sha256:{}", "b".repeat(64)),
            architecture: "amd64".into(),
            frontend: format!("registry.example/repro-frontend@sha256:{}", "f".repeat(64)),
            inputs: Inputs {
                recipe: Some(InputFile::of("repro.yaml", b"recipe")),
                lockfiles: vec![InputFile::of("SHA256SUMS-amd64", b"sums")],
            },
            blobs: vec![
                Blob {
                    name: "pool/main/z/zlib/zlib1g_1_amd64.deb".into(),
                    sha256: "2".repeat(64),
                    lockfile: "SHA256SUMS-amd64".into(),
                    url: Some(
                        "http://mirror.example/debian/pool/main/z/zlib/zlib1g_1_amd64.deb".into(),
                    ),
                },
                Blob {
                    name: "pool/main/h/hello/hello_1_amd64.deb".into(),
                    sha256: "1".repeat(64),
                    lockfile: "SHA256SUMS-amd64".into(),
                    url: None,
                },
            ],
        }
    }

    fn request<'a>(
        platform: &'a Platform,
        args: &'a ArgValues,
        lockfiles: &'a [(String, String)],
    ) -> Request<'a> {
        Request {
            target: "image",
            platform,
            args,
            lockfiles,
        }
    }

    #[test]
    fn every_input_is_named_by_digest_and_nothing_else_varies() {
        let platform = crate::convert::platform::parse_platform("linux/amd64").unwrap();
        let args = ArgValues {
            values: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
        };
        let sums = format!(
            "# base: b\n# packages: hello\n# inrelease: debian/dists/bookworm sha256:{} | Origin: Debian | Date: Sat, 08 Nov 2025 10:33:22 UTC\n",
            "c".repeat(64)
        );
        let lockfiles = vec![("SHA256SUMS-amd64".to_string(), sums)];
        let made = predicate(&facts(), &request(&platform, &args, &lockfiles));
        // Deterministic: the same inputs, the same bytes.
        assert_eq!(
            made,
            predicate(&facts(), &request(&platform, &args, &lockfiles))
        );
        let bytes = made.bytes;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let def = &v["buildDefinition"];
        assert_eq!(def["buildType"], BUILD_TYPE);
        assert_eq!(def["externalParameters"]["args"]["GREETING"], "hi");
        assert_eq!(def["externalParameters"]["platform"], "linux/amd64");
        assert_eq!(
            def["externalParameters"]["recipe"]["sha256"],
            facts().inputs.recipe.unwrap().sha256
        );
        let deps = def["resolvedDependencies"].as_array().unwrap();
        assert_eq!(made.dependencies, deps.len());
        let names: Vec<&str> = deps.iter().map(|d| d["name"].as_str().unwrap()).collect();
        for want in [
            "repro.yaml",
            "SHA256SUMS-amd64",
            "debian/dists/bookworm/InRelease",
            "base",
            "frontend",
            "pool/main/h/hello/hello_1_amd64.deb",
            "pool/main/z/zlib/zlib1g_1_amd64.deb",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let hello = deps
            .iter()
            .find(|d| d["name"] == "pool/main/h/hello/hello_1_amd64.deb")
            .unwrap();
        assert_eq!(hello["digest"]["sha256"], "1".repeat(64));
        let base = deps.iter().find(|d| d["name"] == "base").unwrap();
        assert_eq!(base["digest"]["sha256"], "b".repeat(64));
        assert!(
            base["uri"]
                .as_str()
                .unwrap()
                .starts_with("pkg:oci/debian@sha256")
        );
        let index = deps
            .iter()
            .find(|d| d["name"] == "debian/dists/bookworm/InRelease")
            .unwrap();
        assert_eq!(index["digest"]["sha256"], "c".repeat(64));
        assert_eq!(index["annotations"]["fields"]["Origin"], "Debian");
        // Sorted, and no time or invocation anywhere.
        let mut sorted = deps.clone();
        sorted.sort_by_key(|d| d.to_string());
        assert_eq!(&sorted, deps);
        assert_eq!(v["runDetails"]["builder"]["id"], BUILDER_ID);
        assert!(v["runDetails"].get("metadata").is_none());
        let text = String::from_utf8(bytes).unwrap();
        for word in ["startedOn", "finishedOn", "invocationId"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn the_order_of_the_blobs_does_not_change_the_bytes() {
        let platform = crate::convert::platform::parse_platform("linux/amd64").unwrap();
        let args = ArgValues::default();
        let mut reversed = facts();
        reversed.blobs.reverse();
        assert_eq!(
            predicate(&facts(), &request(&platform, &args, &[])),
            predicate(&reversed, &request(&platform, &args, &[]))
        );
    }

    #[test]
    fn the_build_arg_is_read_strictly() {
        let args = |v: &str| BTreeMap::from([(ARG.to_string(), v.to_string())]);
        assert_eq!(requested(&BTreeMap::new()), Ok(false));
        assert_eq!(requested(&args("1")), Ok(true));
        assert_eq!(requested(&args("true")), Ok(true));
        assert_eq!(requested(&args("0")), Ok(false));
        let e = requested(&args("maybe")).unwrap_err().to_string();
        assert!(e.contains(ARG) && e.contains("maybe"), "{e}");
    }
}
