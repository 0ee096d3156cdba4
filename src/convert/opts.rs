//! What the conversion takes besides the recipe and the lockfile (`Opts`),
//! what it gives back (`Converted`, `ConvertError`), and the paths its execs
//! agree on. Pure: types and small helpers, no I/O.

use crate::distro::install::Installer;
use crate::llb::{LocalOpts, Network, ResolveMode, State};
use crate::recipe::{ArgValues, Spanned};

use super::image::BaseConfig;
use super::platform::Platform;

/// Where the packages are mounted during the install step. Under /tmp, which
/// normalization empties, so the mount point leaves no trace.
pub const PACKAGES_DIR: &str = "/tmp/repro-packages";
/// Where the frontend image is mounted in the install step (under /tmp too).
pub const TOOL_DIR: &str = "/tmp/repro-tool";
/// Where the target rootfs is mounted in the normalize exec.
pub const TARGET_DIR: &str = "/target";
/// Where the base image is mounted (read-only) in the normalize exec.
pub const BASE_DIR: &str = "/base";
/// Where the normalize exec writes the squashed rootfs (a scratch mount).
pub const OUT_DIR: &str = "/out";
/// Path of our binary inside the frontend image.
pub const FRONTEND_BINARY: &str = "/repro-frontend";

/// A frontend image the engine holds under a local tag only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFrontend {
    /// `sha256:<hex>` of its config: Docker's image ID.
    pub image_id: String,
    /// The hex sha256 of the gateway's own binary. Every helper exec gets it
    /// in [`FRONTEND_SHA256_ENV`] and stops unless its binary hashes the
    /// same, so a tag moved during the build cannot swap the code that
    /// checks the packages.
    pub binary_sha256: String,
}

/// The variable a helper exec reads its expected binary's sha256 from.
pub const FRONTEND_SHA256_ENV: &str = "REPRO_FRONTEND_SHA256";

impl Opts {
    /// The frontend image as the SBOM and the verify statement record it:
    /// by digest, or by its tag and image ID on a classic image store.
    pub fn frontend_record(&self) -> String {
        match &self.frontend_local {
            Some(local) => format!("{}@{}", self.frontend_image, local.image_id),
            None => self.frontend_image.clone(),
        }
    }
}

/// Everything the conversion needs besides the recipe and the lockfile.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The base reference used in the LLB (`name@sha256:...`).
    pub base_ref: String,
    pub base: BaseConfig,
    pub epoch: i64,
    pub args: ArgValues,
    pub platform: Platform,
    /// The frontend's own image as the helper execs run it: pinned by digest
    /// where the engine gave one (see `frontend::gateway::pin`).
    pub frontend_image: String,
    /// Set when the engine knows that image only by a local tag (Docker's
    /// classic image store gives no digest): what the records name and what
    /// each helper exec checks it runs.
    pub frontend_local: Option<LocalFrontend>,
    pub resolve_mode: ResolveMode,
    /// The build context local and how to reach it.
    pub context_name: String,
    pub context: LocalOpts,
    /// A note shown in the progress name of the base image (e.g. an unpinned warning).
    pub base_note: Option<String>,
    /// Provider templates tried before the recipe's (`REPRO_PROVIDERS`).
    pub extra_providers: Vec<String>,
    /// Templates from the base image's package sources, used when the recipe
    /// lists no providers.
    pub default_providers: Vec<String>,
    /// The network of fetch steps and `run` steps (`docker build --network`).
    pub network: Network,
    /// The package tool the base image's os-release implies, if known; the
    /// recipe's `packages.installer` wins, and dpkg is the default.
    pub installer: Option<Installer>,
    /// The worker's snapshotter, as its `org.mobyproject.buildkit.worker.
    /// snapshotter` label names it. Docker's classic image store (Docker
    /// 20.10's moby worker) names none.
    pub snapshotter: Option<String>,
    /// The engine has the `exec.mount.cache.content` cap: the helper execs'
    /// read-only mounts of whole trees (the built root, the stages, the
    /// base) are marked not to be content-hashed for the cache key, which
    /// BuildKit would otherwise do for every file before the exec starts
    /// (0.7 s for hello's root, 2.5 s for gcc's).
    pub skip_content_hash: bool,
}

/// The snapshotter whose record of a mount's changes is deterministic:
/// containerd's overlayfs, whose differ BuildKit runs on the mount's upper
/// directory (whiteouts at time 0). Docker's graphdriver (`overlay2`) writes
/// whiteouts with the time they were made, and BuildKit's walking differ
/// (other snapshotters) with the export's time.
pub const DELTA_SNAPSHOTTER: &str = "overlayfs";

/// The result of the conversion.
#[derive(Clone, Debug)]
pub struct Converted {
    pub state: State,
    /// The image config JSON.
    pub config: Vec<u8>,
    /// The verified package blobs, gathered in one directory by basename:
    /// the `packages` target. None when the recipe installs no package.
    pub packages: Option<State>,
    /// Whether the image carries the record of the private keys and
    /// identities its build made and what became of them, at
    /// [`SECRETS_RECORD`] when it made any (see `step::secrets`).
    pub secrets: bool,
}

/// Where the image carries what became of the private keys and identities
/// its build made, when it made any (see `step::secrets`).
pub const SECRETS_RECORD: &str = crate::step::secrets::RECORD_PATH;

/// A conversion error, positioned in the recipe or the lockfile.
pub type ConvertError = crate::located::Located;

/// The build arg that puts provider templates in front of the recipe's.
pub const PROVIDERS_ARG: &str = "REPRO_PROVIDERS";

/// Templates from the `REPRO_PROVIDERS` build arg (space- or comma-separated).
pub fn extra_providers(build_args: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    build_args
        .get(PROVIDERS_ARG)
        .map(|v| {
            v.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn err_at<T>(file: &str, at: &Spanned<T>, message: &str) -> ConvertError {
    ConvertError {
        file: file.to_string(),
        line: at.span.line,
        col: at.span.col,
        message: message.to_string(),
    }
}
