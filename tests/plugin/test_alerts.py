"""Alerts on failure: a webhook receiver and a command, on loopback, get the payload."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import backupkit
from backupkit.errors import ConfigError, SourceError

pytestmark = pytest.mark.integration


class Receiver(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("R", (Receiver,), {"answers": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-secret", handler
    server.shutdown()
    server.server_close()


def config(tmp_path: Path, alerts: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    return {"plugins": {"alerts": alerts}, "sets": {"app": {
        "sources": [{"type": "filesystem", "paths": paths}], "sink": str(tmp_path / "sink")}}}


def test_a_failed_backup_posts_the_alert_and_the_error_still_reaches_the_caller(
    tmp_path: Path, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.answers = [500, 503]  # delivered on the third attempt
    out = tmp_path / "command.json"
    engine = backupkit.Engine.from_config(
        config(tmp_path, {"webhook": url, "command": f"{sys.executable} -c \"import sys; "
                          f"open('{out}', 'wb').write(sys.stdin.buffer.read())\"", "retries": 3},
               [str(tmp_path / "missing")]), env={})
    import backupkit.alerts as alerts_module

    alerts = next(p for p in engine.plugins.manager.get_plugins() if isinstance(p, alerts_module.Alerts))
    alerts.backoff = 0.01
    with pytest.raises(SourceError):
        engine.backup()
    assert len(handler.received) == 3
    payload = handler.received[-1]
    assert payload["operation"] == "backup" and payload["set"] == "app" and payload["run_id"]
    assert "does not exist" in payload["error"]
    assert payload["text"].startswith("backupkit: backup of set app failed on ")
    assert "T0KEN" not in json.dumps(payload)
    assert json.loads(out.read_text()) == payload


def test_a_successful_backup_alerts_nobody_and_an_unreachable_webhook_never_hides_the_error(
    tmp_path: Path, receiver: tuple[str, type[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = receiver
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    engine = backupkit.Engine.from_config(config(tmp_path, {"webhook": url}, [str(src)]), env={})
    engine.backup()
    assert handler.received == []
    dead = backupkit.Engine.from_config(
        config(tmp_path, {"webhook": "http://127.0.0.1:9/hooks/T0KEN-secret", "retries": 0},
               [str(tmp_path / "missing")]), env={})
    with pytest.raises(SourceError):
        dead.backup()
    assert "the alert webhook could not be reached" in caplog.text and "T0KEN" not in caplog.text


def test_bad_alert_settings_are_one_line_errors(tmp_path: Path) -> None:
    for alerts, message in (({"webhook": "ftp://x"}, "webhook must be an http"),
                            ({"hook": "x"}, "unknown key 'hook'"),
                            ({"retries": 99}, "retries must be")):
        with pytest.raises(ConfigError, match=message):
            backupkit.Engine.from_config(config(tmp_path, alerts, ["/tmp"]), env={})


class Counting:
    """A third party's per-engine plugin, configured by [plugins.counting]."""

    @backupkit.hookimpl
    def backupkit_engine_plugins(self, settings: dict[str, Any]) -> list[object] | None:
        if "counting" not in settings:
            return None
        return [Counter(settings["counting"]["label"])]


class Counter:
    def __init__(self, label: str) -> None:
        self.label, self.seen = label, []

    @backupkit.hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Any) -> Any:
        self.seen.append((self.label, operation.verb))
        return (yield)


def test_each_engine_gets_its_own_configured_plugins(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    engines = []
    for label in ("first", "second"):
        body = config(tmp_path / label, {}, [str(src)])
        body["plugins"] = {"counting": {"label": label}}
        engines.append(backupkit.Engine.from_config(body, plugins=[Counting()], env={}))
    engines[0].backup()
    counters = [next(p for p in e.plugins.manager.get_plugins() if isinstance(p, Counter)) for e in engines]
    assert counters[0].seen == [("first", "backup")] and counters[1].seen == []
    with pytest.raises(ConfigError, match="'plugins' holds tables"):
        backupkit.Engine.from_config({**config(tmp_path, {}, [str(src)]), "plugins": {"x": 1}}, env={})
