//! The target platform of a build, in the forms BuildKit and the recipe's
//! build args use. Pure.

use std::collections::BTreeMap;

/// Target platform of the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// A platform text that is not `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform \"{0}\" (expected os/arch[/variant], e.g. linux/amd64)")]
pub struct PlatformError(pub String);

/// `os/arch[/variant]`, as `--platform` takes it.
pub fn parse_platform(text: &str) -> Result<Platform, PlatformError> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => Err(PlatformError(text.to_string())),
    }
}

impl Platform {
    /// `linux/arm64/v8` form.
    pub fn to_string_form(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// The key BuildKit's exporters look results up by: the string form of
    /// the platform normalized as containerd does (arm64's `v8` and amd64's
    /// `v1` dropped, bare `arm` as `arm/v7`).
    pub fn key(&self) -> String {
        let variant = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) | ("amd64", Some("v1")) => None,
            ("arm", None) => Some("v7"),
            (_, v) => v,
        };
        Platform {
            variant: variant.map(str::to_string),
            ..self.clone()
        }
        .to_string_form()
    }

    /// The platform as LLB ops carry it.
    pub fn to_pb(&self) -> bollard_buildkit_proto::pb::Platform {
        bollard_buildkit_proto::pb::Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone().unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The TARGET* build args BuildKit's Dockerfile frontend also sets.
    pub fn target_args(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("TARGETPLATFORM".to_string(), self.to_string_form());
        m.insert("TARGETOS".to_string(), self.os.clone());
        m.insert("TARGETARCH".to_string(), self.architecture.clone());
        m.insert(
            "TARGETVARIANT".to_string(),
            self.variant.clone().unwrap_or_default(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalized_as_containerd_does() {
        let p = |a: &str, v: Option<&str>| {
            Platform {
                os: "linux".into(),
                architecture: a.into(),
                variant: v.map(str::to_string),
            }
            .key()
        };
        assert_eq!(p("amd64", None), "linux/amd64");
        assert_eq!(p("arm64", Some("v8")), "linux/arm64");
        assert_eq!(p("arm", None), "linux/arm/v7");
        assert_eq!(p("arm", Some("v6")), "linux/arm/v6");
    }
}
