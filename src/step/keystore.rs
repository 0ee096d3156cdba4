//! Java KeyStore (JKS) files with their entry dates clamped to the epoch.
//!
//! ca-certificates-java writes `/etc/ssl/certs/java/cacerts` from the
//! system's certificates when it is installed, and the JDK stamps each entry
//! with the time it was added: the only bytes that differ between two
//! installs (measured on Debian 12's default-jre-headless). No option or
//! environment variable of the JDK sets that date, so normalization rewrites
//! it: every entry date newer than the epoch becomes the epoch, and the
//! keyed SHA-1 that ends the file is computed again. The file is rewritten
//! only when that checksum verifies with the password the keystore is
//! known to use, so a keystore whose password we do not know is left as it
//! is. Pure: bytes in, bytes out.

use sha1::{Digest, Sha1};

const MAGIC: u32 = 0xFEED_FEED;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
/// The JDK's constant mixed into the integrity checksum.
const WHITENER: &[u8] = b"Mighty Aphrodite";
const DIGEST_LEN: usize = 20;

/// The password Debian's ca-certificates-java (and the JDK's own cacerts)
/// use; it protects integrity only, the entries are public certificates.
pub const DEFAULT_PASSWORD: &str = "changeit";

/// Why a file was left alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    #[error("not a JKS keystore")]
    NotJks,
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown entry tag {tag} at byte {at}")]
    UnknownTag { tag: u32, at: usize },
    #[error("the integrity checksum does not verify with the known password")]
    OtherPassword,
}

/// Whether `data` starts like a JKS keystore.
pub fn is_jks(data: &[u8]) -> bool {
    data.len() >= 4 && u32::from_be_bytes([data[0], data[1], data[2], data[3]]) == MAGIC
}

/// Returns the keystore with every entry date after `epoch` (seconds) set to
/// the epoch and its checksum made again; `Ok(None)` when no date needed it.
pub fn clamp_dates(
    data: &[u8],
    epoch: i64,
    password: &str,
) -> Result<Option<Vec<u8>>, KeystoreError> {
    if !is_jks(data) {
        return Err(KeystoreError::NotJks);
    }
    let mut r = Reader { data, at: 4 };
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(KeystoreError::NotJks);
    }
    let count = r.u32()?;
    let mut dates = Vec::new();
    for _ in 0..count {
        let tag_at = r.at;
        let tag = r.u32()?;
        r.utf()?; // alias
        dates.push(r.at);
        r.skip(8)?;
        match tag {
            TAG_PRIVATE_KEY => {
                let key_len = r.u32()? as usize;
                r.skip(key_len)?;
                let chain = r.u32()?;
                for _ in 0..chain {
                    r.certificate(version)?;
                }
            }
            TAG_TRUSTED_CERT => r.certificate(version)?,
            _ => return Err(KeystoreError::UnknownTag { tag, at: tag_at }),
        }
    }
    let body_len = r.at;
    if data.len() != body_len + DIGEST_LEN {
        return Err(KeystoreError::Truncated(data.len()));
    }
    if checksum(&data[..body_len], password) != data[body_len..] {
        return Err(KeystoreError::OtherPassword);
    }
    let epoch_ms = epoch.saturating_mul(1000);
    let mut out = data[..body_len].to_vec();
    let mut changed = false;
    for at in dates {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&out[at..at + 8]);
        if i64::from_be_bytes(raw) > epoch_ms {
            out[at..at + 8].copy_from_slice(&epoch_ms.to_be_bytes());
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    let digest = checksum(&out, password);
    out.extend_from_slice(&digest);
    Ok(Some(out))
}

