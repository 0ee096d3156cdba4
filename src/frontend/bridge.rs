//! Gateway mode: talk to BuildKit's LLBBridge over stdin/stdout and run one build.
//!
//! BuildKit starts the frontend image's entrypoint with stdin/stdout joined as
//! one gRPC connection (cleartext HTTP/2). The flow is: Ping (caps) -> read
//! the recipe from the `dockerfile` local -> resolve the base image -> read the
//! lockfile from the `context` local -> read the base's os-release and package
//! sources when the recipe leaves them out -> convert -> solve (lazily: the
//! engine builds when it exports) -> Return.
//! Every failure goes back through Return as a gRPC status, so the user reads
//! it in the `docker build` output.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::{Context as _, Result, anyhow, bail};
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    Attestation, AttestationKind, Attestations, CacheOptionsEntry, InTotoSubject,
    InTotoSubjectKind, PingRequest, ReadDirRequest, ReadFileRequest, Ref, RefMap, RefMapDeprecated,
    ResolveImageConfigRequest, Result as GwResult, ReturnRequest, SolveRequest,
    llb_bridge_client::LlbBridgeClient, result,
};
use bollard_buildkit_proto::pb;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::convert::Platform;
use crate::convert::verify::OnDiff;
use crate::frontend::errors::{self, ReadFile};
use crate::frontend::inputs;
use crate::frontend::opts::FrontendOpts;
use crate::llb::{self, LocalOpts, ResolveMode, State};

/// Frontend API caps we rely on.
const CAP_SOLVE_BASE: &str = "solve.base";
const CAP_READ_FILE: &str = "readfile";
const CAP_READ_DIR: &str = "readdir";
const CAP_RESOLVE_IMAGE: &str = "resolveimage";
const CAP_RETURN_RESULT: &str = "return";
const CAP_PROTO_REF_ARRAY: &str = "proto.refarray";
const CAP_ATTESTATIONS: &str = "reference.attestations";
const CAP_RETURN_MAP: &str = "returnmap";

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
    })
}

impl Bridge {
    fn require_api(&self, cap: &str, what: &str) -> Result<()> {
        if self.api_caps.contains(cap) {
            Ok(())
        } else {
            bail!(
                "this BuildKit lacks the frontend cap \"{cap}\" needed to {what}; repro-frontend needs BuildKit v0.8 (Docker 20.10) or newer"
            )
        }
    }

