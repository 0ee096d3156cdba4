//! The image's SPDX 2.3 SBOM, pure: the facts the conversion knows (the
//! lockfile's blobs and where they come from, the base image, the recipe and
//! lockfiles with their hashes, the epoch) and the installed-package database
//! read from the built rootfs become one deterministic JSON document.
//!
//! Choices (see the README's SBOM section): the source package goes in
//! `sourceInfo`; the image is `GENERATED_FROM` the base image, the recipe and
//! each lockfile; packages that came with the base image have
//! `downloadLocation: NOASSERTION` and a comment naming it. Only dpkg's
//! database is read; with another package tool the lockfile's blobs are
//! listed alone (their names, sha256 and URLs), with a comment saying so.

pub mod dpkg;
pub mod purl;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

pub use dpkg::Installed;

/// An SBOM input that failed to read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    #[error("var/lib/dpkg/status:{line}: {message}")]
    Status { line: usize, message: String },
    #[error("the epoch {0} is out of range")]
    Epoch(i64),
}

/// A file the build read (the recipe, a lockfile), by name and hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    pub name: String,
    pub sha256: String,
    pub sha1: String,
}

impl InputFile {
    pub fn of(name: &str, bytes: &[u8]) -> InputFile {
        InputFile {
            name: name.to_string(),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            sha1: hex::encode(<sha1::Sha1 as sha1::Digest>::digest(bytes)),
        }
    }
}

/// The recipe and lockfiles the build read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    pub recipe: Option<InputFile>,
    pub lockfiles: Vec<InputFile>,
}

/// A package blob of the lockfile and the first provider's URL for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    /// Its name in the lockfile (`pool/main/h/hello/hello_2.10-3_amd64.deb`).
    pub name: String,
    pub sha256: String,
    pub lockfile: String,
    pub url: Option<String>,
}

/// What the conversion knows, written into the build for the sbom step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// `repro-frontend-<version>`.
    pub tool: String,
    pub epoch: i64,
    /// The base reference as the build used it, its repository (no tag, no
    /// digest) and digest (empty when unpinned).
    pub base_ref: String,
    pub base_repository: String,
    pub base_digest: String,
    pub architecture: String,
    /// The frontend image the build's helper steps ran (fetch, normalize,
    /// this sbom step), by digest when the gateway knew it.
    pub frontend: String,
    pub inputs: Inputs,
    pub blobs: Vec<Blob>,
}

/// What the sbom step read from the rootfs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rootfs {
    /// dpkg's installed packages; `None` without a dpkg database.
    pub dpkg: Option<Vec<Installed>>,
    /// os-release's `ID` and `VERSION_ID`.
    pub os_id: String,
    pub os_version: String,
    /// What the normalize step did with the private keys and identities the
    /// build made (its record), in path order.
    pub secrets: Vec<Handled>,
}

/// One entry of the normalize step's record of the private keys and
/// identities the build made (written by `step::secrets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handled {
    pub path: String,
    /// `removed`, `emptied` or `kept`.
    pub action: String,
    pub what: String,
    pub made_by: String,
    #[serde(default)]
    pub regenerate: Option<String>,
}

impl Handled {
    /// The entry as one line: what happened, what it was, who made it, and
    /// how a container makes its own.
    pub fn line(&self) -> String {
        let mut line = match self.action.as_str() {
            "kept" => format!(
                "KEPT on purpose (private-keys.keep): {}: {}, made by {}; every container of this image shares it",
                self.path, self.what, self.made_by
            ),
            action => format!(
                "{action} {}: {}, made by {}",
                self.path, self.what, self.made_by
            ),
        };
        if let Some(r) = &self.regenerate {
            line.push_str(&format!("; a container makes its own with: {r}"));
        }
        line
    }
}

/// The SPDX document, as bytes: pretty JSON with sorted keys and arrays and
/// a final newline. The same facts and rootfs always give the same bytes.
pub fn render(facts: &Facts, rootfs: &Rootfs) -> Result<Vec<u8>, SbomError> {
    let mut doc = document(facts, rootfs)?;
    // The namespace is the hash of everything else: unique per content, and
    // no host (`.invalid` is reserved).
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let id = hex::encode(sha2::Sha256::digest(&bytes));
    doc["documentNamespace"] = json!(format!("https://repro-frontend.invalid/spdx/{id}"));
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    Ok(out)
}

