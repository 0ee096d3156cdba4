//! Gateway mode: talk to BuildKit's LLBBridge over stdin/stdout and run one build.
//!
//! BuildKit starts the frontend image's entrypoint with stdin/stdout joined as
//! one gRPC connection (cleartext HTTP/2). The flow is: Ping (caps) -> read
//! the recipe from the `dockerfile` local -> resolve the base image -> read the
//! lockfile from the `context` local -> convert -> fetch every blob (so a bad
//! one is reported by name before anything is installed) -> solve -> Return.
//! Every failure goes back through Return as a gRPC status, so the user reads
//! it in the `docker build` output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use anyhow::{Context as _, Result, anyhow, bail};
use bollard_buildkit_proto::google::rpc::Status;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    PingRequest, ReadFileRequest, ResolveImageConfigRequest, Result as GwResult, ReturnRequest,
    SolveRequest, llb_bridge_client::LlbBridgeClient, result,
};
use bollard_buildkit_proto::pb;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::convert::{self, Platform};
use crate::image::BaseConfig;
use crate::llb::{self, LocalOpts, State};
use crate::lockfile;
use crate::opts::FrontendOpts;
use crate::recipe;
use crate::reference;

/// Frontend API caps we rely on.
const CAP_SOLVE_BASE: &str = "solve.base";
const CAP_READ_FILE: &str = "readfile";
const CAP_RESOLVE_IMAGE: &str = "resolveimage";
const CAP_RETURN_RESULT: &str = "return";
const CAP_PROTO_REF_ARRAY: &str = "proto.refarray";

/// A connected LLBBridge client and what the engine said it can do.
pub struct Bridge {
    client: LlbBridgeClient<Channel>,
    llb_caps: BTreeSet<String>,
    api_caps: BTreeSet<String>,
    worker_platform: Option<Platform>,
}

