//! The recipe: parsing `repro.yaml` into a validated model, and expanding build args in it.
//!
//! Decoding is strict: an unknown key, a value of the wrong kind or a malformed
//! template is an error that names the file, line and column of the item.
//! Build args are expanded afterwards by [`Recipe::expand`], which keeps the
//! spans so that an undeclared `${NAME}` can be pointed at too.

pub mod args;
pub mod reference;
pub mod template;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;

use crate::recipe::template::Template;
use yaml::{Node, Span};

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// A recipe error: `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", span.line, span.col)]
pub struct RecipeError {
    pub file: String,
    pub span: Span,
    pub message: String,
}

/// A declared build arg and its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: String,
    pub span: Span,
}

/// The `packages:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packages {
    /// Where `packages:` is in the recipe.
    pub span: Span,
    /// Paths of the SHA256SUMS files in the build context (merged).
    pub sums: Vec<Spanned<String>>,
    /// URL templates, tried in order.
    pub providers: Vec<Spanned<String>>,
    /// The package tool, when not the one the base image's os-release implies.
    pub installer: Option<Spanned<crate::distro::install::Installer>>,
    /// Fetch the lockfile's `.sig` files beside their packages, so the tool
    /// verifies them (pacman).
    pub signatures: bool,
    /// Package names (with version constraints the tool understands) the
    /// `lock` target resolves into the lockfile.
    pub install: Vec<Spanned<String>>,
    /// Build even when the lockfile was made for another base or package list.
    pub allow_stale_lock: bool,
}

/// How a `run` step gives its command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A string run by `/bin/sh -c`; build args reach it as environment variables.
    Shell(Spanned<String>),
    /// An argv list, run without a shell; `${NAME}` is expanded in each item.
    Exec(Vec<Spanned<String>>),
}

/// One build step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Run(Command),
    Copy {
        src: Spanned<String>,
        dest: Spanned<String>,
        owner: Option<Spanned<String>>,
        mode: Option<Spanned<u32>>,
    },
    Env(Vec<(String, Spanned<String>)>),
    Workdir(Spanned<String>),
    User(Spanned<String>),
}

/// The `image:` section: settings of the output image's config. `None` keeps
/// what the base image has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSettings {
    pub entrypoint: Option<Vec<Spanned<String>>>,
    pub cmd: Option<Vec<Spanned<String>>>,
    pub env: Vec<(String, Spanned<String>)>,
    pub workdir: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub labels: Vec<(String, Spanned<String>)>,
    pub expose: Vec<Spanned<String>>,
    pub volumes: Vec<Spanned<String>>,
    pub stop_signal: Option<Spanned<String>>,
}

/// A parsed recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// The file name errors are reported against.
    pub file: String,
    /// The recipe as written, for the source map BuildKit shows errors with.
    pub text: String,
    pub args: Vec<ArgDecl>,
    pub base: Spanned<String>,
    /// Lets `base` be a tag without a digest (experiments only; warned about).
    pub allow_unpinned_base: bool,
    pub epoch: Option<Spanned<i64>>,
    pub packages: Option<Packages>,
    pub steps: Vec<Spanned<Step>>,
    pub image: ImageSettings,
}

/// Build args every recipe may use without declaring them: BuildKit and the
/// Docker CLI set these on their own.
pub const PREDEFINED_ARGS: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    // Provider templates tried before the recipe's (see convert.rs).
    "REPRO_PROVIDERS",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "BUILDKIT_SYNTAX",
    "BUILDKIT_INLINE_CACHE",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_CACHE_MOUNT_NS",
    "BUILDKIT_CONTEXT_KEEP_GIT_DIR",
    "BUILDKIT_SANDBOX_HOSTNAME",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