/// The document without its namespace.
fn document(facts: &Facts, rootfs: &Rootfs) -> Result<Value, SbomError> {
    let created = rfc3339(facts.epoch)?;
    let mut ids = Ids::default();
    let mut image = image_package(facts);
    let notes = secrets_annotations(facts, rootfs)?;
    if !notes.is_empty() {
        image["annotations"] = Value::Array(notes);
    }
    let mut packages = vec![image, base_package(facts), frontend_package(facts)];
    let mut relationships = vec![
        relation("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID),
        relation(IMAGE_ID, "GENERATED_FROM", BASE_ID),
        relation(FRONTEND_ID, "BUILD_TOOL_OF", IMAGE_ID),
    ];
    let mut files = Vec::new();
    for (kind, f) in facts
        .inputs
        .recipe
        .iter()
        .map(|r| ("Recipe", r))
        .chain(facts.inputs.lockfiles.iter().map(|l| ("Lockfile", l)))
    {
        let id = ids.take(&format!("SPDXRef-{kind}-{}", f.name));
        files.push(json!({
            "SPDXID": id,
            "fileName": format!("./{}", f.name.trim_start_matches("./")),
            "checksums": [checksum("SHA1", &f.sha1), checksum("SHA256", &f.sha256)],
            "comment": format!("the {} the image was built from", kind.to_lowercase()),
        }));
        relationships.push(relation(IMAGE_ID, "GENERATED_FROM", &id));
    }
    for p in contained(facts, rootfs, &mut ids) {
        relationships.push(relation(
            IMAGE_ID,
            "CONTAINS",
            p["SPDXID"].as_str().unwrap_or(""),
        ));
        packages.push(p);
    }
    let key = |v: &Value| v["SPDXID"].as_str().unwrap_or("").to_string();
    packages.sort_by_key(key);
    files.sort_by_key(key);
    relationships.sort_by_key(|r| r.to_string());
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": match &facts.inputs.recipe {
            Some(r) => format!("image from {} on {}", r.name, facts.base_ref),
            None => format!("image on {}", facts.base_ref),
        },
        "creationInfo": {"created": created, "creators": [format!("Tool: {}", facts.tool)]},
        "packages": packages,
        "files": files,
        "relationships": relationships,
    }))
}

const IMAGE_ID: &str = "SPDXRef-Image";
const BASE_ID: &str = "SPDXRef-BaseImage";
const FRONTEND_ID: &str = "SPDXRef-Frontend";

/// The image's annotations: one per private key or identity the build
/// made, saying what the frontend did with it.
fn secrets_annotations(facts: &Facts, rootfs: &Rootfs) -> Result<Vec<Value>, SbomError> {
    let date = rfc3339(facts.epoch)?;
    Ok(rootfs
        .secrets
        .iter()
        .map(|h| {
            json!({
                "annotationDate": date,
                "annotationType": "OTHER",
                "annotator": format!("Tool: {}", facts.tool),
                "comment": h.line(),
            })
        })
        .collect())
}

fn image_package(facts: &Facts) -> Value {
    json!({
        "SPDXID": IMAGE_ID,
        "name": facts.inputs.recipe.as_ref().map_or("image", |r| r.name.as_str()),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "comment": "the image this document describes, built by repro-frontend",
    })
}

fn base_package(facts: &Facts) -> Value {
    let comment = format!("the base image {}", facts.base_ref);
    let (repository, digest) = (&facts.base_repository, &facts.base_digest);
    oci_package(BASE_ID, repository, digest, &facts.architecture, comment)
}

/// The frontend image, which made the image from the base: pinned by digest
/// so a reader can rebuild it (docs/calling.md) and compare.
fn frontend_package(facts: &Facts) -> Value {
    let comment = format!(
        "the frontend image that ran the build's steps, {}",
        facts.frontend
    );
    let (repository, digest) = split_reference(&facts.frontend);
    // It runs on the worker's platform, which need not be the image's.
    oci_package(FRONTEND_ID, repository, digest, "", comment)
}

/// An image package by repository and digest (empty when unpinned).
fn oci_package(id: &str, repository: &str, digest: &str, arch: &str, comment: String) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": repository,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "comment": comment,
        "externalRefs": [purl_ref(&purl::oci(repository, digest, arch))],
    });
    if let Some(hex) = digest.strip_prefix("sha256:") {
        p["versionInfo"] = json!(digest);
        p["checksums"] = json!([checksum("SHA256", hex)]);
    }
    p
}

