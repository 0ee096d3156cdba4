//! The LLBBridge client: the gRPC connection to BuildKit over stdio, what
//! the engine said it can do (caps, its first worker), and the raw calls the
//! build makes (solve, read a file or directory of a ref, resolve an image
//! config, return). Does I/O: every call is a request to the engine.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{Context as _, Result, anyhow, bail};
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    CacheOptionsEntry, PingRequest, ReadDirRequest, ReadFileRequest, ResolveImageConfigRequest,
    ReturnRequest, SolveRequest, llb_bridge_client::LlbBridgeClient, result,
};
use bollard_buildkit_proto::pb;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::convert::Platform;
use crate::frontend::errors::ReadFile;
use crate::frontend::opts::CacheImport;
use crate::llb::{self, LocalOpts, ResolveMode, State};

/// Frontend API caps we rely on.
pub(super) const CAP_SOLVE_BASE: &str = "solve.base";
pub(super) const CAP_READ_FILE: &str = "readfile";
const CAP_READ_DIR: &str = "readdir";
pub(super) const CAP_RESOLVE_IMAGE: &str = "resolveimage";
pub(super) const CAP_RETURN_RESULT: &str = "return";
pub(super) const CAP_PROTO_REF_ARRAY: &str = "proto.refarray";
pub(super) const CAP_ATTESTATIONS: &str = "reference.attestations";
/// ResolveSourceMeta; BuildKit v0.26 answers it for an image with the
/// manifest it picked for the platform (the attestation chain).
const CAP_SOURCE_META: &str = "source.metaresolver";
pub(super) const CAP_RETURN_MAP: &str = "returnmap";

/// A connected LLBBridge client and what the engine said it can do.
pub struct Bridge {
    client: LlbBridgeClient<Channel>,
    llb_caps: BTreeSet<String>,
    api_caps: BTreeSet<String>,
    worker_platform: Option<Platform>,
    /// The first worker's snapshotter label (`image.layers: base` needs
    /// overlayfs).
    worker_snapshotter: Option<String>,
    /// The client's cache imports, handed to every solve: BuildKit looks in
    /// an imported cache only for the solves that name it.
    cache_imports: Vec<CacheOptionsEntry>,
    /// The files read from the client so far, for errors that point into them.
    read: Vec<ReadFile>,
    /// Round trips to the engine so far (the ping included).
    round_trips: u32,
    /// When the image's definition was solved: since the connection was
    /// made, and after how many round trips.
    image_solved: Option<(std::time::Instant, u32)>,
}

/// A handle that only reads files of solved refs (see [`Bridge::reader`]).
pub(super) struct Reader {
    client: LlbBridgeClient<Channel>,
}

impl Reader {
    /// Reads a file of a solved ref; `None` if it does not exist. Reading
    /// builds the ref. A refused read is tried once more, as
    /// [`Bridge::read_optional`] does.
    pub(super) async fn read_optional(
        mut self,
        reference: String,
        path: String,
    ) -> Result<Option<Vec<u8>>> {
        read_optional_from(&mut self.client, &reference, &path)
            .await
            .map_err(|s| anyhow!("{}", s.message()))
    }
}

/// The raw LLBBridge calls on a handle of their own (a clone of the
/// connection's client, cheap), so that two can be in flight at once. The
/// [`Bridge`] counts them.
struct Calls {
    client: LlbBridgeClient<Channel>,
    cache_imports: Vec<CacheOptionsEntry>,
    array_refs: bool,
}

