//! The install step: which distro tool installs the lockfile's packages, and how.
//!
//! The tool comes from the base image's `/etc/os-release` (or the recipe's
//! `packages.installer`). Each runs offline, on files only, with the tool's
//! own signature checks where the base has keys: dpkg (Debian, Ubuntu), rpm
//! (Fedora and relatives), apk (Alpine), pacman (Arch).

use std::fmt;

/// A distro's package tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installer {
    Dpkg,
    Rpm,
    Apk,
    Pacman,
}

impl Installer {
    pub const ALL: [Installer; 4] = [
        Installer::Dpkg,
        Installer::Rpm,
        Installer::Apk,
        Installer::Pacman,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Installer::Dpkg => "dpkg",
            Installer::Rpm => "rpm",
            Installer::Apk => "apk",
            Installer::Pacman => "pacman",
        }
    }

    pub fn from_name(name: &str) -> Option<Installer> {
        Installer::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Reads `ID` and `ID_LIKE` from an os-release file.
    pub fn from_os_release(text: &str) -> Option<Installer> {
        let mut ids = Vec::new();
        for key in ["ID", "ID_LIKE"] {
            if let Some(v) = os_release_field(text, key) {
                ids.extend(v.split_whitespace().map(str::to_string));
            }
        }
        ids.iter().find_map(|id| match id.as_str() {
            "debian" | "ubuntu" => Some(Installer::Dpkg),
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "amzn" | "ol" => {
                Some(Installer::Rpm)
            }
            "alpine" => Some(Installer::Apk),
            "arch" | "archlinux" | "manjaro" => Some(Installer::Pacman),
            _ => None,
        })
    }

    /// Whether a lockfile name is a package this tool installs.
    pub fn accepts(self, name: &str) -> bool {
        match self {
            Installer::Dpkg => name.ends_with(".deb"),
            Installer::Rpm => name.ends_with(".rpm"),
            Installer::Apk => name.ends_with(".apk"),
            Installer::Pacman => [".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz", ".pkg.tar"]
                .iter()
                .any(|ext| name.ends_with(ext)),
        }
    }

    /// What the packages of this tool look like, for error messages.
    pub fn package_kind(self) -> &'static str {
        match self {
            Installer::Dpkg => ".deb",
            Installer::Rpm => ".rpm",
            Installer::Apk => ".apk",
            Installer::Pacman => ".pkg.tar.*",
        }
    }

    /// Extra environment for the install step.
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // debconf asks nothing and answers with the packages' defaults.
            Installer::Dpkg => &[
                ("DEBIAN_FRONTEND", "noninteractive"),
                ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
            ],
            _ => &[],
        }
    }
}

/// The value of `key` in an os-release file, unquoted.
pub fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

impl fmt::Display for Installer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_tool_from_os_release() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        assert_eq!(Installer::from_os_release(debian), Some(Installer::Dpkg));
        assert_eq!(
            Installer::from_os_release("ID=ubuntu\nID_LIKE=debian\n"),
            Some(Installer::Dpkg)
        );
        assert_eq!(
            Installer::from_os_release("ID=fedora\n"),
            Some(Installer::Rpm)
        );
        assert_eq!(
            Installer::from_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Installer::Rpm)
        );
        assert_eq!(
            Installer::from_os_release("ID=alpine\n"),
            Some(Installer::Apk)
        );
        assert_eq!(
            Installer::from_os_release("ID=arch\n"),
            Some(Installer::Pacman)
        );
        assert_eq!(
            Installer::from_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"),
            Some(Installer::Dpkg)
        );
        assert_eq!(Installer::from_os_release("ID=nixos\n"), None);
    }

    #[test]
    fn accepts_each_tools_packages() {
        assert!(Installer::Dpkg.accepts("pool/main/h/hello/hello_2.10-3_amd64.deb"));
        assert!(Installer::Rpm.accepts("Packages/b/bash-5.2.15-3.fc38.x86_64.rpm"));
        assert!(Installer::Apk.accepts("v3.16/main/x86_64/bash-5.1.16-r2.apk"));
        assert!(Installer::Pacman.accepts("n/neofetch/neofetch-7.1.0-2-any.pkg.tar.zst"));
        assert!(!Installer::Pacman.accepts("n/neofetch/neofetch-7.1.0-2-any.pkg.tar.zst.sig"));
        assert!(!Installer::Dpkg.accepts("x.rpm"));
    }

    #[test]
    fn dpkg_runs_with_debconf_quiet() {
        assert_eq!(
            Installer::Dpkg.env(),
            [
                ("DEBIAN_FRONTEND", "noninteractive"),
                ("DEBCONF_NONINTERACTIVE_SEEN", "true")
            ]
        );
        assert_eq!(Installer::from_name("rpm"), Some(Installer::Rpm));
    }
}
