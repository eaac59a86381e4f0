"""Property-based: schemathesis generates requests from /openapi.json and calls the app in
process; no route may answer 500 or outside what the document declares."""

from __future__ import annotations

import importlib.util
from typing import Any

import hypothesis
import pytest
import schemathesis

from backupkit.server import create_app
from backupkit.testing.apiserver import ADMIN, TOKENS
from backupkit.testing.fakes import engine_for


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "src").mkdir()
    (root / "src" / "a.txt").write_text("alpha")
    engine = engine_for(root / "src", sink=root / "sink", schedule=[{"kind": "full", "every": "1h"}])
    made = create_app(engine, TOKENS, env={})
    yield made
    if made.state.api.scheduler is not None:
        made.state.api.scheduler.stop()


def test_no_route_breaks_its_contract(app: Any) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not run on this pytest, so
    its strategies are driven by hypothesis directly)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/metrics" and importlib.util.find_spec("backupkit.metrics") is None:
            continue

        @hypothesis.given(operation.as_strategy())
        @hypothesis.settings(max_examples=25, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"})

        check()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) >= 8, checked
