"""The catalog: ordering, lookups by id, prefix, time, kind and tag, records for pandas."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Manifest, backup_id
from backupkit.errors import ConfigError, ManifestError, NotFoundError

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def m(hours: int, token: str, *, set_name: str = "app", kind: str = "full", tags: tuple[str, ...] = ()) -> Manifest:
    created = T0 + dt.timedelta(hours=hours)
    return Manifest(
        id=backup_id(created, token), set_name=set_name, created_at=created, kind=kind,  # type: ignore[arg-type]
        hostname="h", tool_version="0", artifacts=(), tags=tags,
    )


def test_catalog_orders_oldest_first_and_latest_is_newest() -> None:
    a, b, c = m(0, "aaaaaa"), m(5, "bbbbbb"), m(2, "cccccc")
    cat = Catalog([b, a, c])
    assert [x.id for x in cat] == [a.id, c.id, b.id]
    assert cat.latest() == b
    with pytest.raises(NotFoundError, match="no incremental backup"):
        cat.latest(kind="incremental")


def test_get_by_full_id_and_unique_prefix_and_ambiguous_prefix() -> None:
    a, b = m(0, "aaaaaa"), m(0, "abbbbb")
    cat = Catalog([a, b])
    assert cat.get(a.id) == a
    assert cat.get(b.id[:-3]) == b
    with pytest.raises(NotFoundError, match="matches 2 backups"):
        cat.get("20240101")
    with pytest.raises(NotFoundError, match="no backup with id or prefix 'zzz'"):
        cat.get("zzz")
    with pytest.raises(ConfigError):
        cat.get("")


def test_at_or_before_picks_newest_not_after_and_needs_a_timezone() -> None:
    a, b = m(0, "aaaaaa"), m(10, "bbbbbb")
    cat = Catalog([a, b])
    assert cat.at_or_before(T0 + dt.timedelta(hours=9, minutes=59)) == a
    assert cat.at_or_before(T0 + dt.timedelta(hours=10)) == b
    with pytest.raises(NotFoundError):
        cat.at_or_before(T0 - dt.timedelta(seconds=1))
    with pytest.raises(ConfigError, match="no time zone"):
        cat.at_or_before(dt.datetime(2024, 1, 2))


def test_filters_by_set_kind_and_tag_and_resolve_latest_per_set() -> None:
    a = m(0, "aaaaaa", set_name="app", tags=("keep",))
    b = m(1, "bbbbbb", set_name="db", kind="incremental")
    c = m(2, "cccccc", set_name="app")
    cat = Catalog([a, b, c], [CatalogProblem("x", "bad")])
    assert cat.sets == ("app", "db")
    assert list(cat.for_set("db")) == [b]
    assert list(cat.by_kind("incremental")) == [b]
    assert list(cat.by_tag("keep")) == [a]
    assert cat.resolve("latest", set_name="app") == c
    assert cat.for_set("app").problems == cat.problems


def test_records_are_plain_dicts_one_per_backup() -> None:
    a = m(0, "aaaaaa", tags=("x", "y"))
    records = Catalog([a]).to_records()
    assert records == [
        {
            "id": a.id, "set": "app", "created_at": a.created_at, "kind": "full", "tier": "daily",
            "parent_id": None, "hostname": "h", "reason": "manual", "tags": "x,y", "artifacts": 0,
            "raw_size": 0, "stored_size": 0, "duration_seconds": 0.0,
        }
    ]
    assert all(isinstance(v, (str, int, float, type(None), dt.datetime)) for v in records[0].values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.text("0123456789abcdef", min_size=6, max_size=6)),
                unique_by=lambda t: t[1], max_size=30))
def test_latest_and_at_or_before_agree_with_a_sort(entries) -> None:  # type: ignore[no-untyped-def]
    manifests = [m(h, tok) for h, tok in entries]
    cat = Catalog(manifests)
    if not manifests:
        with pytest.raises(NotFoundError):
            cat.latest()
        return
    newest = max(manifests, key=lambda x: (x.created_at, x.id))
    assert cat.latest() == newest
    assert cat.at_or_before(newest.created_at + dt.timedelta(days=1)) == newest
    for x in manifests:
        found = cat.at_or_before(x.created_at)
        assert found.created_at == x.created_at


_stamp = st.tuples(st.integers(0, 2), st.sampled_from([0, 1, 499_999, 500_000, 999_999]))  # s, µs


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_stamp, st.text("ab", min_size=6, max_size=6)), max_size=12),
    st.lists(st.tuples(_stamp, st.text("ab", min_size=6, max_size=6)), max_size=3),
    st.lists(_stamp, max_size=6),
)
def test_get_and_at_or_before_agree_with_a_brute_force_search(entries, unreadable, times) -> None:  # type: ignore[no-untyped-def]
    # Ids share long prefixes (the same second, tokens of two letters); times have microseconds.
    def when(stamp: tuple[int, int]) -> dt.datetime:
        return T0 + dt.timedelta(seconds=stamp[0], microseconds=stamp[1])

    manifests = {backup_id(when(s), tok): when(s) for s, tok in entries}
    cat = Catalog(
        [Manifest(id=i, set_name="app", created_at=t, kind="full", hostname="h", tool_version="0",
                  artifacts=()) for i, t in manifests.items()],
        [CatalogProblem(f"daily/app_{backup_id(when(s), tok)}.manifest.json", "truncated")
         for s, tok in unreadable if backup_id(when(s), tok) not in manifests],
    )
    broken = [p.key for p in cat.problems]
    refs = {i[:n] for i in [*manifests, *(k.split("_")[1][:23] for k in broken)] for n in range(8, 24)}
    for ref in sorted(refs):
        matches = [i for i in manifests if i == ref] or [i for i in manifests if i.startswith(ref)]
        if len(matches) == 1:
            assert cat.get(ref).id == matches[0]
        elif not matches and sum(f"_{ref}" in k for k in broken) == 1:
            with pytest.raises(ManifestError, match="cannot be read: truncated"):
                cat.get(ref)
        else:
            with pytest.raises(NotFoundError):
                cat.get(ref)
    for stamp in [*times, *(s for s, _ in entries)]:
        t = when(stamp)
        # A time given to the second takes in the whole second; one with microseconds does not.
        end = t + dt.timedelta(seconds=1) if not t.microsecond else t + dt.timedelta(microseconds=1)
        before = sorted((c, i) for i, c in manifests.items() if c < end)
        if before:
            assert cat.at_or_before(t).id == before[-1][1]
        else:
            with pytest.raises(NotFoundError):
                cat.at_or_before(t)
