"""Prometheus metrics: a built-in plugin on the operation hook that counts failed backups
in the sink, and a scrape-time collector that reads the catalog and those counts.

Turned on per configuration (``textfile`` is optional; see docs/metrics.md)::

    [plugins.metrics]
    textfile = "/var/lib/node_exporter/textfile/backupkit.prom"   # written after CLI runs

Every value comes from the sink, never from the memory of one process: the newest
backup of each set and kind is read off the catalog, and each failed backup leaves one
small object, ``metrics/failures/<set>/<kind>/<run id>.json``, written once and never
changed. So N replicas, a scheduler and separate cron processes over one sink all
report the same numbers. Prune never takes ``metrics/`` for orphans.

For an HTTP endpoint, :func:`exposition` gives the body and content type (or hold a
:func:`registry_for` registry, whose collector caches a reading for a few seconds);
:func:`write_textfile` writes a file for node_exporter's textfile collector.
``prometheus_client`` (the ``backupkit[metrics]`` extra) is imported only when metrics
are read, never when backupkit loads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.core.status import Objectives
from backupkit.core.tiers import TIERS
from backupkit.errors import ConfigError
from backupkit.plugin import Operation, RunInfo, Sink, hookimpl

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from backupkit.core.catalog import Catalog
    from backupkit.core.drill import DrillRecord
    from backupkit.engine import Engine

log = logging.getLogger("backupkit.metrics")

PREFIX = "metrics/failures/"
KINDS = ("full", "incremental")
CACHE_SECONDS = 5.0
_KEYS = ("textfile",)

#: Name, type, help and labels of every metric, in the order they are exposed.
METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("backup_last_success_timestamp_seconds", "gauge",
     "When the newest stored backup of the set and kind was made (its start), as Unix time.",
     ("set", "kind")),
    ("backup_duration_seconds", "gauge",
     "How long the newest stored backup of the set and kind took.", ("set", "kind")),
    ("backup_size_bytes", "gauge",
     "The bytes stored for the newest backup of the set and kind.", ("set", "kind")),
    ("backup_failure_total", "counter",
     "Backups of the set and kind that failed, as recorded in the sink.", ("set", "kind")),
    ("backup_count", "gauge", "Backups of the set held in the catalog, by tier.", ("set", "tier")),
    ("backup_rpo_seconds", "gauge", "The set's recovery point objective (rpo): how old its newest backup "
     "may be.", ("set",)),
    ("backup_age_seconds", "gauge", "How old the set's newest backup is, at the time of reading.", ("set",)),
    ("backup_rto_seconds", "gauge", "The set's recovery time objective (rto): how long a restore may take.",
     ("set",)),
    ("backup_last_drill_timestamp_seconds", "gauge", "When the set's last restore drill started, as Unix "
     "time.", ("set",)),
    ("backup_last_drill_duration_seconds", "gauge", "How long the set's last restore drill took (the "
     "measured restore time).", ("set",)),
    ("backup_last_drill_success", "gauge", "1 if the set's last restore drill passed, 0 if it failed.",
     ("set",)),
)


def textfile_setting(settings: Mapping[str, Any]) -> str | None:
    """The ``textfile`` of a ``[plugins.metrics]`` table, checked (one-line errors)."""
    for key in settings:
        if key not in _KEYS:
            raise ConfigError(f"[plugins.metrics]: unknown key {key!r}; known: {', '.join(_KEYS)}")
    path = settings.get("textfile")
    if path is None:
        return None
    if not isinstance(path, str):
        raise ConfigError("[plugins.metrics]: textfile must be a path (a string) ending in .prom")
    check_textfile_path(path, what="[plugins.metrics]: textfile")
    return path


def check_textfile_path(path: str | os.PathLike[str], *, what: str = "metrics file") -> str:
    """*path* as a string if it ends in ``.prom``; a :class:`ConfigError` saying why otherwise."""
    text = os.fspath(path)
    if not text.endswith(".prom"):
        raise ConfigError(f"{what} {text} does not end in .prom; node_exporter's textfile "
                          "collector reads only *.prom files")
    return text


# -- the plugin: failed backups, one object each in the sink ---------------------------


def failure_key(set_name: str, kind: str, run_id: str) -> str:
    """Where the record of a failed backup is stored."""
    return f"{PREFIX}{set_name}/{kind}/{run_id}.json"


@attrs.define(eq=False)  # a plugin object: hashable, by identity
class FailureRecorder:
    """Writes one record per failed backup into the sinks the backup touched."""

    sinks_of: Callable[[str | None, str | None], list[Sink]] = attrs.field(repr=False)
    _kinds: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)  # run id -> kind

    @hookimpl
    def backupkit_before_run(self, run: RunInfo) -> None:
        """Note the kind the run really is (an incremental with no parent runs as a full)."""
        self._kinds[run.run_id] = run.kind

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        """Record a backup that failed, however it failed; its error passes unchanged."""
        try:
            return (yield)
        except BaseException:
            if operation.verb == "backup" and operation.set_name is not None:
                self.record(operation, self._kinds.get(operation.run_id, operation.kind or "full"))
            raise
        finally:
            self._kinds.pop(operation.run_id, None)

    def record(self, operation: Operation, kind: str) -> None:
        """Store the failure; a failure to store it is a warning, never the backup's error."""
        assert operation.set_name is not None
        body = json.dumps({"set": operation.set_name, "kind": kind, "run_id": operation.run_id,
                           "started_at": operation.started_at.isoformat(),
                           "failed_at": dt.datetime.now(dt.UTC).isoformat()}).encode() + b"\n"
        key = failure_key(operation.set_name, kind, operation.run_id)
        try:
            sinks = self.sinks_of(operation.set_name, operation.sink)
        except Exception as exc:
            log.warning("the failure of backup %s is not counted: %s", operation.run_id, exc)
            return
        for sink in sinks:
            try:
                sink.put_standalone(key, body)
            except Exception as exc:
                log.warning("could not count the failure of backup %s in %s: %s",
                            operation.run_id, sink.location, exc)


