//! Which machine a package is built for, read from its lockfile name, and
//! whether that suits the build's target platform. Pure.
//!
//! Each distro spells its architectures its own way in its file names:
//! Debian `hello_2.10-3_arm64.deb`, Fedora `bash-5.2.15-3.fc38.aarch64.rpm`,
//! Alpine `v3.16/main/aarch64/bash-5.1.16-r2.apk` (a folder per
//! architecture), Arch `neofetch-7.1.0-2-any.pkg.tar.zst`. A package for
//! every machine (`all`, `noarch`, `any`) suits every platform.

use crate::distro::install::Installer;

/// A package whose architecture is not the one the build targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The architecture the name says, in the distro's spelling.
    pub package: String,
    /// What the tool calls the target platform's architecture.
    pub wanted: &'static str,
}

/// The architecture a package name says, in the distro's spelling, when it
/// says one this module knows.
pub fn package_arch(installer: Installer, name: &str) -> Option<&str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match installer {
        Installer::Dpkg => {
            let stem = base.strip_suffix(".deb")?;
            stem.rsplit_once('_').map(|(_, arch)| arch)
        }
        Installer::Rpm => {
            let stem = base.strip_suffix(".rpm")?;
            stem.rsplit_once('.').map(|(_, arch)| arch)
        }
        // `<branch>/<repo>/<arch>/<file>.apk`: the folder names it.
        Installer::Apk => {
            let mut parts = name.rsplit('/');
            parts.next()?.strip_suffix(".apk")?;
            parts.next()
        }
        Installer::Pacman => {
            let stem = [".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz", ".pkg.tar"]
                .iter()
                .find_map(|ext| base.strip_suffix(ext))?;
            stem.rsplit_once('-').map(|(_, arch)| arch)
        }
    }
}

/// The tool's name for a platform's architecture (`architecture` and
/// `variant` as in an OCI platform), when this module knows it.
pub fn tool_arch(
    installer: Installer,
    architecture: &str,
    variant: Option<&str>,
) -> Option<&'static str> {
    let arm_old = matches!(variant, Some("v5" | "v6"));
    let name = match (installer, architecture) {
        (Installer::Dpkg, "amd64") => "amd64",
        (Installer::Dpkg, "arm64") => "arm64",
        (Installer::Dpkg, "arm") if arm_old => "armel",
        (Installer::Dpkg, "arm") => "armhf",
        (Installer::Dpkg, "386") => "i386",
        (Installer::Dpkg, "ppc64le") => "ppc64el",
        (Installer::Dpkg, "mips64le") => "mips64el",
        (Installer::Dpkg | Installer::Rpm | Installer::Apk, "s390x") => "s390x",
        (_, "riscv64") => "riscv64",
        (Installer::Rpm | Installer::Apk | Installer::Pacman, "amd64") => "x86_64",
        (Installer::Rpm | Installer::Apk | Installer::Pacman, "arm64") => "aarch64",
        (Installer::Rpm, "arm") => "armv7hl",
        (Installer::Rpm | Installer::Pacman, "386") => "i686",
        (Installer::Rpm | Installer::Apk, "ppc64le") => "ppc64le",
        (Installer::Apk, "arm") if arm_old => "armhf",
        (Installer::Apk, "arm") => "armv7",
        (Installer::Apk, "386") => "x86",
        (Installer::Pacman, "arm") => "armv7h",
        _ => return None,
    };
    Some(name)
}

/// Whether a package name suits the target platform: `Some` when the name
/// says another architecture. Names that say none this module knows, and
/// platforms it does not know, pass (the tool itself still refuses them).
pub fn mismatch(
    installer: Installer,
    name: &str,
    architecture: &str,
    variant: Option<&str>,
) -> Option<Mismatch> {
    let wanted = tool_arch(installer, architecture, variant)?;
    let got = package_arch(installer, name)?;
    let universal = matches!(got, "all" | "noarch" | "any");
    // Fedora's i686 sets carry some i386 and i586 packages, so any x86
    // spelling suits a 386 target.
    let x86 = wanted == "i686" && matches!(got, "i386" | "i486" | "i586" | "i686");
    (!universal && !x86 && spells_an_arch(installer, got) && got != wanted).then(|| Mismatch {
        package: got.to_string(),
        wanted,
    })
}

