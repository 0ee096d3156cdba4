//! Default providers: the package sources the base image itself is set up with.
//!
//! With no `providers:` in the recipe, the frontend reads the base image's
//! own configuration (apt's one-line and deb822 source files, Alpine's
//! repositories file, yum/dnf `.repo` files, pacman's mirrorlist) and turns
//! each archive root into a URL template, so no mirror host is written
//! anywhere but in the base image.

/// One `deb` source of apt: an archive URI as written and the suites it
/// serves (the word after the URI on a one-line entry; `Suites:` in deb822).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
}

/// The `deb` sources in apt's one-line format (`deb [opts] URI suite comp...`).
pub fn apt_one_line_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut uri = words.next();
        // Options in brackets may hold spaces: skip to the closing bracket.
        if uri.is_some_and(|u| u.starts_with('[')) {
            let mut w = uri;
            while let Some(word) = w {
                if word.ends_with(']') {
                    break;
                }
                w = words.next();
            }
            uri = words.next();
        }
        if let Some(u) = uri {
            out.push(AptSource {
                uri: u.to_string(),
                suites: words.next().map(str::to_string).into_iter().collect(),
            });
        }
    }
    out
}

/// The enabled `deb` sources in apt's deb822 format (`Types: deb` stanzas
/// with `URIs:`), one per URI.
pub fn apt_deb822_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types_deb = false;
        let mut enabled = true;
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        for line in stanza.lines() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types_deb = value.split_whitespace().any(|t| t == "deb"),
                "uris" => uris.extend(value.split_whitespace().map(str::to_string)),
                "suites" => suites.extend(value.split_whitespace().map(str::to_string)),
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if types_deb && enabled {
            out.extend(uris.into_iter().map(|uri| AptSource {
                uri,
                suites: suites.clone(),
            }));
        }
    }
    out
}

/// Archive roots in apt's one-line format (`deb [opts] URI suite comp...`).
pub fn apt_one_line(text: &str) -> Vec<String> {
    roots_of(&apt_one_line_sources(text), None)
}

/// Archive roots in apt's deb822 format (`Types: deb` stanzas with `URIs:`).
pub fn apt_deb822(text: &str) -> Vec<String> {
    roots_of(&apt_deb822_sources(text), None)
}

/// Archive roots of apt's source files, given as (file name, text) in the
/// order apt reads them: `sources.list`, then `sources.list.d/` by name.
/// Names ending in `.list` are one-line files, `.sources` deb822; others are
/// skipped, as apt skips them. With `suite`, only sources serving it count.
/// Each root once, first-seen order.
pub fn apt_roots(files: &[(String, String)], suite: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in files {
        let sources = if name.ends_with(".list") {
            apt_one_line_sources(text)
        } else if name.ends_with(".sources") {
            apt_deb822_sources(text)
        } else {
            continue;
        };
        for root in roots_of(&sources, suite) {
            if !out.contains(&root) {
                out.push(root);
            }
        }
    }
    out
}

fn roots_of(sources: &[AptSource], suite: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources {
        if suite.is_none_or(|want| s.suites.iter().any(|have| have == want)) {
            push_uri(&mut out, &s.uri);
        }
    }
    out
}

/// Mirror roots in Alpine's `/etc/apk/repositories` (`<root>/v3.19/main`):
/// lockfile names start with the version (`v3.16/main/x86_64/...`).
pub fn apk_repositories(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // "@tag https://..." pins a repository to a tag.
        let url = line.split_whitespace().last().unwrap_or(line);
        let parts: Vec<&str> = url.trim_end_matches('/').rsplitn(3, '/').collect();
        if let [_repo, version, root] = parts.as_slice()
            && (version.starts_with('v') || *version == "edge")
        {
            push_uri(&mut out, root);
        }
    }
    out
}

/// Repository roots in yum/dnf `.repo` files (`baseurl=`), with `$releasever`
/// and `$basearch` filled in; lockfile names are then relative to them
/// (`Packages/b/bash-5.2.15-3.fc38.x86_64.rpm`). `metalink=` and
/// `mirrorlist=` name lists of mirrors, not a root, and are skipped.
pub fn yum_repos(text: &str, releasever: &str, basearch: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut enabled = true;
    let mut urls: Vec<String> = Vec::new();
    let flush = |enabled: bool, urls: &mut Vec<String>, out: &mut Vec<String>| {
        if enabled {
            for u in urls.iter() {
                push_uri(out, u);
            }
        }
        urls.clear();
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(enabled, &mut urls, &mut out);
            enabled = true;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "baseurl" => urls.extend(v.split_whitespace().map(|u| {
                u.replace("$releasever", releasever)
                    .replace("$basearch", basearch)
            })),
            "enabled" => enabled = v.trim() != "0",
            _ => {}
        }
    }
    flush(enabled, &mut urls, &mut out);
    out
}

