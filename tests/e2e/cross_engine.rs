//! The same recipe gives the same root filesystem and config on Docker 20.10 and 26.
//!
//! Each engine's run of `examples.rs` and `corpus.rs` leaves the record of
//! `<example>`'s `--output type=tar` export (its sha256 and listing) in
//! target/harness/out/<engine>/. This test compares them: equal digests are
//! byte-identical tars. It needs both runs first, so it is ignored by
//! default and `scripts/test.sh` runs it last with `--ignored`; the
//! three-way check adds engine 3's exports (`engine3.rs`).

use std::path::Path;

use crate::support::{harness, rootfs_difference, rootfs_record};

#[test]
#[ignore = "needs the example exports of both engines; scripts/test.sh runs it after both"]
fn rootfs_and_config_are_identical_across_engines() {
    let out = Path::new(harness().get("HARNESS_DIR")).join("out");
    let corpus = super::corpus::SETS
        .iter()
        .map(|(set, _, _)| format!("corpus-{set}"));
    let names: Vec<String> = ["hello".to_string(), "gcc".to_string()]
        .into_iter()
        .chain(corpus)
        .collect();
    for example in &names {
        let (a, b) = (
            rootfs_record(&out.join("20"), example),
            rootfs_record(&out.join("26"), example),
        );
        if let Some(diff) = rootfs_difference(&a, &b) {
            panic!("{example}: the rootfs tars of engines 20 and 26 differ: {diff}");
        }
        // The configs agree except for the layer's diff_id: Docker 20.10's
        // image store re-encodes the layer tar (user and group names in the
        // headers), so its diff_id is not the digest of the exported rootfs.
        let config = |e: &str| -> serde_json::Value {
            let p = out.join(e).join(format!("{example}.config.json"));
            let bytes = std::fs::read(&p).unwrap_or_else(|e| {
                panic!("{}: {e} (run the suite on both engines first)", p.display())
            });
            serde_json::from_slice(&bytes).unwrap()
        };
        let (mut ca, mut cb) = (config("20"), config("26"));
        let diff_ids_26 = cb["rootfs"]["diff_ids"].clone();
        ca["rootfs"]["diff_ids"] = serde_json::Value::Null;
        cb["rootfs"]["diff_ids"] = serde_json::Value::Null;
        assert_eq!(
            ca, cb,
            "{example}: the image configs differ beyond the layer digest"
        );
        // On Docker 26 the one layer is exactly the exported rootfs.
        assert_eq!(
            diff_ids_26,
            serde_json::json!([b.0]),
            "{example}: engine 26's layer is not the exported rootfs"
        );
    }
}

#[test]
#[ignore = "needs the example exports of all three engines; scripts/test.sh runs it last"]
fn rootfs_is_identical_on_three_engines_and_26_configs_are_3_configs() {
    let out = Path::new(harness().get("HARNESS_DIR")).join("out");
    for example in ["hello", "gcc"] {
        let read = |e: &str, suffix: &str| {
            let p = out.join(e).join(format!("{example}{suffix}"));
            std::fs::read(&p).unwrap_or_else(|err| {
                panic!(
                    "{}: {err} (run the suite on every engine first)",
                    p.display()
                )
            })
        };
        let rootfs_3 = rootfs_record(&out.join("3"), example);
        for docker in ["20", "26"] {
            if let Some(diff) =
                rootfs_difference(&rootfs_3, &rootfs_record(&out.join(docker), example))
            {
                panic!("{example}: engine 3's rootfs tar differs from engine {docker}'s: {diff}");
            }
        }
        // Docker 26.1's config (whose digest is the image ID in its
        // graphdriver store; the containerd store's ID is the manifest's) is
        // byte for byte the config of BuildKit v0.26.3's OCI output.
        let id_26 = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(read(
                "26",
                ".config.json"
            )))
        );
        let config_3 = String::from_utf8(read("3", ".config-digest")).unwrap();
        assert_eq!(
            id_26, config_3,
            "{example}: Docker 26.1's config digest is not engine 3's"
        );
    }
}

#[test]
#[ignore = "needs the layers tests' outputs of engines 26 and 3; scripts/test.sh runs it last"]
fn the_delta_layer_of_layers_base_is_identical_on_26_and_3() {
    let out = Path::new(harness().get("HARNESS_DIR")).join("out");
    let read = |e: &str| {
        let p = out.join(e).join("layers-delta.diff-id");
        std::fs::read_to_string(&p).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (run the suite on every engine first)",
                p.display()
            )
        })
    };
    assert_eq!(
        read("26"),
        read("3"),
        "the delta layers differ between engines"
    );
}

#[test]
#[ignore = "needs the two-platform builds of Docker 26.1 and engine 3; scripts/test.sh runs it last"]
fn each_platforms_config_of_the_two_platform_index_is_identical_on_26_and_3() {
    let (a, b) = (
        super::platforms::saved_configs("26", "hello"),
        super::platforms::saved_configs("3", "hello"),
    );
    assert_eq!(a["configs"].as_object().map(|m| m.len()), Some(2), "{a}");
    assert_eq!(
        a["configs"], b["configs"],
        "hello for two platforms: the configs differ"
    );
    // The same OCI index, layers and compression included.
    assert_eq!(
        a["index"], b["index"],
        "hello for two platforms: the indexes differ"
    );
}