/// Connects to BuildKit over this process's stdin and stdout and pings it.
pub async fn connect() -> Result<Bridge> {
    let io = Mutex::new(Some(tokio::io::join(
        tokio::io::stdin(),
        tokio::io::stdout(),
    )));
    // The URI is a placeholder: the connector below hands out stdio, once.
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let taken = io.lock().ok().and_then(|mut slot| slot.take());
            async move {
                taken.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::other("the stdio connection to BuildKit was already used")
                })
            }
        }))
        .await
        .context("cannot open the gRPC connection to BuildKit on stdin/stdout")?;
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
    Ok(Bridge {
        llb_caps: enabled(&pong.llb_caps),
        api_caps: enabled(&pong.frontend_api_caps),
        client,
        worker_platform,
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

    /// Reads one file from a client local (the recipe or the lockfile).
    async fn read_local(
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
        self.read_file(&id, path).await
    }

    async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
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
                resolve_mode: opts.resolve_mode.as_str().to_string(),
                log_name: format!("resolve base image {reference}"),
                session_id: opts.session_id.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("cannot resolve base image \"{reference}\": {}", s.message()))?
            .into_inner();
        Ok((resp.digest, resp.config))
    }

    async fn return_result(
        &mut self,
        result: Result<(String, pb::Definition, Vec<u8>)>,
    ) -> Result<()> {
        let req = match result {
            Ok((id, def, config)) => {
                let r = if self.api_caps.contains(CAP_PROTO_REF_ARRAY) {
                    result::Result::Ref(bollard_buildkit_proto::moby::buildkit::v1::frontend::Ref {
                        id,
                        def: Some(def),
                    })
                } else {
                    result::Result::RefDeprecated(id)
                };
                let mut metadata = std::collections::HashMap::new();
                metadata.insert("containerimage.config".to_string(), config);
                ReturnRequest {
                    result: Some(GwResult {
                        result: Some(r),
                        metadata,
                        ..Default::default()
                    }),
                    error: None,
                }
            }
            Err(e) => ReturnRequest {
                result: None,
                error: Some(Status {
                    // UNKNOWN: BuildKit shows the message as is.
                    code: 2,
                    message: format!("{e:#}"),
                    details: Vec::new(),
                }),
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
pub async fn run(opts: Result<FrontendOpts, String>) -> Result<()> {
    let mut bridge = connect().await?;
    let outcome = match opts {
        Ok(opts) => build(&mut bridge, &opts).await,
        Err(e) => Err(anyhow!(e)),
    };
    bridge.return_result(outcome).await
}

async fn build(
    bridge: &mut Bridge,
    opts: &FrontendOpts,
) -> Result<(String, pb::Definition, Vec<u8>)> {
    for (cap, what) in [
        (CAP_SOLVE_BASE, "solve LLB"),
        (CAP_READ_FILE, "read the recipe"),
        (CAP_RESOLVE_IMAGE, "resolve the base image"),
        (CAP_RETURN_RESULT, "return the image"),
    ] {
        bridge.require_api(cap, what)?;
    }
    if let Some(target) = &opts.target {
        bail!("unknown target \"{target}\": this recipe has only the default image target");
    }

    let text = bridge
        .read_local(
            &opts.dockerfile_key,
            &opts.filename,
            opts,
            &format!("load recipe {}", opts.filename),
        )
        .await
        .map_err(|s| anyhow!("cannot read the recipe {}: {}", opts.filename, s.message()))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow!("{}: the recipe is not UTF-8 text", opts.filename))?;
    let parsed = recipe::parse(&opts.filename, &text)?;

    let platform = opts
        .platform
        .clone()
        .or_else(|| bridge.worker_platform.clone())
        .unwrap_or(Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        });
    let predefined = platform.target_args();
    let args = parsed.arg_values(&opts.build_args, &predefined)?;
    let recipe = parsed.expand(&args)?;

    // The base image: pinned by digest, or refused with the digest to paste.
    let base_text = reference::normalize(&recipe.base.value).map_err(|e| {
        anyhow!(
            "{}:{}:{}: {e}",
            recipe.file,
            recipe.base.span.line,
            recipe.base.span.col
        )
    })?;
    let pinned = has_digest(&base_text);
    let (digest, config_bytes) = bridge.resolve_image(&base_text, &platform, opts).await?;
    let (base_ref, base_note) = if pinned {
        (base_text.clone(), None)
    } else if recipe.allow_unpinned_base {
        (
            format!("{base_text}@{digest}"),
            Some(format!(
                "WARNING: \"{base_text}\" is not pinned by digest, so this build is not reproducible"
            )),
        )
    } else {
        bail!(
            "{}:{}:{}: base image \"{base_text}\" is not pinned by digest; the engine resolved it to {base_text}@{digest} (paste that into base:, or set allow-unpinned-base: true for experiments)",
            recipe.file,
            recipe.base.span.line,
            recipe.base.span.col
        );
    };
    let base =
        BaseConfig::parse(&config_bytes).with_context(|| format!("base image {base_ref}"))?;

    let epoch = convert::choose_epoch(
        opts.build_args.get("SOURCE_DATE_EPOCH").map(String::as_str),
        &recipe,
        base.created,
    )
    .map_err(|e| anyhow!(e))?;

    let (lock, sums_file) =
        match &recipe.packages {
            Some(p) => {
                let path = p.sums.value.trim_start_matches("./").to_string();
                let bytes = bridge
                .read_local(&opts.context_key, &path, opts, &format!("load lockfile {path}"))
                .await
                .map_err(|s| {
                    anyhow!(
                        "{}:{}:{}: cannot read the lockfile \"{path}\" from the build context: {}",
                        recipe.file,
                        p.sums.span.line,
                        p.sums.span.col,
                        s.message()
                    )
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{path}: the lockfile is not UTF-8 text"))?;
                let lock = lockfile::parse(&text).map_err(|e| anyhow!("{path}:{e}"))?;
                (lock, path)
            }
            None => (lockfile::Lockfile::default(), String::new()),
        };

    let frontend_image = opts.source.as_deref().ok_or_else(|| {
        anyhow!("the \"source\" opt (this frontend's own image) is missing; BuildKit sets it when the frontend runs as an image")
    })?;
    let frontend_image = reference::normalize(frontend_image)?;
    let converted = convert::to_llb(
        &recipe,
        &lock,
        &convert::Opts {
            base_ref: base_ref.clone(),
            base,
            epoch,
            args,
            platform,
            frontend_image,
            resolve_mode: opts.resolve_mode,
            context_name: opts.context_key.clone(),
            context: LocalOpts {
                session_id: opts.session_id.clone(),
                include_patterns: Vec::new(),
                shared_key_hint: Some(opts.context_key.clone()),
            },
            sums_file,
            base_note,
        },
    )?;
    check_llb_caps(&bridge.llb_caps, &converted.state)?;

    fetch_all(bridge, &converted.fetches).await?;

    let def = converted.state.marshal();
    let id = bridge
        .solve(def.clone())
        .await
        .map_err(|s| anyhow!("{}", s.message()))?;
    Ok((id, def, converted.config))
}

/// `name@sha256:<64 hex>`.
fn has_digest(reference: &str) -> bool {
    reference
        .rsplit_once("@sha256:")
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_llb_caps(have: &BTreeSet<String>, state: &State) -> Result<()> {
    let missing: Vec<&str> = state
        .caps()
        .into_iter()
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

/// Solves every blob's HTTP source on its own, all at once, so that a blob
/// that cannot be fetched or does not match its sha256 is reported with its
/// package name and URL, and nothing is installed. The main solve then finds
/// them in BuildKit's cache by digest.
async fn fetch_all(bridge: &mut Bridge, fetches: &[convert::Fetch]) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, f) in fetches.iter().enumerate() {
        let mut client = bridge.client.clone();
        let def = f.state.marshal();
        let array = bridge.api_caps.contains(CAP_PROTO_REF_ARRAY);
        tasks.spawn(async move {
            let r = client
                .solve(SolveRequest {
                    definition: Some(def),
                    allow_result_return: true,
                    allow_result_array_ref: array,
                    ..Default::default()
                })
                .await;
            (i, r.err())
        });
    }
    let mut failures: BTreeMap<usize, tonic::Status> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, err) = joined.context("a fetch task failed")?;
        if let Some(status) = err {
            failures.insert(i, status);
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failures
        .iter()
        .map(|(i, status)| {
            let f = &fetches[*i];
            let msg = status.message();
            if msg.contains("digest mismatch") || msg.contains("checksum") {
                format!(
                    "package {} (lockfile line {}): the bytes served by {} do not match the lockfile; expected {}, BuildKit says: {msg}",
                    f.entry.name,
                    f.entry.line,
                    f.url,
                    f.entry.digest()
                )
            } else {
                format!(
                    "package {} (lockfile line {}): cannot fetch {}: {msg}",
                    f.entry.name, f.entry.line, f.url
                )
            }
        })
        .collect();
    bail!(
        "{} of {} package(s) could not be fetched and verified; nothing was installed:\n{}",
        failures.len(),
        fetches.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_recognised() {
        let hex = "a".repeat(64);
        assert!(has_digest(&format!("127.0.0.1:5000/x/y@sha256:{hex}")));
        assert!(has_digest(&format!("debian:bookworm@sha256:{hex}")));
        assert!(!has_digest("debian:bookworm"));
        assert!(!has_digest("debian@sha256:abc"));
    }
}
