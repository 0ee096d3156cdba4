//! Gateway mode: talk to BuildKit's LLBBridge over stdin/stdout and run one
//! build. Does I/O (the gRPC connection; the daemon's log on stderr).
//!
//! BuildKit starts the frontend image's entrypoint with stdin/stdout joined as
//! one gRPC connection (cleartext HTTP/2). The flow goes one way: Ping (caps)
//! -> the options, parsed once by the caller -> for each platform, the inputs
//! read through the `Inputs` trait (the recipe from the `dockerfile` local,
//! the base image resolved, the lockfiles from the `context` local, the
//! base's os-release and package sources when the recipe leaves them out) ->
//! convert -> solve (lazily: the engine builds when it exports) -> Return.
//! Every failure goes back through Return as a gRPC status, so the user reads
//! it in the `docker build` output.
//!
//! - `client`: the connection and the raw LLBBridge calls;
//! - `inputs`: the `Inputs` trait read through the client;
//! - `build`: one build's orchestration, platform by platform;
//! - `pin`: the frontend's own image, by the digest it was started from;
//! - `result`: the Result, attestations and subrequest answers (pure).

mod build;
mod client;
mod inputs;
mod pin;
mod result;

#[cfg(test)]
pub(super) mod fake;
#[cfg(test)]
mod tests;

use anyhow::{Context as _, Result, anyhow};

pub use client::{Bridge, connect, connect_io};
pub use result::subrequest;

use crate::frontend::opts::{FrontendOpts, OptsError};

/// Runs one build as a gateway frontend and returns its outcome to BuildKit.
/// The daemon's log gets one line with the time from start to the answered
/// Return and the peak memory (`bench/run` reads it).
pub async fn run(opts: Result<FrontendOpts, OptsError>) -> Result<()> {
    let started = std::time::Instant::now();
    let bridge = connect().await?;
    let (outcome, solved) = run_with(bridge, opts).await;
    if outcome.is_ok() {
        let solved = solved
            .map(|(at, trips)| {
                format!(
                    "; the image's definition went out after {:.1} ms and {trips} round trips",
                    at.duration_since(started).as_secs_f64() * 1000.0
                )
            })
            .unwrap_or_default();
        eprintln!(
            "repro-frontend: returned after {:.1} ms, peak RSS {} KB{solved}",
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

/// Runs one build on a connected bridge: a subrequest is answered, anything
/// else built; either way the answer goes back through Return. Also gives
/// when the image's definition went out (see [`Bridge::timeline`]).
pub async fn run_with(
    mut bridge: Bridge,
    opts: Result<FrontendOpts, OptsError>,
) -> (Result<()>, Option<(std::time::Instant, u32)>) {
    let outcome = answer(&mut bridge, opts).await;
    (outcome, bridge.timeline())
}

async fn answer(bridge: &mut Bridge, opts: Result<FrontendOpts, OptsError>) -> Result<()> {
    if let Ok(FrontendOpts {
        request_id: Some(id),
        ..
    }) = &opts
    {
        bridge
            .r#return(result::subrequest_answer(id))
            .await
            .context("return the subrequest's answer to BuildKit")?;
        return Ok(());
    }
    let outcome = match opts {
        Ok(opts) => {
            bridge.import_caches(&opts.cache_imports);
            build::build(bridge, &opts).await
        }
        Err(e) => Err(anyhow!(e)),
    };
    if let Err(e) = &outcome {
        // The daemon's log keeps what the user saw in the build output.
        eprintln!("repro-frontend: build failed: {e:#}");
    }
    let array_refs = bridge.has_api(client::CAP_PROTO_REF_ARRAY);
    let req = result::return_request(outcome, bridge.read_files(), array_refs);
    bridge
        .r#return(req)
        .await
        .context("return the result to BuildKit")?;
    Ok(())
}
