"""Meta-tests that keep the package's shape: no import circles, small modules, a thin
engine facade, a leaf plugin seam, a pure core, a summary line on every public name."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import backupkit
from backupkit.engine import Engine

PACKAGE = Path(backupkit.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


NAMES = {_module_name(p) for p in MODULES}


def _imports(path: Path) -> set[str]:
    """Every backupkit module *path* imports, also under TYPE_CHECKING and in functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # `from backupkit import hookspecs` imports the submodule
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in NAMES else base)
    return {m for m in found if m in NAMES and m != name}


GRAPH = {_module_name(p): _imports(p) for p in MODULES}


def _reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        for nxt in GRAPH.get(current, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _is_package_of(a: str, b: str) -> bool:
    return b.startswith(a + ".")


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_one_that_imports_it_back(module: str) -> None:
    circles = [
        other for other in GRAPH[module]
        if not _is_package_of(module, other) and _reaches(other, module)
    ]
    assert not circles, f"{module} imports {circles}, which import {module} back"


def test_the_plugin_seam_imports_nothing_of_the_engine() -> None:
    allowed = ("backupkit.plugin", "backupkit.errors", "backupkit.params", "backupkit.core",
               "backupkit.crypto")
    for module, imported in GRAPH.items():
        if module.startswith("backupkit.plugin.") or module == "backupkit.plugin":
            bad = [m for m in imported if not m.startswith(allowed)]
            assert not bad, f"{module} imports {bad}: the seam must stay a leaf"


def test_builtin_plugins_import_only_the_seam_and_never_the_engine() -> None:
    for module, imported in GRAPH.items():
        if module.startswith(("backupkit.sources", "backupkit.sinks", "backupkit.transforms")):
            bad = [m for m in imported if m.startswith(("backupkit.engine", "backupkit.config",
                                                         "backupkit.cli", "backupkit.plugins"))]
            assert not bad, f"{module} imports {bad}; built-ins import backupkit.plugin"


def test_the_engine_imports_no_builtin_plugin() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("backupkit.engine") or module == "backupkit.config":
            bad = [m for m in imported
                   if m.startswith(("backupkit.sources.", "backupkit.sinks.", "backupkit.transforms."))]
            assert not bad, f"{module} imports the built-in plugin modules {bad}"


def test_the_core_is_pure() -> None:
    allowed = ("backupkit.core", "backupkit.errors")
    for path in MODULES:
        module = _module_name(path)
        if module.startswith("backupkit.core"):
            bad = [m for m in GRAPH[module] if not m.startswith(allowed)]
            assert not bad, f"{module} imports {bad}"
            text = path.read_text(encoding="utf-8")
            for io in ("import os", "import socket", "open(", "datetime.now(", "dt.datetime.now("):
                assert io not in text, f"{module} does I/O or reads the clock ({io!r})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 600, f"{path.relative_to(PACKAGE)} has {lines} lines; split it"


def test_the_engine_class_is_a_thin_facade() -> None:
    source, _ = inspect.getsourcelines(Engine)
    assert len(source) <= 250, f"the Engine class has {len(source)} lines; move the work to a verb module"


def _public_definitions(path: Path) -> list[tuple[str, ast.AST]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            found.append((node.name, node))
            protocol = isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases
            )
            if isinstance(node, ast.ClassDef) and not protocol:  # a protocol's members: its docstring
                found.extend(
                    (f"{node.name}.{item.name}", item) for item in node.body
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
                    and not any(isinstance(d, ast.Name) and d.id == "overload" for d in item.decorator_list)
                )
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_public_function_and_class_has_a_summary_line(path: Path) -> None:
    if path.name.startswith("test") or "testing" in path.parts:
        pytest.skip("test kit classes are documented by their suites")
    missing = [
        name for name, node in _public_definitions(path)
        if not ast.get_docstring(node)  # type: ignore[arg-type]
        and not _is_protocol_member_or_override(path, name)
    ]
    assert not missing, f"{path.relative_to(PACKAGE)}: no docstring on {', '.join(missing)}"


# Methods whose meaning the base class or protocol they implement documents.
_DOCUMENTED_BY_BASE = {
    "write", "read", "close", "commit", "abort", "flush", "readable", "writable", "readinto",
    "encoder", "decoder", "backup", "restore", "restore_chain", "describe", "from_params",
    "open_artifact", "put_bytes", "get_bytes", "open_read", "list_keys", "delete", "location",
    "begin_run", "end_run", "active_run_ids", "key_for", "log_key", "presign",
    "list_manifest_keys", "local_directory", "with_keyring", "check_keys", "emit", "seekable", "tell", "seek",
}


def _is_protocol_member_or_override(path: Path, name: str) -> bool:
    """A method its base documents, or a hook implementation (its hookspec documents it)."""
    return name.startswith("backupkit_") or (
        "." in name and name.rsplit(".", 1)[1] in _DOCUMENTED_BY_BASE
    )