    /// Solves a definition and returns the result's ref id.
    async fn solve(&mut self, def: pb::Definition) -> Result<String, tonic::Status> {
        let resp = self
            .client
            .solve(SolveRequest {
                definition: Some(def),
                allow_result_return: true,
                allow_result_array_ref: self.api_caps.contains(CAP_PROTO_REF_ARRAY),
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

    /// Solves a Definition the frontend built, once the engine is known to
    /// have every cap it uses (read off the Definition itself).
    async fn solve_checked(&mut self, def: &pb::Definition) -> Result<String> {
        check_llb_caps(&self.llb_caps, def)?;
        self.solve(def.clone())
            .await
            .map_err(|s| anyhow!("{}", s.message()))
    }

    async fn read_file(&mut self, reference: &str, path: &str) -> Result<Vec<u8>, tonic::Status> {
        Ok(self
            .client
            .read_file(ReadFileRequest {
                r#ref: reference.to_string(),
                file_path: path.to_string(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .data)
    }

    /// Reads a file of a solved ref; `None` if it does not exist.
    /// A refused read is tried once more (see the Docker 20.10 note in `build`).
    pub(super) async fn read_optional(
        &mut self,
        reference: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>> {
        let missing = |s: &tonic::Status| {
            s.message().contains("no such file") || s.code() == tonic::Code::NotFound
        };
        let result = match self.read_file(reference, path).await {
            Err(s) if !missing(&s) => self.read_file(reference, path).await,
            other => other,
        };
        match result {
            Ok(data) => Ok(Some(data)),
            Err(s) if missing(&s) => Ok(None),
            Err(s) => Err(anyhow!("cannot read {path}: {}", s.message())),
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
        if !self.api_caps.contains(CAP_READ_DIR) {
            bail!(
                "the recipe has no providers, and this BuildKit lacks the frontend cap \"{CAP_READ_DIR}\" needed to read the base image's package sources; add packages.providers"
            );
        }
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

    /// Reads one file from a client local (the recipe or the lockfile).
    pub(super) async fn read_local(
        &mut self,
        local: &str,
        path: &str,
        opts: &FrontendOpts,
        display: &str,
    ) -> Result<Vec<u8>, tonic::Status> {
        let state = llb::local(
            local,
            &LocalOpts {
                session_id: opts.session_id.clone(),
                include_patterns: vec![path.to_string()],
                shared_key_hint: Some(format!("{local}:{path}")),
            },
            Some(display.to_string()),
        );
        let id = self.solve(state.marshal()).await?;
        let data = self.read_file(&id, path).await?;
        self.read.push(ReadFile {
            name: path.to_string(),
            data: data.clone(),
            language: if local == opts.dockerfile_key {
                "yaml"
            } else {
                ""
            }
            .to_string(),
        });
        Ok(data)
    }

    pub(super) async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
        opts: &FrontendOpts,
    ) -> Result<(String, Vec<u8>)> {
        self.resolve_named("base image", reference, platform, mode, opts)
            .await
    }

    /// Resolves an image's digest and config; `what` names it in the
    /// progress line and the error ("base image", "published image").
    pub(super) async fn resolve_named(
        &mut self,
        what: &str,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
        opts: &FrontendOpts,
    ) -> Result<(String, Vec<u8>)> {
        let resp = self
            .client
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
                session_id: opts.session_id.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("cannot resolve {what} \"{reference}\": {}", s.message()))?
            .into_inner();
        Ok((resp.digest, resp.config))
    }

    /// The Result for BuildKit's exporters: one ref with its config, or, for
    /// several platforms, a ref per platform keyed as `refs.platforms` lists
    /// them, each with `containerimage.config/<platform>` (exptypes.go).
    fn result_of(&self, built: Built) -> GwResult {
        let mut metadata = std::collections::HashMap::new();
        let mut attestations = std::collections::HashMap::new();
        let array_refs = self.api_caps.contains(CAP_PROTO_REF_ARRAY);
        if !built.multi {
            let mut parts = built.parts;
            // A single-platform build has one part (checked where it is made).
            let part = parts.swap_remove(0);
            if let Some(config) = part.config {
                metadata.insert("containerimage.config".to_string(), config);
            }
            attestations.extend(part.sbom.map(sbom_attestation));
            let r = match array_refs {
                true => result::Result::Ref(Ref {
                    id: part.id,
                    def: Some(part.def),
                }),
                false => result::Result::RefDeprecated(part.id),
            };
            return GwResult {
                result: Some(r),
                metadata,
                attestations,
            };
        }
        let listed: Vec<serde_json::Value> = built
            .parts
            .iter()
            .map(|p| {
                let mut spec = serde_json::json!({
                    "architecture": p.platform.architecture,
                    "os": p.platform.os,
                });
                if let Some(v) = &p.platform.variant {
                    spec["variant"] = serde_json::Value::String(v.clone());
                }
                serde_json::json!({"ID": p.platform.key(), "Platform": spec})
            })
            .collect();
        metadata.insert(
            "refs.platforms".to_string(),
            serde_json::json!({ "Platforms": listed })
                .to_string()
                .into_bytes(),
        );
        let mut refs = std::collections::HashMap::new();
        let mut old_refs = std::collections::HashMap::new();
        for part in built.parts {
            let key = part.platform.key();
            if let Some(config) = part.config {
                metadata.insert(format!("containerimage.config/{key}"), config);
            }
            attestations.extend(part.sbom.map(sbom_attestation));
            if array_refs {
                let r = Ref {
                    id: part.id,
                    def: Some(part.def),
                };
                refs.insert(key, r);
            } else {
                old_refs.insert(key, part.id);
            }
        }
        let r = match array_refs {
            true => result::Result::Refs(RefMap { refs }),
            false => result::Result::RefsDeprecated(RefMapDeprecated { refs: old_refs }),
        };
        GwResult {
            result: Some(r),
            metadata,
            attestations,
        }
    }

    async fn return_result(&mut self, result: Result<Built>) -> Result<()> {
        let req = match result {
            Ok(built) => ReturnRequest {
                result: Some(self.result_of(built)),
                error: None,
            },
            Err(e) => ReturnRequest {
                result: None,
                error: Some(errors::status(&e, &self.read)),
            },
        };
        self.client
            .r#return(req)
            .await
            .context("return the result to BuildKit")?;
        Ok(())
    }
}

/// Runs one build as a gateway frontend and returns its outcome to BuildKit.
/// The daemon's log gets one line with the time from start to the answered
/// Return and the peak memory (`bench/run` reads it).
pub async fn run(opts: Result<FrontendOpts, String>) -> Result<()> {
    let started = std::time::Instant::now();
    let outcome = run_with(connect().await?, opts).await;
    if outcome.is_ok() {
        eprintln!(
            "repro-frontend: returned after {:.1} ms, peak RSS {} KB",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss_kb()
        );
    }
    outcome
}

/// The process's peak resident memory in KB (0 if the kernel will not say).
fn peak_rss_kb() -> i64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid start.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_maxrss
}

/// A Return that fails the build with the error's message.
fn failure(e: &anyhow::Error) -> ReturnRequest {
    ReturnRequest {
        result: None,
        error: Some(errors::status(e, &[])),
    }
}

/// The subrequests this frontend answers (BuildKit's frontend/subrequests).
const SUBREQUEST_DESCRIBE: &str = "frontend.subrequests.describe";
const SUBREQUEST_TARGETS: &str = "frontend.targets";
const SUBREQUEST_VERSION: &str = "1.0.0";

/// The targets a recipe has (`--target`); the first is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Image,
    Lock,
    Packages,
    Sbom,
    Verify,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Image,
        Target::Lock,
        Target::Packages,
        Target::Sbom,
        Target::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Image => "image",
            Target::Lock => "lock",
            Target::Packages => "packages",
            Target::Sbom => "sbom",
            Target::Verify => "verify",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Target::Image => "build the image from the recipe and its lockfile",
            Target::Lock => {
                "write the lockfile for packages.install (use with --output type=local)"
            }
            Target::Packages => {
                "fetch and verify the lockfile's package blobs only (use with --output type=local)"
            }
            Target::Sbom => "write the image's SPDX SBOM (use with --output type=local)",
            Target::Verify => {
                "rebuild and compare with the image named by the REPRO_VERIFY build arg (use with --output type=local)"
            }
        }
    }

    /// The `target` opt: empty is the default.
    pub fn from_opt(opt: Option<&str>) -> Result<Target> {
        match opt.unwrap_or("") {
            "" => Ok(Target::Image),
            name => Target::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| {
                    anyhow!(
                        "unknown target \"{name}\" (targets: {})",
                        Target::ALL
                            .iter()
                            .map(|t| format!("{}: {}", t.name(), t.description()))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                }),
        }
    }
}

/// The metadata answering a subrequest, or an error for an unknown one.
pub fn subrequest(id: &str) -> Result<std::collections::HashMap<String, Vec<u8>>> {
    let mut meta = std::collections::HashMap::new();
    match id {
        SUBREQUEST_DESCRIBE => {
            let list = serde_json::json!([
                {
                    "name": SUBREQUEST_DESCRIBE,
                    "version": SUBREQUEST_VERSION,
                    "type": "rpc",
                    "description": "List available subrequest types",
                    "metadata": [{"name": "result.json"}]
                },
                {
                    "name": SUBREQUEST_TARGETS,
                    "version": SUBREQUEST_VERSION,
                    "type": "rpc",
                    "description": "List all targets current build supports",
                    "opts": [],
                    "metadata": [{"name": "result.json"}, {"name": "result.txt"}]
                }
            ]);
            meta.insert("result.json".into(), serde_json::to_vec_pretty(&list)?);
        }
        SUBREQUEST_TARGETS => {
            let targets: Vec<serde_json::Value> = Target::ALL
                .into_iter()
                .map(|t| {
                    let mut j =
                        serde_json::json!({"name": t.name(), "description": t.description()});
                    if t == Target::Image {
                        j["default"] = serde_json::Value::Bool(true);
                    }
                    j
                })
                .collect();
            let list = serde_json::json!({"targets": targets, "sources": []});
            meta.insert("result.json".into(), serde_json::to_vec_pretty(&list)?);
            let mut txt = String::from("TARGET\tDESCRIPTION\n");
            for t in Target::ALL {
                let name = if t == Target::Image {
                    format!("{} (default)", t.name())
                } else {
                    t.name().to_string()
                };
                txt.push_str(&format!("{name}\t{}\n", t.description()));
            }
            meta.insert("result.txt".into(), txt.into_bytes());
        }
        other => bail!(
            "unsupported subrequest \"{other}\" (this frontend answers {SUBREQUEST_DESCRIBE} and {SUBREQUEST_TARGETS})"
        ),
    }
    meta.insert("version".into(), SUBREQUEST_VERSION.as_bytes().to_vec());
    Ok(meta)
}

/// Runs one build on a connected bridge.
pub async fn run_with(mut bridge: Bridge, opts: Result<FrontendOpts, String>) -> Result<()> {
    if let Ok(FrontendOpts {
        request_id: Some(id),
        ..
    }) = &opts
    {
        let req = match subrequest(id) {
            Ok(metadata) => ReturnRequest {
                result: Some(GwResult {
                    metadata,
                    ..Default::default()
                }),
                error: None,
            },
            Err(e) => failure(&e),
        };
        bridge
            .client
            .r#return(req)
            .await
            .context("return the subrequest's answer to BuildKit")?;
        return Ok(());
    }
    let outcome = match opts {
        Ok(opts) => {
            bridge.cache_imports = opts
                .cache_imports
                .iter()
                .map(|c| CacheOptionsEntry {
                    r#type: c.kind.clone(),
                    attrs: c.attrs.clone().into_iter().collect(),
                })
                .collect();
            build(&mut bridge, &opts).await
        }
        Err(e) => Err(anyhow!(e)),
    };
    if let Err(e) = &outcome {
        // The daemon's log keeps what the user saw in the build output.
        eprintln!("repro-frontend: build failed: {e:#}");
    }
    bridge.return_result(outcome).await
}

/// One platform's result: its ref, its image config (when it is an image)
/// and, when the client asked for one, its SBOM attestation's ref.
struct Part {
    platform: Platform,
    id: String,
    def: pb::Definition,
    config: Option<Vec<u8>>,
    sbom: Option<SbomRef>,
}

/// What a build returns.
struct Built {
    /// One per platform, in the order asked; a single part when `multi` is
    /// false.
    parts: Vec<Part>,
    /// Several platforms, each with its own ref. (The lock target's
    /// lockfiles for several platforms are one ref: a single part.)
    multi: bool,
}

/// The solved SBOM state and the platform key BuildKit's exporters look
/// its attestations up by.
struct SbomRef {
    key: String,
    id: String,
    def: pb::Definition,
}

/// The SBOM as BuildKit's Dockerfile frontend returns one: an in-toto
/// attestation of the file `sbom.spdx.json` in its ref, about the image
/// itself (subject kind Self), keyed by the platform (exporter/containerimage
/// writer.go looks up `Attestations[p.ID]`). BuildKit's own scanner then
/// stays off (solver/llbsolver/proc/sbom.go: `HasSBOM` is true).
fn sbom_attestation(s: SbomRef) -> (String, Attestations) {
    let attestation = Attestation {
        kind: AttestationKind::InToto as i32,
        metadata: std::collections::HashMap::from([("reason".to_string(), b"sbom".to_vec())]),
        r#ref: Some(Ref {
            id: s.id,
            def: Some(s.def),
        }),
        path: format!("/{}", crate::convert::sbom::SBOM_FILE),
        in_toto_predicate_type: "https://spdx.dev/Document".into(),
        in_toto_subjects: vec![InTotoSubject {
            kind: InTotoSubjectKind::Self_ as i32,
            ..Default::default()
        }],
    };
    (
        s.key,
        Attestations {
            attestation: vec![attestation],
        },
    )
}

async fn build(bridge: &mut Bridge, opts: &FrontendOpts) -> Result<Built> {
    for (cap, what) in [
        (CAP_SOLVE_BASE, "solve LLB"),
        (CAP_READ_FILE, "read the recipe"),
        (CAP_RESOLVE_IMAGE, "resolve the base image"),
        (CAP_RETURN_RESULT, "return the image"),
    ] {
        bridge.require_api(cap, what)?;
    }
    let target = Target::from_opt(opts.target.as_deref())?;
    let platforms = target_platforms(opts, bridge);
    if platforms.len() == 1 {
        let part = build_platform(bridge, opts, &platforms[0]).await?;
        return Ok(Built {
            parts: vec![part],
            multi: false,
        });
    }
    if target == Target::Lock {
        let part = build_locks(bridge, opts, &platforms).await?;
        return Ok(Built {
            parts: vec![part],
            multi: false,
        });
    }
    let keys: Vec<String> = platforms.iter().map(Platform::key).collect();
    bridge.require_api(
        CAP_RETURN_MAP,
        &format!("return one result per platform ({})", keys.join(", ")),
    )?;
    if target == Target::Image && bridge.worker_snapshotter.is_none() {
        bail!(
            "this engine cannot keep a multi-platform image ({}): its worker is Docker's classic image store (Docker 20.10, or a later Docker without the containerd image store), which holds one platform per image; build one platform at a time (--platform {}), or use Docker 24+ with the containerd image store or a buildx builder (docker buildx create --driver docker-container); the lock target can write every platform's lockfile here",
            keys.join(", "),
            keys[0]
        );
    }
    let mut parts = Vec::new();
    for platform in &platforms {
        parts.push(build_platform(bridge, opts, platform).await?);
    }
    Ok(Built { parts, multi: true })
}

/// The platforms to build: those asked for, else the worker's own.
fn target_platforms(opts: &FrontendOpts, bridge: &Bridge) -> Vec<Platform> {
    if !opts.platforms.is_empty() {
        return opts.platforms.clone();
    }
    vec![bridge.worker_platform.clone().unwrap_or(Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    })]
}

