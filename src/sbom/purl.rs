//! Package URLs (purl) for the SBOM's external refs, pure: percent-encoding
//! as the purl spec asks and the two kinds the SBOM writes (deb, oci).

/// Percent-encodes a purl name or version: everything but ASCII letters,
/// digits and `.-_~` becomes `%XX` (uppercase hex), so `+` is `%2B` and an
/// epoch's `:` is `%3A`.
pub fn encode(s: &str) -> String {
    encode_keeping(s, "")
}

/// Percent-encodes a qualifier value; `/` and `:` stay as they are, as in
/// the spec's `repository_url=docker.io/library/debian`.
pub fn encode_value(s: &str) -> String {
    encode_keeping(s, "/:")
}

fn encode_keeping(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if b.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~') || keep.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Qualifiers in key order, as the spec's canonical form has them.
fn qualifiers(pairs: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort();
    let parts: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_value(v)))
        .collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!("?{}", parts.join("&")),
    }
}

/// `pkg:deb/<vendor>/<name>@<version>?arch=<arch>&distro=<distro>`.
pub fn deb(vendor: &str, name: &str, version: &str, arch: &str, distro: &str) -> String {
    format!(
        "pkg:deb/{}/{}@{}{}",
        encode(vendor),
        encode(name),
        encode(version),
        qualifiers(&[("arch", arch), ("distro", distro)])
    )
}

/// `pkg:oci/<name>@<digest>?arch=<arch>&repository_url=<repository>`; the
/// name is the repository's last path part, lowercased.
pub fn oci(repository: &str, digest: &str, arch: &str) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let version = match digest.is_empty() {
        true => String::new(),
        false => format!("@{}", encode(digest)),
    };
    format!(
        "pkg:oci/{}{version}{}",
        encode(&name.to_lowercase()),
        qualifiers(&[("arch", arch), ("repository_url", repository)])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_colon_are_encoded_in_versions() {
        assert_eq!(
            deb("debian", "python3", "3.11.2-1+b1", "amd64", "debian-12"),
            "pkg:deb/debian/python3@3.11.2-1%2Bb1?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            deb("debian", "libc++1", "1:2.3~rc1", "all", ""),
            "pkg:deb/debian/libc%2B%2B1@1%3A2.3~rc1?arch=all"
        );
    }

    #[test]
    fn oci_names_the_repository_and_encodes_the_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            oci("127.0.0.1:5000/repro/Debian", &d, "amd64"),
            format!(
                "pkg:oci/debian@sha256%3A{}?arch=amd64&repository_url=127.0.0.1:5000/repro/Debian",
                "a".repeat(64)
            )
        );
        assert_eq!(
            oci("debian", "", ""),
            "pkg:oci/debian?repository_url=debian"
        );
    }

    #[test]
    fn qualifier_values_encode_what_is_not_a_path() {
        assert_eq!(encode_value("a b&c=d/e:f"), "a%20b%26c%3Dd/e:f");
    }
}