@hookimpl
def backupkit_engine_plugins(
    settings: Mapping[str, Any], sinks_of: Callable[[str | None, str | None], list[Sink]]
) -> list[object] | None:
    """A :class:`FailureRecorder` for an engine whose configuration has ``[plugins.metrics]``."""
    if "metrics" not in settings:
        return None
    textfile_setting(settings["metrics"])  # checked now: a bad path fails the engine, not a run
    return [FailureRecorder(sinks_of)]


# -- reading: what the sink says, at scrape time ------------------------------------------


def _seconds(span: dt.timedelta | None) -> float | None:
    return None if span is None else span.total_seconds()


def failures(sinks: Iterable[Sink]) -> Counter[tuple[str, str]]:
    """Failed backups per (set, kind) recorded in *sinks*; a record in several sinks (a
    backup that touched two) counts once."""
    keys = {key for sink in sinks for key in sink.list_keys(PREFIX)}
    counts: Counter[tuple[str, str]] = Counter()
    for key in keys:
        parts = key[len(PREFIX):].split("/")
        if len(parts) == 3 and parts[1] in KINDS and parts[2].endswith(".json"):
            counts[(parts[0], parts[1])] += 1
    return counts


@attrs.frozen
class Reading:
    """The metrics' values at one moment: per (set, kind) the newest backup's start
    (Unix time), duration and stored bytes; per (set, tier) the backups held; per
    (set, kind) the failures recorded; per set the RPO and RTO, the newest backup's age
    and the last drill's start, duration and success."""

    newest: Mapping[tuple[str, str], tuple[float, float, int]]
    counts: Mapping[tuple[str, str], int]
    failures: Mapping[tuple[str, str], int]
    objectives: Mapping[str, tuple[float | None, float | None]] = attrs.field(factory=dict)  # rpo, rto
    ages: Mapping[str, float] = attrs.field(factory=dict)
    drills: Mapping[str, tuple[float, float, bool]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, catalog: Catalog, failed: Mapping[tuple[str, str], int],
           set_names: Iterable[str] = (), *, now: dt.datetime | None = None,
           objectives: Mapping[str, Objectives] | None = None,
           drills: Iterable[DrillRecord] = ()) -> Reading:
        """From a catalog and the failure counts; *set_names* (the configured sets) get
        zero counts too, so that a counter exists before its first failure. With *now*,
        each set's newest backup has an age; *objectives* and *drills* (records, oldest
        first) give the RPO, RTO and last drill per set."""
        newest: dict[tuple[str, str], tuple[float, float, int]] = {}
        latest: dict[str, dt.datetime] = {}
        for m in catalog:  # oldest first: the newest is written last
            newest[(m.set_name, m.kind)] = (m.created_at.timestamp(), m.duration_seconds, m.stored_size)
            latest[m.set_name] = m.created_at
        sets = sorted({*set_names, *catalog.sets, *(s for s, _ in failed)})
        held = Counter((m.set_name, m.tier) for m in {m.id: m for m in catalog}.values())
        counts = {(s, t): held[(s, t)] for s in sets for t in TIERS}
        ages = {} if now is None else {s: (now - at).total_seconds() for s, at in latest.items()}
        last = {r.set_name: r for r in sorted(drills, key=lambda r: (r.started_at, r.drill_id))}
        return cls(newest, counts, {(s, k): failed.get((s, k), 0) for s in sets for k in KINDS},
                   {s: (_seconds(o.rpo), _seconds(o.rto)) for s, o in (objectives or {}).items()}, ages,
                   {s: (r.started_at.timestamp(), r.seconds, r.ok) for s, r in last.items()})

    @classmethod
    def of_engine(cls, engine: Engine) -> Reading:
        """What *engine*'s sinks hold now (ages at the engine's clock)."""
        sets = engine.config.sets
        return cls.of(engine.catalog(), failures(engine.parts.sinks()), sets, now=engine.clock(),
                      objectives={n: Objectives(s.rpo, s.rto) for n, s in sets.items()},
                      drills=engine.drills())

    def families(self) -> list[Metric]:
        """The metric families, labels sorted so that equal readings expose equal text."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values: list[Mapping[tuple[str, ...], float]] = [
            {key: newest[0] for key, newest in self.newest.items()},
            {key: newest[1] for key, newest in self.newest.items()},
            {key: newest[2] for key, newest in self.newest.items()},
            {key: count for key, count in self.failures.items()},
            {key: count for key, count in self.counts.items()},
            {(s,): rpo for s, (rpo, _) in self.objectives.items() if rpo is not None},
            {(s,): age for s, age in self.ages.items()},
            {(s,): rto for s, (_, rto) in self.objectives.items() if rto is not None},
            {(s,): drill[0] for s, drill in self.drills.items()},
            {(s,): drill[1] for s, drill in self.drills.items()},
            {(s,): float(drill[2]) for s, drill in self.drills.items()},
        ]
        families: list[Metric] = []
        for (name, kind, text, labels), samples in zip(METRICS, values, strict=True):
            family = (CounterMetricFamily(name, text, labels=labels) if kind == "counter"
                      else GaugeMetricFamily(name, text, labels=labels))
            for key, value in sorted(samples.items()):
                family.add_metric(list(key), value)  # no created=: no *_created series
            families.append(family)
        return families


@attrs.define(eq=False)
class BackupCollector:
    """A ``prometheus_client`` collector reading an engine's sinks at collect time; a
    reading is reused for *cache_seconds* (0: read at every collect)."""

    engine: Engine = attrs.field(repr=False)
    cache_seconds: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cached: tuple[float, list[Metric]] | None = attrs.field(default=None, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def describe(self) -> list[Metric]:
        """The families without samples: the registry learns the names without reading."""
        return Reading({}, {}, {}).families()

    def collect(self) -> Iterator[Metric]:
        """The families as the sinks hold them (a reading errors out the scrape)."""
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, Reading.of_engine(self.engine).families())
            families = self._cached[1]
        return iter(families)


def registry_for(engine: Engine, *, cache_seconds: float = CACHE_SECONDS) -> CollectorRegistry:
    """A fresh registry holding a :class:`BackupCollector` for *engine* (and nothing else:
    no process or platform metrics, no ``*_created`` series)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackupCollector(engine, cache_seconds))
    return registry


def exposition(engine: Engine) -> tuple[bytes, str]:
    """The metrics of *engine* in Prometheus' text format, read now: (body, content type)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry_for(engine, cache_seconds=0)), CONTENT_TYPE_LATEST


def write_textfile(engine: Engine, path: str | os.PathLike[str]) -> None:
    """Write *engine*'s metrics to *path* (it must end in ``.prom``) for node_exporter's
    textfile collector, atomically: a temporary file beside it, renamed over it; a reading
    that fails leaves the previous file as it was."""
    from prometheus_client import write_to_textfile

    write_to_textfile(check_textfile_path(path), registry_for(engine, cache_seconds=0))


def configured_textfile(engine: Engine) -> str | None:
    """The ``textfile`` of *engine*'s ``[plugins.metrics]`` table, if it names one."""
    settings = engine.config.plugin_settings.get("metrics")
    return textfile_setting(settings) if isinstance(settings, Mapping) else None