/// One platform of a build: its inputs (the lockfile named for it, the
/// base's manifest for it), converted and solved. Solving is lazy: BuildKit
/// builds every platform's ref together when it exports them.
async fn build_platform(
    bridge: &mut Bridge,
    opts: &FrontendOpts,
    platform: &Platform,
) -> Result<Part> {
    let req = request(opts, bridge, platform)?;
    // The verify target's image is checked before anything is solved.
    let published = match req.target {
        Target::Verify => Some((
            crate::convert::verify::published_ref(&req.build_args)?,
            crate::convert::verify::on_diff(&req.build_args)?,
        )),
        _ => None,
    };
    let prepared = inputs::prepare(&mut inputs::Gateway::new(bridge, opts), &req).await?;
    let out = match published.clone() {
        Some((reference, _)) => {
            let (_, config) = bridge
                .resolve_named(
                    "published image",
                    &reference,
                    &req.platform,
                    req.resolve_mode,
                    opts,
                )
                .await?;
            prepared.verify(&crate::convert::verify::Published { reference, config })?
        }
        None => prepared.convert()?,
    };
    // The caps are read off what is sent, `--no-cache`'s metadata included.
    let def = out.definition(opts.no_cache);
    let id = bridge.solve_checked(&def).await?;
    if let Some((_, OnDiff::Fail)) = published {
        fail_on_report(bridge, &id).await?;
    }
    let sbom = match opts.attest_sbom && prepared.target == Target::Image {
        true => Some(solve_sbom(bridge, &prepared, &req.platform, opts.no_cache).await?),
        false => None,
    };
    Ok(Part {
        platform: platform.clone(),
        id,
        def,
        config: out.config,
        sbom,
    })
}

