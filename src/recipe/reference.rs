//! Image references in the fully qualified form BuildKit's image source needs.
//!
//! Mirrors the normalization of distribution/reference ParseNormalizedNamed:
//! `hello` becomes `docker.io/library/hello:latest`; a first component with a
//! dot, a colon or `localhost` is a registry and is kept.

/// Why a reference was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference \"{reference}\": {reason}")]
pub struct RefError {
    pub reference: String,
    pub reason: String,
}

/// Qualifies a reference: registry, repository path, and a tag or digest.
pub fn normalize(reference: &str) -> Result<String, RefError> {
    let bad = |reason: &str| RefError {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.is_empty()
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("empty or contains white space"));
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return Err(bad("digest must look like sha256:<hex>"));
        };
        if algo != "sha256" || !crate::digest::is_sha256_hex(hex) {
            return Err(bad("digest must be sha256: followed by 64 hex digits"));
        }
    }
    // A tag is a colon after the last slash.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].find(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if name.is_empty() || tag == Some("") {
        return Err(bad("empty name or tag"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("repository names must be lowercase"));
    }
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

/// Whether a reference is pinned: `name@sha256:<64 hex>`.
pub fn has_digest(reference: &str) -> bool {
    reference
        .rsplit_once("@sha256:")
        .is_some_and(|(_, hex)| crate::digest::is_sha256_hex(hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_short_names() {
        assert_eq!(
            normalize("hello").unwrap(),
            "docker.io/library/hello:latest"
        );
        assert_eq!(
            normalize("repro-frontend:v0").unwrap(),
            "docker.io/library/repro-frontend:v0"
        );
        assert_eq!(normalize("me/app:1").unwrap(), "docker.io/me/app:1");
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            normalize(&format!("debian@{d}")).unwrap(),
            format!("docker.io/library/debian@{d}")
        );
        assert_eq!(
            normalize(&format!("127.0.0.1:5000/repro/debian:bookworm@{d}")).unwrap(),
            format!("127.0.0.1:5000/repro/debian:bookworm@{d}")
        );
        assert_eq!(normalize("localhost/x").unwrap(), "localhost/x:latest");
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(normalize("").is_err());
        assert!(normalize("a b").is_err());
        assert!(normalize("debian@sha256:abc").is_err());
        assert!(normalize("debian:").is_err());
        assert!(normalize("Debian").is_err());
    }

    #[test]
    fn digests_are_recognised() {
        let hex = "a".repeat(64);
        assert!(has_digest(&format!("127.0.0.1:5000/x/y@sha256:{hex}")));
        assert!(has_digest(&format!("debian:bookworm@sha256:{hex}")));
        assert!(!has_digest("debian:bookworm"));
        assert!(!has_digest("debian@sha256:abc"));
    }
}
