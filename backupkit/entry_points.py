"""Finding the plugins installed in the ``backupkit`` entry-point group, cheaply.

:func:`importlib.metadata.entry_points` costs every command ~35 ms: importing
``importlib.metadata`` (``email``, ``zipfile``, ``csv``...) and building a
``Distribution`` for every installed package. :func:`entry_points` finds the same
entry points in the same order by reading the ``entry_points.txt`` of each
``*.dist-info`` and ``*.egg-info`` directory on :data:`sys.path` itself, the way
``importlib.metadata`` does for plain directories (a distribution installed twice
counts once, where it is first on the path). Where the path holds something else
(a zip file) or another finder on :data:`sys.meta_path` knows distributions, it asks
``importlib.metadata`` instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import attrs

_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_SUFFIXES = (".dist-info", ".egg-info")


@attrs.frozen
class EntryPoint:
    """One entry point: its name, its ``module:attr`` value, its distribution's name."""

    name: str
    value: str
    group: str
    dist_name: str | None = None

    def load(self) -> Any:
        """Import the module and return the attribute the value names."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        module: Any = importlib.import_module(match.group("module"))
        names = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, names, module)


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of *group*, as :func:`importlib.metadata.entry_points` gives them."""
    if not _plain_paths():
        return _from_importlib(group)
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for info_dir in _info_dirs():
        name = _normalize(os.path.basename(info_dir).rpartition(".")[0].partition("-")[0])
        if name in seen:  # installed twice: the first on the path counts
            continue
        seen.add(name)
        try:
            with open(os.path.join(info_dir, "entry_points.txt"), encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            continue
        pairs = [(ep_name, value) for section, ep_name, value in _pairs(text) if section == group]
        if pairs:
            dist = _dist_name(info_dir)
            found += (EntryPoint(ep_name, value, group, dist) for ep_name, value in pairs)
    return found


def _plain_paths() -> bool:
    """Whether :data:`sys.path` holds only directories (or nothing there) and only the
    standard path finder knows distributions."""
    finders = [f for f in sys.meta_path if hasattr(f, "find_distributions")]
    if any(getattr(f, "__name__", "") != "PathFinder" for f in finders):
        return False
    return not any(p and (p.lower().endswith(".egg") or os.path.isfile(p)) for p in sys.path)


def _info_dirs() -> Iterator[str]:
    """The distributions' metadata directories in ``importlib.metadata``'s order: path
    entry by path entry, in each those of one (normalized) name together."""
    for path in sys.path:
        try:
            children = os.listdir(path or ".")
        except OSError:
            continue
        infos: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith(_SUFFIXES):
                key = _normalize(low.rpartition(".")[0].partition("-")[0])
                infos.setdefault(key, []).append(os.path.join(path, child))
        for paths in infos.values():
            yield from paths


def _dist_name(info_dir: str) -> str | None:
    """The ``Name`` field of a distribution's metadata."""
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, filename), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Name:"):
                        return line[len("Name:"):].strip()
                    if not line.strip():  # the end of the headers
                        break
        except OSError:
            continue
    return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _pairs(text: str) -> Iterator[tuple[str | None, str, str]]:
    """(section, name, value) of each ``name = value`` line of an ``entry_points.txt``."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        name, _, value = line.partition("=")
        yield section, name.strip(), value.strip()


def _from_importlib(group: str) -> list[EntryPoint]:
    import importlib.metadata  # noqa: PLC0415

    return [EntryPoint(ep.name, ep.value, ep.group, ep.dist.name if ep.dist is not None else None)
            for ep in importlib.metadata.entry_points(group=group)]
