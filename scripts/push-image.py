#!/usr/bin/env python3
"""Pushes test base images to the harness's local registry, without an engine.

  push-image.py image <registry>/<repo>:<tag> --arch ARCH --rootfs-tar FILE
                [--created RFC3339] [--env K=V ...] [--cmd ARG ...]
      one layer (the tar, gzip'd with no name or time in its header), a
      config for linux/ARCH and a Docker schema-2 manifest; prints the
      manifest's digest.
  push-image.py index <registry>/<repo>:<tag> DIGEST [DIGEST ...]
      a manifest list of manifests already in <repo>, each with the platform
      its config names; prints the list's digest.
  push-image.py archive <name>:<tag> --arch ARCH --rootfs-tar FILE --out FILE
                [--created RFC3339] [--entrypoint ARG ...] [--label K=V ...]
      the same one-layer image as a `docker load` archive, pushed nowhere:
      every byte comes from the arguments (no clock), so the image ID (the
      config's digest) is the same on every set-up; prints the ID.

Docker 20.10 cannot import a rootfs for another platform into its image
store, and `docker manifest` is experimental there, so set-up writes the
arm64 base and the two-platform index itself. Used by scripts/setup.sh.
"""

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.parse
import urllib.request

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_ref(ref):
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    if not host or not repo or not tag:
        sys.exit(f"push-image.py: expected <registry>/<repo>:<tag>, got {ref!r}")
    return f"http://{host}", repo, tag


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        if method == "HEAD" and e.code == 404:
            return 404, {}, b""
        sys.exit(f"push-image.py: {method} {url}: {e.code} {e.read()[:300]!r}")


def put_blob(base, repo, data):
    digest = digest_of(data)
    status, _, _ = request("HEAD", f"{base}/v2/{repo}/blobs/{digest}")
    if status == 200:
        return digest
    _, headers, _ = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    location = urllib.parse.urljoin(base, headers["Location"])
    sep = "&" if "?" in location else "?"
    request(
        "PUT",
        f"{location}{sep}digest={urllib.parse.quote(digest)}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    return digest


def put_manifest(base, repo, tag, media_type, body):
    data = json.dumps(body, indent=3).encode()
    request("PUT", f"{base}/v2/{repo}/manifests/{tag}", data, {"Content-Type": media_type})
    return digest_of(data), len(data)


def get(base, repo, kind, digest, accept):
    _, _, data = request("GET", f"{base}/v2/{repo}/{kind}/{digest}", headers={"Accept": accept})
    return data


def image(args):
    base, repo, tag = split_ref(args.ref)
    with open(args.rootfs_tar, "rb") as f:
        tar = f.read()
    layer = gzip.compress(tar, compresslevel=6, mtime=0)
    config = {
        "architecture": args.arch,
        "os": "linux",
        "created": args.created,
        "config": {"Env": args.env, "Cmd": args.cmd},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
        "history": [{"created": args.created, "comment": "debootstrap rootfs"}],
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": CONFIG,
            "size": len(config_bytes),
            "digest": put_blob(base, repo, config_bytes),
        },
        "layers": [
            {"mediaType": LAYER, "size": len(layer), "digest": put_blob(base, repo, layer)}
        ],
    }
    digest, _ = put_manifest(base, repo, tag, MANIFEST, manifest)
    print(digest)


def index(args):
    base, repo, tag = split_ref(args.ref)
    entries = []
    for digest in args.digests:
        data = get(base, repo, "manifests", digest, MANIFEST)
        if digest_of(data) != digest:
            sys.exit(f"push-image.py: {repo}@{digest} is not a schema-2 manifest in the registry")
        m = json.loads(data)
        config = json.loads(get(base, repo, "blobs", m["config"]["digest"], CONFIG))
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        entries.append(
            {"mediaType": MANIFEST, "size": len(data), "digest": digest, "platform": platform}
        )
    body = {"schemaVersion": 2, "mediaType": LIST, "manifests": entries}
    digest, _ = put_manifest(base, repo, tag, LIST, body)
    print(digest)


def tar_member(name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def archive(args):
    with open(args.rootfs_tar, "rb") as f:
        tar = f.read()
    labels = dict(kv.split("=", 1) for kv in args.label)
    config = {
        "architecture": args.arch,
        "os": "linux",
        "created": args.created,
        "config": {"Entrypoint": args.entrypoint, "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
        "history": [{"created": args.created, "comment": "repro-frontend static binary"}],
    }
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    layer_hex = hashlib.sha256(tar).hexdigest()
    manifest = [
        {"Config": f"{config_hex}.json", "RepoTags": [args.ref], "Layers": [f"{layer_hex}/layer.tar"]}
    ]
    with tarfile.open(args.out, "w", format=tarfile.USTAR_FORMAT) as out:
        for name, data in [
            (f"{config_hex}.json", config_bytes),
            (f"{layer_hex}/layer.tar", tar),
            ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()),
        ]:
            out.addfile(*tar_member(name, data))
    print(f"sha256:{config_hex}")


def image_parser(sub, name):
    """A sub-command that makes one single-layer image from a rootfs tar."""
    c = sub.add_parser(name)
    c.add_argument("ref")
    c.add_argument("--arch", required=True)
    c.add_argument("--rootfs-tar", required=True)
    c.add_argument("--created", default="1970-01-01T00:00:00Z")
    return c


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd_name", required=True)
    i = image_parser(sub, "image")
    i.add_argument("--env", action="append", default=[])
    i.add_argument("--cmd", action="append", default=[])
    i.set_defaults(run=image)
    x = sub.add_parser("index")
    x.add_argument("ref")
    x.add_argument("digests", nargs="+")
    x.set_defaults(run=index)
    a = image_parser(sub, "archive")
    a.add_argument("--out", required=True)
    a.add_argument("--entrypoint", action="append", default=[])
    a.add_argument("--label", action="append", default=[])
    a.set_defaults(run=archive)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
