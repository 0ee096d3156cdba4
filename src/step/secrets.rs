//! Install-time secrets and machine identities: finds the private keys and
//! per-machine identity files the build made in a root, decides what
//! becomes of each (removed, emptied, kept, or refused) from what the
//! frontend knows and the recipe's `private-keys:` setting, and names the
//! package or step that made it. Reads only: the normalize step applies the
//! outcome to its copy.
//!
//! "Made by the build" means: not in the base image, or there with another
//! size or time. A file a dpkg package ships (listed in
//! `var/lib/dpkg/info/*.list`) is the package's published content, the same
//! in every build, and is not scanned for keys; what maintainer scripts and
//! steps write is.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::inroot;
use super::normalize::{at, sorted_children};

/// The bytes of a file read to recognize a private key (a PEM key is a few
/// KiB; larger files are read this far).
const HEAD_CAP: u64 = 1 << 20;

/// The longest dpkg `.list` or maintainer script read.
const LIST_CAP: u64 = 64 << 20;

/// What the image gets instead of a file the build made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Left out of the image.
    Removed,
    /// Shipped empty: the state its owner treats as "first boot".
    Emptied,
    /// Shipped as built, because the recipe says so (`private-keys.keep`).
    Kept,
}

/// A file the build made that the frontend acted on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// As the image shows it: `/etc/ssh/ssh_host_ed25519_key`.
    pub path: String,
    pub action: Action,
    /// What it is: `private key (OPENSSH PRIVATE KEY)`, `machine identity`.
    pub what: String,
    /// The package whose maintainer script made it, or the step.
    pub made_by: String,
    /// How a container makes its own at start, when the frontend knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regenerate: Option<String>,
}

/// A private key the build made that the frontend does not know how to
/// regenerate and the recipe says nothing of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub path: String,
    pub what: String,
    pub made_by: String,
}

/// The recipe's `private-keys:` setting: patterns of image paths
/// (absolute, `*` matching within one name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub remove: Vec<String>,
    pub keep: Vec<String>,
    /// The recipe's file name, for messages.
    pub recipe: String,
}

/// Where the image carries the record of what became of the private keys
/// and identities its build made: the SBOM step and the gateway read it
/// there, from the image itself, so a build whose image comes back from a
/// cache (every cache mode keeps the image) reads the same record without
/// running anything again.
pub const RECORD_PATH: &str = "/usr/share/repro-frontend/private-keys.json";

/// Writes `outcome`'s record into the image at `root` ([`RECORD_PATH`]),
/// when the build made any key or identity, or when the tree already has a
/// record (its base was built by this frontend), which is then replaced.
/// New directories and the file get mode 0755/0644 and the epoch's time;
/// the existing parents keep theirs. No link is followed: a link on the
/// way is an error. Returns whether it wrote.
pub fn write_record(root: &Path, outcome: &Outcome, epoch: i64) -> io::Result<bool> {
    let rel = Path::new(RECORD_PATH.trim_start_matches('/'));
    let there = inroot::unlinked(root, rel)?;
    if outcome.findings.is_empty() && there.is_none() {
        return Ok(false);
    }
    let mut dir = root.to_path_buf();
    let mut made = Vec::new();
    let mut touched = Vec::new();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        let meta = fs::symlink_metadata(&dir).map_err(|e| at(&dir, e))?;
        let next = dir.join(c);
        match fs::symlink_metadata(&next) {
            Ok(m) if inroot::is_real_dir(&m) => {}
            Ok(_) => {
                return Err(at(
                    &next,
                    io::Error::new(io::ErrorKind::InvalidInput, "not a directory (or a link)"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                touched.push((dir.clone(), meta));
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&next)
                    .map_err(|e| at(&next, e))?;
                fs::set_permissions(&next, fs::Permissions::from_mode(0o755))
                    .map_err(|e| at(&next, e))?;
                made.push(next.clone());
            }
            Err(e) => return Err(at(&next, e)),
        }
        dir = next;
    }
    let path = root.join(rel);
    if let Some((_, meta)) = &there
        && !meta.is_file()
    {
        return Err(at(
            &path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if there.is_none() {
        touched.push((
            dir.clone(),
            fs::symlink_metadata(&dir).map_err(|e| at(&dir, e))?,
        ));
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| at(&path, e))?;
    io::Write::write_all(&mut file, &outcome.record()).map_err(|e| at(&path, e))?;
    drop(file);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(|e| at(&path, e))?;
    let epoch_time = (epoch, 0);
    super::normalize::set_times(&path, epoch_time, epoch_time)?;
    for d in made.iter().rev() {
        super::normalize::set_times(d, epoch_time, epoch_time)?;
    }
    // A parent that was there keeps the times it had (the new entry in it
    // is the frontend's, not the build's).
    for (d, meta) in touched {
        if made.contains(&d) {
            continue;
        }
        super::normalize::set_times(
            &d,
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        )?;
    }
    Ok(true)
}

/// A state of the build before the last, to tell who made a file: the
/// root after the install step, after each step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub label: String,
    pub dir: PathBuf,
}

/// What [`find`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// In path order.
    pub findings: Vec<Finding>,
    pub refused: Vec<Refused>,
}

impl Outcome {
    /// Root-relative paths the copy leaves out.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.findings
            .iter()
            .filter(|f| f.action == Action::Removed)
            .map(|f| f.path.trim_start_matches('/'))
    }

    /// Root-relative paths the copy ships empty.
    pub fn emptied(&self) -> impl Iterator<Item = &str> {
        self.findings
            .iter()
            .filter(|f| f.action == Action::Emptied)
            .map(|f| f.path.trim_start_matches('/'))
    }

    /// The record the SBOM step and the gateway read: deterministic JSON.
    pub fn record(&self) -> Vec<u8> {
        // A Vec of plain structs: serde_json cannot fail on it.
        let mut out = serde_json::to_vec_pretty(&self.findings).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The error for what was refused, one paragraph per file.
    pub fn refusal(&self, policy: &Policy) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let recipe = if policy.recipe.is_empty() {
            "the recipe"
        } else {
            policy.recipe.as_str()
        };
        let mut text = String::new();
        for r in &self.refused {
            text.push_str(&format!(
                "{}: a {} made by {}, and the frontend does not know how a container would make its own; every container of this image would share it. Say in {recipe} what to do with it: `private-keys: {{remove: [{}]}}` leaves it out of the image (make it at container start), `private-keys: {{keep: [{}]}}` ships it on purpose (reported in the build's output and the SBOM)\n",
                r.path, r.what, r.made_by, r.path, r.path
            ));
        }
        Some(text.trim_end().to_string())
    }
}

/// A file the frontend knows a package makes at install time, and what
/// becomes of it. Found in Debian's maintainer scripts (see
/// docs/security.md for the survey).
struct Known {
    /// An image path pattern (`*` within one name).
    pattern: &'static str,
    what: &'static str,
    action: Action,
    package: &'static str,
    regenerate: &'static str,
    /// Files made with it (public halves, certificates): `{}` is its path.
    companions: &'static [&'static str],
}

