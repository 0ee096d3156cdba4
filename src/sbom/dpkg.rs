//! dpkg's installed-package database (`/var/lib/dpkg/status`) read into the
//! packages the SBOM lists, pure: text in, packages out.

use super::SbomError;

/// One installed package, as dpkg records it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package, when it differs from the binary's name or
    /// version (`Source: gcc-12 (12.2.0-14)`); else the binary's own.
    pub source: String,
    pub source_version: String,
}

impl Installed {
    /// The names the package's file has in a pool: the version without its
    /// epoch (Debian's pool), and with the epoch as apt writes it (`1%3a2.3`).
    pub fn file_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        match self.version.split_once(':') {
            Some((epoch, rest)) => {
                names.push(format!("{}_{rest}_{}.deb", self.name, self.arch));
                names.push(format!("{}_{epoch}%3a{rest}_{}.deb", self.name, self.arch));
            }
            None => names.push(format!("{}_{}_{}.deb", self.name, self.version, self.arch)),
        }
        names
    }
}

/// The packages whose `Status` ends in `installed`, sorted by name and
/// architecture. A paragraph without `Package` or `Version` is an error
/// naming its first line.
pub fn parse_status(text: &str) -> Result<Vec<Installed>, SbomError> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 1;
    for (i, line) in text.lines().chain(std::iter::once("")).enumerate() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                out.extend(paragraph(&fields, start)?);
                fields.clear();
            }
            start = i + 2;
        } else if line.starts_with([' ', '\t']) {
            // A continuation line (Description, Conffiles): not needed.
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.to_string(), v.trim().to_string()));
        } else {
            return Err(SbomError::Status {
                line: i + 1,
                message: format!("{line:?} is not a \"Field: value\" line"),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// One paragraph: a package if dpkg has it installed.
fn paragraph(fields: &[(String, String)], line: usize) -> Result<Option<Installed>, SbomError> {
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let installed = get("Status").is_some_and(|s| s.split_whitespace().last() == Some("installed"));
    if !installed {
        return Ok(None);
    }
    let missing = |key: &str| SbomError::Status {
        line,
        message: format!("an installed package without {key}"),
    };
    let name = get("Package").ok_or_else(|| missing("Package"))?;
    let version = get("Version").ok_or_else(|| missing("Version"))?;
    let (source, source_version) = match get("Source") {
        None => (name, version),
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
            None => (s, version),
        },
    };
    Ok(Some(Installed {
        name: name.into(),
        version: version.into(),
        arch: get("Architecture").unwrap_or("all").into(),
        source: source.into(),
        source_version: source_version.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const STATUS: &str = "\
Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
Source: python3-defaults (3.11.2-1)
Description: interactive language
 more text: with a colon

Package: removed
Status: deinstall ok config-files
Version: 1.0
Architecture: amd64

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
";

    #[test]
    fn installed_packages_with_their_source() {
        let pkgs = parse_status(STATUS).unwrap();
        assert_eq!(pkgs.len(), 2, "{pkgs:?}");
        assert_eq!(pkgs[0].name, "python3");
        assert_eq!(
            (pkgs[0].source.as_str(), pkgs[0].source_version.as_str()),
            ("python3-defaults", "3.11.2-1")
        );
        assert_eq!(
            (pkgs[1].source.as_str(), pkgs[1].arch.as_str()),
            ("tzdata", "all")
        );
    }

    #[test]
    fn a_package_without_a_version_names_its_line() {
        let e = parse_status("Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: install ok installed\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "var/lib/dpkg/status:1: an installed package without Version"
        );
    }

    #[test]
    fn file_names_drop_or_encode_the_epoch() {
        let p = Installed {
            name: "libx".into(),
            version: "1:2.3-1".into(),
            arch: "amd64".into(),
            source: "x".into(),
            source_version: "1:2.3-1".into(),
        };
        assert_eq!(
            p.file_names(),
            ["libx_2.3-1_amd64.deb", "libx_1%3a2.3-1_amd64.deb"]
        );
    }
}