/// Mirror roots in pacman's mirrorlist (`Server = <root>/$repo/os/$arch`):
/// lockfile names are then relative to the root (`core/os/x86_64/...`).
pub fn pacman_mirrorlist(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != "Server" {
            continue;
        }
        let v = v.trim();
        let root = v.split("/$repo").next().unwrap_or(v);
        push_uri(&mut out, root);
    }
    out
}

fn push_uri(out: &mut Vec<String>, uri: &str) {
    let u = uri.trim_end_matches('/').to_string();
    if (u.starts_with("http://") || u.starts_with("https://")) && !out.contains(&u) {
        out.push(u);
    }
}

/// `<root>/{{.Name}}` for each root.
pub fn templates(roots: &[String]) -> Vec<String> {
    roots.iter().map(|r| format!("{r}/{{{{.Name}}}}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_sources() {
        let text = "# comment\ndeb http://m.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] https://sec.example/debian-security/ bookworm-security main # trailing\n\
                    deb http://m.example/debian bookworm-updates main\n";
        assert_eq!(
            apt_one_line(text),
            [
                "http://m.example/debian",
                "https://sec.example/debian-security"
            ]
        );
    }

    #[test]
    fn deb822_sources() {
        let text = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb-src\nURIs: http://src.example/debian\n\n\
                    Types: deb deb-src\nURIs: http://sec.example/debian-security\nEnabled: yes\n\n\
                    Types: deb\nURIs: http://off.example/debian\nEnabled: no\n";
        assert_eq!(
            apt_deb822(text),
            [
                "http://m.example/debian",
                "http://sec.example/debian-security"
            ]
        );
    }

    #[test]
    fn sources_keep_their_suites() {
        let one =
            "deb [arch=amd64] http://m.example/debian bookworm main\ndeb http://n.example/d\n";
        assert_eq!(
            apt_one_line_sources(one),
            [
                AptSource {
                    uri: "http://m.example/debian".into(),
                    suites: vec!["bookworm".into()],
                },
                AptSource {
                    uri: "http://n.example/d".into(),
                    suites: vec![],
                },
            ]
        );
        let deb822 = "Types: deb\nURIs: http://a.example/d http://b.example/d/\nSuites: bookworm bookworm-updates\n";
        let got = apt_deb822_sources(deb822);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].uri, "http://b.example/d/");
        assert_eq!(got[1].suites, ["bookworm", "bookworm-updates"]);
    }

    #[test]
    fn apt_roots_reads_files_in_the_given_order_and_filters_by_suite() {
        let files = vec![
            (
                "sources.list".to_string(),
                "deb http://sec.example/debian-security bookworm-security main\n".to_string(),
            ),
            (
                "sources.list.d/debian.sources".to_string(),
                "Types: deb\nURIs: http://m.example/debian/\nSuites: bookworm bookworm-updates\n\n\
                 Types: deb\nURIs: http://t.example/debian\nSuites: trixie\n"
                    .to_string(),
            ),
            (
                "sources.list.d/extra.list".to_string(),
                "deb http://m.example/debian bookworm main\ndeb http://x.example/d bookworm main\n"
                    .to_string(),
            ),
            (
                "sources.list.d/notes.txt".to_string(),
                "deb http://ignored.example/d bookworm main\n".to_string(),
            ),
        ];
        assert_eq!(
            apt_roots(&files, Some("bookworm")),
            ["http://m.example/debian", "http://x.example/d"]
        );
        assert_eq!(
            apt_roots(&files, None),
            [
                "http://sec.example/debian-security",
                "http://m.example/debian",
                "http://t.example/debian",
                "http://x.example/d",
            ]
        );
        assert!(apt_roots(&files, Some("sid")).is_empty());
    }

    #[test]
    fn yum_repo_files() {
        let text = "[fedora]\nname=Fedora $releasever\nbaseurl=http://dl.example/fedora/releases/$releasever/Everything/$basearch/os/\nenabled=1\n\
                    [updates]\nmetalink=https://mm.example/metalink?repo=updates\n\
                    [off]\nbaseurl=http://off.example/x\nenabled=0\n";
        assert_eq!(
            yum_repos(text, "39", "x86_64"),
            ["http://dl.example/fedora/releases/39/Everything/x86_64/os"]
        );
    }

    #[test]
    fn pacman_mirrors() {
        let text = "## mirrors\n#Server = http://commented.example/$repo/os/$arch\nServer = https://a.example/archlinux/$repo/os/$arch\nServer=http://b.example/arch/$repo/os/$arch\n";
        assert_eq!(
            pacman_mirrorlist(text),
            ["https://a.example/archlinux", "http://b.example/arch"]
        );
    }

    #[test]
    fn alpine_repositories() {
        let text = "https://a.example/alpine/v3.19/main\nhttps://a.example/alpine/v3.19/community\n@edge https://b.example/alpine/edge/testing\n# x\n";
        assert_eq!(
            apk_repositories(text),
            ["https://a.example/alpine", "https://b.example/alpine"]
        );
        assert_eq!(templates(&["http://r".into()]), ["http://r/{{.Name}}"]);
    }
}
