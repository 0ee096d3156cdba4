//! IPFS CIDs made by the tests' own code (not the frontend's parser), for
//! lockfiles with `/ipfs/<cid>` lines.

use sha2::{Digest, Sha256};

/// The raw CIDv1 of a blob, in base32 as IPFS prints it: version 1, codec
/// raw (0x55), sha2-256 multihash (0x12, 32 bytes) of the blob's sha256.
pub fn raw_cid(sha256_hex: &str) -> String {
    let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
    bytes.extend(hex::decode(sha256_hex).expect("hex sha256"));
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::from("b");
    let mut bits = 0u32;
    let mut acc = 0u32;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A CIDv0 (`Qm…`) naming `seed`'s sha256 as a dag-pb node: a gateway's
/// name for a chunked file, which the file's own sha256 does not tell.
pub fn v0_cid(seed: &str) -> String {
    let mut bytes = vec![0x12, 0x20];
    bytes.extend(Sha256::digest(seed.as_bytes()));
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    // Repeated division of the big-endian number by 58.
    let mut digits = Vec::new();
    let mut num = bytes;
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 58) as u8;
            rem = cur % 58;
        }
        digits.push(ALPHABET[rem as usize] as char);
    }
    digits.iter().rev().collect()
}

#[test]
fn the_empty_files_raw_cid_is_the_one_ipfs_prints() {
    assert_eq!(
        raw_cid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    let v0 = v0_cid("x");
    assert!(v0.starts_with("Qm") && v0.len() == 46, "{v0}");
}