/// The lock target for several platforms: each platform's lockfile, made in
/// its own base by its own apt, side by side in one result, so one
/// `--output type=local` writes them all. Their names must differ (the
/// recipe's `sums` names them with `${TARGETARCH}`).
async fn build_locks(
    bridge: &mut Bridge,
    opts: &FrontendOpts,
    platforms: &[Platform],
) -> Result<Part> {
    let mut all = State::scratch().file();
    let mut names: Vec<(String, String)> = Vec::new();
    for platform in platforms {
        let req = request(opts, bridge, platform)?;
        let prepared = inputs::prepare(&mut inputs::Gateway::new(bridge, opts), &req).await?;
        let (_, file, sums) = crate::convert::lock_file(&prepared.recipe)?;
        if let Some((other, _)) = names.iter().find(|(_, f)| *f == file) {
            bail!(
                "{}:{}:{}: packages.sums names the same lockfile \"{file}\" for {other} and {}; put ${{TARGETARCH}} in it (SHA256SUMS-${{TARGETARCH}}) so each platform has its own",
                prepared.recipe.file,
                sums.line,
                sums.col,
                platform.key()
            );
        }
        names.push((platform.key(), file.clone()));
        let lock = prepared.convert()?;
        all = all.copy(
            &lock.state,
            &format!("/{file}"),
            &format!("/{file}"),
            llb::CopyOpts::default(),
        );
    }
    let state = all
        .name(format!(
            "lockfiles {}",
            names
                .iter()
                .map(|(_, f)| f.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .build();
    // The lock target always resolves again: the package index moves on.
    let def = state.marshal_with(llb::Constraints { ignore_cache: true });
    let id = bridge.solve_checked(&def).await?;
    Ok(Part {
        platform: platforms[0].clone(),
        id,
        def,
        config: None,
        sbom: None,
    })
}

/// The verify step wrote a report instead of a statement: the rebuild
/// differs, and the build fails with the report's summary. (A failed build
/// exports nothing, so the full report is in the step's log;
/// `REPRO_VERIFY_ON_DIFF=report` exports it instead.)
async fn fail_on_report(bridge: &mut Bridge, id: &str) -> Result<()> {
    use crate::step::verify::{REPORT_FILE, summary};
    match bridge.read_optional(id, REPORT_FILE).await? {
        None => Ok(()),
        Some(report) => Err(anyhow!(
            "{}the full report is in the verify step's log above; --build-arg {}=report writes it to the output instead of failing",
            summary(&String::from_utf8_lossy(&report)),
            crate::convert::verify::ON_DIFF_ARG
        )),
    }
}

/// Solves the SBOM of the image for its attestation.
async fn solve_sbom(
    bridge: &mut Bridge,
    prepared: &inputs::Prepared,
    platform: &Platform,
    no_cache: bool,
) -> Result<SbomRef> {
    bridge.require_api(CAP_ATTESTATIONS, "return an SBOM attestation (--sbom=true)")?;
    let def = prepared.sbom()?.marshal_with(llb::Constraints {
        ignore_cache: no_cache,
    });
    let id = bridge.solve_checked(&def).await?;
    Ok(SbomRef {
        key: platform.key(),
        id,
        def,
    })
}

/// What the client asked for, for one platform, as the input pipeline takes
/// it, with what the engine's first worker says of itself (snapshotter).
fn request(opts: &FrontendOpts, bridge: &Bridge, platform: &Platform) -> Result<inputs::Request> {
    let frontend_image = opts.source.clone().ok_or_else(|| {
        anyhow!("the \"source\" opt (this frontend's own image) is missing; BuildKit sets it when the frontend runs as an image")
    })?;
    Ok(inputs::Request {
        target: Target::from_opt(opts.target.as_deref())?,
        filename: opts.filename.clone(),
        build_args: opts.build_args.clone(),
        platform: platform.clone(),
        frontend_image,
        resolve_mode: opts.resolve_mode,
        context_name: opts.context_key.clone(),
        session_id: opts.session_id.clone(),
        network: opts.network,
        snapshotter: bridge.worker_snapshotter.clone(),
    })
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

#[cfg(test)]
mod tests {
    #[test]
    fn targets_parse_by_name_and_an_unknown_one_lists_them_all() {
        use super::Target;
        assert_eq!(Target::from_opt(None).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("")).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("image")).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("lock")).unwrap(), Target::Lock);
        assert_eq!(
            Target::from_opt(Some("packages")).unwrap(),
            Target::Packages
        );
        assert_eq!(Target::from_opt(Some("sbom")).unwrap(), Target::Sbom);
        let err = Target::from_opt(Some("nope")).unwrap_err().to_string();
        assert!(
            err.starts_with("unknown target \"nope\" (targets: image: build the image"),
            "{err}"
        );
        assert!(
            err.contains("; lock: ") && err.contains("; packages: "),
            "{err}"
        );
    }
}

/// A fake LLBBridge in memory, for the protocol's edge cases; every
/// user-facing promise is also tested through a real engine in tests/e2e.
#[cfg(test)]
pub(super) mod fake {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap;
    use bollard_buildkit_proto::moby::buildkit::v1::frontend::Result as GwResult;
    use bollard_buildkit_proto::moby::buildkit::v1::frontend::llb_bridge_server::{
        LlbBridge, LlbBridgeServer,
    };
    use bollard_buildkit_proto::moby::buildkit::v1::frontend::*;
    use bollard_buildkit_proto::pb;
    use prost::Message;
    use std::result::Result;
    use tonic::{Request, Response, Status};

    use super::{connect_io, result, run_with};
    use crate::frontend::opts;

    pub const BASE: &str = "127.0.0.1:5000/repro/debian@sha256:4608019fc9f45c56ec80a55881d4dc90a637271afb41bc2aa7df7d218aacdf56";
    pub const DIGEST: &str =
        "sha256:4608019fc9f45c56ec80a55881d4dc90a637271afb41bc2aa7df7d218aacdf56";

    /// What the fake engine holds and what it saw.
    #[derive(Default)]
    pub struct State {
        pub files: HashMap<String, Vec<u8>>,
        pub llb_caps: Vec<String>,
        /// A Solve whose definition holds this text fails with this message.
        pub fail_solve: Option<(String, String)>,
        pub refs: HashMap<String, String>,
        pub returned: Option<ReturnRequest>,
        pub solved: Vec<pb::Definition>,
        /// The cache imports of each solve, in order.
        pub cache_imports: Vec<Vec<CacheOptionsEntry>>,
        /// When set, every reference resolves to this config (and to its
        /// own digest, or DIGEST for a tag).
        pub image_config: Option<Vec<u8>>,
        /// The worker's snapshotter label (`with_files` sets overlayfs).
        pub snapshotter: Option<String>,
    }

    #[derive(Clone, Default)]
    pub struct Fake(pub Arc<Mutex<State>>);

    fn unimplemented<T>() -> Result<Response<T>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    #[tonic::async_trait]
    impl LlbBridge for Fake {
        async fn resolve_image_config(
            &self,
            req: Request<ResolveImageConfigRequest>,
        ) -> Result<Response<ResolveImageConfigResponse>, Status> {
            let req = req.into_inner();
            let r = req.r#ref;
            if let Some(config) = self.0.lock().unwrap().image_config.clone() {
                let digest = r.split_once('@').map_or(DIGEST, |(_, d)| d).to_string();
                return Ok(Response::new(ResolveImageConfigResponse {
                    digest,
                    config,
                    r#ref: r,
                }));
            }
            if !r.starts_with("127.0.0.1:5000/repro/debian") {
                return Err(Status::not_found(format!("{r}: not found")));
            }
            // As Docker 20.10: a tag found in the local store has no digest.
            let local_tag = req.resolve_mode == "local" && !r.contains('@');
            // The base is an index: each platform has its own config.
            let arch = req.platform.map_or("amd64".to_string(), |p| p.architecture);
            Ok(Response::new(ResolveImageConfigResponse {
                digest: if local_tag { String::new() } else { DIGEST.into() },
                config: format!(r#"{{"architecture":"{arch}","os":"linux","created":"2024-01-01T00:00:00Z","config":{{"Env":["PATH=/usr/bin:/bin"]}}}}"#).into_bytes(),
                r#ref: r,
            }))
        }
        async fn resolve_source_meta(
            &self,
            _: Request<ResolveSourceMetaRequest>,
        ) -> Result<Response<ResolveSourceMetaResponse>, Status> {
            unimplemented()
        }
        async fn solve(
            &self,
            req: Request<SolveRequest>,
        ) -> Result<Response<SolveResponse>, Status> {
            let req = req.into_inner();
            let imports = req.cache_imports;
            let def = req.definition.unwrap_or_default();
            let text: String = def
                .def
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
            let mut st = self.0.lock().unwrap();
            if let Some((needle, msg)) = &st.fail_solve
                && text.contains(needle.as_str())
            {
                return Err(Status::unknown(msg.clone()));
            }
            st.solved.push(def);
            st.cache_imports.push(imports);
            let id = format!("ref-{}", st.solved.len());
            let local = if text.contains("local://dockerfile") {
                "dockerfile"
            } else {
                "context"
            };
            st.refs.insert(id.clone(), local.into());
            Ok(Response::new(SolveResponse {
                r#ref: String::new(),
                result: Some(GwResult {
                    result: Some(result::Result::Ref(Ref { id, def: None })),
                    ..Default::default()
                }),
            }))
        }
        async fn read_file(
            &self,
            req: Request<ReadFileRequest>,
        ) -> Result<Response<ReadFileResponse>, Status> {
            let req = req.into_inner();
            let st = self.0.lock().unwrap();
            let local = st.refs.get(&req.r#ref).cloned().unwrap_or_default();
            match st.files.get(&format!("{local}/{}", req.file_path)) {
                Some(data) => Ok(Response::new(ReadFileResponse { data: data.clone() })),
                None => Err(Status::not_found(format!(
                    "open {}: no such file or directory",
                    req.file_path
                ))),
            }
        }
        async fn read_dir(
            &self,
            _: Request<ReadDirRequest>,
        ) -> Result<Response<ReadDirResponse>, Status> {
            unimplemented()
        }
        async fn stat_file(
            &self,
            _: Request<StatFileRequest>,
        ) -> Result<Response<StatFileResponse>, Status> {
            unimplemented()
        }
        async fn evaluate(
            &self,
            _: Request<EvaluateRequest>,
        ) -> Result<Response<EvaluateResponse>, Status> {
            unimplemented()
        }
        async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PongResponse>, Status> {
            let cap = |id: &str| ApiCap {
                id: id.into(),
                enabled: true,
                ..Default::default()
            };
            let st = self.0.lock().unwrap();
            Ok(Response::new(PongResponse {
                frontend_api_caps: [
                    "solve.base",
                    "readfile",
                    "readdir",
                    "resolveimage",
                    "return",
                    "proto.refarray",
                    "reference.attestations",
                    "returnmap",
                ]
                .iter()
                .map(|c| cap(c))
                .collect(),
                llb_caps: st.llb_caps.iter().map(|c| cap(c)).collect(),
                workers: st
                    .snapshotter
                    .iter()
                    .map(
                        |s| bollard_buildkit_proto::moby::buildkit::v1::types::WorkerRecord {
                            id: "fake".into(),
                            labels: [(
                                "org.mobyproject.buildkit.worker.snapshotter".to_string(),
                                s.clone(),
                            )]
                            .into(),
                            ..Default::default()
                        },
                    )
                    .collect(),
            }))
        }
        async fn r#return(
            &self,
            req: Request<ReturnRequest>,
        ) -> Result<Response<ReturnResponse>, Status> {
            self.0.lock().unwrap().returned = Some(req.into_inner());
            Ok(Response::new(ReturnResponse {}))
        }
        async fn inputs(
            &self,
            _: Request<InputsRequest>,
        ) -> Result<Response<InputsResponse>, Status> {
            unimplemented()
        }
        async fn new_container(
            &self,
            _: Request<NewContainerRequest>,
        ) -> Result<Response<NewContainerResponse>, Status> {
            unimplemented()
        }
        async fn release_container(
            &self,
            _: Request<ReleaseContainerRequest>,
        ) -> Result<Response<ReleaseContainerResponse>, Status> {
            unimplemented()
        }
        type ExecProcessStream =
            tokio_stream::wrappers::ReceiverStream<Result<ExecMessage, Status>>;
        async fn exec_process(
            &self,
            _: Request<tonic::Streaming<ExecMessage>>,
        ) -> Result<Response<Self::ExecProcessStream>, Status> {
            unimplemented()
        }
        async fn read_file_container(
            &self,
            _: Request<ReadFileRequest>,
        ) -> Result<Response<ReadFileResponse>, Status> {
            unimplemented()
        }
        async fn read_dir_container(
            &self,
            _: Request<ReadDirRequest>,
        ) -> Result<Response<ReadDirResponse>, Status> {
            unimplemented()
        }
        async fn stat_file_container(
            &self,
            _: Request<StatFileRequest>,
        ) -> Result<Response<StatFileResponse>, Status> {
            unimplemented()
        }
        async fn warn(&self, _: Request<WarnRequest>) -> Result<Response<WarnResponse>, Status> {
            unimplemented()
        }
    }

    /// Every LLB cap the frontend may need.
    pub fn all_llb_caps() -> Vec<String> {
        crate::llb::ALL_CAPS.iter().map(|c| c.to_string()).collect()
    }

    /// Runs the frontend against the fake and returns what it sent to Return.
    pub async fn build(fake: Fake, opts: Vec<(&str, &str)>) -> ReturnRequest {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let server = fake.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(LlbBridgeServer::new(server))
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
                .await
        });
        let bridge = connect_io(client_io).await.expect("connect to the fake");
        let env = opts
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (format!("BUILDKIT_FRONTEND_OPT_{i}"), format!("{k}={v}")))
            .collect::<Vec<_>>();
        run_with(bridge, opts::from_env(env)).await.expect("return");
        let returned = fake.0.lock().unwrap().returned.take();
        returned.expect("the frontend called Return")
    }

    pub fn error_of(r: &ReturnRequest) -> String {
        r.error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default()
    }

    pub fn with_files(files: &[(&str, &str)]) -> Fake {
        let fake = Fake::default();
        {
            let mut st = fake.0.lock().unwrap();
            st.llb_caps = all_llb_caps();
            st.snapshotter = Some("overlayfs".into());
            // The base image's files are served under "context" too.
            st.files
                .insert("context//etc/os-release".into(), b"ID=debian\n".to_vec());
            for (k, v) in files {
                st.files.insert(k.to_string(), v.as_bytes().to_vec());
            }
        }
        fake
    }

    pub fn decode_ops(def: &pb::Definition) -> Vec<pb::Op> {
        def.def
            .iter()
            .map(|b| pb::Op::decode(b.as_slice()).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod bridge_tests {
    use super::fake::*;

    const SOURCE: (&str, &str) = ("source", "repro-frontend:v0");

    fn recipe(body: &str) -> String {
        format!("# syntax=repro-frontend:v0\nbase: {BASE}\n{body}")
    }

    #[tokio::test]
    async fn returns_the_image_with_its_config() {
        let r = recipe("image:\n  cmd: [hello]\n");
        let fake = with_files(&[("dockerfile/repro.yaml", &r)]);
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let result = ret.result.unwrap();
        let Some(super::result::Result::Ref(r)) = result.result else {
            panic!("no ref")
        };
        assert!(r.id.starts_with("ref-"));
        let config: serde_json::Value =
            serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
        assert_eq!(
            config["created"], "2024-01-01T00:00:00Z",
            "epoch defaults to the base's created time"
        );
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["hello"]));
        // The last solve is the image; its frontend image ref is qualified.
        let st = fake.0.lock().unwrap();
        let ops = decode_ops(st.solved.last().unwrap());
        let idents: Vec<String> = ops
            .iter()
            .filter_map(|o| match &o.op {
                Some(bollard_buildkit_proto::pb::op::Op::Source(s)) => Some(s.identifier.clone()),
                _ => None,
            })
            .collect();
        assert!(
            idents.contains(&"docker-image://docker.io/library/repro-frontend:v0".to_string()),
            "{idents:?}"
        );
        assert!(
            idents.contains(&format!("docker-image://{BASE}")),
            "{idents:?}"
        );
    }

    #[tokio::test]
    async fn recipe_errors_come_back_as_the_returned_status() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe("stesp: []\n"))]);
        let ret = build(fake, vec![SOURCE]).await;
        assert!(ret.result.is_none());
        assert!(
            error_of(&ret).starts_with("repro.yaml:3:1: unknown key \"stesp\""),
            "{}",
            error_of(&ret)
        );
    }

    #[tokio::test]
    async fn the_filename_opt_names_the_recipe() {
        let fake = with_files(&[("dockerfile/other.yaml", "base: x\nnope: 1\n")]);
        let ret = build(fake, vec![SOURCE, ("filename", "other.yaml")]).await;
        assert!(
            error_of(&ret).starts_with("other.yaml:2:1:"),
            "{}",
            error_of(&ret)
        );
    }

    #[tokio::test]
    async fn a_missing_recipe_is_reported_by_name() {
        let ret = build(with_files(&[]), vec![SOURCE]).await;
        assert!(
            error_of(&ret).contains("cannot read the recipe repro.yaml"),
            "{}",
            error_of(&ret)
        );
    }

    #[tokio::test]
    async fn an_unpinned_base_gets_the_digest_to_paste() {
        let r = "base: 127.0.0.1:5000/repro/debian:bookworm\n";
        let ret = build(with_files(&[("dockerfile/repro.yaml", r)]), vec![SOURCE]).await;
        let want = format!("127.0.0.1:5000/repro/debian:bookworm@{DIGEST}");
        assert!(error_of(&ret).contains(&want), "{}", error_of(&ret));
        // Docker 20.10 resolves from its local store without a digest; the
        // frontend asks the registry for the digest to paste.
        let ret = build(
            with_files(&[("dockerfile/repro.yaml", r)]),
            vec![SOURCE, ("image-resolve-mode", "local")],
        )
        .await;
        assert!(error_of(&ret).contains(&want), "{}", error_of(&ret));
        // With the opt-out the build goes on, pinned to what was resolved.
        let r = "base: 127.0.0.1:5000/repro/debian:bookworm\nallow-unpinned-base: true\n";
        let fake = with_files(&[("dockerfile/repro.yaml", r)]);
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let st = fake.0.lock().unwrap();
        let def = st.solved.last().unwrap();
        let names: String = def
            .metadata
            .values()
            .filter_map(|m| m.description.get("llb.customname").cloned())
            .collect();
        assert!(names.contains("WARNING"), "{names}");
    }

    #[tokio::test]
    async fn without_providers_the_base_images_sources_are_used() {
        let sums = format!(
            "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
            "a".repeat(64)
        );
        let r = recipe("packages:\n  sums: SHA256SUMS\n");
        let fake = with_files(&[
            ("dockerfile/repro.yaml", &r),
            ("context/SHA256SUMS", &sums),
            // The fake serves the base image's files under "context".
            (
                "context//etc/apt/sources.list",
                "deb http://m.example/debian bookworm main\n",
            ),
        ]);
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let st = fake.0.lock().unwrap();
        let ops = decode_ops(st.solved.last().unwrap());
        assert!(ops.iter().any(|o| matches!(&o.op,
            Some(bollard_buildkit_proto::pb::op::Op::Source(s))
                if s.identifier == "http://m.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb")));
    }

    /// A recipe with one http provider and a lockfile of hello.
    fn hello_with_a_provider() -> Fake {
        let sums = format!(
            "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
            "a".repeat(64)
        );
        let r = recipe(
            "packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/{{.Name}}\"]\n",
        );
        with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)])
    }

    #[tokio::test]
    async fn the_packages_target_returns_the_verified_blobs_without_an_image() {
        let fake = hello_with_a_provider();
        let ret = build(fake.clone(), vec![SOURCE, ("target", "packages")]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let result = ret.result.unwrap();
        assert!(!result.metadata.contains_key("containerimage.config"));
        let st = fake.0.lock().unwrap();
        let ops = decode_ops(st.solved.last().unwrap());
        let http = ops.iter().find_map(|o| match &o.op {
            Some(bollard_buildkit_proto::pb::op::Op::Source(s))
                if s.identifier.starts_with("http") =>
            {
                Some(s.clone())
            }
            _ => None,
        });
        let http = http.expect("an http source");
        assert_eq!(
            http.attrs["http.checksum"],
            format!("sha256:{}", "a".repeat(64))
        );
        assert!(
            !ops.iter()
                .any(|o| matches!(&o.op, Some(bollard_buildkit_proto::pb::op::Op::Exec(_)))),
            "the packages target installs nothing"
        );
    }

    #[tokio::test]
    async fn the_packages_target_without_packages_is_an_error() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        let ret = build(fake, vec![SOURCE, ("target", "packages")]).await;
        assert_eq!(
            error_of(&ret),
            "repro.yaml: the packages target needs packages in the recipe and the lockfile"
        );
    }

    #[tokio::test]
    async fn without_providers_or_sources_the_error_says_what_to_add() {
        let sums = format!(
            "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
            "a".repeat(64)
        );
        let r = recipe("packages:\n  sums: SHA256SUMS\n");
        let fake = with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]);
        let ret = build(fake, vec![SOURCE]).await;
        assert!(
            error_of(&ret).contains("repro.yaml:4:9: packages has no providers"),
            "{}",
            error_of(&ret)
        );
    }

    #[tokio::test]
    async fn the_install_tool_follows_the_base_images_os_release() {
        let sums = format!("{}  v3.16/main/x86_64/bash-5.1.16-r2.apk\n", "a".repeat(64));
        let r = recipe(
            "packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/alpine/{{.Name}}\"]\n",
        );
        let fake = with_files(&[
            ("dockerfile/repro.yaml", &r),
            ("context/SHA256SUMS", &sums),
            (
                "context//etc/os-release",
                "NAME=\"Alpine Linux\"\nID=alpine\n",
            ),
        ]);
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let st = fake.0.lock().unwrap();
        let ops = decode_ops(st.solved.last().unwrap());
        let install = ops
            .iter()
            .find_map(|o| match &o.op {
                Some(bollard_buildkit_proto::pb::op::Op::Exec(e))
                    if e.meta
                        .as_ref()
                        .unwrap()
                        .args
                        .get(1)
                        .is_some_and(|a| a == "install") =>
                {
                    Some(e.clone())
                }
                _ => None,
            })
            .expect("an apk install");
        assert_eq!(
            install.meta.unwrap().args,
            [
                "/tmp/repro-tool/repro-frontend",
                "install",
                "--tool",
                "apk",
                "/tmp/repro-packages"
            ]
        );
    }

    #[tokio::test]
    async fn a_package_the_tool_cannot_install_is_refused_with_its_line() {
        let sums = format!(
            "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
            "a".repeat(64)
        );
        let r = recipe(
            "packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/{{.Name}}\"]\n",
        );
        let fake = with_files(&[
            ("dockerfile/repro.yaml", &r),
            ("context/SHA256SUMS", &sums),
            ("context//etc/os-release", "ID=fedora\n"),
        ]);
        let ret = build(fake, vec![SOURCE]).await;
        assert!(error_of(&ret).starts_with("SHA256SUMS:1:67: cannot install \"pool/main/h/hello/hello_2.10-3_amd64.deb\" with rpm"), "{}", error_of(&ret));
    }

    #[tokio::test]
    async fn the_targets_subrequest_lists_image_lock_and_packages() {
        let fake = with_files(&[]);
        let ret = build(fake, vec![SOURCE, ("requestid", "frontend.targets")]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let meta = ret.result.unwrap().metadata;
        let list: serde_json::Value = serde_json::from_slice(&meta["result.json"]).unwrap();
        let names: Vec<&str> = list["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["image", "lock", "packages", "sbom", "verify"]);
        assert_eq!(list["targets"][0]["default"], true);
        let txt = String::from_utf8(meta["result.txt"].clone()).unwrap();
        assert!(txt.contains("lock\twrite the lockfile"), "{txt}");
        assert!(txt.contains("verify\trebuild and compare"), "{txt}");
        let fake = with_files(&[]);
        let ret = build(
            fake,
            vec![SOURCE, ("requestid", "frontend.subrequests.describe")],
        )
        .await;
        let meta = ret.result.unwrap().metadata;
        let list: serde_json::Value = serde_json::from_slice(&meta["result.json"]).unwrap();
        assert_eq!(list[1]["name"], "frontend.targets");
        let ret = build(
            with_files(&[]),
            vec![SOURCE, ("requestid", "frontend.lint")],
        )
        .await;
        assert!(error_of(&ret).contains("unsupported subrequest \"frontend.lint\""));
    }

    #[tokio::test]
    async fn an_sbom_attestation_only_when_asked() {
        let plain = build(hello_with_a_provider(), vec![SOURCE]).await;
        let plain = plain.result.unwrap();
        assert!(plain.attestations.is_empty());
        let ret = build(hello_with_a_provider(), vec![SOURCE, ("attest:sbom", "")]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let result = ret.result.unwrap();
        // The image is returned as without the opt.
        assert_eq!(result.result, plain.result);
        assert_eq!(result.metadata, plain.metadata);
        let atts = &result.attestations["linux/amd64"].attestation;
        assert_eq!(atts.len(), 1);
        let a = &atts[0];
        assert_eq!(a.kind, super::AttestationKind::InToto as i32);
        assert_eq!(a.path, "/sbom.spdx.json");
        assert_eq!(a.in_toto_predicate_type, "https://spdx.dev/Document");
        assert_eq!(a.in_toto_subjects.len(), 1);
        assert_eq!(
            a.in_toto_subjects[0].kind,
            super::InTotoSubjectKind::Self_ as i32
        );
        let sbom_def = a.r#ref.as_ref().unwrap().def.as_ref().unwrap();
        let ops = decode_ops(sbom_def);
        assert!(ops.iter().any(|o| matches!(&o.op,
            Some(bollard_buildkit_proto::pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args[1] == "sbom")));
    }

    // An imported cache (buildctl --import-cache, buildx --cache-from) was
    // never consulted: the solves did not carry it, so every op ran again.
    #[tokio::test]
    async fn every_solve_carries_the_clients_cache_imports() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        let imports = r#"[{"Type":"registry","Attrs":{"ref":"127.0.0.1:5000/cache:hello"}}]"#;
        let ret = build(fake.clone(), vec![SOURCE, ("cache-imports", imports)]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        let st = fake.0.lock().unwrap();
        assert!(st.cache_imports.len() >= 2, "{}", st.cache_imports.len());
        for imports in &st.cache_imports {
            assert_eq!(imports.len(), 1);
            assert_eq!(imports[0].r#type, "registry");
            assert_eq!(imports[0].attrs["ref"], "127.0.0.1:5000/cache:hello");
        }
    }

    #[tokio::test]
    async fn no_cache_marks_every_solved_op() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        let ret = build(fake.clone(), vec![SOURCE, ("no-cache", "")]).await;
        assert!(ret.error.is_none(), "{}", error_of(&ret));
        {
            let st = fake.0.lock().unwrap();
            let image = st.solved.last().unwrap();
            assert!(!image.metadata.is_empty());
            assert!(image.metadata.values().all(|m| m.ignore_cache));
        }
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.error.is_none());
        let st = fake.0.lock().unwrap();
        assert!(
            st.solved
                .last()
                .unwrap()
                .metadata
                .values()
                .all(|m| !m.ignore_cache)
        );
    }

    #[tokio::test]
    async fn a_missing_llb_cap_fails_early_and_names_it() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        fake.0
            .lock()
            .unwrap()
            .llb_caps
            .retain(|c| c != "exec.meta.network");
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(
            error_of(&ret).contains("exec.meta.network"),
            "{}",
            error_of(&ret)
        );
        assert_eq!(
            fake.0.lock().unwrap().solved.len(),
            1,
            "only the recipe was loaded"
        );
    }

    #[tokio::test]
    async fn a_failed_solve_comes_back_as_the_returned_status() {
        let sums = format!(
            "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
            "a".repeat(64)
        );
        let r = recipe(
            "packages:\n  sums: SHA256SUMS\n  providers: [\"http://127.0.0.1:9/{{.Name}}\"]\n",
        );
        let fake = with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]);
        let msg = format!(
            "digest mismatch sha256:{}: sha256:{}",
            "b".repeat(64),
            "a".repeat(64)
        );
        fake.0.lock().unwrap().fail_solve = Some(("http://127.0.0.1:9/".into(), msg.clone()));
        let ret = build(fake.clone(), vec![SOURCE]).await;
        assert!(ret.result.is_none());
        assert_eq!(error_of(&ret), msg);
    }

    #[tokio::test]
    async fn a_lockfile_error_names_the_lockfile_line() {
        let r = recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m/{{.Name}}\"]\n");
        let sums = format!("# x\n{}  ../etc/passwd\n", "a".repeat(64));
        let ret = build(
            with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]),
            vec![SOURCE],
        )
        .await;
        assert!(
            error_of(&ret).starts_with("SHA256SUMS:2:67: name \"../etc/passwd\""),
            "{}",
            error_of(&ret)
        );
    }

    #[tokio::test]
    async fn source_date_epoch_wins_and_a_bad_one_is_an_error() {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe("epoch: 5\n"))]);
        let ret = build(fake, vec![SOURCE, ("build-arg:SOURCE_DATE_EPOCH", "86400")]).await;
        let config: serde_json::Value =
            serde_json::from_slice(&ret.result.unwrap().metadata["containerimage.config"]).unwrap();
        assert_eq!(config["created"], "1970-01-02T00:00:00Z");
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
        let ret = build(
            fake,
            vec![SOURCE, ("build-arg:SOURCE_DATE_EPOCH", "yesterday")],
        )
        .await;
        assert!(
            error_of(&ret).contains("SOURCE_DATE_EPOCH=\"yesterday\""),
            "{}",
            error_of(&ret)
        );
    }
}
