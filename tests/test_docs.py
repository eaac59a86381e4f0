"""Meta-tests that keep the plugin seams honest.

Every hook is documented (docstring and docs/hooks.md) and exercised by a test; the public
API imports; every built-in plugin module really registers a plugin; the plugin docs and
examples agree with the code.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pluggy
import pytest

import backupkit
from backupkit import errors, hookspecs
from backupkit.plugin import Register
from backupkit.plugin.registry import PROJECT
from backupkit.plugins import AUTOLOAD_ENV, DEFAULT_PLUGINS, ENTRY_POINT_GROUP, make_plugin_manager

# The repository root: the nearest folder above this file that holds pyproject.toml.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
TESTS = ROOT / "tests"
HOOKS_MD = ROOT / "docs" / "hooks.md"
PLUGINS_MD = ROOT / "docs" / "plugins.md"
SPEC_ATTR = f"{PROJECT}_spec"
IMPL_ATTR = f"{PROJECT}_impl"


def _hookspecs() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, SPEC_ATTR)
    }


HOOKS = sorted(_hookspecs())


def _params(name: str) -> list[str]:
    return list(inspect.signature(_hookspecs()[name]).parameters)


def _hooks_md_sections() -> dict[str, str]:
    """``docs/hooks.md`` split at its ``## hook_name`` / ``### hook_name`` headings."""
    text = HOOKS_MD.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = re.match(r"^#{1,3} (.*)$", line)
        if heading:
            title = heading.group(1).strip().strip("`")
            current = title if title in HOOKS else None
            if current is not None:
                sections[current] = ""
            continue
        if current is not None:
            sections[current] += line + "\n"
    return sections


def test_hookspecs_declares_hooks_and_only_hooks() -> None:
    assert HOOKS, "no hookspecs found"
    for name in HOOKS:
        assert name.startswith(f"{PROJECT}_"), f"hook {name} lacks the {PROJECT}_ prefix"
    public = {
        n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and not n.startswith("_")
    }
    assert public == set(HOOKS), "a public function in hookspecs.py is not a hookspec"
    markers = [n for n, v in vars(hookspecs).items() if isinstance(v, pluggy.HookspecMarker)]
    assert all(n.startswith("_") for n in markers), "the spec marker must stay private"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_docstring_says_when_and_documents_every_param(hook: str) -> None:
    fn = _hookspecs()[hook]
    doc = inspect.getdoc(fn) or ""
    assert "called" in doc.lower(), f"{hook}'s docstring does not say when it is called"
    for param in _params(hook):
        assert f":param {param}:" in doc, f"{hook}'s docstring lacks ':param {param}:'"
    if fn.__annotations__.get("return") not in (None, "None"):
        assert ":return:" in doc, f"{hook} returns a value but its docstring has no ':return:'"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_section_in_hooks_md_naming_each_param(hook: str) -> None:
    sections = _hooks_md_sections()
    assert hook in sections, f"docs/hooks.md has no '## {hook}' or '### {hook}' section"
    for param in _params(hook):
        assert f"`{param}`" in sections[hook], f"docs/hooks.md: {hook} does not describe `{param}`"


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    mentioned = set(re.findall(rf"\b{PROJECT}_[a-z_]+\b", text))
    # A deliberately misspelled example is allowed when the page says it is rejected.
    mentioned.discard(f"{PROJECT}_register_sauces")
    assert mentioned <= set(HOOKS), f"docs/hooks.md names unknown hooks: {mentioned - set(HOOKS)}"


def _hook_uses(tree: ast.AST) -> set[str]:
    """Hooks a module implements (a def decorated with ``hookimpl``) or calls
    (``<manager>.hook.<name>(...)``); a name in a comment or a string does not count."""
    uses: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Name | ast.Attribute) and (
                    getattr(target, "id", None) == "hookimpl"
                    or getattr(target, "attr", None) == "hookimpl"
                ):
                    uses.add(node.name)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "hook"
        ):
            uses.add(node.func.attr)
    return uses


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    users = [
        path.relative_to(ROOT)
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != Path(__file__).name
        and hook in _hook_uses(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert users, f"no test under tests/ implements (@hookimpl) or calls (pm.hook.{hook}) {hook}"


# -- public API ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", backupkit.__all__)
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from backupkit import {name}", namespace)  # noqa: S102 - the statement users write
    assert namespace[name] is getattr(backupkit, name)


def test_public_names_are_unique() -> None:
    assert len(backupkit.__all__) == len(set(backupkit.__all__))


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_derives_from_the_one_root(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.BackupkitError)
    assert isinstance(cls.exit_code, int) and cls.exit_code > 0


# -- built-in plugins ------------------------------------------------------------------------
@pytest.mark.parametrize("module_name", DEFAULT_PLUGINS)
def test_every_builtin_is_a_module_that_registers_a_plugin(module_name: str) -> None:
    module = importlib.import_module(module_name)
    impls = [n for n, v in vars(module).items() if callable(v) and hasattr(v, IMPL_ATTR)]
    assert impls, f"{module_name} implements no hook"

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(module, name=module_name)
    pm.check_pending()
    register = Register()
    pm.hook.backupkit_register_sources(register=register)
    pm.hook.backupkit_register_transforms(register=register)
    pm.hook.backupkit_register_sinks(register=register)
    classes = [*register.sources.values(), *register.transforms.values(), *register.sinks.values()]
    assert classes or "backupkit_engine_plugins" in impls, (
        f"{module_name} registers no source, transform or sink, and builds no per-engine plugin")
    for cls in classes:
        assert cls.__module__ == module_name or cls.__module__.startswith(module_name + "."), (
            f"{module_name} registers {cls!r} from elsewhere"
        )


def test_builtins_load_through_the_same_door_and_are_listed() -> None:
    plugins = make_plugin_manager(autoload=False)
    assert set(DEFAULT_PLUGINS) <= set(plugins.names())


# -- plugin docs and examples ----------------------------------------------------------------
def test_plugins_md_covers_the_seams_it_promises() -> None:
    text = PLUGINS_MD.read_text(encoding="utf-8")
    for needle in (
        "register.source(",
        "register.transform(",
        "register.sink(",
        f"[project.entry-points.{ENTRY_POINT_GROUP}]",
        AUTOLOAD_ENV,
        "secret(",
        "@backupkit.hookimpl",
        "EOF",
    ):
        assert needle in text, f"docs/plugins.md does not mention {needle!r}"


def test_the_example_plugin_declares_its_entry_point_and_registers_a_source() -> None:
    project = tomllib.loads((ROOT / "examples" / "backupkit-sqlite" / "pyproject.toml").read_text())
    assert "backupkit" in project["project"]["dependencies"]
    entry_points = project["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert entry_points == {"sqlite": "backupkit_sqlite"}
    module = importlib.import_module(entry_points["sqlite"])
    register = Register()
    module.backupkit_register_sources(register)
    assert list(register.sources) == ["sqlite"]


@pytest.mark.integration
def test_the_notebook_quickstart_runs(tmp_path: Path) -> None:
    script = ROOT / "examples" / "notebook_quickstart.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "restored backup" in result.stdout and "hello, backupkit" in result.stdout