const KNOWN: &[Known] = &[
    Known {
        // systemd's postinst: systemd-machine-id-setup.
        pattern: "/etc/machine-id",
        what: "machine identity",
        action: Action::Emptied,
        package: "systemd",
        regenerate: "systemd-machine-id-setup (systemd itself does it at boot when the file is empty)",
        companions: &[],
    },
    Known {
        // dbus-daemon's postinst: dbus-uuidgen --ensure (a regular file).
        pattern: "/var/lib/dbus/machine-id",
        what: "machine identity",
        action: Action::Removed,
        package: "dbus-daemon",
        regenerate: "dbus-uuidgen --ensure",
        companions: &[],
    },
    Known {
        pattern: "/var/lib/systemd/random-seed",
        what: "random seed",
        action: Action::Removed,
        package: "systemd",
        regenerate: "systemd-random-seed.service at boot",
        companions: &[],
    },
    Known {
        // initscripts' postinst starts the urandom script (when a policy
        // lets it).
        pattern: "/var/lib/urandom/random-seed",
        what: "random seed",
        action: Action::Removed,
        package: "initscripts",
        regenerate: "the urandom init script at boot",
        companions: &[],
    },
    Known {
        pattern: "/var/lib/systemd/credential.secret",
        what: "secret key (systemd credentials)",
        action: Action::Removed,
        package: "systemd",
        regenerate: "systemd-creds setup",
        companions: &[],
    },
    Known {
        // openssh-server's postinst: ssh-keygen -q -f "$file" -N '' for
        // rsa, ecdsa and ed25519, each with its .pub.
        pattern: "/etc/ssh/ssh_host_*_key",
        what: "SSH host key",
        action: Action::Removed,
        package: "openssh-server",
        regenerate: "ssh-keygen -A",
        companions: &["{}.pub"],
    },
    Known {
        // ssl-cert's postinst: make-ssl-cert generate-default-snakeoil (a
        // key, a certificate and a hash link to it).
        pattern: "/etc/ssl/private/ssl-cert-snakeoil.key",
        what: "TLS private key (snakeoil)",
        action: Action::Removed,
        package: "ssl-cert",
        regenerate: "make-ssl-cert generate-default-snakeoil --force-overwrite",
        companions: &["/etc/ssl/certs/ssl-cert-snakeoil.pem"],
    },
    Known {
        // dropbear's postinst: dropbearkey -t "$keytype" -f "$keyfile".
        pattern: "/etc/dropbear/dropbear_*_host_key",
        what: "SSH host key (dropbear)",
        action: Action::Removed,
        package: "dropbear",
        regenerate: "dropbearkey -t <type> -f <file> for rsa, ecdsa and ed25519 (or run dropbear with -R)",
        companions: &[],
    },
    Known {
        // bind9's postinst: rndc-confgen -a.
        pattern: "/etc/bind/rndc.key",
        what: "shared secret (rndc TSIG key)",
        action: Action::Removed,
        package: "bind9",
        regenerate: "rndc-confgen -a",
        companions: &[],
    },
    Known {
        // munge's postinst: mungekey -c. A cluster shares one key.
        pattern: "/etc/munge/munge.key",
        what: "shared secret (munge)",
        action: Action::Removed,
        package: "munge",
        regenerate: "mount the cluster's key at run time (a secret); mungekey -c makes a new one",
        companions: &[],
    },
    Known {
        // xrdp's postinst: xrdp-keygen xrdp auto.
        pattern: "/etc/xrdp/rsakeys.ini",
        what: "RSA private key (xrdp)",
        action: Action::Removed,
        package: "xrdp",
        regenerate: "xrdp-keygen xrdp auto",
        companions: &[],
    },
    Known {
        // open-iscsi's postinst: iscsi-iname.
        pattern: "/etc/iscsi/initiatorname.iscsi",
        what: "machine identity (iSCSI initiator name)",
        action: Action::Removed,
        package: "open-iscsi",
        regenerate: "echo \"InitiatorName=$(iscsi-iname -p iqn.1993-08.org.debian:01)\" > /etc/iscsi/initiatorname.iscsi",
        companions: &[],
    },
    Known {
        // courier-imap's postinst: mkimapdcert (key and certificate in one
        // file).
        pattern: "/etc/courier/imapd.pem",
        what: "TLS private key and certificate (courier)",
        action: Action::Removed,
        package: "courier-imap",
        regenerate: "mkimapdcert",
        companions: &[],
    },
    Known {
        // ejabberd's preinst: openssl req -new -x509 -nodes (key and
        // certificate in one file).
        pattern: "/etc/ejabberd/ejabberd.pem",
        what: "TLS private key and certificate (ejabberd)",
        action: Action::Removed,
        package: "ejabberd",
        regenerate: "openssl req -new -x509 -days 365 -nodes -subj /CN=$(hostname) -keyout /etc/ejabberd/ejabberd.pem -out /etc/ejabberd/ejabberd.pem",
        companions: &[],
    },
];

