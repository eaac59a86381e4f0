"""The ``backupkit`` command: a thin layer over :class:`backupkit.Engine`.

Every command takes ``--json``. Errors the user can fix are one line on stderr and
a non-zero exit code (see :mod:`backupkit.errors`). An unexpected system error
(``OSError``) is one line too; ``--debug`` or ``BACKUPKIT_DEBUG=1`` shows its
traceback. Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import attrs

from backupkit import (
    audit,
    cli_checks,
    cli_drill,
    cli_metrics,
    cli_prune,
    cli_restore,
    cli_run,
    cli_s3,
    cli_serve,
    cli_status,
)
from backupkit._version import __version__
from backupkit.config import Config, compress_choices, find_config_file
from backupkit.core.units import format_bytes
from backupkit.crypto.keys import Key, Keyring
from backupkit.engine import Engine, Progress, is_location
from backupkit.errors import (
    BackupInterrupted,
    BackupkitError,
    BackupkitWarning,
    ConfigError,
    KeyMissingError,
)
from backupkit.params import strip_userinfo


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"backupkit: error: {message} (see 'backupkit {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"backupkit: error: {message} (see 'backupkit --help')\n")


def _common(p: argparse.ArgumentParser, *, sink: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: ./backupkit.toml)")
    p.add_argument("--set", dest="set_name", metavar="NAME", help="backup set to act on")
    if sink:
        p.add_argument("--sink", metavar="DIR|URL", help="where backups are stored (default: $BACKUP_DIR)")
    _key_file(p)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _key_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-file", metavar="FILE",
                   help="encryption keys, one per line, the first writes "
                        "(also: $BACKUP_ENCRYPTION_KEY, $BACKUP_ENCRYPTION_KEY_FILE)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``backupkit`` command."""
    parser = _ArgumentParser(
        prog="backupkit",
        description="Back up files and services, verify, list and restore backups.",
    )
    parser.add_argument("--version", action="version", version=f"backupkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also: BACKUPKIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    for name, kind in (("backup", None), ("full", "full"), ("incremental", "incremental")):
        p = sub.add_parser(name, help="run a backup" if kind is None else f"a {kind} backup (backup --kind {kind})")
        _common(p)
        p.add_argument("--source", action="append", default=[], metavar="PATH",
                       help="file or directory to back up (repeatable); without it, the config file says")
        p.add_argument("--include", action="append", default=[], metavar="GLOB")
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
        p.add_argument("--compress", choices=compress_choices(), default=None)
        p.add_argument("--encrypt", action="store_true",
                       help="encrypt with AES-256-GCM after compressing (key: --key-file or "
                            "$BACKUP_ENCRYPTION_KEY)")
        if kind is None:
            p.add_argument("--kind", choices=("full", "incremental"), default="full")
        p.set_defaults(kind=kind or "full")
        p.add_argument("--reason", default="manual")
        p.add_argument("--tag", action="append", default=[], metavar="TAG")
        p.add_argument("--slot", metavar="UTC", help="run for this slot (2026-12-03T02:00:00Z) under a claim "
                       "in the sink, so that N hosts' cron entries make one backup (see scheduling.md)")
        p.add_argument("--lease", default="5min", help="with --slot: how long a silent claim holds (default 5min)")
        p.add_argument("--force", action="store_true", help="run even with BACKUP_ENABLED=false")
        cli_metrics.add_flag(p)

    p = sub.add_parser("list", help="list backups in the catalog")
    _common(p)

    p = sub.add_parser("status", help="per set: backups, RPO and RTO, storage, health (exit 11 at risk, 12 failing)")
    _common(p)

    cli_restore.add_parser(sub, _common)
    cli_drill.add_parsers(sub, _common)

    p = sub.add_parser("verify", help="re-read a stored backup and check its checksums")
    _common(p)
    p.add_argument("backup", metavar="ID|latest|URL", nargs="?", default="latest",
                   help="backup id, unique id prefix, 'latest' (default), a time with a zone, "
                        "or a manifest's URL/path")

    cli_prune.add_parser(sub, _common)

    p = sub.add_parser("url", help="print an expiring download URL for a stored artifact")
    _common(p)
    p.add_argument("backup", metavar="ID|latest|URL",
                   help="backup id, unique id prefix, 'latest', a manifest's URL, or an object URL")
    p.add_argument("--artifact", metavar="NAME", help="the artifact (needed if the backup has several)")
    p.add_argument("--expires", type=int, default=3600, metavar="SECONDS",
                   help="how long the URL stays valid (default 3600; S3 allows up to 7 days)")

    cli_run.add_parsers(sub, _common)
    cli_serve.add_parser(sub, _common)
    cli_s3.add_parser(sub, _common)
    p = sub.add_parser("audit", help="the audit log: who ran which backup, restore, verify and prune")
    _common(p)

    p = sub.add_parser("plugins", help="list loaded plugins and the ids they register")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("keys", help="create an encryption key, show configured key ids")
    keys = p.add_subparsers(dest="keys_command", required=True, parser_class=_ArgumentParser)
    k = keys.add_parser("generate", help="print a new random 256-bit key; keep it secret")
    k.add_argument("--json", action="store_true")
    k = keys.add_parser("id", help="print the ids of the configured keys, the writing key first")
    k.add_argument("--config", metavar="FILE", help="TOML configuration (its key_file)")
    _key_file(k)
    k.add_argument("--json", action="store_true")
    return parser


def _engine(args: argparse.Namespace, *, adhoc: bool = False) -> Engine:
    sources = getattr(args, "source", [])
    if adhoc and sources:
        if args.config:
            raise ConfigError("give either --source or --config, not both")
        config = Config.adhoc(
            sources=sources,
            sink=args.sink,
            compress=args.compress or True,
            name=args.set_name or "default",
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            encrypt=args.encrypt,
        )
        return _keyed(args, config)
    if getattr(args, "sink", None):
        if args.config:  # one of the two would be ignored: refuse rather than guess
            raise ConfigError(
                "give either --sink or --config, not both (the config file names its sets' sinks)"
            )
        if args.command not in ("backup", "full", "incremental") and not getattr(args, "simulate", None):
            cli_checks.check_sink_path(args.sink, "--sink")
        config = Config.for_sink(args.sink)
        implicit = find_config_file(None)  # ./backupkit.toml: its keys and time zone still hold
        if implicit is not None:
            found = Config.from_file(implicit)
            if (args.command == "prune" and cli_prune.policy_from_flags(args) is None
                    and any(s.retention is not None for s in found.sets.values())):
                raise ConfigError(
                    f"{implicit} sets retention rules, which --sink does not use; pass --config "
                    f"{implicit} to prune with them, or give rule flags (--keep-last N, ...)"
                )
            config = attrs.evolve(config, key_file=found.key_file, timezone=found.timezone)
        return _keyed(args, config)
    path = find_config_file(args.config)
    if path is not None:
        config = Config.from_file(path)
        if adhoc and args.compress:
            raise ConfigError("--compress applies to --source backups; set 'compress' in the config file")
        if adhoc and args.encrypt:
            raise ConfigError("--encrypt applies to --source backups; set 'encrypt = true' in the "
                              "config file or BACKUP_ENCRYPTION=true")
        return _keyed(args, config)
    if adhoc:
        raise ConfigError("nothing to back up; pass --source PATH or a config file (--config FILE)")
    if is_location(getattr(args, "backup", None) or ""):  # the URL names its own sink
        return _keyed(args, Config())
    config = Config.for_sink(None)
    if isinstance(config.sink, str):
        cli_checks.check_sink_path(config.sink, "BACKUP_DIR")
    return _keyed(args, config)


def _keyed(args: argparse.Namespace, config: Config) -> Engine:
    """An engine for *config* with the encryption keys of --key-file, the config and env."""
    engine = Engine.from_config(cli_metrics.counting(args, config), key_file=getattr(args, "key_file", None))
    return cli_metrics.remember(args, engine)


_human = format_bytes


class _ProgressLine:
    """One self-rewriting status line on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.shown = False

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        rate = p.done_bytes / p.elapsed if p.elapsed > 0 else 0.0
        line = f"{p.artifact}: {_human(p.done_bytes)} at {_human(rate)}/s {p.current}"
        width = 100
        self.stream.write("\r" + line[:width].ljust(width))
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _OutputClosed(Exception):
    """Standard output's reader has gone (``backupkit list | head -1``)."""


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise BackupkitError("cannot write to standard output: it is closed; redirect it to a file")
    try:
        print(json.dumps(data, default=_jsonable, indent=2) if args.json else text)
        sys.stdout.flush()  # a closed pipe shows here, not as a warning at exit
    except BrokenPipeError:
        raise _OutputClosed from None
    except OSError as exc:
        raise BackupkitError(
            f"cannot write to standard output: {exc.strerror or exc}; check where it is redirected"
        ) from None


def _cmd_backup(args: argparse.Namespace) -> int:
    engine = _engine(args, adhoc=True)
    engine.check_enabled(force=args.force)  # before a slot is claimed
    if args.slot:
        return cli_run.claimed(args, engine, functools.partial(_backup, args, engine), _emit)
    return _backup(args, engine)


def _backup(args: argparse.Namespace, engine: Engine) -> int:
    progress = _ProgressLine(sys.stderr, enabled=not args.json)
    try:
        manifest = engine.backup(
            args.set_name if not args.source else None,
            kind=args.kind,
            reason=args.reason,
            tags=args.tag,
            progress=progress,
            force=args.force,
        )
    finally:
        progress.done()
    sizes = f"{_human(manifest.raw_size)} read, {_human(manifest.stored_size)} stored"
    _emit(args, manifest.to_dict(),
          f"backup {manifest.id} of set {manifest.set_name}: {len(manifest.artifacts)} artifact(s), "
          f"{sizes} in {manifest.duration_seconds:.1f}s")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    engine = _engine(args)
    full = engine.catalog()
    if not full and not full.problems:
        cli_checks.check_not_nested(engine)
    cli_checks.check_set_known(args.set_name, [*engine.config.sets, *(m.set_name for m in full)],
                               ", ".join(s.location for s in engine.parts.sinks()))
    catalog = full.for_set(args.set_name)
    for problem in catalog.problems:
        print(f"backupkit: warning: {problem.message}", file=sys.stderr)
    records = catalog.to_records()
    lines = [f"{'ID':<24} {'SET':<12} {'KIND':<11} {'TIER':<11} {'STORED':>10}  CREATED"]
    for r in records:
        lines.append(
            f"{r['id']:<24} {r['set']:<12} {r['kind']:<11} {r['tier']:<11} "
            f"{_human(r['stored_size']):>10}  {r['created_at']:%Y-%m-%d %H:%M:%S}Z"
        )
    if not records:
        lines = ["no backups"]
    _emit(args, {"backups": records, "problems": [p.message for p in catalog.problems]}, "\n".join(lines))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    result = _engine(args).verify(args.backup, set_name=args.set_name)
    chain = len({c.backup_id for c in result.checks}) > 1  # an incremental: name each link
    lines = [(f"{c.backup_id} " if chain else "") + f"{c.artifact}: "
             + ("ok" if c.ok else "FAILED: " + (c.error or ""))
             + (f" ({c.note})" if c.note else "") for c in result.checks]
    _emit(args, result.to_dict(), f"backup {result.backup_id}\n" + "\n".join(lines))
    if not result.ok:
        bad = next(c for c in result.checks if not c.ok)
        print(f"backupkit: error: {bad.error}", file=sys.stderr)
        return 7
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    engine = _engine(args)
    policy = cli_prune.policy_from_flags(args)
    if args.simulate:
        rows = engine.simulate(
            policy,
            duration=cli_prune.simulated_span(args.simulate),
            every=cli_prune.flag_interval("--every", args.every),
            set_name=args.set_name,
            schedule=[k.strip() for k in args.schedule.split(",") if k.strip()],
        )
        lines = [f"{'MONTH':<8} {'BACKUPS':>7} {'FULL':>5} {'INCR':>5} {'HELD':>11} {'PEAK':>11}"]
        lines += [
            f"{r.month:<8} {r.backups:>7} {r.fulls:>5} {r.incrementals:>5} "
            f"{_human(r.bytes):>11} {_human(r.peak_bytes):>11}"
            for r in rows
        ]
        _emit(args, {"simulation": [r.to_dict() for r in rows]}, "\n".join(lines))
        return 0
    results = engine.prune(args.set_name, policy=policy, dry_run=not args.yes)
    lines = []
    for result in results:
        lines.append(f"set {result.set_name or '(every set)'} in {result.sink}")
        lines.append(f"policy: {result.plan.policy.describe()}")
        lines.append(f"{'ID':<24} {'CREATED':<20} {'KIND':<11} {'TIER':<11} {'STORED':>10}  "
                     f"{'ACTION':<6}  REASON")
        for r, d in zip(result.plan.to_records(), result.plan.decisions):
            lines.append(
                f"{r['id']:<24} {r['created_at']:%Y-%m-%d %H:%M:%S}  {r['kind']:<11} "
                f"{r['tier']:<11} {_human(r['stored_size']):>10}  {r['action']:<6}  {d.explanation}"
            )
        verb = "deleted" if not result.dry_run else "would delete"
        lines += [f"{verb} run log {key}" for key in result.logs]
        lines.append(f"{verb} {len(result.plan.delete)} backup(s), {_human(result.freed_bytes)}; "
                     f"{verb} {len(result.orphans)} orphaned object(s), {len(result.logs)} run log(s)")
    if results and results[0].dry_run:
        lines.append("dry run: nothing was deleted; pass --yes to delete")
    data = {
        "dry_run": not args.yes,
        "sets": [r.to_dict() for r in results],
    }
    _emit(args, data, "\n".join(lines))
    return 0


def _cmd_url(args: argparse.Namespace) -> int:
    url = _engine(args).presigned_url(args.backup, args.artifact, expires=args.expires,
                                      set_name=args.set_name)
    _emit(args, {"url": url, "expires_seconds": args.expires}, url)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    engine = _engine(args)
    sinks = engine.parts.sinks_of(args.set_name, args.sink)
    found = sorted((e for s in sinks for e in audit.entries(s)), key=lambda e: e.get("time", ""))
    found = [e for e in found if args.set_name is None or e.get("set") in (args.set_name, None)]
    lines = [f"{e['time']}  {e['who']}@{e['host']}  {e['operation']:<8} {e.get('set') or '*':<12} "
             f"{e['result']:<6} {e.get('backup_id') or e.get('error') or ''}" for e in found]
    _emit(args, {"entries": found}, "\n".join(lines) or "no audit entries ([plugins.audit] turns the log on)")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from backupkit.plugins import make_plugin_manager

    plugins = make_plugin_manager()
    reg = plugins.registry
    data = {
        "plugins": plugins.names(),
        "sources": sorted(reg.sources),
        "transforms": sorted(reg.transforms),
        "sinks": sorted(reg.sinks),
    }
    text = "\n".join(f"{k}: {', '.join(v)}" for k, v in data.items())
    _emit(args, data, text)
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "generate":
        key = Key.generate()
        _emit(args, {"key": key.encode(), "key_id": key.id}, key.encode())
        return 0
    path = find_config_file(args.config)
    # The sets need not be complete (a sink from BACKUP_DIR) to read the key file's name.
    config_key_file = (
        Config.from_file(path, env={**os.environ, "BACKUP_DIR": os.environ.get("BACKUP_DIR") or "."}).key_file
        if path is not None else None
    )
    keyring = Keyring.from_env(key_files=[f for f in (args.key_file, config_key_file) if f])
    if not keyring:
        raise KeyMissingError(
            "no encryption key is configured; set BACKUP_ENCRYPTION_KEY or "
            "BACKUP_ENCRYPTION_KEY_FILE, or pass --key-file (see 'backupkit keys generate')"
        )
    keys = [{"key_id": k.id, "kind": k.kind, "writes": k is keyring.writer, "origin": k.origin}
            for k in keyring]
    text = "\n".join(f"{k['key_id']}  {'write' if k['writes'] else 'read '}  {k['origin']}"
                     for k in keys)
    _emit(args, {"keys": keys}, text)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backup": _cmd_backup,
    "full": _cmd_backup,  # seed 002's command names
    "incremental": _cmd_backup,
    "list": _cmd_list,
    "status": functools.partial(cli_status.cmd_status, engine_for=_engine, emit=_emit),
    "restore": functools.partial(cli_restore.cmd_restore, engine_for=_engine, emit=_emit,
                                 progress=_ProgressLine, human=_human, list_backups=_cmd_list),
    "verify": _cmd_verify,
    "drill": functools.partial(cli_drill.cmd_drill, engine_for=_engine, emit=_emit, human=_human),
    "drills": functools.partial(cli_drill.cmd_drills, engine_for=_engine, emit=_emit),
    "url": _cmd_url,
    "prune": _cmd_prune,
    "plugins": _cmd_plugins,
    "audit": _cmd_audit,
    "keys": _cmd_keys,
    "run": functools.partial(cli_run.cmd_run, engine_for=_engine, emit=_emit),
    "schedule": functools.partial(cli_run.cmd_schedule, engine_for=_engine, emit=_emit),
    "serve": functools.partial(cli_serve.cmd_serve, engine_for=_engine),
    "s3": functools.partial(cli_s3.cmd_s3, engine_for=_engine, emit=_emit, human=_human),
}


