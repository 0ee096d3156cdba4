//! IPFS content identifiers, as repro-get's `/ipfs/<cid>` lockfile lines
//! carry them: which kinds we accept, and what a CID says of the bytes.
//! Pure.
//!
//! Accepted: CIDv0 (`Qm…`: base58btc, a sha2-256 multihash of a dag-pb
//! node, what `ipfs add` prints by default) and CIDv1 in base32 (`b…`, what
//! `ipfs add --cid-version 1` and gateways print) with the raw (0x55) or
//! dag-pb (0x70) codec and a sha2-256 multihash. A raw CIDv1 is the sha256 of
//! the file itself, so it must equal the lockfile line's; a dag-pb one hashes
//! the chunked file's root node, which the file's sha256 does not tell, so
//! only the fetched bytes' sha256 can be checked. Other bases, codecs and
//! hash functions are refused, so a typo never becomes a URL.

/// The multicodec of a CID's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// The file's bytes, hashed whole.
    Raw,
    /// A UnixFS node (chunked files, CIDv0).
    DagPb,
}

/// A CID we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cid {
    pub version: u8,
    pub codec: Codec,
    /// The sha2-256 digest in the multihash.
    pub digest: [u8; 32],
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const SHA2_256: u64 = 0x12;
const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;

/// What we accept, for error messages.
pub const ACCEPTED: &str =
    "CIDv0 (Qm…) or CIDv1 in base32 (b…) with the raw or dag-pb codec and a sha2-256 multihash";

/// A text that is not a CID this frontend accepts, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\" is not a CID we accept ({why}; accepted: {ACCEPTED})")]
pub struct CidError {
    pub text: String,
    pub why: String,
}

impl Cid {
    /// Parses a CID's text form.
    pub fn parse(text: &str) -> Result<Cid, CidError> {
        let refuse = |why: &str| {
            Err(CidError {
                text: text.to_string(),
                why: why.to_string(),
            })
        };
        if text.len() == 46 && text.starts_with("Qm") {
            let Some(bytes) = base58_decode(text) else {
                return refuse("not base58btc");
            };
            return match multihash(&bytes) {
                Some((digest, [])) => Ok(Cid {
                    version: 0,
                    codec: Codec::DagPb,
                    digest,
                }),
                _ => refuse("not a sha2-256 multihash"),
            };
        }
        let Some(rest) = text.strip_prefix('b') else {
            return refuse("neither Qm… nor base32 b…");
        };
        let Some(bytes) = base32_decode(rest) else {
            return refuse("not base32 (lowercase, unpadded)");
        };
        let Some((version, rest)) = varint(&bytes) else {
            return refuse("no version");
        };
        if version != 1 {
            return refuse(&format!("version {version}"));
        }
        let Some((codec, rest)) = varint(rest) else {
            return refuse("no codec");
        };
        let codec = match codec {
            RAW => Codec::Raw,
            DAG_PB => Codec::DagPb,
            other => return refuse(&format!("codec 0x{other:x}")),
        };
        match multihash(rest) {
            Some((digest, [])) => Ok(Cid {
                version: 1,
                codec,
                digest,
            }),
            _ => refuse("not a sha2-256 multihash"),
        }
    }

    /// The file's sha256 (hex), when the CID names it: a raw CIDv1.
    pub fn file_sha256(&self) -> Option<String> {
        (self.codec == Codec::Raw).then(|| hex::encode(self.digest))
    }
}

/// A sha2-256 multihash and what follows it.
fn multihash(bytes: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (code, rest) = varint(bytes)?;
    let (len, rest) = varint(rest)?;
    if code != SHA2_256 || len != 32 || rest.len() < 32 {
        return None;
    }
    let digest: [u8; 32] = rest[..32].try_into().ok()?;
    Some((digest, &rest[32..]))
}

/// An unsigned LEB128 varint (multiformats' unsigned-varint, at most 9 bytes).
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

fn base58_decode(text: &str) -> Option<Vec<u8>> {
    // Big-endian base-256 digits, grown as each base-58 digit is folded in.
    let mut out: Vec<u8> = Vec::new();
    for c in text.bytes() {
        let mut carry = BASE58.iter().position(|&a| a == c)? as u32;
        for byte in out.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut bytes = vec![0u8; zeros];
    bytes.extend(out);
    Some(bytes)
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE32.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // Unpadded: what is left must be fewer than 8 zero bits.
    (buffer == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The sha256 of no bytes, and its raw CIDv1 as IPFS writes it.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY_RAW: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    #[test]
    fn a_raw_cidv1_names_the_files_sha256() {
        let cid = Cid::parse(EMPTY_RAW).unwrap();
        assert_eq!((cid.version, cid.codec), (1, Codec::Raw));
        assert_eq!(cid.file_sha256().as_deref(), Some(EMPTY));
    }

    #[test]
    fn a_cidv0_is_a_dag_pb_node_whose_hash_is_not_the_files() {
        // From repro-get's README (`repro-get ipfs push`).
        let cid = Cid::parse("QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACUj").unwrap();
        assert_eq!((cid.version, cid.codec), (0, Codec::DagPb));
        assert_eq!(cid.file_sha256(), None);
    }

    #[test]
    fn other_bases_codecs_and_hashes_are_refused_with_what_we_accept() {
        for (text, why) in [
            (
                "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
                "neither Qm… nor base32 b…",
            ),
            (
                "QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACU0",
                "not base58btc",
            ),
            // a 20-byte sha2-256, and sha2-512 (0x13)
            (
                "bafkrefaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "not a sha2-256 multihash",
            ),
            (
                "bafkrgiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "not a sha2-256 multihash",
            ),
            (
                "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",
                "not base32 (lowercase, unpadded)",
            ),
            (
                "BAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU",
                "neither Qm… nor base32 b…",
            ),
            // dag-cbor (0x71)
            (
                "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                "codec 0x71",
            ),
        ] {
            let e = Cid::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.ends_with(&format!("accepted: {ACCEPTED})")), "{e}");
        }
    }

    #[test]
    fn varints_and_bases_decode() {
        assert_eq!(varint(&[0x55]), Some((0x55, &[][..])));
        assert_eq!(varint(&[0x80, 0x01, 7]), Some((128, &[7u8][..])));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(base58_decode("11"), Some(vec![0, 0]));
        assert_eq!(base58_decode("5Q"), Some(vec![255]));
        assert_eq!(base58_decode("5R"), Some(vec![1, 0]));
        assert_eq!(base32_decode("me"), Some(b"a".to_vec()));
        assert_eq!(base32_decode("mf"), None, "stray bits");
    }
}