/// Whether `path` (an image path) matches `pattern`: the same number of
/// names, each equal or matched by `*` (any run of characters within the
/// name).
pub fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let n: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(p, n)| glob(p.as_bytes(), n.as_bytes()))
}

/// One name against one pattern with `*`.
fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.iter().position(|&b| b == b'*') {
        None => p == n,
        Some(i) => {
            let (head, rest) = (&p[..i], &p[i + 1..]);
            if !n.starts_with(head) {
                return false;
            }
            let n = &n[i..];
            (0..=n.len()).any(|k| glob(rest, &n[k..]))
        }
    }
}

/// The private key `head` (a file's first bytes) holds, by its content:
/// PEM private keys of every kind (`-----BEGIN ... PRIVATE KEY-----`, PGP
/// private key blocks), OpenSSH's binary format, PuTTY's, GnuPG's
/// private-keys-v1.d files and binary OpenPGP secret keys.
pub fn private_key_kind(head: &[u8]) -> Option<String> {
    if let Some(label) = pem_private_label(head) {
        return Some(label);
    }
    if head.starts_with(b"openssh-key-v1\0") {
        return Some("OpenSSH private key".into());
    }
    if head.starts_with(b"PuTTY-User-Key-File-") {
        return Some("PuTTY private key".into());
    }
    for marker in [
        &b"(11:private-key"[..],
        b"(21:protected-private-key",
        b"(20:shadowed-private-key",
    ] {
        if head.starts_with(marker) {
            return Some("GnuPG private key".into());
        }
    }
    if head.starts_with(b"Key: (private-key") || head.starts_with(b"Key: (protected-private-key") {
        return Some("GnuPG private key".into());
    }
    if openpgp_secret_packet(head) {
        return Some("OpenPGP secret key".into());
    }
    None
}

/// The label of the first PEM private key block in `head`
/// (`RSA PRIVATE KEY`, `PGP PRIVATE KEY BLOCK`).
fn pem_private_label(head: &[u8]) -> Option<String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut rest = head;
    while let Some(i) = find_bytes(rest, BEGIN) {
        let after = &rest[i + BEGIN.len()..];
        let end = after
            .iter()
            .take(80)
            .position(|&b| b == b'\n' || b == b'\r');
        let line = &after[..end.unwrap_or(after.len().min(80))];
        if let Some(label) = line.strip_suffix(b"-----")
            && (label.ends_with(b"PRIVATE KEY") || label == b"PGP PRIVATE KEY BLOCK")
        {
            return Some(format!("private key ({})", String::from_utf8_lossy(label)));
        }
        rest = after;
    }
    None
}

