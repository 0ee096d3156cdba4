//! One build, from the client's options to the parts to return: the
//! platforms to build, each platform's inputs read through the gateway,
//! converted and solved (the verify target's report read back, the SBOM
//! attestation solved when asked for), and the lock target's lockfiles for
//! several platforms side by side. Does I/O through the LLBBridge client.

use anyhow::{Result, anyhow, bail};

use super::client::{
    Bridge, CAP_ATTESTATIONS, CAP_READ_FILE, CAP_RESOLVE_IMAGE, CAP_RETURN_MAP, CAP_RETURN_RESULT,
    CAP_SOLVE_BASE, ImageRef,
};
use super::inputs::Gateway;
use super::pin;
use super::result::{AttestationRef, Built, Part};
use crate::convert::Platform;
use crate::convert::verify::OnDiff;
use crate::frontend::inputs::{self, Prepared, Request};
use crate::frontend::opts::{FrontendOpts, Target};
use crate::llb::{self, State};
use crate::located::Located;

/// Builds what the options ask for, every platform of it.
pub(super) async fn build(bridge: &mut Bridge, opts: &FrontendOpts) -> Result<Built> {
    for (cap, what) in [
        (CAP_SOLVE_BASE, "solve LLB"),
        (CAP_READ_FILE, "read the recipe"),
        (CAP_RESOLVE_IMAGE, "resolve the base image"),
        (CAP_RETURN_RESULT, "return the image"),
    ] {
        bridge.require_api(cap, what)?;
    }
    let target = opts.target;
    let platforms = target_platforms(opts, bridge);
    let frontend = pin_frontend(bridge, opts).await?;
    let opts = &FrontendOpts {
        source: Some(frontend.reference().to_string()),
        frontend_local: frontend.local().cloned(),
        ..opts.clone()
    };
    if platforms.len() == 1 {
        let mut parts = vec![build_platform(bridge, opts, &platforms[0]).await?];
        read_secrets(bridge, &mut parts).await?;
        return Ok(Built {
            parts,
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
    if target == Target::Image && bridge.worker_snapshotter().is_none() {
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
    read_secrets(bridge, &mut parts).await?;
    Ok(Built { parts, multi: true })
}

/// Reads each image part's record of the private keys and identities its
/// build made into its manifest annotations. Reading builds the image, so
/// the parts are read at once and BuildKit builds the platforms together.
/// A read that fails (a step of the build failed) leaves the part without
/// annotations: the exporter then solves the image itself and fails with
/// the engine's own error, the recipe lines of the failing step attached,
/// as it does for a build with nothing to read.
async fn read_secrets(bridge: &Bridge, parts: &mut [Part]) -> Result<()> {
    let mut reads = tokio::task::JoinSet::new();
    for (n, part) in parts.iter().enumerate() {
        if let Some(id) = &part.secrets {
            let read = bridge
                .reader()
                .read_optional(id.clone(), crate::convert::SECRETS_RECORD.to_string());
            reads.spawn(async move { (n, read.await) });
        }
    }
    while let Some(done) = reads.join_next().await {
        let (n, read) = done.map_err(|e| anyhow!("reading the record of removed keys: {e}"))?;
        match read {
            Ok(Some(record)) => {
                parts[n].annotations = super::result::secrets_annotations(&record)?;
            }
            Ok(None) => {}
            // The daemon's log only: the user sees the engine's error when
            // the exporter solves the same image.
            Err(e) => eprintln!("repro-frontend: the record of removed keys was not read: {e:#}"),
        }
    }
    Ok(())
}

/// The frontend's own image by digest, once for the whole build: every
/// platform's helper execs run it (see `pin`).
async fn pin_frontend(bridge: &mut Bridge, opts: &FrontendOpts) -> Result<pin::Pinned> {
    let source = opts.source.as_deref().ok_or_else(|| {
        anyhow!("the \"source\" opt (this frontend's own image) is missing; BuildKit sets it when the frontend runs as an image")
    })?;
    let metadata = std::fs::read(pin::FRONTEND_METADATA).ok();
    let platform = bridge.worker_platform().cloned().unwrap_or(Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    });
    let pinned = pin::pin(
        bridge,
        source,
        metadata.as_deref(),
        &platform,
        opts.session_id.as_deref(),
    )
    .await?;
    eprintln!("repro-frontend: helper steps run {pinned:?}");
    Ok(pinned)
}

/// The platforms to build: those asked for, else the worker's own.
fn target_platforms(opts: &FrontendOpts, bridge: &Bridge) -> Vec<Platform> {
    if !opts.platforms.is_empty() {
        return opts.platforms.clone();
    }
    vec![bridge.worker_platform().cloned().unwrap_or(Platform {
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
    let req = request(opts, bridge.worker(), platform)?;
    // The verify target's image is checked before anything is solved.
    let published = match req.target {
        Target::Verify => Some((
            crate::convert::verify::published_ref(&req.build_args)?,
            crate::convert::verify::on_diff(&req.build_args)?,
        )),
        _ => None,
    };
    let prepared = inputs::prepare(&mut Gateway::new(bridge, opts), &req).await?;
    let out = match published.clone() {
        Some((reference, _)) => {
            let image = ImageRef {
                reference: &reference,
                platform: &req.platform,
                mode: req.resolve_mode,
            };
            let (_, config) = bridge
                .resolve_named("published image", &image, opts.session_id.as_deref())
                .await?;
            let manifest = bridge.image_manifest(&image).await;
            prepared.verify(&crate::convert::verify::Published {
                reference,
                config,
                manifest,
                time: crate::convert::verify::verify_time(&req.build_args)?,
            })?
        }
        None => prepared.convert()?,
    };
    // The caps are read off what is sent, `--no-cache`'s metadata included.
    let def = out.definition(opts.no_cache);
    let id = bridge.solve_checked(&def).await?;
    bridge.note_image_solved();
    if let Some((_, OnDiff::Fail)) = published {
        fail_on_report(bridge, &id).await?;
    }
    let sbom = match opts.attest_sbom && prepared.target == Target::Image {
        true => Some(solve_sbom(bridge, &prepared, &req.platform, opts.no_cache).await?),
        false => None,
    };
    let provenance = match opts.provenance && prepared.target == Target::Image {
        true => Some(solve_provenance(bridge, &prepared, &req.platform, opts.no_cache).await?),
        false => None,
    };
    // The record is in the image: reading it reads what the exporter
    // exports, and a cache that brings the image back brings it too.
    let secrets = match (out.secrets, prepared.target) {
        (true, Target::Image) => Some(id.clone()),
        _ => None,
    };
    Ok(Part {
        platform: platform.clone(),
        id,
        def,
        config: out.config,
        sbom,
        provenance,
        secrets,
        annotations: Vec::new(),
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
        let req = request(opts, bridge.worker(), platform)?;
        let prepared = inputs::prepare(&mut Gateway::new(bridge, opts), &req).await?;
        let (_, file, sums) = crate::convert::lock_file(&prepared.recipe)?;
        if let Some((other, _)) = names.iter().find(|(_, f)| *f == file) {
            return Err(Located::new(
                &prepared.recipe.file,
                (sums.line, sums.col),
                format_args!(
                    "packages.sums names the same lockfile \"{file}\" for {other} and {}; put ${{TARGETARCH}} in it (SHA256SUMS-${{TARGETARCH}}) so each platform has its own",
                    platform.key()
                ),
            )
            .into());
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
        provenance: None,
        secrets: None,
        annotations: Vec::new(),
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
    prepared: &Prepared,
    platform: &Platform,
    no_cache: bool,
) -> Result<AttestationRef> {
    bridge.require_api(CAP_ATTESTATIONS, "return an SBOM attestation (--sbom=true)")?;
    solve_attestation(bridge, prepared.sbom()?, platform, no_cache).await
}

/// Solves the image's SLSA provenance for its attestation.
async fn solve_provenance(
    bridge: &mut Bridge,
    prepared: &Prepared,
    platform: &Platform,
    no_cache: bool,
) -> Result<AttestationRef> {
    bridge.require_api(
        CAP_ATTESTATIONS,
        &format!(
            "return the provenance attestation (--build-arg {}=1)",
            crate::convert::provenance::ARG
        ),
    )?;
    solve_attestation(bridge, prepared.provenance()?, platform, no_cache).await
}

async fn solve_attestation(
    bridge: &mut Bridge,
    state: llb::State,
    platform: &Platform,
    no_cache: bool,
) -> Result<AttestationRef> {
    let def = state.marshal_with(llb::Constraints {
        ignore_cache: no_cache,
    });
    let id = bridge.solve_checked(&def).await?;
    Ok(AttestationRef {
        key: platform.key(),
        id,
        def,
    })
}

/// What the client asked for, for one platform, as the input pipeline takes
/// it, with what the engine says of itself (its first worker's snapshotter,
/// and whether a mount can be left out of content hashing).
fn request(
    opts: &FrontendOpts,
    (snapshotter, skip_content_hash): (Option<&str>, bool),
    platform: &Platform,
) -> Result<Request> {
    let frontend_image = opts.source.clone().ok_or_else(|| {
        anyhow!("the \"source\" opt (this frontend's own image) is missing; BuildKit sets it when the frontend runs as an image")
    })?;
    Ok(Request {
        target: opts.target,
        filename: opts.filename.clone(),
        build_args: opts.build_args.clone(),
        platform: platform.clone(),
        frontend_image,
        frontend_local: opts.frontend_local.clone(),
        resolve_mode: opts.resolve_mode,
        context_name: opts.context_key.clone(),
        session_id: opts.session_id.clone(),
        network: opts.network,
        snapshotter: snapshotter.map(str::to_string),
        skip_content_hash,
    })
}
