//! The recipe model: what a checked recipe holds, each value with the place
//! it was written. Pure: types only.

use std::fmt;

use super::yaml::Span;

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
    /// How long one try at one provider for one blob may take, in seconds
    /// (`packages.fetch-timeout`; the fetch step's 10 minutes by default).
    pub fetch_timeout: Option<Spanned<u64>>,
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
    /// How the image's layers are made (`image.layers`).
    pub layers: Layers,
}

/// `image.layers`: one squashed layer (the default), or the base image's
/// layers as published plus one layer of what the build changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layers {
    #[default]
    Squash,
    Base,
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
    /// Checked by [`epoch_in_range`].
    pub epoch: Option<Spanned<i64>>,
    pub packages: Option<Packages>,
    pub steps: Vec<Spanned<Step>>,
    pub image: ImageSettings,
    /// What to do with private keys the build makes (`private-keys:`).
    pub private_keys: PrivateKeys,
}

/// `private-keys:`: image paths (absolute, `*` within one name) of private
/// keys the build makes that the frontend does not remove on its own, or
/// that should ship on purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivateKeys {
    /// Left out of the image (a container makes its own at start).
    pub remove: Vec<Spanned<String>>,
    /// Shipped as built: every container shares them. Reported loudly.
    pub keep: Vec<Spanned<String>>,
}

/// Build args every recipe may use without declaring them: BuildKit and the
/// Docker CLI set these on their own.
pub const PREDEFINED_ARGS: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    // Provider templates tried before the recipe's (see convert.rs).
    "REPRO_PROVIDERS",
    // The published image the verify target compares with (convert/verify.rs).
    "REPRO_VERIFY",
    // What the verify target does with a difference: fail (default) or report.
    "REPRO_VERIFY_ON_DIFF",
    // The verify statement's timeVerified, pinned (RFC 3339).
    "REPRO_VERIFY_TIME",
    // Attach the deterministic SLSA provenance (convert/provenance.rs).
    "REPRO_PROVENANCE",
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

/// The last second of the year 9999: the largest epoch taken. An RFC 3339
/// time (the image's `created`) has four digits of year.
pub const MAX_EPOCH: i64 = 253_402_300_799;

/// Whether `n` can be a build's epoch: from 1970 to the end of 9999.
pub fn epoch_in_range(n: i64) -> bool {
    (0..=MAX_EPOCH).contains(&n)
}
