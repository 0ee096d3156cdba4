//! apt's answer to `apt-get install --print-uris -o Acquire::ForceHash=SHA256`
//! turned into the lock target's pins: each line `'<url>' <file> <size>
//! SHA256:<hex>` gives a name (the URL's path below its archive root), the
//! digest and the size the signed index lists. Pure; no I/O (the lock step
//! and the `lockfile from-apt` subcommand run apt and read the output).

use crate::digest::is_sha256_hex;
use crate::lockfile::{Pin, check_name};

/// Why apt's output cannot become a lockfile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AptError {
    #[error("apt printed no hash for {url}")]
    NoHash { url: String },
    #[error("apt printed {hash} for {url}, not a SHA256 from the index")]
    NotSha256 { url: String, hash: String },
    #[error("bad SHA256 {hex:?} for {url}")]
    BadSha256 { url: String, hex: String },
    #[error("bad size {size:?} for {url}: expected a number of bytes")]
    BadSize { url: String, size: String },
    #[error("bad escape in {0:?}")]
    BadEscape(String),
    #[error("{0:?} is not UTF-8 once decoded")]
    NotUtf8(String),
    #[error("{url} is under none of the base image's apt sources ({roots})")]
    NoRoot { url: String, roots: String },
    #[error("{url}: {message}")]
    BadName { url: String, message: String },
    #[error("apt printed \"{name}\" twice with different sha256 or size")]
    Conflict { name: String },
}

/// Decodes `%xx` escapes (apt prints URLs percent-encoded: `%2b` for `+`).
fn percent_decode(s: &str) -> Result<String, AptError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let bad = || AptError::BadEscape(s.to_string());
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AptError::NotUtf8(s.to_string()))
}

/// Turns apt's `--print-uris` output into pins sorted by name; a name is the
/// URL's path below the archive root it starts with (`roots`, from the base
/// image's apt sources; the longest matching root wins). Lines that are not
/// `'<url>' ...` (apt's progress) are skipped.
pub fn from_apt_print_uris(output: &str, roots: &[String]) -> Result<Vec<Pin>, AptError> {
    let mut out = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix('\'') else {
            continue;
        };
        let Some((url, fields)) = rest.split_once('\'') else {
            continue;
        };
        let mut fields = fields.split_whitespace();
        let (_file, size, hash) = (fields.next(), fields.next(), fields.next());
        let hash = hash.ok_or_else(|| AptError::NoHash { url: url.into() })?;
        let hex = hash
            .strip_prefix("SHA256:")
            .ok_or_else(|| AptError::NotSha256 {
                url: url.into(),
                hash: hash.into(),
            })?;
        if !is_sha256_hex(hex) {
            return Err(AptError::BadSha256 {
                url: url.into(),
                hex: hex.into(),
            });
        }
        // `hash` is the third field, so the second is there.
        let size = size.unwrap_or_default();
        let bytes = size
            .parse::<u64>()
            .ok()
            .filter(|_| size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| AptError::BadSize {
                url: url.into(),
                size: size.into(),
            })?;
        let url = percent_decode(url)?;
        let name = roots
            .iter()
            .filter_map(|r| url.strip_prefix(&format!("{}/", r.trim_end_matches('/'))))
            .min_by_key(|n| n.len())
            .ok_or_else(|| AptError::NoRoot {
                url: url.clone(),
                roots: roots.join(", "),
            })?;
        check_name(name).map_err(|e| AptError::BadName {
            url: url.clone(),
            message: e.0,
        })?;
        out.push(Pin {
            sha256: hex.to_ascii_lowercase(),
            name: name.to_string(),
            size: bytes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.cmp(b)));
    out.dedup();
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(AptError::Conflict {
            name: w[0].name.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::{Header, parse, render};

    const OUT: &str = "Reading package lists...\n\
        'http://m.example/debian/pool/main/g/gcc-12/cpp-12_12.2.0-14%2bdeb12u1_amd64.deb' cpp-12_12.2.0-14+deb12u1_amd64.deb 10 SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
        'http://m.example/debian-security/pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb' linux-libc-dev_6.1_amd64.deb 20 SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n\
        'http://m.example/debian/pool/main/b/binutils/binutils_2.40-2_amd64.deb' binutils_2.40-2_amd64.deb 30 SHA256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n";

    fn roots() -> Vec<String> {
        vec![
            "http://m.example/debian".into(),
            "http://m.example/debian-security".into(),
        ]
    }

    #[test]
    fn apt_output_becomes_sorted_names_below_their_archive_root() {
        let e = from_apt_print_uris(OUT, &roots()).unwrap();
        let names: Vec<&str> = e.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pool/main/b/binutils/binutils_2.40-2_amd64.deb",
                "pool/main/g/gcc-12/cpp-12_12.2.0-14+deb12u1_amd64.deb",
                "pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb"
            ]
        );
        assert_eq!(e[2].sha256, "b".repeat(64));
        let sizes: Vec<u64> = e.iter().map(|p| p.size).collect();
        assert_eq!(sizes, [30, 10, 20]);
    }

    #[test]
    fn other_hashes_unknown_roots_and_bad_sizes_are_errors() {
        let md5 = "'http://m.example/debian/pool/a.deb' a.deb 1 MD5Sum:d04c2e9639dee67aa836d8232b1ca658\n";
        assert!(
            from_apt_print_uris(md5, &roots())
                .unwrap_err()
                .to_string()
                .contains("not a SHA256")
        );
        let elsewhere = format!(
            "'http://other.example/pool/a.deb' a.deb 1 SHA256:{}\n",
            "a".repeat(64)
        );
        assert!(
            from_apt_print_uris(&elsewhere, &roots())
                .unwrap_err()
                .to_string()
                .contains("none of the base image's apt sources")
        );
        for size in ["-1", "+1", "1k", "99999999999999999999999"] {
            let bad = format!(
                "'http://m.example/debian/pool/a.deb' a.deb {size} SHA256:{}\n",
                "a".repeat(64)
            );
            assert!(
                matches!(
                    from_apt_print_uris(&bad, &roots()),
                    Err(AptError::BadSize { .. })
                ),
                "{size}"
            );
        }
    }

    #[test]
    fn rendered_files_are_stable_and_read_back_with_their_sizes() {
        let h = Header::new("reg/debian@sha256:00", &["libc6-dev".into(), "gcc".into()]);
        let e = from_apt_print_uris(OUT, &roots()).unwrap();
        let text = render(&h, &e);
        assert_eq!(text, render(&h, &e));
        assert_eq!(Header::parse(&text), Some(h));
        let lock = parse(&text).unwrap();
        let got: Vec<(&str, Option<u64>)> = lock
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.size))
            .collect();
        assert_eq!(
            got,
            [
                ("pool/main/b/binutils/binutils_2.40-2_amd64.deb", Some(30)),
                (
                    "pool/main/g/gcc-12/cpp-12_12.2.0-14+deb12u1_amd64.deb",
                    Some(10)
                ),
                (
                    "pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb",
                    Some(20)
                )
            ]
        );
        assert!(
            text.ends_with("# size: 20 pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb\n")
        );
    }
}
