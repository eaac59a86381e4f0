"""Restore planning: target resolution, the chain in apply order, and broken chains."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Artifact, Manifest, PluginSpec, backup_id
from backupkit.core.restore import plan_restore
from backupkit.errors import ChainError, ConfigError, ManifestError, NotFoundError

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, 2, tzinfo=UTC)


def make(
    hours: int, token: str, *, kind: str = "full", parent: Manifest | str | None = None,
    set_name: str = "app", artifacts: tuple[str, ...] = ("db", "files"),
) -> Manifest:
    created = T0 + dt.timedelta(hours=hours)
    ident = backup_id(created, token)
    return Manifest(
        id=ident, set_name=set_name, created_at=created, kind=kind,  # type: ignore[arg-type]
        hostname="h", tool_version="0",
        parent_id=parent.id if isinstance(parent, Manifest) else parent,
        artifacts=tuple(
            Artifact(
                name=name, source=PluginSpec(name), transforms=(), key=f"{kind}/{ident}.{name}",
                raw_size=100, stored_size=40, raw_sha256="0" * 64, stored_sha256="1" * 64,
            )
            for name in artifacts
        ),
    )


@pytest.fixture()
def chain() -> list[Manifest]:
    """A full, three incrementals on it, then the next day's full."""
    full = make(0, "aaaaaa")
    inc1 = make(6, "bbbbbb", kind="incremental", parent=full)
    inc2 = make(12, "cccccc", kind="incremental", parent=inc1)
    inc3 = make(18, "dddddd", kind="incremental", parent=inc2)
    return [full, inc1, inc2, inc3, make(24, "eeeeee")]


def test_latest_is_the_newest_backup_alone_when_it_is_a_full(chain: list[Manifest]) -> None:
    plan = plan_restore(Catalog(chain), target="latest")
    assert plan.chain == (chain[4],) and plan.target == plan.full == chain[4]
    assert plan.incrementals == ()


def test_an_incremental_restores_through_its_full_in_apply_order(chain: list[Manifest]) -> None:
    plan = plan_restore(Catalog(chain), target=chain[3].id)
    assert plan.chain == tuple(chain[:4])
    assert plan.full == chain[0] and plan.incrementals == tuple(chain[1:4])
    assert [(f.backup_id, f.artifact.name) for f in plan.artifacts] == [
        (m.id, name) for m in chain[:4] for name in ("db", "files")
    ]
    assert plan.artifacts[0].key == f"full/{chain[0].id}.db"
    assert plan.stored_size == 4 * 2 * 40


def test_a_unique_prefix_names_a_backup(chain: list[Manifest]) -> None:
    assert plan_restore(Catalog(chain), target=chain[2].id[:-3]).target == chain[2]


def test_a_time_resolves_to_the_newest_backup_at_or_before_it(chain: list[Manifest]) -> None:
    catalog = Catalog(chain)
    assert plan_restore(catalog, target=T0 + dt.timedelta(hours=12)).target == chain[2]
    assert plan_restore(catalog, target=T0 + dt.timedelta(hours=17, minutes=59)).target == chain[2]
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert plan_restore(catalog, target=dt.datetime(2024, 1, 1, 21, tzinfo=berlin)).target == chain[3]
    assert plan_restore(catalog, target=T0 + dt.timedelta(days=30)).target == chain[4]


def test_a_time_before_the_first_backup_is_not_found_and_names_the_first(chain: list[Manifest]) -> None:
    with pytest.raises(NotFoundError, match=f"no backup at or before .*the first is {chain[0].id}"):
        plan_restore(Catalog(chain), target=T0 - dt.timedelta(seconds=1))


def test_a_naive_time_is_refused(chain: list[Manifest]) -> None:
    with pytest.raises(ConfigError, match="has no time zone"):
        plan_restore(Catalog(chain), target=dt.datetime(2024, 1, 1, 12))


def test_unknown_ids_and_an_empty_catalog_are_not_found(chain: list[Manifest]) -> None:
    with pytest.raises(NotFoundError, match="no backup with id or prefix 'zzz'"):
        plan_restore(Catalog(chain), target="zzz")
    with pytest.raises(NotFoundError, match="run a backup first"):
        plan_restore(Catalog(), target="latest")
    with pytest.raises(NotFoundError, match="run a backup first"):
        plan_restore(Catalog(), target=T0)
    with pytest.raises(ConfigError):
        plan_restore(Catalog(chain), target=42)  # type: ignore[arg-type]


def test_several_sets_need_a_set_name_for_latest_and_times(chain: list[Manifest]) -> None:
    db = make(30, "ffffff", set_name="db")
    catalog = Catalog([*chain, db])
    with pytest.raises(ConfigError, match=r"2 backup sets \(app, db\); name the set"):
        plan_restore(catalog, target="latest")
    with pytest.raises(ConfigError, match="name the set"):
        plan_restore(catalog, target=T0 + dt.timedelta(hours=40))
    assert plan_restore(catalog, target="latest", set_name="app").target == chain[4]
    assert plan_restore(catalog, target=T0 + dt.timedelta(hours=13), set_name="app").target == chain[2]
    assert plan_restore(catalog, target=db.id).target == db  # an id names its own set
    with pytest.raises(NotFoundError):
        plan_restore(catalog, target=db.id, set_name="app")
    with pytest.raises(NotFoundError, match="of set 'db' at or before"):
        plan_restore(catalog, target=T0, set_name="db")


def test_a_missing_parent_is_a_chain_error_naming_both_backups(chain: list[Manifest]) -> None:
    catalog = Catalog([chain[0], chain[2], chain[3]])  # inc1 is gone
    with pytest.raises(ChainError) as info:
        plan_restore(catalog, target=chain[3].id)
    message = str(info.value)
    assert f"backup {chain[3].id} needs {chain[1].id} (parent of {chain[2].id})" in message
    assert "\n" not in message and isinstance(info.value, ManifestError)


