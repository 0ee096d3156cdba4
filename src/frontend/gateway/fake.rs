//! A fake LLBBridge in memory, for the protocol's edge cases; every
//! user-facing promise is also tested through a real engine in tests/e2e.
//! Tests only: it serves files from memory over an in-process pipe.

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

use super::client::connect_io;
use super::run_with;
use crate::frontend::opts;

pub const BASE: &str = "127.0.0.1:5000/repro/debian@sha256:4608019fc9f45c56ec80a55881d4dc90a637271afb41bc2aa7df7d218aacdf56";
pub const DIGEST: &str = "sha256:4608019fc9f45c56ec80a55881d4dc90a637271afb41bc2aa7df7d218aacdf56";

/// What the fake engine holds and what it saw.
#[derive(Default)]
pub struct State {
    pub files: HashMap<String, Vec<u8>>,
    pub llb_caps: Vec<String>,
    /// A Solve whose definition holds this text fails with this message.
    pub fail_solve: Option<(String, String)>,
    /// A ReadFile of this path fails with this message (a build that fails
    /// when the read makes the engine build it).
    pub fail_read: Option<(String, String)>,
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
    /// Every reference ResolveImageConfig was asked for, in order.
    pub resolved: Vec<String>,
    /// The frontend's own tag resolves with no digest, as a locally built
    /// image does in Docker's classic image store.
    pub frontend_local: bool,
    /// The base's ResolveImageConfig answers only once a ReadFile of this
    /// path has come in (or fails after a few seconds): the two must be in
    /// flight at the same time.
    pub resolve_waits_for_read: Option<String>,
    /// Every path ReadFile was asked for, in order.
    pub reads: Vec<String>,
}

/// The frontend image as the fake's `source` opt names it, normalized.
pub const FRONTEND_TAG: &str = "docker.io/library/repro-frontend:v0";
/// Its digest in the fake's store.
pub const FRONTEND_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

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
        self.0.lock().unwrap().resolved.push(r.clone());
        let gate = self.0.lock().unwrap().resolve_waits_for_read.clone();
        if let Some(path) = gate.filter(|_| r != FRONTEND_TAG) {
            let mut waited = 0;
            while !self.0.lock().unwrap().reads.contains(&path) {
                if waited == 100 {
                    return Err(Status::deadline_exceeded(format!(
                        "the fake answers {r} only while {path} is being read"
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                waited += 1;
            }
        }
        // The frontend's own image, as BuildKit's store holds it.
        if r == FRONTEND_TAG {
            let local = self.0.lock().unwrap().frontend_local;
            return Ok(Response::new(ResolveImageConfigResponse {
                digest: if local {
                    String::new()
                } else {
                    FRONTEND_DIGEST.into()
                },
                config: br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
                r#ref: r,
            }));
        }
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
    async fn solve(&self, req: Request<SolveRequest>) -> Result<Response<SolveResponse>, Status> {
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
        let mut st = self.0.lock().unwrap();
        st.reads.push(req.file_path.clone());
        if let Some((path, message)) = &st.fail_read
            && *path == req.file_path
        {
            return Err(Status::unknown(message.clone()));
        }
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
    async fn inputs(&self, _: Request<InputsRequest>) -> Result<Response<InputsResponse>, Status> {
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
    type ExecProcessStream = tokio_stream::wrappers::ReceiverStream<Result<ExecMessage, Status>>;
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
    run_with(bridge, opts::from_env(env))
        .await
        .0
        .expect("return");
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