def _on_sigterm(signum: int, frame: Any) -> None:
    raise BackupInterrupted("backupkit was terminated (SIGTERM); nothing of this run was kept")


def _unexpected(exc: OSError) -> str:
    """One line for an ``OSError`` no part of backupkit translated (a credential-free URL)."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    line = (
        f"{where}{exc.strerror or exc} ({type(exc).__name__}); check the path, network or "
        "disk it names, or rerun with --debug to see where it happened"
    )
    return strip_userinfo(line)


class _WarningLines(logging.Handler):
    """``backupkit: warning: ...`` on *stream* for each warning (not errors: see main)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno != logging.WARNING:
            return
        try:
            message = " ".join(record.getMessage().split())  # one line, whatever it holds
            print(f"backupkit: warning: {message}", file=self.stream, flush=True)
        except Exception:  # noqa: BLE001 - a warning that cannot be shown must not stop a run
            self.handleError(record)


def _show_warning(
    fallback: Callable[..., None], message: Warning | str, category: type[Warning], *args: Any,
    **kwargs: Any,
) -> None:
    """backupkit's own warnings (a duration read as months) as one prefixed line each."""
    if issubclass(category, BackupkitWarning):
        print(f"backupkit: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    else:
        fallback(message, category, *args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``backupkit`` command with *argv*; return its exit code."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("BACKUPKIT_DEBUG", "") not in ("", "0")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Warnings (a file that vanished or changed while read, links restore will refuse)
    # are printed as they come, one prefixed line each. Errors are not: the command
    # reports its error itself, once; and without a handler of its own, the logging
    # module would print every record bare on stderr.
    quiet = _WarningLines(sys.stderr)
    logging.getLogger("backupkit").addHandler(quiet)
    try:
        with warnings.catch_warnings():  # restores filters and showwarning when the command is done
            warnings.simplefilter("default", BackupkitWarning)  # a line each, once, even under -W error
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            return _COMMANDS[args.command](args)
    except BackupkitError as exc:
        print(f"backupkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("backupkit: interrupted; nothing of this run was kept", file=sys.stderr)
        return 130
    except _OutputClosed:
        # Like a tool killed by SIGPIPE, quietly; stdout goes nowhere so that Python's
        # flush at exit does not complain about the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        if debug:
            raise
        print(f"backupkit: error: {_unexpected(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, most likely in a plugin: one line, the traceback on request
        if debug:
            raise
        line = strip_userinfo(" ".join(f"{type(exc).__name__}: {exc}".split()))
        print(
            f"backupkit: error: {line} (not an error backupkit knows: a bug in a plugin or in "
            "backupkit; rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        cli_metrics.write_after(args)  # also after a failed run; never raises
        logging.getLogger("backupkit").removeHandler(quiet)
        signal.signal(signal.SIGTERM, previous)
