"""The postgres source against a real PostgreSQL 15 server (a throwaway cluster per session)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from backupkit.plugin import Source
from backupkit.sources.postgres import PostgresSource
from backupkit.testing.postgres import Database
from backupkit.testing.source_suite import SourceConformance

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA billing;
CREATE TABLE public.people (
    id bigserial PRIMARY KEY, name text NOT NULL, born date, mood mood, tags text[],
    balance numeric(12, 2), photo bytea, seen timestamptz, profile jsonb, uid uuid,
    ratio double precision
);
CREATE INDEX people_name ON public.people (name);
CREATE TABLE billing.invoices (
    id serial PRIMARY KEY, person bigint REFERENCES public.people (id), total numeric, paid boolean
);
CREATE VIEW billing.unpaid AS SELECT * FROM billing.invoices WHERE NOT paid;
CREATE SEQUENCE billing.numbers START 1000;
"""


def populate(db: Database, rows: int = 2000) -> None:
    with db.connect() as conn:
        conn.execute(SCHEMA)
        conn.execute(
            """INSERT INTO public.people (name, born, mood, tags, balance, photo, seen, profile, uid, ratio)
               SELECT 'person ' || i, date '1970-01-01' + i, (ARRAY['sad','ok','happy'])[1 + i %% 3]::mood,
                      ARRAY['t' || i %% 7, 'x'], i * 1.25, decode(md5(i::text), 'hex'),
                      timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
                      jsonb_build_object('i', i, 'even', i %% 2 = 0), md5(i::text)::uuid, i / 7.0
                 FROM generate_series(1, %s) i""", (rows,))
        conn.execute("INSERT INTO billing.invoices (person, total, paid) "
                     "SELECT id, id * 3.5, id % 4 = 0 FROM public.people")
        conn.execute("SELECT setval('billing.numbers', 1234)")
        conn.execute("SELECT lo_from_bytea(0, 'a large object')")


def content(url: str) -> dict[str, Any]:
    """Every table's rows as an ordered md5 (fixed output settings), sequences, views,
    indexes and large objects: what two databases share when one is a restore of the other."""
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 3")
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            (digest, n) = conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')), count(*) "
                f'FROM "{schema}"."{table}" t').fetchone()
            out[f"{schema}.{table}"] = (n, digest)
        out["views"] = conn.execute("SELECT schemaname, viewname, definition FROM pg_views "
                                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()
        out["sequences"] = conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").fetchall()
        out["indexes"] = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                      "ORDER BY 1").fetchall()
        out["large_objects"] = conn.execute(
            "SELECT encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata ORDER BY oid").fetchall()
    return out


def tables_of(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if "." in k}


class TestPostgresSource(SourceConformance):
    @pytest.fixture
    def params(self, pg: Database) -> dict[str, Any]:
        populate(pg, rows=300)
        return {"type": "postgres", "url": pg.url}

    @pytest.fixture
    def target(self, pg: Database) -> str:
        return pg.sibling("restored").create().url

    def expected(self, source: Source) -> Any:
        assert isinstance(source, PostgresSource) and source.url
        return content(source.url)

    def restored(self, target: str) -> Any:
        data = content(target)
        return data if tables_of(data) else None