struct Decoder<'a> {
    file: &'a str,
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

    fn recipe(&self, root: &Node) -> Result<Recipe, RecipeError> {
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
                "epoch" => {
                    let s = self.string(v, "epoch")?;
                    match s.value.parse::<i64>() {
                        Ok(n) if n >= 0 => recipe.epoch = Some(Spanned::new(n, s.span)),
                        _ => {
                            return self.err(s.span, format!("epoch must be a whole number of seconds since 1970 (like SOURCE_DATE_EPOCH), found \"{}\"", s.value))
                        }
                    }
                }
                "packages" => {
                    recipe.packages = Some(Packages {
                        span: k.span(),
                        ..self.packages(v)?
                    })
                }
                "steps" => recipe.steps = self.steps(v)?,
                "image" => recipe.image = self.image(v)?,
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
            ],
        )?;
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
        })
    }

    /// A name for `packages.install`: it goes to apt's argv, so no option
    /// (`-...`) and no whitespace.
    fn package_name(&self, i: &Spanned<String>) -> Result<(), RecipeError> {
        if i.value.trim().is_empty()
            || i.value.starts_with('-')
            || i.value.contains(char::is_whitespace)
        {
            return self.err(i.span, format!("\"{}\" is not a package name", i.value));
        }
        Ok(())
    }

    fn template(&self, s: &Spanned<String>) -> Result<Template, RecipeError> {
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
fn shift(span: Span, offset: usize) -> Span {
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

/// Parses a recipe. `file` names it in errors (the `filename` opt).
pub fn parse(file: &str, text: &str) -> Result<Recipe, RecipeError> {
    let root = yaml::parse(text).map_err(|e| RecipeError {
        file: file.to_string(),
        span: e.span,
        message: format!("invalid YAML: {}", e.message),
    })?;
    let mut recipe = Decoder { file }.recipe(&root)?;
    recipe.text = text.to_string();
    Ok(recipe)
}

/// The lines (1-based, inclusive) of the item that starts at `span`: its own
/// line and every following line indented deeper than the item's column,
/// without trailing blank or comment lines. Block-style YAML puts an item's
/// continuation (a `run: |` script, a mapping's keys) there.
pub fn item_lines(text: &str, span: Span) -> (usize, usize) {
    let start = span.line.max(1);
    let mut end = start;
    for (i, line) in text.lines().enumerate().skip(start) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() < span.col {
            break;
        }
        end = i + 1;
    }
    (start, end)
}

/// The values of all args a recipe can see, after build args are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgValues {
    pub values: BTreeMap<String, String>,
}

impl ArgValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl Recipe {
    /// Works out every arg's value: declared defaults, overridden by
    /// `build_args`, plus the predefined ones in `predefined`.
    /// A build arg the recipe does not declare and BuildKit does not set is an error.
    pub fn arg_values(
        &self,
        build_args: &BTreeMap<String, String>,
        predefined: &BTreeMap<String, String>,
    ) -> Result<ArgValues, RecipeError> {
        let mut values = predefined.clone();
        for decl in &self.args {
            // Defaults may use args declared before them and the predefined ones.
            let lookup = |n: &str| values.get(n).cloned();
            let default = args::expand(&decl.default, &lookup).map_err(|e| RecipeError {
                file: self.file.clone(),
                span: decl.span,
                message: format!("in the default of {}: {}", decl.name, e.message),
            })?;
            let value = build_args.get(&decl.name).cloned().unwrap_or(default);
            values.insert(decl.name.clone(), value);
        }
        for (name, value) in build_args {
            if PREDEFINED_ARGS.contains(&name.as_str()) {
                values.insert(name.clone(), value.clone());
            } else if !self.args.iter().any(|d| &d.name == name) {
                let declared: Vec<&str> = self.args.iter().map(|d| d.name.as_str()).collect();
                return Err(RecipeError {
                    file: self.file.clone(),
                    span: Span { line: 1, col: 1 },
                    message: format!(
                        "build arg \"{name}\" is not declared in the recipe (declared: {})",
                        if declared.is_empty() {
                            "none".to_string()
                        } else {
                            declared.join(", ")
                        }
                    ),
                });
            }
        }
        Ok(ArgValues { values })
    }

