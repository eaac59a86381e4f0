"""Retention properties over random catalogs and policies (hypothesis).

Catalogs have several sets, full backups, incremental chains via ``parent_id`` (parents
chosen among earlier-drawn backups of the set, so sometimes newer than the child, and
now and then missing or of another set), pinned tags, and backups after ``now``.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog
from backupkit.core.manifest import Manifest, backup_id
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

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPAN_MINUTES = 150 * 24 * 60
ZONES = [ZoneInfo(name) for name in (
    "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
    "Pacific/Chatham",
)]
GUARDS = (PINNED, NEWEST_FULL, IN_THE_FUTURE)
COUNT_KEYS = ("keep_last", *(f"keep_{kind}" for kind in BUCKETS))

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_entry = st.tuples(
    st.sampled_from(["app", "app", "db"]),  # set
    st.integers(0, SPAN_MINUTES),  # minutes after BASE (scaled down when clustered)
    st.sampled_from(["full", "incremental", "incremental"]),
    st.integers(0, 1000),  # which parent: mostly the same set, sometimes missing or foreign
    st.sampled_from([(), (), ("keep",), ("prod",), ("keep", "prod")]),
    st.sampled_from(["daily", "weekly", "monthly"]),
)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    clustered = draw(st.booleans())  # many backups in a few days, or spread over months
    manifests: list[Manifest] = []
    for n, (set_name, minutes, kind, pick, tags, tier) in enumerate(
        draw(st.lists(_entry, max_size=40))
    ):
        created = BASE + dt.timedelta(minutes=minutes // 50 if clustered else minutes)
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
    return Catalog(manifests)


durations = st.integers(1, 60 * 24 * 60).map(lambda m: dt.timedelta(minutes=m))
counts = st.one_of(st.just(0), st.integers(1, 8))


@st.composite
def policies(draw: st.DrawFn, *, caps: bool = True) -> RetentionPolicy:
    values: dict[str, object] = {key: draw(counts) for key in COUNT_KEYS}
    values["keep_within"] = draw(st.none() | durations)
    values["tier_ages"] = draw(st.dictionaries(st.sampled_from(TIERS), durations, max_size=4))
    if caps:
        values["max_age"] = draw(st.none() | durations)
        values["max_count"] = draw(st.none() | st.integers(1, 25))
    values["pinned_tag"] = draw(st.sampled_from(["keep", "prod"]))
    assume(any(values[k] for k in COUNT_KEYS) or values["keep_within"] or values["tier_ages"])
    return RetentionPolicy(**values)  # type: ignore[arg-type]


nows = st.integers(-10 * 24 * 60, SPAN_MINUTES + 60 * 24 * 60).map(
    lambda m: BASE + dt.timedelta(minutes=m)
)
zones = st.sampled_from(ZONES)


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


def kept_ids(plan: RetentionPlan) -> set[str]:
    return {m.id for m in plan.keep}


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_the_newest_full_backup_of_each_set_is_never_deleted(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    kept = kept_ids(plan_retention(catalog, policy, now=now, tz=tz))
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
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    kept = kept_ids(plan)
    for m in plan.keep:
        assert {a.id for a in ancestors(m, catalog)} <= kept


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_pinned_and_future_backups_are_never_deleted(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    kept = kept_ids(plan_retention(catalog, policy, now=now, tz=tz))
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
    first = plan_retention(catalog, policy, now=now, tz=tz)
    assert plan_retention(Catalog(shuffled), policy, now=now, tz=tz) == first
    assert plan_retention(catalog, policy, now=now, tz=tz) == first


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_planning_again_on_the_kept_backups_deletes_nothing(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    again = plan_retention(Catalog(plan.keep), policy, now=now, tz=tz)
    assert again.delete == ()


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_each_set_is_planned_as_if_it_were_alone(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        alone = plan_retention(catalog.for_set(name), policy, now=now, tz=tz)
        assert plan.for_set(name).decisions == alone.decisions


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_caps_hold_unless_guards_and_chains_need_more(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        decisions = plan.for_set(name).decisions
        kept = [d.manifest for d in decisions if d.keep]
        guarded = [d.manifest for d in decisions if set(d.reasons) & set(GUARDS)]
        if policy.max_count is not None:
            assert len(kept) <= policy.max_count or {m.id for m in kept} == closure(guarded, catalog)
        if policy.max_age is not None:
            for d in decisions:
                if d.keep and now - d.manifest.created_at >= policy.max_age:
                    assert set(d.reasons) & {*GUARDS, BASE_OF_KEPT}


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_every_decision_is_explained(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    assert [d.manifest for d in plan.decisions] == list(catalog)
    for d in plan.decisions:
        if d.keep:
            assert d.reasons
            if d.capped_by:
                assert set(d.reasons) & {*GUARDS, BASE_OF_KEPT}
        else:
            assert not d.reasons or d.capped_by
            assert not set(d.reasons) & {*GUARDS, BASE_OF_KEPT}
        assert d.explanation


@PROPERTY
@given(catalogs(), policies(caps=False), nows, zones)
def test_calendar_buckets_count_each_local_period_once(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    for name in catalog.sets:
        present = [m for m in catalog.for_set(name) if m.created_at <= now]
        days = {m.created_at.astimezone(tz).date() for m in present}
        weeks = {m.created_at.astimezone(tz).isocalendar()[:2] for m in present}
        reasons = [r for d in plan.for_set(name).decisions for r in d.reasons]
        assert sum(r.startswith("daily #") for r in reasons) == min(policy.keep_daily, len(days))
        assert sum(r.startswith("weekly #") for r in reasons) == min(policy.keep_weekly, len(weeks))
        for d in plan.for_set(name).decisions:
            day = d.manifest.created_at.astimezone(tz).date()
            if any(r.startswith("daily #") for r in d.reasons):  # the newest of its day
                assert d.manifest == max(
                    (m for m in present if m.created_at.astimezone(tz).date() == day),
                    key=lambda m: (m.created_at, m.id),
                )


@PROPERTY
@given(catalogs(), policies(caps=False), policies(caps=False), nows, zones)
def test_without_caps_adding_rules_never_deletes_more(
    catalog: Catalog, a: RetentionPolicy, b: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    both = RetentionPolicy(
        **{k: max(getattr(a, k), getattr(b, k)) for k in COUNT_KEYS},
        keep_within=max((x for x in (a.keep_within, b.keep_within) if x), default=None),
        tier_ages={**a.tier_ages, **{t: max(age, a.tier_ages.get(t, age)) for t, age in b.tier_ages.items()}},
        pinned_tag=a.pinned_tag,
    )
    assert kept_ids(plan_retention(catalog, a, now=now, tz=tz)) <= kept_ids(
        plan_retention(catalog, both, now=now, tz=tz)
    )


@PROPERTY
@given(catalogs(), policies(), nows, zones)
def test_deletion_order_removes_children_before_their_parents(
    catalog: Catalog, policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> None:
    plan = plan_retention(catalog, policy, now=now, tz=tz)
    order = [m.id for m in plan.deletion_order]
    assert sorted(order) == sorted(m.id for m in plan.delete)
    position = {ident: i for i, ident in enumerate(order)}
    for m in plan.delete:
        if m.kind == "incremental" and m.parent_id in position:
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
