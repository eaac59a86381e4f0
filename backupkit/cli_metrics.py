"""``--metrics-file PATH.prom`` of the backup commands and ``prune``: after the run, the
metrics of its sinks (see :mod:`backupkit.metrics`) are written for node_exporter's
textfile collector, also when the run failed, without changing its exit code.

The flag, or else ``textfile`` in ``[plugins.metrics]``, names the file. Either turns
the failure counter on for the run, so that a failed run counts in the file it writes.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Any

import attrs

from backupkit import metrics
from backupkit.errors import ConfigError
from backupkit.params import strip_userinfo

if TYPE_CHECKING:
    from backupkit.config import Config
    from backupkit.engine import Engine

log = logging.getLogger("backupkit.metrics")


def _path(value: str) -> str:
    """An argparse type: a ``.prom`` path in a directory that exists."""
    try:
        path = metrics.check_textfile_path(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"directory {directory} of the metrics file does not exist")
    return path


def add_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics-file`` to a command's parser."""
    parser.add_argument("--metrics-file", type=_path, metavar="PATH.prom",
                        help="after the run, also a failed one, write the sinks' Prometheus metrics "
                             "here for node_exporter's textfile collector (atomically); the file "
                             "name must end in .prom")


def counting(args: argparse.Namespace, config: Config) -> Config:
    """*config*, with the failure counter on when this run writes a metrics file."""
    if getattr(args, "metrics_file", None) and "metrics" not in config.plugin_settings:
        return attrs.evolve(config, plugin_settings={**config.plugin_settings, "metrics": {}})
    return config


def remember(args: argparse.Namespace, engine: Engine) -> Engine:
    """Keep *engine* on *args* for :func:`write_after` (commands that take the flag only)."""
    if hasattr(args, "metrics_file"):
        args.metrics_engine = engine
    return engine


def write_after(args: argparse.Namespace) -> None:
    """Write the metrics file the run asked for; a failure to is a warning, never raised."""
    if not hasattr(args, "metrics_file"):
        return
    engine: Any = getattr(args, "metrics_engine", None)
    try:
        path = args.metrics_file or (metrics.configured_textfile(engine) if engine is not None else None)
        if path is None:
            return
        if engine is None:
            log.warning("metrics file %s not written: the run failed before its configuration was read", path)
            return
        metrics.write_textfile(engine, path)
    except Exception as exc:  # the run's own outcome and exit code stand
        reason = strip_userinfo(" ".join(str(exc).split()) or type(exc).__name__)
        log.warning("could not write the metrics file: %s", reason)
