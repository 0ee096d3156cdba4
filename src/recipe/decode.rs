//! Strict decoding of the YAML tree into the model: an unknown key, a value
//! of the wrong kind or a malformed template is an error naming the file,
//! line and column of the item. Pure: no I/O.

use super::yaml::{Node, Span};
use super::*;
use crate::recipe::template::Template;

pub(super) struct Decoder<'a> {
    pub(super) file: &'a str,
}

type Entries<'n> = &'n [(Node, Node)];

impl<'a> Decoder<'a> {
    fn err<T>(&self, span: Span, message: impl Into<String>) -> Result<T, RecipeError> {
        Err(RecipeError {
            file: self.file.to_string(),
            span,
            message: message.into(),
        })
    }

    fn map<'n>(&self, node: &'n Node, what: &str) -> Result<Entries<'n>, RecipeError> {
        match node {
            Node::Map { entries, .. } => Ok(entries),
            other => self.err(
                other.span(),
                format!("{what} must be a mapping, found {}", other.kind()),
            ),
        }
    }

    /// Returns the entries, rejecting keys not in `allowed`.
    fn keys<'n>(
        &self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Result<Entries<'n>, RecipeError> {
        let entries = self.map(node, what)?;
        for (k, _) in entries {
            let key = key_text(k);
            if !allowed.contains(&key) {
                return self.err(
                    k.span(),
                    format!(
                        "unknown key \"{key}\" in {what} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Ok(entries)
    }

    fn string(&self, node: &Node, what: &str) -> Result<Spanned<String>, RecipeError> {
        match node {
            Node::Scalar { text, span, .. } if !node.is_null() => {
                Ok(Spanned::new(text.clone(), *span))
            }
            other => self.err(
                other.span(),
                format!("{what} must be a string, found {}", other.kind()),
            ),
        }
    }

    fn non_empty(&self, node: &Node, what: &str) -> Result<Spanned<String>, RecipeError> {
        let s = self.string(node, what)?;
        if s.value.trim().is_empty() {
            return self.err(s.span, format!("{what} must not be empty"));
        }
        Ok(s)
    }

    fn string_list(&self, node: &Node, what: &str) -> Result<Vec<Spanned<String>>, RecipeError> {
        match node {
            Node::Seq { items, .. } => items
                .iter()
                .map(|i| self.string(i, &format!("an item of {what}")))
                .collect(),
            other => self.err(
                other.span(),
                format!("{what} must be a list of strings, found {}", other.kind()),
            ),
        }
    }

    /// A list, or a single string meaning `/bin/sh -c <string>`.
    fn command_list(&self, node: &Node, what: &str) -> Result<Vec<Spanned<String>>, RecipeError> {
        match node {
            Node::Scalar { .. } => {
                let s = self.non_empty(node, what)?;
                Ok(vec![
                    Spanned::new("/bin/sh".into(), s.span),
                    Spanned::new("-c".into(), s.span),
                    s,
                ])
            }
            _ => self.string_list(node, what),
        }
    }

    fn string_map(
        &self,
        node: &Node,
        what: &str,
    ) -> Result<Vec<(String, Spanned<String>)>, RecipeError> {
        let mut out = Vec::new();
        for (k, v) in self.map(node, what)? {
            let key = key_text(k);
            if key.is_empty() {
                return self.err(k.span(), format!("empty key in {what}"));
            }
            let value = match v {
                Node::Scalar { span, .. } if v.is_null() => Spanned::new(String::new(), *span),
                _ => self.string(v, &format!("{what}.{key}"))?,
            };
            out.push((key.to_string(), value));
        }
        Ok(out)
    }

    fn env_map(
        &self,
        node: &Node,
        what: &str,
    ) -> Result<Vec<(String, Spanned<String>)>, RecipeError> {
        let entries = self.string_map(node, what)?;
        for ((k, _), (kn, _)) in entries.iter().zip(self.map(node, what)?) {
            if k.contains('=') || k.chars().any(char::is_whitespace) {
                return self.err(
                    kn.span(),
                    format!("\"{k}\" is not a valid environment variable name"),
                );
            }
        }
        Ok(entries)
    }

    pub(super) fn recipe(&self, root: &Node) -> Result<Recipe, RecipeError> {
        if root.is_null() {
            return self.err(
                root.span(),
                "the recipe is empty; it needs at least \"base:\"",
            );
        }
        let entries = self.keys(
            root,
            "the recipe",
            &[
                "version",
                "args",
                "base",
                "allow-unpinned-base",
                "epoch",
                "packages",
                "steps",
                "image",
                "private-keys",
            ],
        )?;
        let mut recipe = Recipe {
            file: self.file.to_string(),
            text: String::new(),
            args: Vec::new(),
            base: Spanned::new(String::new(), root.span()),
            allow_unpinned_base: false,
            epoch: None,
            packages: None,
            steps: Vec::new(),
            image: ImageSettings::default(),
            private_keys: PrivateKeys::default(),
        };
        let mut have_base = false;
        for (k, v) in entries {
            match key_text(k) {
                "version" => {
                    let s = self.string(v, "version")?;
                    if s.value != "1" {
                        return self.err(
                            s.span,
                            format!(
                                "unsupported recipe version \"{}\" (this frontend reads version 1)",
                                s.value
                            ),
                        );
                    }
                }
                "args" => recipe.args = self.args(v)?,
                "base" => {
                    recipe.base = self.non_empty(v, "base")?;
                    have_base = true;
                }
                "allow-unpinned-base" => {
                    recipe.allow_unpinned_base = self.boolean(v, "allow-unpinned-base")?
                }
                "epoch" => recipe.epoch = Some(self.epoch(v)?),
                "packages" => {
                    recipe.packages = Some(Packages {
                        span: k.span(),
                        ..self.packages(v)?
                    })
                }
                "steps" => recipe.steps = self.steps(v)?,
                "image" => recipe.image = self.image(v)?,
                "private-keys" => recipe.private_keys = self.private_keys(v)?,
                _ => {}
            }
        }
        if !have_base {
            return self.err(
                root.span(),
                "missing required key \"base\" (the base image, pinned by digest)",
            );
        }
        Ok(recipe)
    }

    /// `private-keys:`: `remove:` and `keep:` lists of image paths; a path
    /// in both is an error.
    fn private_keys(&self, node: &Node) -> Result<PrivateKeys, RecipeError> {
        let mut out = PrivateKeys::default();
        for (k, v) in self.keys(node, "private-keys", &["remove", "keep"])? {
            let key = key_text(k);
            let what = format!("private-keys.{key}");
            let list = self.string_list(v, &what)?;
            for p in &list {
                let bad = !p.value.starts_with('/')
                    || p.value.len() < 2
                    || p.value
                        .split('/')
                        .skip(1)
                        .any(|c| c.is_empty() || c == "." || c == "..");
                if bad {
                    return self.err(
                        p.span,
                        format!(
                            "an item of {what} must be an absolute path in the image (\"*\" matches within one name), like /etc/myapp/tls.key, found \"{}\"",
                            p.value
                        ),
                    );
                }
            }
            match key {
                "remove" => out.remove = list,
                _ => out.keep = list,
            }
        }
        if let Some(p) = out
            .keep
            .iter()
            .find(|k| out.remove.iter().any(|r| r.value == k.value))
        {
            return self.err(
                p.span,
                format!(
                    "\"{}\" is in both private-keys.remove and private-keys.keep; say one",
                    p.value
                ),
            );
        }
        Ok(out)
    }

    /// A duration: whole seconds (`90`, `90s`) or minutes (`10m`), from one
    /// second to a day.
    fn duration(&self, node: &Node, what: &str) -> Result<Spanned<u64>, RecipeError> {
        let s = self.string(node, what)?;
        let text = s.value.trim();
        let (digits, unit) = match text.strip_suffix('m') {
            Some(d) => (d, 60),
            None => (text.strip_suffix('s').unwrap_or(text), 1),
        };
        match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)) {
            Some(n) if (1..=86_400).contains(&n) => Ok(Spanned::new(n, s.span)),
            _ => self.err(
                s.span,
                format!(
                    "{what} must be a duration from 1s to 24 hours, in seconds (90, 90s) or minutes (10m), found \"{}\"",
                    s.value
                ),
            ),
        }
    }

    /// `epoch:`: whole seconds since 1970, as SOURCE_DATE_EPOCH.
    fn epoch(&self, node: &Node) -> Result<Spanned<i64>, RecipeError> {
        let s = self.string(node, "epoch")?;
        match s.value.parse::<i64>() {
            Ok(n) if super::epoch_in_range(n) => Ok(Spanned::new(n, s.span)),
            _ => self.err(
                s.span,
                format!(
                    "epoch must be a whole number of seconds from 1970 to the end of 9999 (like SOURCE_DATE_EPOCH), found \"{}\"",
                    s.value
                ),
            ),
        }
    }

    fn boolean(&self, node: &Node, what: &str) -> Result<bool, RecipeError> {
        match node {
            Node::Scalar {
                text, plain: true, ..
            } if text == "true" => Ok(true),
            Node::Scalar {
                text, plain: true, ..
            } if text == "false" => Ok(false),
            other => self.err(other.span(), format!("{what} must be true or false")),
        }
    }

    fn args(&self, node: &Node) -> Result<Vec<ArgDecl>, RecipeError> {
        let mut out = Vec::new();
        for (k, v) in self.map(node, "args")? {
            let name = key_text(k);
            if !args::is_arg_name(name) {
                return self.err(k.span(), format!("\"{name}\" is not a valid arg name (letters, digits and _, not starting with a digit)"));
            }
            if PREDEFINED_ARGS.contains(&name) {
                return self.err(
                    k.span(),
                    format!("\"{name}\" is set by BuildKit and cannot be declared"),
                );
            }
            let default = if v.is_null() {
                String::new()
            } else {
                self.string(v, &format!("args.{name}"))?.value
            };
            out.push(ArgDecl {
                name: name.to_string(),
                default,
                span: k.span(),
            });
        }
        Ok(out)
    }

    fn packages(&self, node: &Node) -> Result<Packages, RecipeError> {
        let entries = self.keys(
            node,
            "packages",
            &[
                "sums",
                "providers",
                "installer",
                "signatures",
                "install",
                "allow-stale-lock",
                "fetch-timeout",
            ],
        )?;
        let mut fetch_timeout = None;
        let mut install = Vec::new();
        let mut allow_stale_lock = false;
        let mut sums = None;
        let mut providers = Vec::new();
        let mut installer = None;
        let mut signatures = false;
        for (k, v) in entries {
            match key_text(k) {
                "sums" => {
                    let list = match v {
                        Node::Seq { .. } => self.string_list(v, "packages.sums")?,
                        _ => vec![self.non_empty(v, "packages.sums")?],
                    };
                    if list.is_empty() {
                        return self.err(v.span(), "packages.sums lists no lockfile");
                    }
                    sums = Some(list);
                }
                "installer" => {
                    let s = self.non_empty(v, "packages.installer")?;
                    match crate::distro::install::Installer::from_name(&s.value) {
                        Some(i) => installer = Some(Spanned::new(i, s.span)),
                        None => {
                            return self.err(
                                s.span,
                                format!("unknown installer \"{}\" (expected one of: dpkg, rpm, apk, pacman)", s.value),
                            );
                        }
                    }
                }
                "signatures" => signatures = self.boolean(v, "packages.signatures")?,
                "install" => {
                    install = self.string_list(v, "packages.install")?;
                    for i in &install {
                        self.package_name(i)?;
                    }
                }
                "fetch-timeout" => {
                    fetch_timeout = Some(self.duration(v, "packages.fetch-timeout")?)
                }
                "allow-stale-lock" => {
                    allow_stale_lock = self.boolean(v, "packages.allow-stale-lock")?
                }
                "providers" => {
                    providers = self.string_list(v, "packages.providers")?;
                    for p in &providers {
                        self.template(p)?;
                    }
                }
                _ => {}
            }
        }
        let Some(sums) = sums else {
            return self.err(
                node.span(),
                "packages needs \"sums\" (the SHA256SUMS file in the build context)",
            );
        };
        // No providers: the frontend derives them from the base image's own
        // package sources.
        Ok(Packages {
            span: node.span(),
            sums,
            providers,
            installer,
            signatures,
            install,
            allow_stale_lock,
            fetch_timeout,
        })
    }

    /// A name for `packages.install`: it goes to apt's argv, so no option
    /// (`-...`) and no whitespace.
    pub(super) fn package_name(&self, i: &Spanned<String>) -> Result<(), RecipeError> {
        if i.value.trim().is_empty()
            || i.value.starts_with('-')
            || i.value.contains(char::is_whitespace)
        {
            return self.err(i.span, format!("\"{}\" is not a package name", i.value));
        }
        Ok(())
    }

    pub(super) fn template(&self, s: &Spanned<String>) -> Result<Template, RecipeError> {
        Template::parse(&s.value).or_else(|e| self.err(shift(s.span, e.offset), e.message))
    }

    fn steps(&self, node: &Node) -> Result<Vec<Spanned<Step>>, RecipeError> {
        let Node::Seq { items, .. } = node else {
            return self.err(
                node.span(),
                format!("steps must be a list, found {}", node.kind()),
            );
        };
        items.iter().map(|item| self.step(item)).collect()
    }

    fn step(&self, node: &Node) -> Result<Spanned<Step>, RecipeError> {
        const KINDS: &[&str] = &["run", "copy", "env", "workdir", "user"];
        let entries = self.map(node, "a step")?;
        let [(k, v)] = entries else {
            let (span, what) = match entries.get(1) {
                Some((second, _)) => (
                    second.span(),
                    format!("\"{}\" is a second key", key_text(second)),
                ),
                None => (node.span(), "it has none".to_string()),
            };
            return self.err(span, format!("a step has exactly one key ({what}); start each step with \"- \" and one of: {}", KINDS.join(", ")));
        };
        let step = match key_text(k) {
            "run" => match v {
                Node::Scalar { .. } => Step::Run(Command::Shell(self.non_empty(v, "run")?)),
                _ => {
                    let argv = self.string_list(v, "run")?;
                    if argv.is_empty() {
                        return self.err(v.span(), "run needs a command");
                    }
                    Step::Run(Command::Exec(argv))
                }
            },
            "copy" => {
                let entries = self.keys(v, "copy", &["src", "dest", "owner", "mode"])?;
                let (mut src, mut dest, mut owner, mut mode) = (None, None, None, None);
                for (ck, cv) in entries {
                    match key_text(ck) {
                        "src" => src = Some(self.non_empty(cv, "copy.src")?),
                        "dest" => dest = Some(self.non_empty(cv, "copy.dest")?),
                        "owner" => owner = Some(self.non_empty(cv, "copy.owner")?),
                        "mode" => {
                            let s = self.string(cv, "copy.mode")?;
                            match u32::from_str_radix(&s.value, 8) {
                                Ok(m) if m <= 0o7777 => mode = Some(Spanned::new(m, s.span)),
                                _ => return self.err(s.span, format!("copy.mode must be octal permission bits like \"0644\", found \"{}\"", s.value)),
                            }
                        }
                        _ => {}
                    }
                }
                let (Some(src), Some(dest)) = (src, dest) else {
                    return self.err(v.span(), "copy needs \"src\" (a path in the build context) and \"dest\" (a path in the image)");
                };
                Step::Copy {
                    src,
                    dest,
                    owner,
                    mode,
                }
            }
            "env" => Step::Env(self.env_map(v, "env")?),
            "workdir" => Step::Workdir(self.non_empty(v, "workdir")?),
            "user" => Step::User(self.non_empty(v, "user")?),
            other => {
                return self.err(
                    k.span(),
                    format!(
                        "unknown step kind \"{other}\" (expected one of: {})",
                        KINDS.join(", ")
                    ),
                );
            }
        };
        Ok(Spanned::new(step, k.span()))
    }

    fn image(&self, node: &Node) -> Result<ImageSettings, RecipeError> {
        let entries = self.keys(
            node,
            "image",
            &[
                "entrypoint",
                "cmd",
                "env",
                "workdir",
                "user",
                "labels",
                "expose",
                "volumes",
                "stop-signal",
                "layers",
            ],
        )?;
        let mut image = ImageSettings::default();
        for (k, v) in entries {
            match key_text(k) {
                "entrypoint" => image.entrypoint = Some(self.command_list(v, "image.entrypoint")?),
                "cmd" => image.cmd = Some(self.command_list(v, "image.cmd")?),
                "env" => image.env = self.env_map(v, "image.env")?,
                "workdir" => image.workdir = Some(self.non_empty(v, "image.workdir")?),
                "user" => image.user = Some(self.non_empty(v, "image.user")?),
                "labels" => image.labels = self.string_map(v, "image.labels")?,
                "expose" => {
                    image.expose = self.string_list(v, "image.expose")?;
                    for p in &image.expose {
                        if let Err(m) = check_port(&p.value) {
                            return self.err(p.span, m);
                        }
                    }
                }
                "volumes" => image.volumes = self.string_list(v, "image.volumes")?,
                "stop-signal" => image.stop_signal = Some(self.non_empty(v, "image.stop-signal")?),
                "layers" => {
                    let s = self.string(v, "image.layers")?;
                    image.layers = match s.value.as_str() {
                        "squash" => Layers::Squash,
                        "base" => Layers::Base,
                        other => {
                            return self.err(
                                s.span,
                                format!("image.layers: unknown value \"{other}\" (expected squash or base)"),
                            );
                        }
                    };
                }
                _ => {}
            }
        }
        Ok(image)
    }
}

fn key_text(node: &Node) -> &str {
    match node {
        Node::Scalar { text, .. } => text,
        _ => "",
    }
}

/// Moves a span right by a byte offset within a one-line scalar.
pub(super) fn shift(span: Span, offset: usize) -> Span {
    Span {
        line: span.line,
        col: span.col + offset,
    }
}

/// `80`, `80/tcp`, `53/udp`, `9/sctp`.
fn check_port(text: &str) -> Result<(), String> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    match (port.parse::<u16>(), proto) {
        (Ok(p), "tcp" | "udp" | "sctp") if p > 0 => Ok(()),
        _ => Err(format!(
            "\"{text}\" is not a port like \"8080\" or \"53/udp\""
        )),
    }
}