/// Whether `got` is this tool's name for some platform, so that a name
/// whose last field merely looks like one (an Alpine folder named
/// otherwise, an odd Debian version) is not taken for one.
fn spells_an_arch(installer: Installer, got: &str) -> bool {
    const ARCHES: [&str; 8] = [
        "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
    ];
    ARCHES.iter().any(|a| {
        [None, Some("v6")]
            .into_iter()
            .any(|v| tool_arch(installer, a, v) == Some(got))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_distros_spelling() {
        let cases = [
            (
                Installer::Dpkg,
                "pool/main/h/hello/hello_2.10-3_arm64.deb",
                Some("arm64"),
            ),
            (
                Installer::Dpkg,
                "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb",
                Some("all"),
            ),
            (
                Installer::Rpm,
                "Packages/b/bash-5.2.15-3.fc38.x86_64.rpm",
                Some("x86_64"),
            ),
            (
                Installer::Rpm,
                "Packages/t/tzdata-2023c-1.fc38.noarch.rpm",
                Some("noarch"),
            ),
            (
                Installer::Apk,
                "v3.16/main/aarch64/bash-5.1.16-r2.apk",
                Some("aarch64"),
            ),
            (Installer::Apk, "bash-5.1.16-r2.apk", None),
            (
                Installer::Pacman,
                "n/neofetch/neofetch-7.1.0-2-any.pkg.tar.zst",
                Some("any"),
            ),
            (
                Installer::Pacman,
                "b/bash/bash-5.2.015-1-x86_64.pkg.tar.zst",
                Some("x86_64"),
            ),
            (Installer::Dpkg, "notes.txt", None),
        ];
        for (installer, name, want) in cases {
            assert_eq!(package_arch(installer, name), want, "{name}");
        }
    }

    #[test]
    fn another_architecture_is_a_mismatch_and_all_suits_every_one() {
        let arm = "pool/main/h/hello/hello_2.10-3_arm64.deb";
        assert_eq!(
            mismatch(Installer::Dpkg, arm, "amd64", None),
            Some(Mismatch {
                package: "arm64".into(),
                wanted: "amd64"
            })
        );
        assert_eq!(mismatch(Installer::Dpkg, arm, "arm64", None), None);
        assert_eq!(mismatch(Installer::Dpkg, arm, "arm64", Some("v8")), None);
        let all = "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb";
        assert_eq!(mismatch(Installer::Dpkg, all, "amd64", None), None);
        assert_eq!(
            mismatch(Installer::Dpkg, "p/x_1_armhf.deb", "arm", Some("v7")),
            None
        );
        assert_eq!(
            mismatch(Installer::Dpkg, "p/x_1_armhf.deb", "arm", Some("v6")).map(|m| m.wanted),
            Some("armel")
        );
        let rpm = "Packages/b/bash-5.2.15-3.fc38.x86_64.rpm";
        assert_eq!(
            mismatch(Installer::Rpm, rpm, "arm64", None).map(|m| m.wanted),
            Some("aarch64")
        );
        assert_eq!(mismatch(Installer::Rpm, rpm, "amd64", None), None);
        let apk = "v3.16/main/x86_64/bash-5.1.16-r2.apk";
        assert_eq!(mismatch(Installer::Apk, apk, "amd64", None), None);
        assert!(mismatch(Installer::Apk, apk, "arm64", None).is_some());
    }

    #[test]
    fn unknown_spellings_and_platforms_pass() {
        // A Debian version string can end in something that is no arch.
        assert_eq!(
            mismatch(Installer::Dpkg, "p/x_1_weird.deb", "amd64", None),
            None
        );
        assert_eq!(
            mismatch(Installer::Dpkg, "p/x_1_arm64.deb", "wasm", None),
            None
        );
        assert_eq!(
            mismatch(Installer::Apk, "edge/main/custom/x-1.apk", "amd64", None),
            None
        );
    }
}
