"""Push a small image to a real registry with raw distribution API calls (OCI distribution spec, "Pushing")."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push_image_manifest(registry, repository_path: str, tag: str, *, media_type: str = DOCKER_MANIFEST,
                        note: str = "", scheme: str = "http", ca_file: Path | None = None, token: str = "") -> str:
    """Push a small image (a config blob, no layers) with raw distribution API calls; its manifest digest.

    Basic credentials of ``registry``, or ``Authorization: Bearer <token>`` when a token is given.
    """
    auth = None if token else (registry.username, registry.password)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = f"{scheme}://{registry.host}/v2/{repository_path}"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {"Labels": {"note": note}}}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    with httpx.Client(auth=auth, headers=headers, verify=verify) as http:
        started = http.post(f"{base}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(started.headers["Location"])
        if not location.is_absolute_url:
            location = httpx.URL(f"{scheme}://{registry.host}").join(location)
        assert http.put(location.copy_merge_params({"digest": digest}), content=config).status_code == 201
        config_type = ("application/vnd.docker.container.image.v1+json" if media_type == DOCKER_MANIFEST
                       else "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": media_type, "layers": [],
                               "config": {"mediaType": config_type, "digest": digest, "size": len(config)}}).encode()
        put = http.put(f"{base}/manifests/{tag}", content=manifest, headers={"Content-Type": media_type})
        assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()
