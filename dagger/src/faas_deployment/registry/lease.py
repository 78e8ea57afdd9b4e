"""A publish lease that the registry arbitrates: one publisher of a version at a time.

Distribution registries (distribution 2.8 included) give tags last-writer-wins
semantics and no compare-and-set: ``PUT /v2/<name>/manifests/<tag>`` replaces
whatever the tag held (``registry/handlers/manifests.go``, ``PutManifest`` then
``Tags().Tag``). The one thing every publisher can read back is which manifest a
tag names *now*. So the lease is Fischer's timed mutual exclusion over a tag:

1. read the lease tag ``lease-<version>`` (:func:`versions.lease_tag`); if it names
   a live lease of another publisher (not released, within its lifetime), wait for it;
2. write our own lease manifest (a unique nonce, the time written and the lease's
   lifetime in its annotations) to that tag;
3. wait ``settle`` seconds, longer than any publisher takes from step 1 to the end
   of step 2 (:data:`SETTLE_SECONDS`, and at least three times our own time);
4. read the tag again: if it still names our lease, we hold it; otherwise a
   later writer does, and we go back to step 1.

Two publishers that both saw the tag free both write; only the last write
survives, and each reads the survivor after its settle time, so only one
proceeds. A publisher arriving later sees a live lease and waits. The holder then
re-reads the version (it may have been published meanwhile), pushes, reads the
version back, and releases the lease (a delete; a released marker where deletes
are forbidden).

**Lifetime.** A lease states its lifetime: :data:`LIFETIME_SECONDS`, or
:data:`LIFETIME_ROUND_TRIPS` times the slowest request its publisher has seen if
that is longer (a slow registry). It covers the settle time and the few requests
up to the version's push; the holder pushes only while at least
:data:`PUSH_MARGIN_SECONDS` (and two slowest requests) of it are left, else it
takes the lease again (:meth:`Lease.fresh`). A lease older than its lifetime is
taken over, and the publisher taking it over says so once: a run killed while
holding one (SIGKILL, a lost CI runner) blocks the next run for at most the
lifetime. Wall clocks of publishers on different hosts must agree to within
:data:`PUSH_MARGIN_SECONDS` (NTP).

**Interrupts.** Every lease this process has written is known here until
released. :func:`release_all` (the CLI calls it on Ctrl-C and SIGTERM) stops every
publisher that started before it from writing a lease or pushing again, waits a
bounded time for a push in flight, and releases every lease it can, so an
interrupted run leaves no lease tag behind it. Publishers started after it (a
process running the CLI again) are not affected.

The assumption is timing (a write completes within the settle time, a push
within the margin); the registry's own tag immutability (docs/publishing.md)
removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..core import progress
from ..core.deadline import Deadline
from ..core.errors import UserError
from ..core.versions import lease_tag
from .registry_client import ManifestRefused, RegistryClient

#: Minimum wait between writing a lease and reading it back, seconds.
SETTLE_SECONDS = 1.0
#: How often a waiting publisher looks at another's lease, seconds.
POLL_SECONDS = 0.25
#: Shortest lifetime a lease states, seconds: the settle time plus a few requests, with room to spare.
LIFETIME_SECONDS = 5.0
#: A lease's lifetime in slowest requests seen by its publisher, when that is longer than :data:`LIFETIME_SECONDS`.
LIFETIME_ROUND_TRIPS = 30
#: Least lifetime left, seconds, for the holder to push the version (else it takes the lease again).
PUSH_MARGIN_SECONDS = 1.0
#: Longest wait of :func:`release_all` for pushes in flight and the releases, seconds.
INTERRUPT_SECONDS = 5.0

_PREFIX = "io.faas-deployment.lease."


class Interrupted(UserError):
    """The process is being interrupted (:func:`release_all`): no lease is written or used any more."""


@dataclass
class Lease:
    """A lease this process wrote: ``digest`` names its manifest, ``expires`` is monotonic seconds.

    ``slowest``: the longest request its publisher has seen, seconds.
    """

    registry: RegistryClient
    name: str
    tag: str
    nonce: str
    digest: str
    expires: float
    slowest: float
    config: dict | None = None
    epoch: int = 0  # the interrupts seen before it was written (:func:`release_all`)
    busy: int = 0  # requests in flight that the lease guards (its own write, the version's push)

    def fresh(self) -> bool:
        """Enough of the lifetime is left to push: :data:`PUSH_MARGIN_SECONDS` and two slowest requests."""
        return self.expires - time.monotonic() >= PUSH_MARGIN_SECONDS + 2 * self.slowest


_lock = threading.Condition()
_active: dict[str, Lease] = {}  # nonce -> a lease written and not yet released
_epoch = 0  # how many times release_all ran; a publisher started before the last one is interrupted


def _check_interrupted(epoch: int) -> None:
    if epoch != _epoch:
        raise Interrupted("interrupted: the publish lease is given back")


@contextlib.contextmanager
def _busy(lease: Lease) -> Iterator[None]:
    with _lock:
        _check_interrupted(lease.epoch)
        lease.busy += 1
    try:
        yield
    finally:
        with _lock:
            lease.busy -= 1
            _lock.notify_all()


@contextlib.contextmanager
def pushing(lease: Lease | None) -> Iterator[None]:
    """Mark the version's push under ``lease`` (``None``: no lease), so :func:`release_all` waits for it.

    Raises:
        Interrupted: the process is being interrupted: nothing may be pushed.
    """
    if lease is None:
        yield
        return
    with _busy(lease):
        yield


def _read(registry: RegistryClient, name: str, tag: str) -> tuple[str, dict[str, str]] | None:
    """``(lease manifest digest, annotations)`` on ``tag``; ``None`` when absent or not a lease manifest."""
    got = registry.get_manifest(name, tag)
    if got is None:
        return None
    try:
        annotations = json.loads(got[1]).get("annotations") or {}
        float(annotations.get(_PREFIX + "expires", "0"))
    except (ValueError, AttributeError, TypeError):
        return None  # not a lease manifest of ours: treat as free, the read-back decides
    return got[0], annotations


def _expires(annotations: dict[str, str]) -> float:
    return float(annotations.get(_PREFIX + "expires", "0"))


def _live(annotations: dict[str, str] | None) -> bool:
    return annotations is not None and _expires(annotations) > time.time()


def _stale(annotations: dict[str, str]) -> str:
    """Why a lease past its lifetime is taken over (one progress line)."""
    since, lifetime = annotations.get(_PREFIX + "since"), annotations.get(_PREFIX + "lifetime")
    try:
        age = (f"written {time.time() - float(since or ''):.1f} s ago, "
               f"past its stated lifetime of {float(lifetime or ''):g} s")
    except ValueError:
        age = "past its expiry"
    return f"{age} (its publisher was interrupted or killed)"


def acquire(registry: RegistryClient, name: str, version: str, digest: str, deadline: Deadline,
            config: dict | None = None) -> Lease | None:
    """Hold the lease of ``name:version`` (module doc), waiting for other holders within ``deadline``.

    ``config`` is the descriptor of a blob the caller has uploaded to the repository
    (the chart's config): the lease manifest points at it, so taking the lease uploads
    no blob of its own; without it, the empty JSON blob is uploaded. A lease past its
    lifetime is taken over, with one progress line saying so.

    Returns:
        The lease; ``None`` when the registry refuses to store a lease on a free tag
        (a registry with immutable tags, where the version's own push is arbitrated
        by the registry and the lease is not needed).

    Raises:
        DeadlineExceeded: the lease was not obtained in time.
        Interrupted: the process is being interrupted.
        UserError: the registry refused the lease manifest.
    """
    tag = lease_tag(version)
    nonce = os.urandom(16).hex()
    what = f"waiting for the publish lease {registry.reference(name)}:{tag}"
    announced = taken_over = False
    slowest = 0.0
    epoch = _epoch
    while True:
        _check_interrupted(epoch)
        deadline.check(what)
        started = time.monotonic()
        found = _read(registry, name, tag)
        read = time.monotonic() - started
        holder = found[1] if found else None
        if _live(holder) and holder.get(_PREFIX + "nonce") != nonce:  # type: ignore[union-attr]
            if not announced:  # one line, not one per poll
                progress.note(f"{what}: another publisher holds it; polling every {POLL_SECONDS:g} s")
                announced = True
            time.sleep(min(POLL_SECONDS, deadline.remaining()))
            continue
        if holder is not None and _expires(holder) > 0 and not taken_over:
            progress.note(f"taking over the publish lease {registry.reference(name)}:{tag}: {_stale(holder)}")
            taken_over = True
        slowest = max(slowest, read)
        lifetime = max(LIFETIME_SECONDS, LIFETIME_ROUND_TRIPS * slowest)
        since = time.time()
        annotations = {
            _PREFIX + "nonce": nonce,
            _PREFIX + "digest": digest,
            _PREFIX + "since": f"{since:.3f}",
            _PREFIX + "lifetime": f"{lifetime:g}",
            _PREFIX + "expires": f"{since + lifetime:.3f}",
        }
        lease = Lease(registry, name, tag, nonce, "", time.monotonic() + lifetime, slowest, config, epoch)
        with _lock:
            _check_interrupted(epoch)
            _active[nonce] = lease
        written = time.monotonic()
        try:
            with _busy(lease):
                lease.digest = registry.push_small_manifest(name, tag, annotations, config)
        except ManifestRefused:
            _forget(lease)
            again = _read(registry, name, tag)
            if again is not None and _live(again[1]):
                continue  # another publisher's lease on an immutable tag: wait for it to go
            return None
        except BaseException:
            _forget(lease)
            raise
        lease.slowest = slowest = max(slowest, time.monotonic() - written)
        settle = max(SETTLE_SECONDS, 3 * (time.monotonic() - started))
        if settle >= deadline.remaining():
            release(registry, lease)
            raise deadline.expired_error(what)
        if time.monotonic() + settle + 2 * slowest + PUSH_MARGIN_SECONDS >= lease.expires:
            release(registry, lease)  # the write took far longer than the read: state a longer lifetime
            continue
        time.sleep(settle)
        found = _read(registry, name, tag)
        if found is not None and found[1].get(_PREFIX + "nonce") == nonce:
            _check_interrupted(epoch)
            return lease
        _forget(lease)  # a later writer's lease replaced ours: nothing of ours is on the tag


def _forget(lease: Lease) -> None:
    with _lock:
        _active.pop(lease.nonce, None)


def release(registry: RegistryClient, lease: Lease | None) -> None:
    """Give the lease up: delete our lease manifest by its digest, which removes the lease tag only
    while it names our manifest (the nonce makes the digest ours alone: a later holder's manifest,
    and the chart's, have other digests); where deletes are forbidden, put a released marker on the
    tag if it is still ours. Failures are left to the lease's lifetime."""
    if lease is None:
        return
    _forget(lease)
    if not lease.digest:
        return
    try:
        try:
            registry.delete_manifest(lease.name, lease.digest)
        except UserError:  # deletes forbidden: a released marker instead
            current = registry.get_manifest(lease.name, lease.tag)
            if current is None or current[0] != lease.digest:
                return  # not ours any more (expired and taken over)
            registry.push_small_manifest(
                lease.name, lease.tag, {_PREFIX + "nonce": lease.nonce, _PREFIX + "expires": "0"}, lease.config
            )
    except UserError:
        pass  # the lease expires on its own


def clear_settled(registry: RegistryClient, name: str, version: str, published: str) -> None:
    """Remove a lease left on ``name:version`` once the version is published with digest ``published``.

    A lease goes when it is released or past its lifetime, or when the content it
    was taken for (its ``digest`` annotation) is what the version holds: its push has
    landed, and whoever holds it has nothing left to guard (a holder still alive
    then finds its lease gone and ignores it). A live lease taken for other content
    stays: its holder will be refused by the version's rules and release it.
    Failures are ignored (the lease's lifetime ends it).
    """
    tag = lease_tag(version)
    try:
        found = _read(registry, name, tag)
        if found is None:
            return
        digest, annotations = found
        if _live(annotations) and annotations.get(_PREFIX + "digest") != published:
            return
        registry.delete_manifest(name, digest)
    except UserError:
        pass


def release_all(timeout: float = INTERRUPT_SECONDS) -> None:
    """On an interrupt: no publisher started before it writes or uses a lease again; each lease is released.

    A lease whose write or push is in flight is released once that request ends
    (deleting it earlier could let another publisher push under a lease while our
    push lands). Everything happens within ``timeout`` seconds, in a daemon thread:
    what is left after it expires on its own.
    """
    global _epoch
    with _lock:
        _epoch += 1
        interrupted = _epoch

    def give_back() -> None:
        end = time.monotonic() + timeout
        released: set[str] = set()
        while True:
            with _lock:
                ours = [lease for lease in _active.values() if lease.epoch < interrupted]
                ready = [lease for lease in ours if not lease.busy and lease.nonce not in released]
                waiting = any(lease.busy for lease in ours)
                if not ready and (not waiting or time.monotonic() >= end):
                    return
                if not ready:
                    _lock.wait(max(0.0, end - time.monotonic()))
                    continue
            for lease in ready:
                released.add(lease.nonce)
                release(lease.registry, lease)

    worker = threading.Thread(target=give_back, name="lease-release", daemon=True)
    worker.start()
    worker.join(timeout)