/// The JDK's keyed checksum: SHA-1 over the password as UTF-16BE, the
/// whitener, and the body.
fn checksum(body: &[u8], password: &str) -> Vec<u8> {
    let mut h = Sha1::new();
    for unit in password.encode_utf16() {
        h.update(unit.to_be_bytes());
    }
    h.update(WHITENER);
    h.update(body);
    h.finalize().to_vec()
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], KeystoreError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(KeystoreError::Truncated(self.at))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> Result<(), KeystoreError> {
        self.take(n).map(|_| ())
    }

    fn u32(&mut self) -> Result<u32, KeystoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Java's DataOutput UTF string: a u16 length, then the bytes.
    fn utf(&mut self) -> Result<(), KeystoreError> {
        let b = self.take(2)?;
        let len = u16::from_be_bytes([b[0], b[1]]) as usize;
        self.skip(len)
    }

    /// A certificate: its type name (version 2 only), length and bytes.
    fn certificate(&mut self, version: u32) -> Result<(), KeystoreError> {
        if version == 2 {
            self.utf()?;
        }
        let len = self.u32()? as usize;
        self.skip(len)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A version-2 keystore as the JDK writes it: trusted certificates
    /// (and a private-key entry when `with_key`), then the checksum.
    pub fn keystore(dates: &[i64], with_key: bool, password: &str) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&MAGIC.to_be_bytes());
        d.extend_from_slice(&2u32.to_be_bytes());
        let n = dates.len() + usize::from(with_key);
        d.extend_from_slice(&(n as u32).to_be_bytes());
        let utf = |d: &mut Vec<u8>, s: &str| {
            d.extend_from_slice(&(s.len() as u16).to_be_bytes());
            d.extend_from_slice(s.as_bytes());
        };
        let cert = |d: &mut Vec<u8>, body: &[u8]| {
            utf(d, "X.509");
            d.extend_from_slice(&(body.len() as u32).to_be_bytes());
            d.extend_from_slice(body);
        };
        for (i, ms) in dates.iter().enumerate() {
            d.extend_from_slice(&TAG_TRUSTED_CERT.to_be_bytes());
            utf(&mut d, &format!("debian:cert{i}.pem"));
            d.extend_from_slice(&ms.to_be_bytes());
            cert(&mut d, format!("der bytes {i}").as_bytes());
        }
        if with_key {
            d.extend_from_slice(&TAG_PRIVATE_KEY.to_be_bytes());
            utf(&mut d, "mykey");
            d.extend_from_slice(&5_000i64.to_be_bytes());
            d.extend_from_slice(&3u32.to_be_bytes());
            d.extend_from_slice(b"key");
            d.extend_from_slice(&1u32.to_be_bytes());
            cert(&mut d, b"chain cert");
        }
        let sum = checksum(&d, password);
        d.extend_from_slice(&sum);
        d
    }

    // The cause measured on default-jre-headless: two installs differ only
    // in the entry dates of /etc/ssl/certs/java/cacerts.
    #[test]
    fn two_installs_become_the_same_bytes() {
        let epoch = 1_700_000_000;
        let a = keystore(&[1_795_990_410_983, 1_795_990_411_264], true, "changeit");
        let b = keystore(&[1_795_990_999_000, 1_795_991_000_001], true, "changeit");
        assert_ne!(a, b);
        let ca = clamp_dates(&a, epoch, DEFAULT_PASSWORD).unwrap().unwrap();
        let cb = clamp_dates(&b, epoch, DEFAULT_PASSWORD).unwrap().unwrap();
        assert_eq!(ca, cb);
        // And the result is what the JDK would have written at the epoch,
        // with a checksum it accepts.
        let at_epoch = keystore(&[epoch * 1000, epoch * 1000], true, "changeit");
        assert_eq!(ca, at_epoch);
        assert_eq!(clamp_dates(&ca, epoch, DEFAULT_PASSWORD).unwrap(), None);
    }

    #[test]
    fn older_dates_and_other_keystores_are_left_alone() {
        let old = keystore(&[1_000, 2_000], false, "changeit");
        assert_eq!(clamp_dates(&old, 1_700_000_000, DEFAULT_PASSWORD), Ok(None));
        let other = keystore(&[1_795_990_410_983], false, "s3cret");
        assert_eq!(
            clamp_dates(&other, 1_700_000_000, DEFAULT_PASSWORD),
            Err(KeystoreError::OtherPassword)
        );
        assert_eq!(
            clamp_dates(b"PK\x03\x04", 0, DEFAULT_PASSWORD),
            Err(KeystoreError::NotJks)
        );
        let full = keystore(&[1_795_990_410_983], false, "changeit");
        assert!(matches!(
            clamp_dates(&full[..full.len() - 30], 0, DEFAULT_PASSWORD),
            Err(KeystoreError::Truncated(_))
        ));
        let mut bad_tag = full.clone();
        bad_tag[15] = 9;
        assert_eq!(
            clamp_dates(&bad_tag, 0, DEFAULT_PASSWORD),
            Err(KeystoreError::UnknownTag { tag: 9, at: 12 })
        );
    }
}