impl Calls {
    /// Solves a definition and returns the result's ref id.
    async fn solve(&self, def: pb::Definition) -> Result<String, tonic::Status> {
        let resp = self
            .client
            .clone()
            .solve(SolveRequest {
                definition: Some(def),
                allow_result_return: true,
                allow_result_array_ref: self.array_refs,
                cache_imports: self.cache_imports.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let id = match resp.result.and_then(|r| r.result) {
            Some(result::Result::Ref(r)) => r.id,
            Some(result::Result::RefDeprecated(id)) => id,
            _ => resp.r#ref,
        };
        Ok(id)
    }

    async fn read_file(&self, reference: &str, path: &str) -> Result<Vec<u8>, tonic::Status> {
        Ok(self
            .client
            .clone()
            .read_file(ReadFileRequest {
                r#ref: reference.to_string(),
                file_path: path.to_string(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .data)
    }

    /// One file of a client local: the local solved (only that file
    /// included), then the file read; its bytes, and the file as errors
    /// point into it.
    async fn read_local(
        &self,
        local: &LocalFile<'_>,
        display: &str,
    ) -> Result<(Vec<u8>, ReadFile), tonic::Status> {
        let state = llb::local(
            local.local,
            &LocalOpts {
                session_id: local.session_id.map(str::to_string),
                include_patterns: vec![local.path.to_string()],
                shared_key_hint: Some(format!("{}:{}", local.local, local.path)),
            },
            Some(display.to_string()),
        );
        let id = self.solve(state.marshal()).await?;
        let data = self.read_file(&id, local.path).await?;
        let file = ReadFile {
            name: local.path.to_string(),
            data: data.clone(),
            language: local.language.to_string(),
        };
        Ok((data, file))
    }

    /// An image's digest and config.
    async fn resolve(
        &self,
        what: &str,
        image: &ImageRef<'_>,
        session_id: Option<&str>,
    ) -> Result<(String, Vec<u8>)> {
        let ImageRef {
            reference,
            platform,
            mode,
        } = *image;
        let resp = self
            .client
            .clone()
            .resolve_image_config(ResolveImageConfigRequest {
                r#ref: reference.to_string(),
                platform: Some(pb::Platform {
                    architecture: platform.architecture.clone(),
                    os: platform.os.clone(),
                    variant: platform.variant.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                resolve_mode: mode.as_str().to_string(),
                log_name: format!("resolve {what} {reference}"),
                session_id: session_id.unwrap_or_default().to_string(),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("cannot resolve {what} \"{reference}\": {}", s.message()))?
            .into_inner();
        Ok((resp.digest, resp.config))
    }
}

/// A file of a solved ref; `None` if it does not exist. A refused read is
/// tried once more: Docker 20.10 sometimes refuses to read a file of an
/// image another build is using.
async fn read_optional_from(
    client: &mut LlbBridgeClient<Channel>,
    reference: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, tonic::Status> {
    let request = ReadFileRequest {
        r#ref: reference.to_string(),
        file_path: path.to_string(),
        ..Default::default()
    };
    let missing = |s: &tonic::Status| {
        s.message().contains("no such file") || s.code() == tonic::Code::NotFound
    };
    let read = match client.read_file(request.clone()).await {
        Err(s) if !missing(&s) => client.read_file(request).await,
        other => other,
    };
    match read {
        Ok(r) => Ok(Some(r.into_inner().data)),
        Err(s) if missing(&s) => Ok(None),
        Err(s) => Err(s),
    }
}

/// Connects to BuildKit over this process's stdin and stdout and pings it.
pub async fn connect() -> Result<Bridge> {
    connect_io(tokio::io::join(tokio::io::stdin(), tokio::io::stdout())).await
}

/// Connects over any byte stream (stdio in production, an in-memory pipe in
/// the tests' fake bridge) and pings.
pub async fn connect_io<IO>(io: IO) -> Result<Bridge>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = Mutex::new(Some(io));
    // The URI is a placeholder: the connector below hands out the stream, once.
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let taken = io.lock().ok().and_then(|mut slot| slot.take());
            async move {
                taken.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::other("the connection to BuildKit was already used")
                })
            }
        }))
        .await
        .context("cannot open the gRPC connection to BuildKit")?;
    let mut client = LlbBridgeClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let pong = client
        .ping(PingRequest {})
        .await
        .context("ping BuildKit")?
        .into_inner();
    let enabled = |caps: &[bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap]| {
        caps.iter()
            .filter(|c| c.enabled)
            .map(|c| c.id.clone())
            .collect::<BTreeSet<_>>()
    };
    let worker_platform = pong
        .workers
        .first()
        .and_then(|w| w.platforms.first())
        .map(|p| Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: Some(p.variant.clone()).filter(|v| !v.is_empty()),
        });
    if let Some(w) = pong.workers.first() {
        // The daemon's log: which worker answered, for `image.layers: base`.
        let labels: BTreeSet<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("repro-frontend: worker {} {labels:?}", w.id);
    }
    let worker_snapshotter = pong
        .workers
        .first()
        .and_then(|w| w.labels.get("org.mobyproject.buildkit.worker.snapshotter"))
        .cloned();
    Ok(Bridge {
        worker_snapshotter,
        llb_caps: enabled(&pong.llb_caps),
        api_caps: enabled(&pong.frontend_api_caps),
        client,
        worker_platform,
        cache_imports: Vec::new(),
        read: Vec::new(),
        round_trips: 1,
        image_solved: None,
    })
}

impl Bridge {
    /// Whether the engine has this frontend API cap.
    pub(super) fn has_api(&self, cap: &str) -> bool {
        self.api_caps.contains(cap)
    }

    pub(super) fn require_api(&self, cap: &str, what: &str) -> Result<()> {
        if self.has_api(cap) {
            Ok(())
        } else {
            bail!(
                "this BuildKit lacks the frontend cap \"{cap}\" needed to {what}; repro-frontend needs BuildKit v0.8 (Docker 20.10) or newer"
            )
        }
    }

    /// The first worker's platform, if it named one.
    pub(super) fn worker_platform(&self) -> Option<&Platform> {
        self.worker_platform.as_ref()
    }

    /// The first worker's snapshotter label, if it has one.
    pub(super) fn worker_snapshotter(&self) -> Option<&str> {
        self.worker_snapshotter.as_deref()
    }

    /// What the conversion takes from the engine: the first worker's
    /// snapshotter, and whether the engine has the cap to leave a mount out
    /// of content hashing.
    pub(super) fn worker(&self) -> (Option<&str>, bool) {
        let content_cache = self
            .llb_caps
            .contains(crate::llb::CAP_EXEC_MOUNT_CONTENT_CACHE);
        (self.worker_snapshotter(), content_cache)
    }

    /// The files read from the client so far (the recipe, the lockfiles).
    pub(super) fn read_files(&self) -> &[ReadFile] {
        &self.read
    }

    /// The client's cache imports, for every solve from now on.
    pub(super) fn import_caches(&mut self, imports: &[CacheImport]) {
        self.cache_imports = imports
            .iter()
            .map(|c| CacheOptionsEntry {
                r#type: c.kind.clone(),
                attrs: c.attrs.clone().into_iter().collect(),
            })
            .collect();
    }

    /// Notes that the image's definition was just solved: from then on the
    /// engine builds, fetching packages first (see [`Bridge::timeline`]).
    pub(super) fn note_image_solved(&mut self) {
        self.image_solved
            .get_or_insert((std::time::Instant::now(), self.round_trips));
    }

    /// When the image's definition went out and after how many round trips
    /// to the engine (the daemon's log line; bench/ reads it).
    pub fn timeline(&self) -> Option<(std::time::Instant, u32)> {
        self.image_solved
    }

    /// The raw calls, on a handle of their own (see [`Calls`]).
    fn calls(&self) -> Calls {
        Calls {
            client: self.client.clone(),
            cache_imports: self.cache_imports.clone(),
            array_refs: self.has_api(CAP_PROTO_REF_ARRAY),
        }
    }

    /// Solves a definition and returns the result's ref id.
    async fn solve(&mut self, def: pb::Definition) -> Result<String, tonic::Status> {
        self.round_trips += 1;
        self.calls().solve(def).await
    }

    /// Solves a Definition the frontend built, once the engine is known to
    /// have every cap it uses (read off the Definition itself).
    pub(super) async fn solve_checked(&mut self, def: &pb::Definition) -> Result<String> {
        check_llb_caps(&self.llb_caps, def)?;
        self.solve(def.clone())
            .await
            .map_err(|s| anyhow!("{}", s.message()))
    }

    /// Reads a file of a solved ref; `None` if it does not exist (see
    /// [`read_optional_from`]).
    pub(super) async fn read_optional(
        &mut self,
        reference: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.round_trips += 1;
        read_optional_from(&mut self.client, reference, path)
            .await
            .map_err(|s| anyhow!("cannot read {path}: {}", s.message()))
    }

    /// A second handle on the connection, for reads that run beside this
    /// one's (each platform's record read at once, so BuildKit builds the
    /// platforms together).
    pub(super) fn reader(&self) -> Reader {
        Reader {
            client: self.client.clone(),
        }
    }

    /// Solves the base image so its files can be read.
    pub(super) async fn solve_base(&mut self, base: State) -> Result<String> {
        self.solve(base.marshal())
            .await
            .map_err(|s| anyhow!("cannot read the base image: {}", s.message()))
    }

    /// The names in a directory of a solved ref, in name order; none if the
    /// directory does not exist or the engine cannot read directories.
    pub(super) async fn read_dir(&mut self, id: &str, dir: &str) -> Result<Vec<String>> {
        if !self.has_api(CAP_READ_DIR) {
            bail!(
                "the recipe has no providers, and this BuildKit lacks the frontend cap \"{CAP_READ_DIR}\" needed to read the base image's package sources; add packages.providers"
            );
        }
        self.round_trips += 1;
        let entries = self
            .client
            .read_dir(ReadDirRequest {
                r#ref: id.to_string(),
                dir_path: dir.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().entries)
            .unwrap_or_default();
        let mut names: Vec<String> = entries.into_iter().map(|e| e.path).collect();
        names.sort();
        Ok(names)
    }

    /// Reads one file from a client local (the recipe or the lockfile) and
    /// keeps it, under its path, for errors that point into it; `display`
    /// names the load in progress.
    pub(super) async fn read_local(
        &mut self,
        local: &LocalFile<'_>,
        display: &str,
    ) -> Result<Vec<u8>, tonic::Status> {
        self.round_trips += 2;
        let (data, file) = self.calls().read_local(local, display).await?;
        self.read.push(file);
        Ok(data)
    }

    /// Resolves an image's digest and config; `what` names it in the
    /// progress line and the error ("base image", "published image").
    pub(super) async fn resolve_named(
        &mut self,
        what: &str,
        image: &ImageRef<'_>,
        session_id: Option<&str>,
    ) -> Result<(String, Vec<u8>)> {
        self.round_trips += 1;
        self.calls().resolve(what, image, session_id).await
    }

    /// The image manifest the engine picks for the image's platform
    /// (`sha256:<hex>`), when it can say: BuildKit v0.26 answers with the
    /// image's attestation chain; older engines have no such answer, and
    /// then this is None.
    pub(super) async fn image_manifest(&mut self, image: &ImageRef<'_>) -> Option<String> {
        use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
            ResolveSourceImageRequest, ResolveSourceMetaRequest,
        };
        if !self.has_api(CAP_SOURCE_META) {
            return None;
        }
        self.round_trips += 1;
        let mut client = self.client.clone();
        let resp = client
            .resolve_source_meta(ResolveSourceMetaRequest {
                source: Some(pb::SourceOp {
                    identifier: format!("docker-image://{}", image.reference),
                    attrs: Default::default(),
                }),
                platform: Some(image.platform.to_pb()),
                log_name: format!("resolve the manifest of {}", image.reference),
                resolve_mode: image.mode.as_str().to_string(),
                image: Some(ResolveSourceImageRequest {
                    no_config: true,
                    attestation_chain: true,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        let manifest = resp.image?.attestation_chain?.image_manifest;
        let hex = manifest.strip_prefix("sha256:")?;
        crate::digest::is_sha256_hex(hex).then_some(manifest)
    }

    /// Resolves an image (as [`Bridge::resolve_named`]) and reads files of
    /// client locals (as [`Bridge::read_local`], one after another) at the
    /// same time: the engine answers both on the one connection side by
    /// side, so the build waits for the longer of the two, not their sum.
    pub(super) async fn resolve_while_reading(
        &mut self,
        what: &str,
        image: &ImageRef<'_>,
        session_id: Option<&str>,
        locals: &[(LocalFile<'_>, String)],
    ) -> (
        Result<(String, Vec<u8>)>,
        Vec<Result<Vec<u8>, tonic::Status>>,
    ) {
        let calls = self.calls();
        let reads = async {
            let mut out = Vec::new();
            for (local, display) in locals {
                let read = calls.read_local(local, display).await;
                let failed = read.is_err();
                out.push(read);
                if failed {
                    break;
                }
            }
            out
        };
        let (resolved, reads) = tokio::join!(calls.resolve(what, image, session_id), reads);
        self.round_trips += 1 + 2 * reads.len() as u32;
        let mut data = Vec::new();
        for read in reads {
            data.push(read.map(|(bytes, file)| {
                self.read.push(file);
                bytes
            }));
        }
        (resolved, data)
    }

    /// Hands BuildKit the build's answer: its result or its error.
    pub(super) async fn r#return(&mut self, req: ReturnRequest) -> Result<(), tonic::Status> {
        self.client.r#return(req).await.map(|_| ())
    }
}

/// A file of a client local, as `read_local` reads it.
pub(super) struct LocalFile<'a> {
    /// The local's name (`dockerfilekey`, `contextkey`).
    pub local: &'a str,
    pub path: &'a str,
    pub session_id: Option<&'a str>,
    /// "yaml" for the recipe.
    pub language: &'a str,
}

/// An image to resolve, for one platform.
#[derive(Clone, Copy)]
pub(super) struct ImageRef<'a> {
    pub reference: &'a str,
    pub platform: &'a Platform,
    pub mode: ResolveMode,
}

/// Checks the caps of what is sent: those its ops and metadata use (decoded
/// from the Definition) and those its metadata declares.
fn check_llb_caps(have: &BTreeSet<String>, def: &pb::Definition) -> Result<()> {
    let mut needed = llb::caps::declared(def);
    needed.extend(llb::caps::required(def)?.into_iter().map(str::to_string));
    let missing: Vec<&str> = needed
        .iter()
        .map(String::as_str)
        .filter(|c| !have.contains(*c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "this BuildKit lacks the LLB cap(s) {} that this recipe needs; repro-frontend needs BuildKit v0.8 (Docker 20.10) or newer",
            missing.join(", ")
        )
    }
}
