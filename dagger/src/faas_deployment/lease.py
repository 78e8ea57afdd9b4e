"""A publish lease that the registry arbitrates: one publisher of a chart version at a time.

Distribution registries (distribution 2.8 included) give tags last-writer-wins
semantics and no compare-and-set: ``PUT /v2/<name>/manifests/<tag>`` replaces
whatever the tag held (``registry/handlers/manifests.go``, ``PutManifest`` then
``Tags().Tag``). The one thing every publisher can read back is which manifest a
tag names *now*. So the lease is Fischer's timed mutual exclusion over a tag:

1. read the lease tag ``lease-<version>`` (:func:`versions.lease_tag`); if it names a live lease of another
   publisher (not released, not expired), wait for it;
2. write our own lease manifest (a unique nonce in its annotations) to that tag;
3. wait ``settle`` seconds, longer than any publisher takes from step 1 to the end
   of step 2 (:data:`SETTLE_SECONDS`, and at least three times our own time);
4. read the tag again: if it still names our lease, we hold it; otherwise a
   later writer does, and we go back to step 1.

Two publishers that both saw the tag free both write; only the last write
survives, and each reads the survivor after its settle time, so only one
proceeds. A publisher arriving later sees a live lease and waits. The holder then
re-reads the version (it may have been published meanwhile), pushes, reads the
version back, and releases the lease (a released marker, then a delete). A lease
expires (annotation, wall-clock seconds) so a killed holder blocks nobody for
longer than its deadline.

The assumption is timing (a write completes within the settle time); the
registry's own tag immutability (docs/publishing.md) removes it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from . import progress
from .deadline import Deadline
from .errors import UserError
from .registry_client import ChartRegistry, ManifestRefused
from .versions import lease_tag

#: Minimum wait between writing a lease and reading it back, seconds.
SETTLE_SECONDS = 1.0
#: How often a waiting publisher looks at another's lease, seconds.
POLL_SECONDS = 0.25

_PREFIX = "io.faas-deployment.lease."


@dataclass(frozen=True)
class Lease:
    name: str
    tag: str
    nonce: str
    digest: str
    config: dict | None = None


def _read(registry: ChartRegistry, name: str, tag: str) -> dict[str, str] | None:
    """The live lease's annotations on ``tag``, or ``None`` when free (absent, released or expired)."""
    got = registry.get_manifest(name, tag)
    if got is None:
        return None
    try:
        annotations = json.loads(got[1]).get("annotations") or {}
        expires = float(annotations.get(_PREFIX + "expires", "0"))
    except (ValueError, AttributeError):
        return None  # not a lease manifest of ours: treat as free, the read-back decides
    if expires <= time.time():
        return None
    return annotations


def acquire(registry: ChartRegistry, name: str, version: str, digest: str, deadline: Deadline,
            config: dict | None = None) -> Lease | None:
    """Hold the lease of ``name:version`` (module doc), waiting for other holders within ``deadline``.

    ``config`` is the descriptor of a blob the caller has uploaded to the repository
    (the chart's config): the lease manifest points at it, so taking the lease uploads
    no blob of its own; without it, the empty JSON blob is uploaded.

    Returns:
        The lease; ``None`` when the registry refuses to store a lease on a free tag
        (a registry with immutable tags, where the version's own push is arbitrated
        by the registry and the lease is not needed).

    Raises:
        DeadlineExceeded: the lease was not obtained in time.
        UserError: the registry refused the lease manifest.
    """
    tag = lease_tag(version)
    nonce = os.urandom(16).hex()
    what = f"waiting for the publish lease {registry.reference(name)}:{tag}"
    announced = False
    while True:
        deadline.check(what)
        started = time.monotonic()
        holder = _read(registry, name, tag)
        if holder is not None and holder.get(_PREFIX + "nonce") != nonce:
            if not announced:  # one line, not one per poll
                progress.note(f"{what}: another publisher holds it; polling every {POLL_SECONDS:g} s")
                announced = True
            time.sleep(min(POLL_SECONDS, deadline.remaining()))
            continue
        annotations = {
            _PREFIX + "nonce": nonce,
            _PREFIX + "digest": digest,
            _PREFIX + "expires": f"{time.time() + deadline.remaining() + 5:.3f}",
        }
        try:
            lease_digest = registry.push_small_manifest(name, tag, annotations, config)
        except ManifestRefused:
            if _read(registry, name, tag) is not None:
                continue  # another publisher's lease on an immutable tag: wait for it to go
            return None
        settle = max(SETTLE_SECONDS, 3 * (time.monotonic() - started))
        if settle >= deadline.remaining():
            raise deadline.expired_error(what)
        time.sleep(settle)
        holder = _read(registry, name, tag)
        if holder is not None and holder.get(_PREFIX + "nonce") == nonce:
            return Lease(name, tag, nonce, lease_digest, config)


def release(registry: ChartRegistry, lease: Lease | None) -> None:
    """Give the lease up: delete our lease manifest by its digest, which removes the lease tag only
    while it names our manifest (the nonce makes the digest ours alone: a later holder's manifest,
    and the chart's, have other digests); where deletes are forbidden, put a released marker on the
    tag if it is still ours. Failures are left to the lease's expiry."""
    if lease is None:
        return
    try:
        try:
            registry.delete_manifest(lease.name, lease.digest)
        except UserError:  # deletes forbidden: a released marker instead
            current = registry.get_manifest(lease.name, lease.tag)
            if current is None or current[0] != lease.digest:
                return  # not ours any more (expired and taken over)
            registry.push_small_manifest(lease.name, lease.tag, {_PREFIX + "nonce": lease.nonce, _PREFIX + "expires": "0"},
                                         lease.config)
    except UserError:
        pass  # the lease expires on its own
