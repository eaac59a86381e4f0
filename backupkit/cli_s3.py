"""``backupkit s3``: what only an S3 sink has. ``s3 lifecycle`` shows (and with
``--apply`` writes) the bucket rule that aborts multipart uploads a killed backup left;
``s3 uploads`` lists the uploads still open under the sink's prefix."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from backupkit.errors import ConfigError


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """Add ``s3 lifecycle`` and ``s3 uploads`` to the ``backupkit`` parser."""
    p = sub.add_parser("s3", help="S3 sinks: the lifecycle rule for incomplete uploads, and open uploads")
    s3 = p.add_subparsers(dest="s3_command", metavar="COMMAND", required=True)
    q = s3.add_parser("lifecycle", help="show the rule that aborts incomplete multipart uploads; --apply writes it",
                      description="Shows the bucket's lifecycle rules and the AbortIncompleteMultipartUpload rule "
                                  "for the sink's prefix; with --apply writes it, keeping every other rule.")
    common(q)
    q.add_argument("--days", type=int, default=1, metavar="N",
                   help="abort an upload N days after it began (default 1)")
    shown = q.add_mutually_exclusive_group()
    shown.add_argument("--show", action="store_true", help="show the rules and whether backupkit's is there (default)")
    shown.add_argument("--apply", action="store_true", help="write the rule into the bucket's lifecycle configuration")
    q = s3.add_parser("uploads", help="list the multipart uploads still open under the sink's prefix")
    common(q)


def _s3_sink(args: argparse.Namespace, engine: Any) -> Any:
    from backupkit.sinks.s3.sink import S3Sink

    sinks = engine.parts.sinks_of(args.set_name, getattr(args, "sink", None))
    found = [s for s in sinks if isinstance(s, S3Sink)]
    if not found:
        where = ", ".join(s.location for s in sinks) or "none"
        raise ConfigError(f"backupkit s3 needs an S3 sink (s3://BUCKET/PREFIX); the sink is {where}")
    return found[0]


def cmd_s3(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None],
           human: Callable[[float], str]) -> int:
    """``backupkit s3 lifecycle|uploads``."""
    from backupkit.sinks.s3 import lifecycle

    sink = _s3_sink(args, engine_for(args))
    if args.s3_command == "uploads":
        uploads = lifecycle.incomplete_uploads(sink)
        lines = [f"{u.initiated:%Y-%m-%d %H:%M:%SZ}  {human(u.size):>10}  {u.key}" for u in uploads]
        emit(args, [{"key": u.key, "initiated": u.initiated.isoformat(), "bytes": u.size} for u in uploads],
             "\n".join(lines) or f"no open multipart uploads under {sink.location}")
        return 0
    if not 1 <= args.days <= 3650:
        raise ConfigError(f"--days must be 1 to 3650, got {args.days}")
    plan = lifecycle.planned(sink, args.days)
    rule = json.dumps(dict(plan.rule), indent=2)
    if args.apply and not plan.in_place:
        lifecycle.apply(sink, plan)
        text = f"wrote lifecycle rule {plan.rule['ID']} to bucket {plan.bucket} (other rules kept: " \
               f"{len(plan.planned) - 1}):\n{rule}"
        emit(args, {**plan.to_dict(), "applied": True}, text)
        return 0
    if plan.in_place:
        text = f"bucket {plan.bucket} has the rule already:\n{rule}"
    else:
        covered = f" (rule {plan.covered_by} aborts incomplete uploads there too)" if plan.covered_by else ""
        text = (f"bucket {plan.bucket} lacks this rule{covered}; run with --apply to add it, keeping its "
                f"{len(plan.current)} other rule(s):\n{rule}")
    emit(args, {**plan.to_dict(), "applied": False}, text)
    return 0
