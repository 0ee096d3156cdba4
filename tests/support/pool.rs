//! A small HTTP server for package blobs, on 127.0.0.1, with faults per path.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

/// What the server does for a path instead of serving the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve the file with its first byte changed.
    WrongBytes,
    NotFound,
    ServerError,
    /// Accept the connection and never answer.
    Hang,
    /// Serve the file, then 64 MiB of zeros, with no Content-Length.
    Oversized,
    /// Announce the file's length, then send it a byte a second.
    Trickle,
}

pub struct PoolServer {
    pub url: String,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    /// Other paths for files: `/ipfs/<cid>` -> `pool/...`, as a gateway.
    aliases: Arc<Mutex<HashMap<String, String>>>,
    hits: Arc<Mutex<Vec<String>>>,
}

impl PoolServer {
    /// Serves `dir` until the test process ends.
    pub fn start(dir: PathBuf) -> PoolServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Self::serve_on(listener, url, dir)
    }

    /// Serves `dir` on the host's address on the engine's default bridge
    /// (`docker0`, the network the running Docker Engine made): a mirror
    /// that build containers reach and that is not on the loopback, with
    /// no traffic leaving the machine. Panics, naming what is missing, when
    /// there is no such bridge (no Docker Engine running).
    pub fn start_on_bridge(dir: PathBuf) -> PoolServer {
        let out = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", "docker0"])
            .output()
            .expect("run ip (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout);
        // `5: docker0    inet 172.17.0.1/16 brd ... scope global docker0`
        let ip = text
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .unwrap_or_else(|| {
                panic!("no IPv4 address on docker0 (is a Docker Engine of the harness running?): {text}")
            })
            .to_string();
        let listener =
            TcpListener::bind((ip.as_str(), 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let port = listener.local_addr().expect("addr").port();
        Self::serve_on(listener, format!("http://{ip}:{port}"), dir)
    }

    fn serve_on(listener: TcpListener, url: String, dir: PathBuf) -> PoolServer {
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let aliases: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, a, h) = (faults.clone(), aliases.clone(), hits.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, f, a, h) = (dir.clone(), f.clone(), a.clone(), h.clone());
                thread::spawn(move || serve(stream, &dir, &f, &a, &h));
            }
        });
        PoolServer {
            url,
            faults,
            aliases,
            hits,
        }
    }

    /// Serves the file `name` (`pool/...`) at `path` too (`ipfs/<cid>`).
    pub fn alias(&self, path: &str, name: &str) {
        self.aliases
            .lock()
            .expect("lock")
            .insert(format!("/{path}"), name.to_string());
    }

    /// Sets a fault for a lockfile name (`pool/main/...`).
    pub fn fault(&self, name: &str, fault: Fault) {
        self.faults
            .lock()
            .expect("lock")
            .insert(format!("/{name}"), fault);
    }

    /// A URL on 127.0.0.1 where nothing listens: connections are refused.
    pub fn closed_url() -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        format!("http://{}", l.local_addr().expect("addr"))
    }

    /// The paths requested so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("lock").clone()
    }
}

fn serve(
    stream: TcpStream,
    dir: &std::path::Path,
    faults: &Mutex<HashMap<String, Fault>>,
    aliases: &Mutex<HashMap<String, String>>,
    hits: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("/").to_string(),
    );
    hits.lock().expect("lock").push(path.clone());
    let fault = faults.lock().expect("lock").get(&path).copied();
    let name = aliases.lock().expect("lock").get(&path).cloned();
    let file = dir.join(name.as_deref().unwrap_or(path.trim_start_matches('/')));
    let mut out = stream;
    let body = match (fault, std::fs::read(&file)) {
        (Some(Fault::NotFound), _) | (None | Some(Fault::WrongBytes), Err(_)) => {
            let _ = out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        (Some(Fault::ServerError), _) => {
            let _ = out.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        (Some(Fault::Hang), _) => {
            // Hold the connection open until the client gives up.
            std::thread::sleep(std::time::Duration::from_secs(120));
            return;
        }
        (Some(Fault::Oversized), Ok(bytes)) => {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let _ = out.write_all(&bytes);
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                if out.write_all(&zeros).is_err() {
                    break;
                }
            }
            return;
        }
        (Some(Fault::Trickle), Ok(bytes)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = out.write_all(head.as_bytes());
            for b in bytes {
                if out.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            return;
        }
        (Some(Fault::Oversized | Fault::Trickle), Err(_)) => return,
        (Some(Fault::WrongBytes), Ok(mut bytes)) => {
            if let Some(b) = bytes.first_mut() {
                *b ^= 0xff;
            }
            bytes
        }
        (None, Ok(bytes)) => bytes,
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out.write_all(&body);
    }
}
