"""One backup per slot across replicas: claims of scheduled slots, leased in the sink.

Every replica (the same app scaled to N processes or hosts) runs the same schedule.
Before a job runs for a slot, the replica claims it with a create-if-absent write in
the set's sink (``O_EXCL``-like hard links on a local disk, ``If-None-Match: *`` on S3)::

    claims/<set>/<kind>/<slot, UTC>/g0              the claim: owner, host, pid, lease
    claims/<set>/<kind>/<slot, UTC>/g0.beat-<n>     the holder's heartbeats
    claims/<set>/<kind>/<slot, UTC>/done            written once by whoever finished it

The others skip the slot. The holder renews its lease by writing a new heartbeat every
quarter of the lease; a claim whose last write (claim or heartbeat) is older than the
lease, by the store's clock (the objects' modification times, never a replica's own
clock), belongs to a replica that died: the next one takes it over by creating the next
generation (``g1``...). A finished slot (``done``, whatever the result) is never run
again. :meth:`Claims.check` refuses to coordinate, loudly, through a store that does not
honour exclusive creates.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from backupkit.errors import ConfigError, NotFoundError
from backupkit.plugin import Sink

log = logging.getLogger("backupkit.claims")

PREFIX = "claims/"
DEFAULT_LEASE = dt.timedelta(minutes=5)


def for_engine(engine: Any, lease: dt.timedelta = DEFAULT_LEASE) -> Claims:
    """Claims in each set's sink of *engine* (checked: see :meth:`Claims.check`)."""
    return Claims(lambda set_name: engine.parts.sinks_of(set_name)[0], lease)


def slot_key(set_name: str, kind: str, slot: dt.datetime) -> str:
    """The prefix of a slot's claim objects."""
    return f"{PREFIX}{set_name}/{kind}/{slot.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}/"


@attrs.define
class Lease:
    """A held claim: renew it while the job runs, then mark the slot done."""

    claims: Claims
    sink: Sink
    base: str
    generation: int
    beats: int = 0
    _stop: threading.Event = attrs.field(factory=threading.Event)
    _thread: threading.Thread | None = None

    def renew(self) -> None:
        """Write a heartbeat (the store's clock dates it)."""
        self.beats += 1
        self.claims.write(self.sink, f"{self.base}g{self.generation}.beat-{self.beats}", {"beat": self.beats})

    def keep_alive(self) -> None:
        """Renew every quarter of the lease in a thread, until :meth:`finish`."""
        every = max(self.claims.lease.total_seconds() / 4, 0.05)

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.renew()
                except Exception as exc:  # the store is away: the lease may be lost, say so
                    log.warning("could not renew the claim %s: %s", self.base, exc)

        self._thread = threading.Thread(target=loop, name="backupkit-lease", daemon=True)
        self._thread.start()

    def finish(self, result: str) -> None:
        """Stop renewing and mark the slot done (*result*: ``ok`` or ``failed``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.claims.write(self.sink, f"{self.base}done", {"result": result}):
            log.warning("slot %s was marked done by another replica too", self.base)

    def release(self) -> None:
        """Stop renewing without marking the slot done (another replica may take it over
        once the lease has expired, e.g. to retry)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@attrs.define
class Claims:
    """This replica's claims of slots in the sinks *sink_of* gives per set."""

    sink_of: Callable[[str], Sink] = attrs.field(repr=False)
    lease: dt.timedelta = DEFAULT_LEASE
    owner: str = attrs.field(factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    def write(self, sink: Sink, key: str, body: dict[str, Any]) -> bool:
        """Create *key* (with who wrote it) unless it exists: True if this call made it."""
        data = json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "lease_seconds": self.lease.total_seconds(), **body}).encode()
        return sink.put_standalone(key, data, exclusive=True)

    def store_now(self, sink: Sink, base: str) -> dt.datetime:
        """The store's clock now: the modification time of an object written for it."""
        key = f"{base}now-{uuid.uuid4().hex[:12]}"
        self.write(sink, key, {"probe": True})
        try:
            return sink.modified_at(key)
        finally:
            sink.delete([key])

    def check(self, set_name: str) -> None:
        """Refuse to coordinate through a sink without exclusive creates or store times."""
        sink = self.sink_of(set_name)
        key = f"{PREFIX}{set_name}/.probe-{uuid.uuid4().hex[:12]}"
        try:
            first = self.write(sink, key, {"probe": 1})
            second = self.write(sink, key, {"probe": 2})
            if first and not second:
                sink.modified_at(key)  # and store times: raises for a sink without them
        finally:
            sink.delete([key])
        if not first or second:
            raise ConfigError(
                f"sink {sink.location} does not honour create-if-absent writes (a second create of "
                "one key succeeded); replicas cannot share a schedule through it: run the scheduler "
                "in one process only, or use a local disk or S3"
            )

    def claim(self, set_name: str, kind: str, slot: dt.datetime) -> Lease | None:
        """The slot's lease if this replica may run it now; None if another holds it or
        it is done."""
        sink = self.sink_of(set_name)
        base = slot_key(set_name, kind, slot)
        keys = set(sink.list_keys(base))
        if f"{base}done" in keys:
            return None
        generations = sorted(int(k[len(base) + 1 :]) for k in keys if k[len(base):].startswith("g")
                             and k[len(base) + 1 :].isdigit())
        gen = generations[-1] if generations else 0
        while True:
            if self.write(sink, f"{base}g{gen}", {"slot": slot.isoformat(), "generation": gen}):
                return Lease(self, sink, base, gen)
            holder = json.loads(sink.get_bytes(f"{base}g{gen}"))
            if holder.get("owner") == self.owner:  # ours already (a retry within the slot)
                beats = [k for k in sink.list_keys(f"{base}g{gen}.beat-")]
                return Lease(self, sink, base, gen, beats=len(beats))
            if not self._expired(sink, base, gen):
                return None
            keys = set(sink.list_keys(base))
            if f"{base}done" in keys:
                return None
            log.warning("the claim of %s by %s expired; taking it over", base, holder.get("owner"))
            gen += 1

    def _expired(self, sink: Sink, base: str, gen: int) -> bool:
        marks = [f"{base}g{gen}", *(k for k in sink.list_keys(f"{base}g{gen}.beat-"))]
        last = None
        for key in marks:
            try:
                at = sink.modified_at(key)
            except NotFoundError:
                continue
            last = at if last is None or at > last else last
        if last is None:
            return False
        return self.store_now(sink, base) - last > self.lease