    /// Expands `${NAME}` everywhere args are allowed, except in shell-form
    /// `run` strings, which see the args as environment variables instead.
    pub fn expand(&self, args: &ArgValues) -> Result<Recipe, RecipeError> {
        let lookup = |n: &str| args.get(n).map(str::to_string);
        let file = self.file.clone();
        let ex = |s: &Spanned<String>| -> Result<Spanned<String>, RecipeError> {
            args::expand(&s.value, &lookup)
                .map(|v| Spanned::new(v, s.span))
                .map_err(|e| RecipeError {
                    file: file.clone(),
                    span: shift(s.span, e.offset),
                    message: e.message,
                })
        };
        let ex_list = |l: &[Spanned<String>]| l.iter().map(&ex).collect::<Result<Vec<_>, _>>();
        let ex_map = |m: &[(String, Spanned<String>)]| {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), ex(v)?)))
                .collect::<Result<Vec<_>, RecipeError>>()
        };
        let mut out = self.clone();
        out.base = ex(&self.base)?;
        if let Some(p) = &self.packages {
            let decoder = Decoder { file: &self.file };
            let providers = ex_list(&p.providers)?;
            for pr in &providers {
                decoder.template(pr)?;
            }
            // Checked again once build args are in: `${PKG}` could be `-o...`.
            let install = ex_list(&p.install)?;
            for i in &install {
                decoder.package_name(i)?;
            }
            out.packages = Some(Packages {
                span: p.span,
                sums: ex_list(&p.sums)?,
                providers,
                installer: p.installer.clone(),
                signatures: p.signatures,
                install,
                allow_stale_lock: p.allow_stale_lock,
            });
        }
        out.steps = self
            .steps
            .iter()
            .map(|s| {
                let step = match &s.value {
                    Step::Run(Command::Shell(c)) => Step::Run(Command::Shell(c.clone())),
                    Step::Run(Command::Exec(argv)) => Step::Run(Command::Exec(ex_list(argv)?)),
                    Step::Copy {
                        src,
                        dest,
                        owner,
                        mode,
                    } => Step::Copy {
                        src: ex(src)?,
                        dest: ex(dest)?,
                        owner: owner.as_ref().map(&ex).transpose()?,
                        mode: mode.clone(),
                    },
                    Step::Env(m) => Step::Env(ex_map(m)?),
                    Step::Workdir(w) => Step::Workdir(ex(w)?),
                    Step::User(u) => Step::User(ex(u)?),
                };
                Ok(Spanned::new(step, s.span))
            })
            .collect::<Result<_, RecipeError>>()?;
        let img = &self.image;
        out.image = ImageSettings {
            entrypoint: img.entrypoint.as_deref().map(&ex_list).transpose()?,
            cmd: img.cmd.as_deref().map(&ex_list).transpose()?,
            env: ex_map(&img.env)?,
            workdir: img.workdir.as_ref().map(&ex).transpose()?,
            user: img.user.as_ref().map(&ex).transpose()?,
            labels: ex_map(&img.labels)?,
            expose: ex_list(&img.expose)?,
            volumes: ex_list(&img.volumes)?,
            stop_signal: img.stop_signal.as_ref().map(&ex).transpose()?,
        };
        Ok(out)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(&s.value),
            Command::Exec(argv) => {
                let words: Vec<&str> = argv.iter().map(|a| a.value.as_str()).collect();
                write!(f, "{}", words.join(" "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# syntax=repro-frontend:v0
version: 1
args:
  BASE: registry.example/debian@sha256:0000000000000000000000000000000000000000000000000000000000000000
  MIRROR: http://deb.example/debian
base: ${BASE}
epoch: 1700000000
packages:
  sums: SHA256SUMS-${TARGETARCH}
  providers:
    - ${MIRROR}/{{.Name}}
steps:
  - run: hello > /greeting
  - run: [gcc, -o, /usr/local/bin/x, /src/x.c]
  - copy: {src: x.c, dest: /src/x.c, owner: "0:0", mode: "0644"}
  - env: {LANG: C.UTF-8}
  - workdir: /src
  - user: nobody
image:
  entrypoint: [/usr/bin/hello]
  cmd: []
  env: {A: b}
  labels: {org.example.k: v}
  expose: ["8080", 53/udp]
  volumes: [/data]
  stop-signal: SIGTERM
"#;

    #[test]
    fn parses_every_key() {
        let r = parse("repro.yaml", GOOD).unwrap();
        assert_eq!(r.args.len(), 2);
        assert_eq!(r.base.value, "${BASE}");
        assert_eq!(r.base.span, Span { line: 6, col: 7 });
        assert_eq!(r.epoch.as_ref().unwrap().value, 1_700_000_000);
        assert_eq!(r.steps.len(), 6);
        assert!(
            matches!(&r.steps[0].value, Step::Run(Command::Shell(s)) if s.value == "hello > /greeting")
        );
        assert!(matches!(&r.steps[2].value, Step::Copy { mode: Some(m), .. } if m.value == 0o644));
        assert_eq!(r.image.cmd.as_ref().unwrap().len(), 0);
        assert_eq!(r.image.expose.len(), 2);
    }

    fn err(text: &str) -> RecipeError {
        parse("repro.yaml", text).unwrap_err()
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let e = err("base: x@sha256:00\nbsae: y\n");
        assert_eq!((e.span.line, e.span.col), (2, 1));
        assert!(
            e.to_string()
                .starts_with("repro.yaml:2:1: unknown key \"bsae\""),
            "{e}"
        );
        let e = err("base: x\nsteps:\n  - rnu: ls\n");
        assert_eq!(
            e.to_string(),
            "repro.yaml:3:5: unknown step kind \"rnu\" (expected one of: run, copy, env, workdir, user)"
        );
    }

    #[test]
    fn wrong_kinds_and_missing_keys_are_errors() {
        assert!(
            err("steps: []\n")
                .message
                .contains("missing required key \"base\"")
        );
        assert!(err("base: [a]\n").message.contains("base must be a string"));
        assert!(
            err("base: x\nepoch: yesterday\n")
                .message
                .contains("epoch must be")
        );
        assert!(
            err("base: x\npackages: {providers: []}\n")
                .message
                .contains("sums")
        );
        assert!(
            err("base: x\nimage: {expose: [\"0\"]}\n")
                .message
                .contains("not a port")
        );
        assert!(
            err("base: x\nsteps:\n  - copy: {src: a}\n")
                .message
                .contains("dest")
        );
        assert!(
            err("base: x\nsteps:\n  - copy: {src: a, dest: b, mode: rw}\n")
                .message
                .contains("octal")
        );
        assert!(
            err("base: x\nargs: {TARGETARCH: x}\n")
                .message
                .contains("set by BuildKit")
        );
        assert!(err("").message.contains("empty"));
        assert!(err("base: x\nversion: 2\n").message.contains("version"));
    }

    #[test]
    fn bad_template_points_into_the_string() {
        let e = err("base: x\npackages:\n  sums: S\n  providers:\n    - http://m/{{.Nmae}}\n");
        assert_eq!((e.span.line, e.span.col), (5, 16));
        assert!(e.message.contains(".Nmae"));
    }

    #[test]
    fn args_resolve_with_build_args_and_reject_undeclared_ones() {
        let r = parse("repro.yaml", GOOD).unwrap();
        let mut pre = BTreeMap::new();
        pre.insert("TARGETARCH".to_string(), "amd64".to_string());
        let mut build = BTreeMap::new();
        build.insert("MIRROR".to_string(), "http://127.0.0.1:1/d".to_string());
        build.insert("SOURCE_DATE_EPOCH".to_string(), "5".to_string());
        let vals = r.arg_values(&build, &pre).unwrap();
        let x = r.expand(&vals).unwrap();
        assert!(x.base.value.starts_with("registry.example/debian@sha256:"));
        let p = x.packages.unwrap();
        assert_eq!(p.sums[0].value, "SHA256SUMS-amd64");
        assert_eq!(p.providers[0].value, "http://127.0.0.1:1/d/{{.Name}}");
        // Shell strings are left for the shell.
        assert!(
            matches!(&x.steps[0].value, Step::Run(Command::Shell(s)) if s.value == "hello > /greeting")
        );

        build.insert("NOPE".to_string(), "1".to_string());
        let e = r.arg_values(&build, &pre).unwrap_err();
        assert!(e.message.contains("\"NOPE\" is not declared"), "{e}");
    }

    #[test]
    fn a_package_name_from_a_build_arg_is_checked_after_expansion() {
        let text = "args:\n  PKG: hello\nbase: img@sha256:1\npackages:\n  install: [\"${PKG}\"]\n  sums: SHA256SUMS\n";
        let r = parse("repro.yaml", text).unwrap();
        let mut build = BTreeMap::new();
        build.insert(
            "PKG".to_string(),
            "-oDebug::pkgProblemResolver=1".to_string(),
        );
        let vals = r.arg_values(&build, &BTreeMap::new()).unwrap();
        let e = r.expand(&vals).unwrap_err();
        assert_eq!((e.span.line, e.span.col), (5, 13));
        assert!(
            e.message
                .contains("\"-oDebug::pkgProblemResolver=1\" is not a package name"),
            "{e}"
        );
    }

    #[test]
    fn undeclared_reference_points_at_its_column() {
        let r = parse("repro.yaml", "base: img@${NOPE}\n").unwrap();
        let e = r.expand(&ArgValues::default()).unwrap_err();
        assert_eq!((e.span.line, e.span.col), (1, 11));
        assert!(e.message.contains("undeclared arg \"NOPE\""));
    }

    #[test]
    fn an_item_spans_its_deeper_indented_lines() {
        let text = "steps:\n  - run: |\n      a\n\n      b\n  # c\n  - copy:\n      src: x\n      dest: /x\nimage: {}\n";
        let r = parse(
            "repro.yaml",
            &format!("base: a@sha256:{}\n{text}", "1".repeat(64)),
        )
        .unwrap();
        let spans: Vec<(usize, usize)> = r
            .steps
            .iter()
            .map(|s| item_lines(&r.text, s.span))
            .collect();
        assert_eq!(spans, [(3, 6), (8, 10)]);
        assert_eq!(item_lines(&r.text, r.base.span), (1, 1));
    }
}