/// The PEM label of the first block in `head` (`CERTIFICATE`,
/// `PUBLIC KEY`), for a key's companions.
fn pem_label(head: &[u8]) -> Option<&[u8]> {
    let i = find_bytes(head, b"-----BEGIN ")?;
    let after = &head[i + 11..];
    let end = after.iter().take(80).position(|&b| b == b'\n')?;
    after[..end].trim_ascii_end().strip_suffix(b"-----")
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `head` starts with an OpenPGP secret key or secret subkey
/// packet (tags 5 and 7, old or new header format) of version 3 to 6
/// followed by a creation time and a known public key algorithm.
fn openpgp_secret_packet(head: &[u8]) -> bool {
    let Some(&first) = head.first() else {
        return false;
    };
    if first & 0x80 == 0 {
        return false;
    }
    let (tag, body) = if first & 0x40 != 0 {
        let len_bytes = match head.get(1) {
            Some(&l) if l < 192 => 1,
            Some(&l) if l < 224 => 2,
            Some(255) => 5,
            _ => return false,
        };
        (first & 0x3f, head.get(1 + len_bytes..))
    } else {
        let len_bytes = match first & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return false,
        };
        ((first >> 2) & 0x0f, head.get(1 + len_bytes..))
    };
    let Some(body) = body else { return false };
    let known_algorithm = |a: u8| matches!(a, 1..=3 | 16..=22 | 25..=28);
    (tag == 5 || tag == 7)
        && body.len() >= 6
        && (3..=6).contains(&body[0])
        && if body[0] == 3 {
            body.len() >= 8 && known_algorithm(body[7])
        } else {
            known_algorithm(body[5])
        }
}

/// Finds what the build made under `root` that is a private key or a
/// known identity, and decides each (see the module doc). `base` is the
/// base image's rootfs; without it, "made by the build" means newer than
/// `epoch`. `skip` holds paths the other passes remove anyway. `stages`,
/// in build order, name who made a file.
pub fn find(
    root: &Path,
    base: Option<&Path>,
    epoch: i64,
    stages: &[Stage],
    policy: &Policy,
    skip: &HashSet<PathBuf>,
) -> io::Result<Outcome> {
    let listed = dpkg_listed(root)?;
    let mut made = Vec::new();
    let mut links = Vec::new();
    walk(root, root, skip, &mut |path, meta| {
        if meta.file_type().is_symlink() {
            links.push(path.to_path_buf());
            return Ok(());
        }
        if !meta.is_file() {
            return Ok(());
        }
        let shown = image_path(root, path);
        if built(root, base, path, meta, epoch)? {
            made.push((path.to_path_buf(), shown));
        }
        Ok(())
    })?;
    let mut who = Attribution::new(root, stages);
    let mut out = Outcome::default();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for (path, shown) in &made {
        let known = KNOWN.iter().find(|k| matches(k.pattern, shown));
        let what = match known {
            Some(k) => Some(k.what.to_string()),
            None if shipped(&listed, shown) => None,
            None => private_key_kind(&read_head(path)?),
        };
        let Some(what) = what else { continue };
        let made_by = who.of(shown, known.map(|k| k.package))?;
        let keep = policy.keep.iter().any(|p| matches(p, shown));
        let remove = policy.remove.iter().any(|p| matches(p, shown));
        let action = match (keep, remove, known) {
            (true, _, _) => Action::Kept,
            (false, true, _) => Action::Removed,
            (false, false, Some(k)) => k.action,
            (false, false, None) => {
                out.refused.push(Refused {
                    path: shown.clone(),
                    what,
                    made_by,
                });
                continue;
            }
        };
        taken.insert(shown.clone());
        out.findings.push(Finding {
            path: shown.clone(),
            action,
            what,
            made_by,
            regenerate: known.map(|k| k.regenerate.to_string()),
        });
    }
    let companions = companions(root, base, &out.findings, made, &links, &taken)?;
    out.findings.extend(companions);
    out.findings.sort();
    Ok(out)
}

