"""Retention properties over random catalogs and policies (hypothesis).

Catalogs have several sets, full backups, incremental chains via ``parent_id`` (parents
chosen among earlier-drawn backups of the set, so sometimes newer than the child, and
now and then missing, of another set, drawn later, or closing a loop of one to three
backups), pinned tags, and backups after ``now``, over two year boundaries. ``now`` is
now and then exactly the time of a backup. Every plan runs behind a hang guard, as a
loop of parents must not hang planning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_retention import Hang, finishes

from backupkit.core.catalog import Catalog
from backupkit.core.durations import Duration
from backupkit.core.manifest import Manifest, backup_id
from backupkit.core.policy import ALL, COUNT_KEYS, WITHIN_BUCKETS, WITHIN_KEYS
from backupkit.core.retention import (
    BASE_OF_KEPT,
    BUCKETS,
    IN_THE_FUTURE,
    NEWEST_FULL,
    PINNED,
    RetentionPlan,
    RetentionPolicy,
    plan_retention,
)
from backupkit.core.tiers import TIERS
from backupkit.errors import ConfigError

# Clustered catalogs (SPAN / 50: 10 days) cross New Year 2025, spread ones New Year 2026
# too; 2024-12-30 and 31 are in ISO week 2025-W01, 2025-12-29 to 31 in 2026-W01.
BASE = dt.datetime(2024, 12, 24, tzinfo=dt.UTC)
SPAN_MINUTES = 500 * 24 * 60
DAY_MINUTES = 24 * 60
# Minutes after BASE that backups and `now` both land on now and then, so that `now` is
# sometimes exactly a backup's time; most are around New Year's Eve.
GRID = tuple(
    day * DAY_MINUTES + minutes
    for day, minutes in ((0, 720), (6, 720), (7, 23 * 60 + 30), (9, 17), (190, 0), (372, 23 * 60 + 30))
)
ZONES = [ZoneInfo(name) for name in (
    "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
    "Pacific/Chatham",
)]
GUARDS = (PINNED, NEWEST_FULL, IN_THE_FUTURE)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_entry = st.tuples(
    st.sampled_from(["app", "app", "db"]),  # set
    st.integers(0, SPAN_MINUTES),  # minutes after BASE (scaled down when clustered)
    st.sampled_from(["full", "incremental", "incremental"]),
    st.integers(0, 1000),  # which parent: mostly the same set, sometimes missing or foreign
    st.sampled_from([(), (), ("keep",), ("prod",), ("keep", "prod")]),
    st.sampled_from(["daily", "weekly", "monthly"]),
    st.integers(0, 4 * len(GRID)),  # on the grid if below len(GRID)
)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    clustered = draw(st.booleans())  # many backups in a few days, or spread over months
    manifests: list[Manifest] = []
    for n, (set_name, minutes, kind, pick, tags, tier, grid) in enumerate(
        draw(st.lists(_entry, min_size=draw(st.sampled_from((0, 0, 0, 10))), max_size=40))
    ):
        if grid < len(GRID):
            minutes = GRID[grid]
        elif clustered:
            minutes //= 50
        created = BASE + dt.timedelta(minutes=minutes)
        parent_id = None
        if kind == "incremental":
            same = [m.id for m in manifests if m.set_name == set_name]
            other = [m.id for m in manifests if m.set_name != set_name]
            choices = same * 4 + other + ["20231231T000000Z-dead00", None]
            parent_id = choices[pick % len(choices)]
        manifests.append(
            Manifest(
                id=backup_id(created, f"{n:06x}"), set_name=set_name, created_at=created,
                kind=kind,
                hostname="h", tool_version="0", artifacts=(), parent_id=parent_id, tags=tags,
                tier="incremental" if kind == "incremental" else tier,
            )
        )
    if manifests:
        picks = st.integers(0, len(manifests) - 1)
        # Parents drawn later than the child (any set), then a loop within one set.
        for child, parent in draw(st.lists(st.tuples(picks, picks), max_size=2)):
            manifests[child] = _incremental_on(manifests[child], manifests[parent])
        ring = list(dict.fromkeys(draw(st.lists(picks, max_size=3))))
        ring = [i for i in ring if manifests[i].set_name == manifests[ring[0]].set_name]
        for i, j in zip(ring, ring[1:] + ring[:1]):
            manifests[i] = _incremental_on(manifests[i], manifests[j])
    return Catalog(manifests)


def _incremental_on(child: Manifest, parent: Manifest) -> Manifest:
    return attrs.evolve(child, kind="incremental", tier="incremental", parent_id=parent.id)


exact = st.integers(1, 60 * 24 * 60).map(lambda m: dt.timedelta(minutes=m))
durations = st.one_of(
    exact.map(Duration.of),  # most are exact, some calendar months (with an exact part now and then)
    st.builds(Duration, months=st.integers(1, 14), exact=st.just(dt.timedelta(0)) | exact),
)
counts = st.one_of(st.just(0), st.just(0), st.integers(1, 8), st.just(ALL))
tag_sets = st.lists(st.sampled_from([("prod",), ("keep", "prod"), ("db",)]), max_size=2, unique=True)


@st.composite
def policies(draw: st.DrawFn, *, caps: bool = True) -> RetentionPolicy:
    values: dict[str, object] = {key: draw(counts) for key in COUNT_KEYS}
    values["keep_within"] = draw(st.none() | durations)
    for key in WITHIN_KEYS[1:]:
        values[key] = draw(st.none() | st.none() | durations)
    values["keep_tag"] = tuple(draw(tag_sets))
    values["tier_ages"] = draw(st.dictionaries(st.sampled_from(TIERS), durations, max_size=4))
    if caps:
        values["max_age"] = draw(st.none() | durations)
        values["max_count"] = draw(st.none() | st.integers(1, 25))
    values["pinned_tag"] = draw(st.sampled_from(["keep", "prod"]))
    values["oldest_rule"] = draw(st.booleans())
    values["within_anchor"] = draw(st.sampled_from(["newest", "now"]))
    assume(
        any(values[k] for k in COUNT_KEYS) or any(values[k] for k in WITHIN_KEYS)
        or values["keep_tag"] or values["tier_ages"]
    )
    return RetentionPolicy(**values)  # type: ignore[arg-type]


nows = st.one_of(st.integers(-10 * 24 * 60, SPAN_MINUTES + 60 * 24 * 60), st.sampled_from(GRID)).map(
    lambda m: BASE + dt.timedelta(minutes=m)
)
zones = st.sampled_from(ZONES)
T = TypeVar("T")


def ancestors(m: Manifest, catalog: Catalog) -> list[Manifest]:
    """The backups *m* depends on within its set, as retention follows them."""
    by_id = {x.id: x for x in catalog if x.set_name == m.set_name}
    out: list[Manifest] = []
    seen = {m.id}
    while m.kind == "incremental" and m.parent_id in by_id and m.parent_id not in seen:
        m = by_id[m.parent_id]
        seen.add(m.id)
        out.append(m)
    return out


def closure(manifests: list[Manifest], catalog: Catalog) -> set[str]:
    return {x.id for m in manifests for x in [m, *ancestors(m, catalog)]}


_HUNG: list[str] = []


def guarded(call: Callable[[], T]) -> T:
    """*call()* behind test_retention's 60 s hang guard. After one hang every later call
    fails at once, so that hypothesis does not wait 60 s for each example it tries."""
    assert not _HUNG, f"an earlier call never returned: {_HUNG[0]}"
    try:
        return finishes(call)
    except Hang as exc:
        _HUNG.append(str(exc))
        raise


def planned(catalog: Catalog, policy: RetentionPolicy, *, now: dt.datetime, tz: dt.tzinfo) -> RetentionPlan:
    return guarded(lambda: plan_retention(catalog, policy, now=now, tz=tz))


def kept_ids(plan: RetentionPlan) -> set[str]:
    return {m.id for m in plan.keep}


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_the_newest_full_backup_of_each_set_is_never_deleted(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    kept = kept_ids(planned(catalog, policy, now=now, tz=tz))
    for name in catalog.sets:
        fulls = [m for m in catalog.for_set(name) if m.kind == "full"]
        if fulls:
            assert fulls[-1].id in kept
        present = [m for m in fulls if m.created_at <= now]
        if present:
            assert present[-1].id in kept


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_no_kept_incremental_has_a_deleted_ancestor(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    kept = kept_ids(plan)
    for m in plan.keep:
        assert {a.id for a in ancestors(m, catalog)} <= kept


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_pinned_and_future_backups_are_never_deleted(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    kept = kept_ids(planned(catalog, policy, now=now, tz=tz))
    for m in catalog:
        if policy.pinned_tag in m.tags or m.created_at > now:
            assert m.id in kept


@PROPERTY
@given(catalogs(), policies(), nows, zones, st.randoms(use_true_random=False))
def test_planning_is_deterministic_whatever_the_input_order(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo, rnd: object
) -> None:
    shuffled = list(catalog)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    first = planned(catalog, policy, now=now, tz=tz)
    assert planned(Catalog(shuffled), policy, now=now, tz=tz) == first
    assert planned(catalog, policy, now=now, tz=tz) == first


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_planning_again_on_the_kept_backups_deletes_nothing(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    again = planned(Catalog(plan.keep), policy, now=now, tz=tz)
    assert again.delete == ()


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_each_set_is_planned_as_if_it_were_alone(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        alone = planned(catalog.for_set(name), policy, now=now, tz=tz)
        assert plan.for_set(name).decisions == alone.decisions


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_caps_hold_unless_guards_and_chains_need_more(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        decisions = plan.for_set(name).decisions
        kept = [d.manifest for d in decisions if d.keep]
        held = [d.manifest for d in decisions if set(d.reasons) & set(GUARDS)]
        if policy.max_count is not None:
            assert len(kept) <= policy.max_count or {m.id for m in kept} == closure(held, catalog)
        if policy.max_age is not None:
            for d in decisions:
                if d.keep and d.manifest.created_at <= policy.max_age.before(now, tz):
                    assert set(d.reasons) & {*GUARDS, BASE_OF_KEPT}


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_every_decision_is_explained(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    assert [d.manifest for d in plan.decisions] == list(catalog)
    for d in plan.decisions:
        assert (IN_THE_FUTURE in d.reasons) == (d.manifest.created_at > now)  # at now is not
        if d.keep:
            assert d.reasons
            if d.capped_by:
                assert set(d.reasons) & {*GUARDS, BASE_OF_KEPT}
        else:
            assert not d.reasons or d.capped_by
            assert not set(d.reasons) & {*GUARDS, BASE_OF_KEPT}
        assert d.explanation


def period(kind: str, when: dt.datetime, tz: dt.tzinfo) -> tuple[object, str]:
    """The local period of *when* and the label retention gives it, worked out here
    without the module's code: a key to group by, and the label."""
    local = when.astimezone(tz)
    day = local.date()
    offset = local.strftime("%z")  # '+0530'; keyed by it too: the hour repeated in autumn is two
    zone = f"{offset[:3]}:{offset[3:]}"
    if kind == "secondly":
        return (day, local.hour, local.minute, local.second, offset), f"{day}T{local:%H:%M:%S}{zone}"
    if kind == "minutely":
        return (day, local.hour, local.minute, offset), f"{day}T{local:%H:%M}{zone}"
    if kind == "hourly":
        return (day, local.hour, offset), f"{day}T{local.hour:02d}:00{zone}"
    if kind == "daily":
        return day, str(day)
    if kind == "weekly":  # ISO 8601: Monday to Sunday, in the year of its Thursday
        monday = day - dt.timedelta(days=day.weekday())
        thursday = monday + dt.timedelta(days=3)
        week = (thursday - thursday.replace(month=1, day=1)).days // 7 + 1
        return monday, f"{thursday.year}-W{week:02d}"
    if kind == "monthly":
        return (local.year, local.month), f"{local.year}-{local.month:02d}"
    assert kind == "yearly"
    return local.year, str(local.year)


