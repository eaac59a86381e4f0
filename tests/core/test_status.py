"""The pure status summary: counts, sizes and the newest backup's age per set."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Artifact, Manifest, PluginSpec, backup_id
from backupkit.core.status import summarize

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def m(minutes: int, n: int, set_name: str, size: int) -> Manifest:
    created = T0 + dt.timedelta(minutes=minutes)
    art = Artifact(name="files", source=PluginSpec("filesystem", {}), transforms=(), key=f"k{n}",
                   raw_size=size, stored_size=size, raw_sha256="0" * 64, stored_sha256="0" * 64)
    return Manifest(id=backup_id(created, f"{n:06x}"), set_name=set_name, created_at=created,
                    kind="full", hostname="h", tool_version="0", artifacts=(art,))


backups = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(["app", "db", "web"]), st.integers(0, 10**9)),
    max_size=30,
)


@given(backups, st.integers(-100, 20_000))
def test_summary_counts_sizes_and_newest_per_set(rows: list[tuple[int, str, int]], now_min: int) -> None:
    manifests = [m(minute, i, name, size) for i, (minute, name, size) in enumerate(rows)]
    now = T0 + dt.timedelta(minutes=now_min)
    report = summarize(Catalog(manifests), set_names=["app", "empty"], sinks=["/s"], now=now)
    by_name = {s.name: s for s in report.sets}
    assert list(by_name)[:2] == ["app", "empty"]  # configured sets first, in order
    assert by_name["empty"].backups == 0 and by_name["empty"].latest_id is None
    for name in {r[1] for r in rows}:
        mine = [x for x in manifests if x.set_name == name]
        newest = max(mine, key=lambda x: (x.created_at, x.id))
        status = by_name[name]
        assert status.backups == len(mine)
        assert status.stored_bytes == sum(x.stored_size for x in mine)
        assert status.latest_at == newest.created_at
        assert status.latest_age_seconds == (now - newest.created_at).total_seconds()
    assert set(by_name) == {"app", "empty"} | {r[1] for r in rows}


def test_to_dict_and_for_set_keep_the_json_shape() -> None:
    catalog = Catalog([m(0, 1, "app", 10), m(60, 2, "db", 5)], [CatalogProblem("s/x", "bad")])
    report = summarize(catalog, set_names=["app"], sinks=["/s"], now=T0 + dt.timedelta(hours=2))
    data = report.for_set("db").to_dict()
    assert data == {
        "sinks": ["/s"],
        "health": "ok",
        "sets": {"db": {"backups": 1, "stored_bytes": 5, "latest_id": catalog.for_set("db").latest().id,
                        "latest_at": "2024-01-01T01:00:00+00:00", "latest_age_seconds": 3600.0,
                        "health": "ok", "reasons": [], "rpo_seconds": None, "rto_seconds": None,
                        "last_drill": None,
                        "storage": {"stored_bytes": 5, "added_bytes_per_day": 5 / 7, "disks": []}}},
        "problems": [{"key": "s/x", "message": "bad"}],
        "leftovers": [],
    }
    assert report.for_set(None) is report
