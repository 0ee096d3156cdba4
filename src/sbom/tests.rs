//! Tests of the SBOM document: fields, ids, sorting, determinism.

use super::*;

const STATUS: &str = "\
Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14+deb12u1
Source: gcc-12 (12.2.0-14)

Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-3

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1
";

const BASE: &str = "127.0.0.1:5000/repro/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn facts() -> Facts {
    Facts {
        tool: "repro-frontend-0.1.0".into(),
        epoch: 1_700_000_000,
        base_ref: BASE.into(),
        base_repository: "127.0.0.1:5000/repro/debian".into(),
        base_digest: format!("sha256:{}", "1".repeat(64)),
        architecture: "amd64".into(),
        frontend: format!(
            "docker.io/library/repro-frontend:v0@sha256:{}",
            "2".repeat(64)
        ),
        inputs: Inputs {
            recipe: Some(InputFile::of("repro.yaml", b"base: x\n")),
            lockfiles: vec![InputFile::of("SHA256SUMS-amd64", b"sums\n")],
        },
        blobs: vec![
            Blob {
                name: "pool/main/h/hello/hello_2.10-3_amd64.deb".into(),
                sha256: "a".repeat(64),
                lockfile: "SHA256SUMS-amd64".into(),
                url: Some("http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb".into()),
            },
            Blob {
                name: "pool/main/x/extra_1.0_amd64.deb".into(),
                sha256: "b".repeat(64),
                lockfile: "SHA256SUMS-amd64".into(),
                url: None,
            },
        ],
    }
}

fn rootfs() -> Rootfs {
    let (os_id, os_version) = os_ids("PRETTY_NAME=\"Debian\"\nID=debian\nVERSION_ID=\"12\"\n");
    Rootfs {
        dpkg: Some(dpkg::parse_status(STATUS).unwrap()),
        os_id,
        os_version,
        secrets: Vec::new(),
    }
}

fn doc() -> Value {
    serde_json::from_slice(&render(&facts(), &rootfs()).unwrap()).unwrap()
}

/// The `key` of each item of an array.
fn fields(items: &Value, key: &str) -> Vec<String> {
    let items = items.as_array().unwrap().iter();
    items
        .map(|i| i[key].as_str().unwrap().to_string())
        .collect()
}

fn package<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == id)
        .unwrap_or_else(|| panic!("no package {id}"))
}