@PROPERTY
@given(catalogs(), policies(caps=False), nows, zones)
def test_calendar_buckets_keep_the_newest_backup_of_each_of_the_newest_local_periods(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        present = [m for m in catalog.for_set(name) if m.created_at <= now]  # oldest first
        decisions = plan.for_set(name).decisions
        for kind in BUCKETS:
            newest: dict[object, tuple[str, Manifest]] = {}
            for m in present:  # a later one replaces an earlier one of the same period
                key, label = period(kind, m.created_at, tz)
                newest[key] = (label, m)
            ranked = sorted(newest.values(), key=lambda lm: (lm[1].created_at, lm[1].id), reverse=True)
            count = getattr(policy, f"keep_{kind}")
            wanted = ranked if count == ALL else ranked[:count]
            expected = sorted((m.id, f"{kind} #{n} {label}") for n, (label, m) in enumerate(wanted, 1))
            spare = count == ALL or len(ranked) < count
            if count and policy.oldest_rule and spare and present and present[0] not in [m for _, m in wanted]:
                expected.append((present[0].id, f"oldest {kind} {period(kind, present[0].created_at, tz)[1]}"))
            got = sorted(
                (d.manifest.id, r) for d in decisions for r in d.reasons
                if r.startswith((f"{kind} #", f"oldest {kind} "))
            )
            assert got == sorted(expected)


@st.composite
def wider(draw: st.DrawFn, policy: RetentionPolicy) -> RetentionPolicy:
    """*policy* with rules added or widened: larger counts, longer windows, more tag sets
    and tier ages, the oldest rule on, windows ending at the newest backup."""
    values: dict[str, object] = {}
    for key in COUNT_KEYS:
        count = getattr(policy, key)
        values[key] = ALL if count == ALL else draw(st.just(count) | st.integers(count, 9) | st.just(ALL))
    for key in WITHIN_KEYS:
        window: Duration | None = getattr(policy, key)
        extra = draw(st.none() | durations)
        if extra is not None:
            window = extra if window is None else Duration(window.months + extra.months, window.exact + extra.exact)
        values[key] = window
    values["keep_tag"] = tuple(dict.fromkeys((*policy.keep_tag, *draw(tag_sets))))
    ages = dict(policy.tier_ages)
    for tier, age in draw(st.dictionaries(st.sampled_from(TIERS), durations, max_size=2)).items():
        old = ages.get(tier)
        ages[tier] = age if old is None else Duration(old.months + age.months, old.exact + age.exact)
    values["tier_ages"] = ages
    values["oldest_rule"] = policy.oldest_rule or draw(st.booleans())
    values["within_anchor"] = "newest" if policy.within_anchor == "newest" else draw(st.sampled_from(["newest", "now"]))
    return attrs.evolve(policy, **values)


@PROPERTY
@given(catalogs(), st.data(), nows, zones)
def test_without_caps_adding_rules_never_deletes_more(
    catalog: Catalog, data: st.DataObject, now: dt.datetime, tz: dt.tzinfo
) -> None:
    narrow = data.draw(policies(caps=False))
    wide = data.draw(wider(narrow))
    assert kept_ids(planned(catalog, narrow, now=now, tz=tz)) <= kept_ids(
        planned(catalog, wide, now=now, tz=tz)
    )


@PROPERTY
@given(catalogs(), st.sampled_from(WITHIN_BUCKETS), durations, st.booleans(), st.sampled_from(["newest", "now"]),
       nows, zones)
def test_keep_within_buckets_keep_exactly_the_newest_backup_of_each_bucket_inside_the_window(
    catalog: Catalog, kind: str, window: Duration, oldest: bool, anchor: str, now: dt.datetime, tz: dt.tzinfo
) -> None:
    policy = RetentionPolicy(**{f"keep_within_{kind}": window}, oldest_rule=oldest, within_anchor=anchor)  # type: ignore[arg-type]
    plan = planned(catalog, policy, now=now, tz=tz)
    name = f"within {window} {kind}"
    for set_name in catalog.sets:
        present = [m for m in catalog.for_set(set_name) if m.created_at <= now]  # oldest first
        if not present:
            continue
        end = present[-1].created_at if anchor == "newest" else now
        inside = [m for m in present if m.created_at > window.before(end, tz)]
        newest: dict[object, Manifest] = {}
        for m in inside:
            newest[period(kind, m.created_at, tz)[0]] = m
        got: dict[object, list[Manifest]] = {}
        for d in plan.for_set(set_name).decisions:
            if any(r.startswith((name, f"oldest {name}")) for r in d.reasons):
                got.setdefault(period(kind, d.manifest.created_at, tz)[0], []).append(d.manifest)
            assert d.keep or not d.reasons
        assert {key: ms[-1] for key, ms in got.items()} == newest  # the newest of each bucket
        extra = [m for ms in got.values() for m in ms[:-1]]
        spare = oldest and inside and inside[0] is present[0] and present[0] not in newest.values()
        assert extra == ([present[0]] if spare else [])  # and restic's oldest, nothing else
        for m in extra:
            assert f"oldest {name} {period(kind, m.created_at, tz)[1]}" in plan.decision(m.id).reasons


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_deletion_order_removes_children_before_their_parents(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = planned(catalog, policy, now=now, tz=tz)
    order = [m.id for m in guarded(lambda: plan.deletion_order)]
    assert sorted(order) == sorted(m.id for m in plan.delete)
    position = {ident: i for i, ident in enumerate(order)}
    by_id = {m.id: m for m in catalog}
    for m in plan.delete:
        if m.kind == "incremental" and m.parent_id in position:
            up, seen = by_id[m.parent_id], set()  # is m its parent's ancestor: a loop?
            while up.kind == "incremental" and up.parent_id in by_id and up.id not in seen | {m.id}:
                seen.add(up.id)
                up = by_id[up.parent_id]
            if up.id != m.id:  # within a loop no order can put children first
                assert position[m.id] < position[m.parent_id]


@PROPERTY
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "max_age": durations,
            "max_count": st.integers(1, 100),
            "pinned_tag": st.sampled_from(["keep", "release"]),
            "keep_daily": st.just(0),
            "tier_ages": st.just({}),
        },
    )
)
def test_a_policy_without_a_keep_rule_is_refused(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="has no keep rule"):
        RetentionPolicy(**values)  # type: ignore[arg-type]


@PROPERTY
@given(policies())
def test_policies_round_trip_through_dicts(policy: RetentionPolicy) -> None:
    assert RetentionPolicy.from_dict(policy.to_dict()) == policy
