//! The frontend image itself: one static binary, no shell, small.

use std::process::Command;

use crate::support::{harness, run};

/// True if the ELF file asks for no program interpreter (a static binary).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    // PT_INTERP = 3
    (0..phnum)
        .all(|i| u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap()) != 3)
}

#[test]
fn the_frontend_image_is_one_small_static_binary() {
    let h = harness();
    let image = h.get("FRONTEND_IMAGE");
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let r = run(h.docker().args(["save", "-o"]).arg(&tar).arg(image));
    assert!(r.ok, "{}", r.text);
    let r = run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path()));
    assert!(r.ok, "{}", r.text);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer");
    let layer = dir.path().join(layers[0].as_str().unwrap());
    let r = run(Command::new("tar").arg("-tf").arg(&layer));
    let entries: Vec<&str> = r.text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(entries, ["repro-frontend"], "only the binary, no shell");
    let out = dir.path().join("bin");
    std::fs::create_dir(&out).unwrap();
    let r = run(Command::new("tar")
        .arg("-xf")
        .arg(&layer)
        .arg("-C")
        .arg(&out));
    assert!(r.ok, "{}", r.text);
    let bin = std::fs::read(out.join("repro-frontend")).unwrap();
    assert!(is_static_elf(&bin), "the binary must be static");
    assert!(bin.len() < 15 << 20, "binary is {} bytes", bin.len());
    let config = run(h.docker().args([
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}} {{index .Config.Labels \"moby.buildkit.frontend.network.none\"}}",
        image,
    ]));
    assert_eq!(config.text.trim(), "[\"/repro-frontend\"] true");
}