#[test]
fn the_header_is_fixed_by_the_inputs() {
    let d = doc();
    assert_eq!(d["spdxVersion"], "SPDX-2.3");
    assert_eq!(d["dataLicense"], "CC0-1.0");
    assert_eq!(d["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(d["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        d["creationInfo"]["creators"],
        json!(["Tool: repro-frontend-0.1.0"])
    );
    let ns = d["documentNamespace"].as_str().unwrap();
    let hex = ns
        .strip_prefix("https://repro-frontend.invalid/spdx/")
        .unwrap();
    assert!(crate::digest::is_sha256_hex(hex), "{ns}");
}

#[test]
fn a_lockfile_package_has_its_blobs_sha256_url_and_purl() {
    let d = doc();
    let hello = package(&d, "SPDXRef-deb-hello-amd64");
    assert_eq!(hello["name"], "hello");
    assert_eq!(hello["versionInfo"], "2.10-3");
    assert_eq!(
        hello["checksums"],
        json!([{"algorithm": "SHA256", "checksumValue": "a".repeat(64)}])
    );
    assert_eq!(
        hello["downloadLocation"],
        "http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb"
    );
    assert_eq!(
        hello["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/hello@2.10-3?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        hello["sourceInfo"],
        "built from source package hello 2.10-3"
    );
}

#[test]
fn a_package_not_in_the_lockfile_came_with_the_base() {
    let d = doc();
    let lib = package(&d, "SPDXRef-deb-libstdc--6-amd64");
    assert_eq!(lib["downloadLocation"], "NOASSERTION");
    assert_eq!(lib["comment"], format!("came with the base image {BASE}"));
    assert!(lib.get("checksums").is_none());
    assert_eq!(
        lib["sourceInfo"],
        "built from source package gcc-12 12.2.0-14"
    );
    assert_eq!(
        lib["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12"
    );
    let names = fields(&d["packages"], "name");
    assert!(!names.contains(&"gone".into()), "only installed: {names:?}");
}

#[test]
fn a_lockfile_blob_dpkg_does_not_list_is_kept_with_a_note() {
    let d = doc();
    let extra = package(&d, "SPDXRef-blob-extra-1.0-amd64.deb");
    assert_eq!(extra["downloadLocation"], "NOASSERTION");
    assert_eq!(extra["checksums"][0]["checksumValue"], "b".repeat(64));
    let comment = extra["comment"].as_str().unwrap();
    assert!(comment.contains("not in dpkg's database"), "{extra}");
    // Without a dpkg database every blob is listed from the lockfile.
    let bare = Rootfs::default();
    let d: Value = serde_json::from_slice(&render(&facts(), &bare).unwrap()).unwrap();
    let hello = package(&d, "SPDXRef-blob-hello-2.10-3-amd64.deb");
    assert!(
        hello["comment"]
            .as_str()
            .unwrap()
            .contains("no dpkg database")
    );
}

#[test]
fn the_base_image_recipe_and_lockfile_are_described() {
    let d = doc();
    let base = package(&d, "SPDXRef-BaseImage");
    assert_eq!(base["name"], "127.0.0.1:5000/repro/debian");
    assert_eq!(base["versionInfo"], format!("sha256:{}", "1".repeat(64)));
    assert_eq!(base["checksums"][0]["checksumValue"], "1".repeat(64));
    assert_eq!(
        base["externalRefs"][0]["referenceLocator"],
        format!(
            "pkg:oci/debian@sha256%3A{}?arch=amd64&repository_url=127.0.0.1:5000/repro/debian",
            "1".repeat(64)
        )
    );
    assert_eq!(
        fields(&d["files"], "fileName"),
        ["./SHA256SUMS-amd64", "./repro.yaml"]
    );
    assert_eq!(d["files"][1]["checksums"][1]["algorithm"], "SHA256");
    let rels: Vec<(String, String, String)> = d["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().to_string(),
                r["relationshipType"].as_str().unwrap().to_string(),
                r["relatedSpdxElement"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |a: &str, k: &str, b: &str| rels.contains(&(a.into(), k.into(), b.into()));
    assert!(has("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"));
    assert!(has("SPDXRef-Image", "GENERATED_FROM", "SPDXRef-BaseImage"));
    assert!(has(
        "SPDXRef-Image",
        "GENERATED_FROM",
        "SPDXRef-Recipe-repro.yaml"
    ));
    assert!(has(
        "SPDXRef-Image",
        "GENERATED_FROM",
        "SPDXRef-Lockfile-SHA256SUMS-amd64"
    ));
    assert!(has("SPDXRef-Image", "CONTAINS", "SPDXRef-deb-tzdata-all"));
    // 3 dpkg packages and 1 lone blob, each contained.
    assert_eq!(rels.iter().filter(|r| r.1 == "CONTAINS").count(), 4);
}

#[test]
fn the_same_inputs_give_the_same_bytes_sorted() {
    let a = render(&facts(), &rootfs()).unwrap();
    let b = render(&facts(), &rootfs()).unwrap();
    assert_eq!(a, b);
    let d: Value = serde_json::from_slice(&a).unwrap();
    let ids = fields(&d["packages"], "SPDXID");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let rels: Vec<String> = d["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    let mut sorted = rels.clone();
    sorted.sort();
    assert_eq!(rels, sorted);
    // Keys are sorted too (serde_json's map is ordered).
    let text = String::from_utf8(a).unwrap();
    assert!(text.find("\"SPDXID\"").unwrap() < text.find("\"creationInfo\"").unwrap());
    // A changed input changes the namespace.
    let mut other = facts();
    other.epoch += 1;
    let o: Value = serde_json::from_slice(&render(&other, &rootfs()).unwrap()).unwrap();
    assert_ne!(o["documentNamespace"], d["documentNamespace"]);
}

#[test]
fn ids_are_sanitized_and_unique() {
    let mut ids = Ids::default();
    assert_eq!(ids.take("SPDXRef-deb-a+b-amd64"), "SPDXRef-deb-a-b-amd64");
    assert_eq!(ids.take("SPDXRef-deb-a_b-amd64"), "SPDXRef-deb-a-b-amd64-2");
}

#[test]
fn facts_round_trip_through_json() {
    let f = facts();
    let text = serde_json::to_vec(&f).unwrap();
    assert_eq!(serde_json::from_slice::<Facts>(&text).unwrap(), f);
}

#[test]
fn references_split_into_repository_and_digest_tags_dropped_ports_kept() {
    let d = format!("sha256:{}", "1".repeat(64));
    let pinned = format!("127.0.0.1:5000/repro/debian:bookworm@{d}");
    assert_eq!(
        split_reference(&pinned),
        ("127.0.0.1:5000/repro/debian", d.as_str())
    );
    assert_eq!(
        split_reference("127.0.0.1:5000/repro/debian"),
        ("127.0.0.1:5000/repro/debian", "")
    );
    assert_eq!(split_reference("debian:12"), ("debian", ""));
}

#[test]
fn the_frontend_that_ran_the_steps_is_a_build_tool_of_the_image_by_digest() {
    let doc: Value = serde_json::from_slice(&render(&facts(), &rootfs()).unwrap()).unwrap();
    let frontend = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-Frontend")
        .expect("a frontend package");
    assert_eq!(frontend["name"], "docker.io/library/repro-frontend");
    assert_eq!(
        frontend["versionInfo"],
        format!("sha256:{}", "2".repeat(64))
    );
    assert_eq!(frontend["checksums"][0]["checksumValue"], "2".repeat(64));
    let rel = json!({
        "spdxElementId": "SPDXRef-Frontend",
        "relationshipType": "BUILD_TOOL_OF",
        "relatedSpdxElement": "SPDXRef-Image",
    });
    assert!(doc["relationships"].as_array().unwrap().contains(&rel));
}

#[test]
fn what_normalize_did_with_keys_is_annotated_on_the_image() {
    let mut fs = rootfs();
    fs.secrets = serde_json::from_str(
        r#"[{"path":"/etc/ssh/ssh_host_ed25519_key","action":"removed","what":"SSH host key","madeBy":"package openssh-server","regenerate":"ssh-keygen -A"},
            {"path":"/srv/demo.key","action":"kept","what":"private key (PRIVATE KEY)","madeBy":"step 1"}]"#,
    )
    .unwrap();
    let with: Value = serde_json::from_slice(&render(&facts(), &fs).unwrap()).unwrap();
    let image = with["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-Image")
        .unwrap();
    let notes = image["annotations"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    let comment = notes[0]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("removed /etc/ssh/ssh_host_ed25519_key: SSH host key")
            && comment.ends_with("ssh-keygen -A"),
        "{comment}"
    );
    assert_eq!(notes[0]["annotationType"], "OTHER");
    assert!(
        notes[1]["comment"]
            .as_str()
            .unwrap()
            .starts_with("KEPT on purpose")
    );
    // Without a record, no annotations key at all.
    let plain = doc();
    assert!(
        plain["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("annotations").is_none())
    );
}