/// The public halves, certificates and links made with each removed key:
/// the known ones' companions, `<key>.pub`, and for `<stem>.key` a PEM
/// certificate, public key or request named `<stem>.{crt,pem,csr,pub}` in
/// its folder; then every link the build made to a removed file.
fn companions(
    root: &Path,
    base: Option<&Path>,
    findings: &[Finding],
    made: Vec<(PathBuf, String)>,
    links: &[PathBuf],
    taken: &BTreeSet<String>,
) -> io::Result<Vec<Finding>> {
    let made: std::collections::BTreeMap<String, PathBuf> =
        made.into_iter().map(|(p, s)| (s, p)).collect();
    let mut out: Vec<Finding> = Vec::new();
    let add = |shown: &str, key: &Finding, out: &mut Vec<Finding>| {
        if !taken.contains(shown) && !out.iter().any(|f| f.path == shown) {
            out.push(Finding {
                path: shown.to_string(),
                action: Action::Removed,
                what: format!("goes with {}", key.path),
                made_by: key.made_by.clone(),
                regenerate: key.regenerate.clone(),
            });
        }
    };
    for key in findings.iter().filter(|f| f.action == Action::Removed) {
        let mut names = vec![format!("{}.pub", key.path)];
        if let Some(k) = KNOWN.iter().find(|k| matches(k.pattern, &key.path)) {
            names.extend(k.companions.iter().map(|c| c.replace("{}", &key.path)));
        }
        if let Some(stem) = key.path.strip_suffix(".key") {
            for ext in ["crt", "pem", "csr", "pub"] {
                let name = format!("{stem}.{ext}");
                if let Some(path) = made.get(&name) {
                    let head = read_head(path)?;
                    if pem_label(&head).is_some_and(|l| {
                        l == b"CERTIFICATE"
                            || l.ends_with(b"PUBLIC KEY")
                            || l == b"CERTIFICATE REQUEST"
                    }) {
                        names.push(name);
                    }
                }
            }
        }
        for name in names {
            if made.contains_key(&name) {
                add(&name, key, &mut out);
            }
        }
    }
    // Links to what is removed (`/etc/ssl/certs/<hash>.0` to the snakeoil
    // certificate): left, they would dangle and their names differ per
    // build.
    let gone: Vec<Finding> = findings
        .iter()
        .chain(out.iter())
        .filter(|f| f.action == Action::Removed)
        .cloned()
        .collect();
    if gone.is_empty() {
        return Ok(out);
    }
    for path in links {
        let shown = image_path(root, path);
        let target = fs::read_link(path).map_err(|e| at(path, e))?;
        // A link the base has, to the same place, is the base's.
        if let Some(base) = base
            && base_link(base, path.strip_prefix(root).unwrap_or(path))?.as_ref() == Some(&target)
        {
            continue;
        }
        let target = lexical_target(&shown, &target);
        if let Some(key) = gone.iter().find(|f| f.path == target) {
            add(&shown, key, &mut out);
        }
    }
    Ok(out)
}

/// The target of the link `rel` in `base`, when it is one there (reached
/// through no link).
fn base_link(base: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(None);
    };
    let dir = match parent.as_os_str().is_empty() {
        true => Some(base.to_path_buf()),
        false => inroot::real_dir(base, parent)?,
    };
    let Some(dir) = dir else {
        return Ok(None);
    };
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Ok(fs::read_link(&path).ok()),
        _ => Ok(None),
    }
}