def test_a_missing_parent_mentions_unreadable_manifests_when_there_are_some(chain: list[Manifest]) -> None:
    catalog = Catalog([chain[0], chain[2]], problems=[CatalogProblem("k", "bad json")])
    with pytest.raises(ChainError, match="unreadable manifests"):
        plan_restore(catalog, target=chain[2].id)


def test_a_parent_in_another_set_is_a_chain_error() -> None:
    other = make(0, "aaaaaa", set_name="db")
    inc = make(6, "bbbbbb", kind="incremental", parent=other)
    with pytest.raises(ChainError, match="of set 'app' names parent .* of set 'db'"):
        plan_restore(Catalog([other, inc]), target=inc.id)


def test_a_looping_chain_is_a_chain_error() -> None:
    a_id = backup_id(T0 + dt.timedelta(hours=1), "aaaaaa")
    b = make(2, "bbbbbb", kind="incremental", parent=a_id)
    a = make(1, "aaaaaa", kind="incremental", parent=b)
    assert a.id == a_id
    with pytest.raises(ChainError, match="loops"):
        plan_restore(Catalog([a, b]), target=b.id)


def test_an_incremental_without_a_parent_is_a_chain_error() -> None:
    orphan = make(1, "aaaaaa", kind="incremental")
    with pytest.raises(ChainError, match="names no parent"):
        plan_restore(Catalog([orphan]), target="latest")


def test_a_full_backup_needs_nothing_else_even_if_it_names_a_parent() -> None:
    odd = make(1, "aaaaaa", parent="20200101T000000Z-0000000")
    assert plan_restore(Catalog([odd]), target="latest").chain == (odd,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["full", "incremental"]), min_size=1, max_size=30), st.data())
def test_every_backup_of_a_valid_history_restores_through_its_own_chain(
    kinds: list[str], data: st.DataObject
) -> None:
    history: list[Manifest] = []
    for n, kind in enumerate(kinds):
        if not history:
            kind = "full"
        parent = data.draw(st.sampled_from(history)) if kind == "incremental" else None
        history.append(make(n, f"{n:06x}", kind=kind, parent=parent, artifacts=("x",)))
    catalog = Catalog(history)
    for m in history:
        plan = plan_restore(catalog, target=m.id)
        assert plan.target == m and plan.full.kind == "full"
        assert all(x.kind == "incremental" for x in plan.incrementals)
        for earlier, later in zip(plan.chain, plan.chain[1:], strict=False):
            assert later.parent_id == earlier.id
        assert [f.backup_id for f in plan.artifacts] == [x.id for x in plan.chain]


@given(micro=st.integers(0, 999_999), offset=st.integers(-2, 2))
def test_a_time_to_the_second_takes_in_the_backup_listed_at_that_second(micro: int, offset: int) -> None:
    old = make(0, "aaaaaa")
    new = attrs_evolve_created(make(1, "bbbbbb"), micro)
    shown = new.created_at.replace(microsecond=0)  # as ids and `backupkit list` show it
    when = shown + dt.timedelta(seconds=offset)
    catalog = Catalog([old, new])

    found = plan_restore(catalog, target=when).chain[-1]

    assert found == (new if offset >= 0 else old)
    assert catalog.at_or_before(when) == found
    if micro >= 2:  # a time with its own fraction is taken as it is
        exact = new.created_at - dt.timedelta(microseconds=1)
        assert plan_restore(catalog, target=exact).chain[-1] == old


def attrs_evolve_created(manifest: Manifest, micro: int) -> Manifest:
    import attrs

    return attrs.evolve(manifest, created_at=manifest.created_at.replace(microsecond=micro))


def unreadable(hours: int, token: str, set_name: str = "app") -> CatalogProblem:
    ident = backup_id(T0 + dt.timedelta(hours=hours), token)
    return CatalogProblem(
        f"/srv/backups/daily/{set_name}_full_{ident}.manifest.json",
        f"manifest /srv/backups/daily/{set_name}_full_{ident}.manifest.json is sealed with key "
        "0123456789abcdef, which is not configured",
    )


def test_latest_and_times_refuse_to_skip_a_newer_backup_that_cannot_be_read(chain: list[Manifest]) -> None:
    catalog = Catalog(chain, problems=[unreadable(30, "ffffff")])  # newer than the 24 h full
    newer = backup_id(T0 + dt.timedelta(hours=30), "ffffff")

    with pytest.raises(
        ManifestError,
        match=rf"newest backup of set 'app', {newer}, cannot be read: .*0123456789abcdef.* "
        rf"restore {chain[4].id} by its id",
    ):
        plan_restore(catalog, target="latest")
    with pytest.raises(ManifestError, match=newer):
        plan_restore(catalog, target=T0 + dt.timedelta(hours=31))

    assert plan_restore(catalog, target=T0 + dt.timedelta(hours=29)).chain[-1] == chain[4]  # before it
    assert plan_restore(catalog, target=chain[4].id).chain[-1] == chain[4]  # an id is what it says


def test_an_unreadable_backup_that_is_older_or_of_another_set_changes_nothing(chain: list[Manifest]) -> None:
    catalog = Catalog(chain, problems=[unreadable(3, "ffffff"), unreadable(40, "eeeeee", set_name="db")])
    assert plan_restore(catalog, target="latest", set_name="app").chain[-1] == chain[4]


def test_a_set_whose_only_backups_cannot_be_read_says_why() -> None:
    catalog = Catalog([], problems=[unreadable(3, "ffffff")])
    with pytest.raises(ManifestError, match="cannot be read: .*not configured"):
        plan_restore(catalog, target="latest")