/// `name[:tag][@digest]` -> the repository (no tag) and the digest (empty
/// when there is none). A `:` after the last `/` starts a tag; one before
/// it is a registry's port.
pub fn split_reference(reference: &str) -> (&str, &str) {
    let (name, digest) = reference.split_once('@').unwrap_or((reference, ""));
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (&name[..last + i], digest),
        None => (name, digest),
    }
}

/// The packages in the image: dpkg's, each matched to its lockfile blob if
/// it has one, and the lockfile's blobs that matched no installed package.
fn contained(facts: &Facts, rootfs: &Rootfs, ids: &mut Ids) -> Vec<Value> {
    let by_file: BTreeMap<&str, &Blob> = facts
        .blobs
        .iter()
        .map(|b| (crate::recipe::template::basename(&b.name), b))
        .collect();
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    let distro = match rootfs.os_version.as_str() {
        "" => rootfs.os_id.clone(),
        v => format!("{}-{v}", rootfs.os_id),
    };
    for p in rootfs.dpkg.iter().flatten() {
        let blob = p
            .file_names()
            .into_iter()
            .find_map(|n| by_file.get(n.as_str()).copied());
        let id = ids.take(&format!("SPDXRef-deb-{}-{}", p.name, p.arch));
        let vendor = if rootfs.os_id.is_empty() {
            "debian"
        } else {
            &rootfs.os_id
        };
        let mut v = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "sourceInfo": format!("built from source package {} {}", p.source, p.source_version),
            "filesAnalyzed": false,
            "externalRefs": [purl_ref(&purl::deb(vendor, &p.name, &p.version, &p.arch, &distro))],
        });
        from_blob(&mut v, blob, facts);
        if let Some(b) = blob {
            used.insert(b.name.as_str());
        }
        out.push(v);
    }
    let why = match rootfs.dpkg {
        Some(_) => "it is in the lockfile but not in dpkg's database of installed packages",
        None => {
            "the image has no dpkg database (only dpkg's is read), so only the lockfile says what was installed"
        }
    };
    for b in facts
        .blobs
        .iter()
        .filter(|b| !used.contains(b.name.as_str()))
    {
        let id = ids.take(&format!(
            "SPDXRef-blob-{}",
            crate::recipe::template::basename(&b.name)
        ));
        let mut v = json!({
            "SPDXID": id,
            "name": crate::recipe::template::basename(&b.name),
            "filesAnalyzed": false,
        });
        from_blob(&mut v, Some(b), facts);
        v["comment"] = json!(format!(
            "{}: listed from {} alone: {why}",
            b.name, b.lockfile
        ));
        out.push(v);
    }
    out
}

/// Where a package came from: its lockfile blob, or the base image.
fn from_blob(v: &mut Value, blob: Option<&Blob>, facts: &Facts) {
    match blob {
        Some(b) => {
            v["checksums"] = json!([checksum("SHA256", &b.sha256)]);
            v["downloadLocation"] = json!(b.url.as_deref().unwrap_or("NOASSERTION"));
            v["comment"] = json!(format!("installed from {} in {}", b.name, b.lockfile));
        }
        None => {
            v["downloadLocation"] = json!("NOASSERTION");
            v["comment"] = json!(format!("came with the base image {}", facts.base_ref));
        }
    }
}

fn checksum(algorithm: &str, value: &str) -> Value {
    json!({"algorithm": algorithm, "checksumValue": value})
}

fn purl_ref(locator: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator})
}

fn relation(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// SPDX ids from names: characters other than letters, digits, `.` and `-`
/// become `-`; a clash gets `-2`, `-3`, ... in the order names come (which
/// is sorted, so the ids are stable).
#[derive(Default)]
struct Ids {
    used: BTreeSet<String>,
}

impl Ids {
    fn take(&mut self, wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    true => c,
                    false => '-',
                },
            )
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while self.used.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(id.clone());
        id
    }
}

/// The epoch as RFC 3339 in UTC, to the second.
fn rfc3339(epoch: i64) -> Result<String, SbomError> {
    let t =
        time::OffsetDateTime::from_unix_timestamp(epoch).map_err(|_| SbomError::Epoch(epoch))?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// os-release's `ID` and `VERSION_ID`.
pub fn os_ids(os_release: &str) -> (String, String) {
    let field =
        |k: &str| crate::distro::install::os_release_field(os_release, k).unwrap_or_default();
    (field("ID"), field("VERSION_ID"))
}

#[cfg(test)]
mod tests;