/// Where a link at `link` (an image path) points, `..` and `.` resolved
/// by name.
fn lexical_target(link: &str, target: &Path) -> String {
    let mut parts: Vec<&[u8]> = Vec::new();
    if !target.has_root() {
        let parent = Path::new(link).parent().unwrap_or(Path::new("/"));
        parts.extend(parent.iter().map(|c| c.as_bytes()).filter(|c| *c != b"/"));
    }
    for c in target.iter().map(|c| c.as_bytes()) {
        match c {
            b"/" | b"." => {}
            b".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let joined: Vec<u8> = parts.join(&b'/');
    format!("/{}", String::from_utf8_lossy(&joined))
}

/// Whether the build made the file at `path` (see [`find`]).
fn built(
    root: &Path,
    base: Option<&Path>,
    path: &Path,
    meta: &fs::Metadata,
    epoch: i64,
) -> io::Result<bool> {
    let Some(base) = base else {
        return Ok(meta.mtime() > epoch || (meta.mtime() == epoch && meta.mtime_nsec() > 0));
    };
    let rel = path.strip_prefix(root).unwrap_or(path);
    Ok(match inroot::unlinked(base, rel)? {
        Some((_, b)) => {
            !b.is_file()
                || b.len() != meta.len()
                || b.mtime() != meta.mtime()
                || b.mtime_nsec() != meta.mtime_nsec()
        }
        None => true,
    })
}

/// Who made a file: the stage it first appears in, or the package the
/// install step ran.
struct Attribution<'a> {
    root: &'a Path,
    stages: &'a [Stage],
    /// Maintainer scripts (name, text), read on first need.
    scripts: Option<Vec<(String, Vec<u8>)>>,
}

impl<'a> Attribution<'a> {
    fn new(root: &'a Path, stages: &'a [Stage]) -> Self {
        Attribution {
            root,
            stages,
            scripts: None,
        }
    }

    /// `package openssh-server (its maintainer scripts)`, `step 2 (...)`, or
    /// `the build` when the stages do not tell.
    fn of(&mut self, shown: &str, known: Option<&str>) -> io::Result<String> {
        let rel = Path::new(shown.trim_start_matches('/'));
        let mut first = None;
        for stage in self.stages {
            if inroot::unlinked(&stage.dir, rel)?.is_some() {
                first = Some(stage);
                break;
            }
        }
        let install = match first {
            Some(stage) if !stage.label.starts_with("the install step") => {
                return Ok(stage.label.clone());
            }
            Some(_) => true,
            // Without stages, the packages' scripts are asked all the same.
            None => self.stages.is_empty(),
        };
        if !install {
            return Ok("the build".into());
        }
        if let Some(package) = self.package(shown, known)? {
            return Ok(format!(
                "package {package} (its maintainer scripts, at install)"
            ));
        }
        Ok(match self.stages.is_empty() {
            true => "the build".into(),
            false => "the install step (a maintainer script)".into(),
        })
    }

    /// The installed package whose maintainer scripts name the file (or
    /// its folder), the known maker first.
    fn package(&mut self, shown: &str, known: Option<&str>) -> io::Result<Option<String>> {
        if self.scripts.is_none() {
            self.scripts = Some(maintainer_scripts(self.root)?);
        }
        let scripts = self.scripts.as_deref().unwrap_or_default();
        if let Some(k) = known
            && scripts.iter().any(|(p, _)| p == k)
        {
            return Ok(Some(k.to_string()));
        }
        let dir = Path::new(shown)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        for needle in [shown, dir.as_str()] {
            if needle.len() <= 1 {
                continue;
            }
            if let Some((p, _)) = scripts
                .iter()
                .find(|(_, text)| find_bytes(text, needle.as_bytes()).is_some())
            {
                return Ok(Some(p.clone()));
            }
        }
        Ok(None)
    }
}

/// The installed packages' maintainer scripts (postinst, preinst,
/// config), as (package, text), in name order.
fn maintainer_scripts(root: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let Some(info) = inroot::real_dir(root, Path::new("var/lib/dpkg/info"))? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for path in sorted_children(&info)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        let Some((package, kind)) = name.rsplit_once('.') else {
            continue;
        };
        if !matches!(kind, "postinst" | "preinst" | "config") {
            continue;
        }
        let package = package.split(':').next().unwrap_or(package).to_string();
        match inroot::read_regular(&path, LIST_CAP) {
            Ok(text) => match out.iter_mut().find(|(p, _)| *p == package) {
                Some((_, all)) => all.extend(text),
                None => out.push((package, text)),
            },
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether a package ships `shown`, dpkg's lists naming it as it is or,
/// on a merged-/usr system, without its `/usr` (`/lib/x` is `/usr/lib/x`).
fn shipped(listed: &HashSet<Vec<u8>>, shown: &str) -> bool {
    listed.contains(shown.as_bytes())
        || shown.strip_prefix("/usr").is_some_and(|rest| {
            ["/bin/", "/sbin/", "/lib"]
                .iter()
                .any(|d| rest.starts_with(d))
                && listed.contains(rest.as_bytes())
        })
}

/// Every path a dpkg package ships, as dpkg's `.list` files give them
/// (`/usr/bin/hello`).
fn dpkg_listed(root: &Path) -> io::Result<HashSet<Vec<u8>>> {
    let mut out = HashSet::new();
    let Some(info) = inroot::real_dir(root, Path::new("var/lib/dpkg/info"))? else {
        return Ok(out);
    };
    for path in sorted_children(&info)? {
        if path.extension().is_none_or(|e| e != "list") {
            continue;
        }
        match inroot::read_regular(&path, LIST_CAP) {
            Ok(text) => out.extend(
                text.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            ),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Up to [`HEAD_CAP`] bytes of the regular file at `path` (no link
/// followed, no wait on a fifo).
fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| at(path, e))?;
    let mut data = Vec::new();
    file.take(HEAD_CAP)
        .read_to_end(&mut data)
        .map_err(|e| at(path, e))?;
    Ok(data)
}

/// `/<path below root>`, as the image shows it.
fn image_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("/{}", String::from_utf8_lossy(rel.as_os_str().as_bytes()))
}

/// Calls `f` on every entry below `dir` (in name order, links not
/// followed) but those in `skip` and what is below them; `dev`, `proc` and
/// `sys` at the root are skipped too.
fn walk(
    root: &Path,
    dir: &Path,
    skip: &HashSet<PathBuf>,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    for path in sorted_children(dir)? {
        let special = dir == root
            && path
                .file_name()
                .is_some_and(|n| matches!(n.as_bytes(), b"dev" | b"proc" | b"sys"));
        if special || skip.contains(&path) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| at(&path, e))?;
        f(&path, &meta)?;
        if meta.is_dir() {
            walk(root, &path, skip, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const EPOCH: i64 = 1_000_000;

    const PEM_EC: &str =
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n-----END EC PRIVATE KEY-----\n";
    const PEM_SSH: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    /// A base root and a built root; the built root's files are new.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let root = tmp.path().join("root");
        for r in [&base, &root] {
            fs::create_dir_all(r.join("etc/ssh")).unwrap();
            fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
        }
        (tmp, base, root)
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn policy(remove: &[&str], keep: &[&str]) -> Policy {
        Policy {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            keep: keep.iter().map(|s| s.to_string()).collect(),
            recipe: "repro.yaml".into(),
        }
    }

    fn run(base: &Path, root: &Path, stages: &[Stage], p: &Policy) -> Outcome {
        find(root, Some(base), EPOCH, stages, p, &HashSet::new()).unwrap()
    }

    #[test]
    fn recognizes_private_keys_by_content() {
        for (text, want) in [
            (PEM_EC, "private key (EC PRIVATE KEY)"),
            (PEM_SSH, "private key (OPENSSH PRIVATE KEY)"),
            (
                "junk\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                "private key (ENCRYPTED PRIVATE KEY)",
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
                "private key (PGP PRIVATE KEY BLOCK)",
            ),
            ("(11:private-key(3:rsa", "GnuPG private key"),
            ("Key: (private-key (ecc", "GnuPG private key"),
            ("PuTTY-User-Key-File-3: ssh-ed25519\n", "PuTTY private key"),
        ] {
            assert_eq!(private_key_kind(text.as_bytes()).as_deref(), Some(want));
        }
        assert_eq!(
            private_key_kind(b"openssh-key-v1\0none").as_deref(),
            Some("OpenSSH private key")
        );
        // An old-format tag-5 packet: version 4, time, algorithm 1 (RSA).
        let packet = [0x95, 0x01, 0x00, 4, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            private_key_kind(&packet).as_deref(),
            Some("OpenPGP secret key")
        );
        // A public key packet (tag 6) is not secret.
        assert_eq!(
            private_key_kind(&[0x99, 0x01, 0x00, 4, 0, 0, 0, 0, 1]),
            None
        );
        for public in [
            CERT,
            "-----BEGIN PUBLIC KEY-----\n",
            "ssh-ed25519 AAAA host\n",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
            "",
        ] {
            assert_eq!(private_key_kind(public.as_bytes()), None, "{public}");
        }
    }

    #[test]
    fn patterns_match_within_one_name() {
        assert!(matches(
            "/etc/ssh/ssh_host_*_key",
            "/etc/ssh/ssh_host_rsa_key"
        ));
        assert!(!matches(
            "/etc/ssh/ssh_host_*_key",
            "/etc/ssh/ssh_host_rsa_key.pub"
        ));
        assert!(!matches("/etc/*", "/etc/ssh/x"));
        assert!(matches("/srv/*.key", "/srv/a.key"));
        assert!(matches("/srv/a*b*c", "/srv/abxbc"));
        assert!(!matches("/srv/a*b*c", "/srv/abxb"));
        assert!(matches("srv/x", "/srv/x"));
    }

    #[test]
    fn known_keys_and_identities_are_removed_or_emptied_with_their_companions() {
        let (_t, base, root) = fixture();
        put(&base, "etc/ssh/ssh_config", "base\n");
        put(&root, "etc/ssh/ssh_config", "base\n");
        // Same size and time as the base's: not made by the build.
        let t = fs::metadata(base.join("etc/ssh/ssh_config"))
            .unwrap()
            .modified()
            .unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("etc/ssh/ssh_config"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        put(&root, "etc/ssh/ssh_host_ed25519_key", PEM_SSH);
        put(
            &root,
            "etc/ssh/ssh_host_ed25519_key.pub",
            "ssh-ed25519 AAAA root@x\n",
        );
        put(
            &root,
            "etc/machine-id",
            "0123456789abcdef0123456789abcdef\n",
        );
        put(&root, "etc/ssl/private/ssl-cert-snakeoil.key", PEM_EC);
        put(&root, "etc/ssl/certs/ssl-cert-snakeoil.pem", CERT);
        symlink(
            "ssl-cert-snakeoil.pem",
            root.join("etc/ssl/certs/1a2b3c4d.0"),
        )
        .unwrap();
        put(
            &root,
            "var/lib/dpkg/info/openssh-server.postinst",
            "ssh-keygen -A\n",
        );
        put(
            &root,
            "var/lib/dpkg/info/ssl-cert.postinst",
            "make-ssl-cert generate-default-snakeoil\n",
        );
        let out = run(&base, &root, &[], &policy(&[], &[]));
        assert!(out.refused.is_empty(), "{:?}", out.refused);
        let got: Vec<(&str, Action)> = out
            .findings
            .iter()
            .map(|f| (f.path.as_str(), f.action))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/etc/machine-id", Action::Emptied),
                ("/etc/ssh/ssh_host_ed25519_key", Action::Removed),
                ("/etc/ssh/ssh_host_ed25519_key.pub", Action::Removed),
                ("/etc/ssl/certs/1a2b3c4d.0", Action::Removed),
                ("/etc/ssl/certs/ssl-cert-snakeoil.pem", Action::Removed),
                ("/etc/ssl/private/ssl-cert-snakeoil.key", Action::Removed),
            ]
        );
        let key = &out.findings[1];
        assert_eq!(key.regenerate.as_deref(), Some("ssh-keygen -A"));
        assert!(key.made_by.contains("openssh-server"), "{}", key.made_by);
        let record = String::from_utf8(out.record()).unwrap();
        assert!(record.contains("\"madeBy\""), "{record}");
    }

    #[test]
    fn an_unknown_key_from_a_step_is_refused_naming_the_step_and_the_setting() {
        let (tmp, base, root) = fixture();
        put(&root, "srv/app/tls.key", PEM_EC);
        let install = tmp.path().join("s0");
        let step = tmp.path().join("s1");
        fs::create_dir_all(&install).unwrap();
        put(&step, "srv/app/tls.key", PEM_EC);
        let stages = [
            Stage {
                label: "the install step".into(),
                dir: install,
            },
            Stage {
                label: "step 1 (repro.yaml:9: run openssl genpkey)".into(),
                dir: step,
            },
        ];
        let p = policy(&[], &[]);
        let out = run(&base, &root, &stages, &p);
        assert!(out.findings.is_empty());
        assert_eq!(out.refused.len(), 1);
        let msg = out.refusal(&p).unwrap();
        for want in [
            "/srv/app/tls.key",
            "private key (EC PRIVATE KEY)",
            "step 1 (repro.yaml:9: run openssl genpkey)",
            "repro.yaml",
            "private-keys: {remove: [/srv/app/tls.key]}",
            "private-keys: {keep: [/srv/app/tls.key]}",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
        // The recipe's choice settles it either way.
        let kept = run(&base, &root, &stages, &policy(&[], &["/srv/app/*.key"]));
        assert_eq!(kept.findings[0].action, Action::Kept);
        assert!(kept.refused.is_empty());
        let removed = run(&base, &root, &stages, &policy(&["/srv/app/tls.key"], &[]));
        assert_eq!(removed.findings[0].action, Action::Removed);
    }

    #[test]
    fn a_packaged_key_and_the_bases_own_are_not_the_builds() {
        let (_t, base, root) = fixture();
        put(&root, "usr/share/doc/x/test.key", PEM_EC);
        put(
            &root,
            "var/lib/dpkg/info/x.list",
            "/usr\n/usr/share/doc/x/test.key\n",
        );
        // Merged /usr: dpkg lists /lib/..., the file is at /usr/lib/....
        put(&root, "usr/lib/x/fixture.key", PEM_EC);
        put(&root, "var/lib/dpkg/info/y.list", "/lib/x/fixture.key\n");
        put(&base, "etc/base.key", PEM_EC);
        put(&root, "etc/base.key", PEM_EC);
        let t = fs::metadata(base.join("etc/base.key"))
            .unwrap()
            .modified()
            .unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("etc/base.key"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        let out = run(&base, &root, &[], &policy(&[], &[]));
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn what_the_other_passes_remove_is_not_looked_at() {
        let (_t, base, root) = fixture();
        put(&root, "tmp/build/app.key", PEM_EC);
        let skip = HashSet::from([root.join("tmp/build")]);
        let out = find(&root, Some(&base), EPOCH, &[], &policy(&[], &[]), &skip).unwrap();
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn links_are_data_not_followed() {
        let (tmp, base, root) = fixture();
        let outside = tmp.path().join("outside");
        put(&outside, "secret.key", PEM_EC);
        symlink(&outside, root.join("etc/out")).unwrap();
        symlink(outside.join("secret.key"), root.join("etc/k")).unwrap();
        let out = run(&base, &root, &[], &policy(&[], &[]));
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn lexical_targets() {
        assert_eq!(
            lexical_target("/etc/ssl/certs/a.0", Path::new("ssl-cert-snakeoil.pem")),
            "/etc/ssl/certs/ssl-cert-snakeoil.pem"
        );
        assert_eq!(lexical_target("/etc/a", Path::new("../../x/./y")), "/x/y");
        assert_eq!(lexical_target("/etc/a", Path::new("/k")), "/k");
    }

    fn a_finding() -> Outcome {
        Outcome {
            findings: vec![Finding {
                path: "/etc/machine-id".into(),
                action: Action::Emptied,
                what: "machine identity".into(),
                made_by: "package systemd".into(),
                regenerate: None,
            }],
            refused: Vec::new(),
        }
    }

    #[test]
    fn the_record_goes_into_the_image_only_when_there_is_one_and_leaves_the_parents_times() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("usr/share")).unwrap();
        super::super::normalize::set_times(&root.join("usr/share"), (5, 0), (7, 3)).unwrap();
        let record = root.join(RECORD_PATH.trim_start_matches('/'));
        assert!(!write_record(root, &Outcome::default(), EPOCH).unwrap());
        assert!(
            !record.parent().unwrap().exists(),
            "nothing made, nothing written"
        );
        assert!(write_record(root, &a_finding(), EPOCH).unwrap());
        assert_eq!(fs::read(&record).unwrap(), a_finding().record());
        let meta = |p: &Path| fs::symlink_metadata(p).unwrap();
        assert_eq!(
            (meta(&record).mode() & 0o7777, meta(&record).mtime()),
            (0o644, EPOCH)
        );
        let dir = record.parent().unwrap();
        assert_eq!(
            (meta(dir).mode() & 0o7777, meta(dir).mtime()),
            (0o755, EPOCH)
        );
        let share = meta(&root.join("usr/share"));
        assert_eq!((share.mtime(), share.mtime_nsec()), (7, 3));
        // A base built by this frontend brought one: it is replaced, even
        // by an empty record.
        assert!(write_record(root, &Outcome::default(), EPOCH).unwrap());
        assert_eq!(fs::read(&record).unwrap(), b"[]\n");
    }

    #[test]
    fn the_record_never_goes_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        fs::create_dir_all(root.join("usr")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("usr/share")).unwrap();
        let e = write_record(&root, &a_finding(), EPOCH).unwrap_err();
        assert!(e.to_string().contains("usr/share"), "{e}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }
}
