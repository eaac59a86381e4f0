"""Manifests: JSON round trip, and every defect reported as a ManifestError naming the file."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.core.manifest import Artifact, Manifest, PluginSpec, backup_id, format_timestamp
from backupkit.errors import ManifestError

UTC = dt.UTC
SHA = "a" * 64


def make_manifest(**overrides: object) -> Manifest:
    created = dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC)
    fields: dict[str, object] = dict(
        id=backup_id(created, "abc123"),
        set_name="app",
        created_at=created,
        kind="full",
        hostname="web-1",
        tool_version="0.1.0",
        artifacts=(
            Artifact(
                name="files",
                source=PluginSpec("filesystem", {"paths": ["/srv"]}),
                transforms=(PluginSpec("zstd", {"level": 3}),),
                key="daily/app_full_x.files.tar.zst",
                raw_size=10,
                stored_size=5,
                raw_sha256=SHA,
                stored_sha256="b" * 64,
            ),
        ),
    )
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_manifest_json_round_trip_keeps_every_field() -> None:
    m = make_manifest(tags=("keep", "prod"), parent_id=None, reason="nightly", tier="weekly",
                      duration_seconds=12.5)
    again = Manifest.from_json(m.to_json(), origin="x.json")
    assert again == m and again.duration_seconds == 12.5
    incremental = make_manifest(kind="incremental", parent_id="20231231T020000Z-0a1b2c",
                                tier="incremental")
    back = Manifest.from_json(incremental.to_json(), origin="y.json")
    assert back == incremental and back.parent_id == "20231231T020000Z-0a1b2c"
    assert json.loads(m.to_json())["format"] == 1
    assert json.loads(m.to_json())["created_at"] == "2024-01-01T02:00:00Z"


def test_created_at_is_normalised_to_utc_and_naive_times_are_refused() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    m = make_manifest(created_at=dt.datetime(2024, 1, 1, 3, 0, tzinfo=berlin))
    assert m.created_at == dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC)
    assert m.created_at.utcoffset() == dt.timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_manifest(created_at=dt.datetime(2024, 1, 1))


def test_truncated_manifest_names_the_file() -> None:
    data = make_manifest().to_json()
    with pytest.raises(ManifestError, match=r"manifest daily/m\.json is not valid JSON"):
        Manifest.from_json(data[: len(data) // 2], origin="daily/m.json")


def test_unknown_format_version_says_to_upgrade() -> None:
    obj = make_manifest().to_dict()
    obj["format"] = 99
    with pytest.raises(ManifestError, match=r"m\.json has format version 99.*upgrade backupkit"):
        Manifest.from_dict(obj, origin="m.json")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.pop("id"), "'id'"),
        (lambda o: o.update(kind="weekly"), "'kind'"),
        (lambda o: o.update(created_at="yesterday"), "'created_at'"),
        (lambda o: o.update(created_at="2024-01-01T00:00:00"), "'created_at'"),
        (lambda o: o.update(created_at="0001-01-01T00:30:00+01:00"), "'created_at'"),  # < year 1
        (lambda o: o["artifacts"][0].update(raw_size=-1), "'artifacts[0].raw_size'"),
        (lambda o: o["artifacts"][0].update(raw_size="10"), "'artifacts[0].raw_size'"),
        (lambda o: o["artifacts"][0].update(stored_sha256="XYZ"), "'artifacts[0].stored_sha256'"),
        (lambda o: o["artifacts"][0].pop("key"), "'artifacts[0].key'"),
        (lambda o: o.update(tags=[1]), "'tags'"),
        (lambda o: o.update(id="../../etc"), "'id'"),
        (lambda o: o.update(duration_seconds="1"), "'duration_seconds'"),
        (lambda o: o.update(duration_seconds=True), "'duration_seconds'"),
    ],
)
def test_invalid_field_is_named_with_the_file(mutate, field) -> None:  # type: ignore[no-untyped-def]
    obj = make_manifest().to_dict()
    mutate(obj)
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(obj, origin="sink/daily/bad.manifest.json")
    assert "sink/daily/bad.manifest.json" in str(info.value)
    assert field in str(info.value)
    assert "\n" not in str(info.value)


def test_artifact_lookup_lists_existing_names() -> None:
    m = make_manifest()
    assert m.artifact("files").raw_size == 10
    with pytest.raises(ManifestError, match="it has: files"):
        m.artifact("db")


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    when=st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    token=st.text("0123456789abcdef", min_size=6, max_size=12),
    set_name=names,
    hostname=names,
    reason=names,
    tags=st.lists(names, max_size=4),
    sizes=st.lists(st.tuples(st.integers(0, 2**60), st.integers(0, 2**60)), min_size=0, max_size=4),
)
def test_any_manifest_survives_json(when, token, set_name, hostname, reason, tags, sizes) -> None:  # type: ignore[no-untyped-def]
    artifacts = tuple(
        Artifact(
            name=f"a{i}",
            source=PluginSpec("filesystem", {"paths": [set_name]}),
            transforms=(),
            key=f"daily/{i}",
            raw_size=raw,
            stored_size=stored,
            raw_sha256=SHA,
            stored_sha256=SHA,
        )
        for i, (raw, stored) in enumerate(sizes)
    )
    m = make_manifest(
        id=backup_id(when, token), created_at=when, set_name=set_name, hostname=hostname,
        reason=reason, tags=tuple(tags), artifacts=artifacts,
    )
    assert Manifest.from_json(m.to_json()) == m
    assert m.raw_size == sum(r for r, _ in sizes)
    assert m.id.startswith(format_timestamp(when))
