"""Alerts on failure: a built-in plugin on the operation hook.

Configured per configuration::

    [plugins.alerts]
    webhook = "https://hooks.slack.com/services/..."   # JSON POST, Slack-compatible "text"
    command = "/usr/local/bin/page-oncall"              # gets the same JSON on stdin
    retries = 3                                          # webhook attempts after the first

When a backup, prune, verify, restore or drill fails, each notifier gets one JSON object:
``text`` (one line for chat), ``set``, ``operation``, ``run_id``, ``error``, ``host``,
``time``. The webhook's URL (which holds a token for most chat services) is never
logged or sent anywhere else; an alert that cannot be delivered is a warning in the
log and never hides the operation's own error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import subprocess
import time
from collections.abc import Generator, Mapping
from typing import Any

import attrs

from backupkit.errors import ConfigError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation, hookimpl

log = logging.getLogger("backupkit.alerts")

_KEYS = ("webhook", "command", "retries", "timeout")


@attrs.define(eq=False)  # a plugin object: hashable, by identity
class Alerts:
    """The notifiers of one engine (see the module)."""

    webhook: str | None = attrs.field(default=None, repr=False)
    command: str | None = None
    retries: int = 3
    timeout: float = 10.0
    backoff: float = 1.0  # seconds before the first retry; doubled for each next

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Alerts:
        """From a ``[plugins.alerts]`` table (one-line errors for bad values)."""
        for key in settings:
            if key not in _KEYS:
                raise ConfigError(f"[plugins.alerts]: unknown key {key!r}; known: {', '.join(_KEYS)}")
        webhook, command = settings.get("webhook"), settings.get("command")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise ConfigError("[plugins.alerts]: webhook must be an http:// or https:// URL")
        if command is not None and not isinstance(command, str):
            raise ConfigError("[plugins.alerts]: command must be a string")
        retries = settings.get("retries", 3)
        timeout = settings.get("timeout", 10)
        if not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ConfigError("[plugins.alerts]: retries must be a whole number from 0 to 10")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("[plugins.alerts]: timeout must be a positive number of seconds")
        return cls(webhook, command, retries, float(timeout))

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        """Notify when the operation fails; its result or error passes unchanged."""
        try:
            return (yield)
        except Exception as exc:
            self.notify(self.payload(operation, exc))
            raise

    @staticmethod
    def payload(operation: Operation, error: BaseException) -> dict[str, Any]:
        """The alert's JSON object."""
        host = socket.gethostname()
        what = f"{operation.verb} of set {operation.set_name}" if operation.set_name else operation.verb
        message = strip_userinfo(str(error).splitlines()[0] if str(error) else type(error).__name__)
        return {"text": f"backupkit: {what} failed on {host}: {message}", "set": operation.set_name,
                "operation": operation.verb, "run_id": operation.run_id, "error": message, "host": host,
                "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")}

    def notify(self, payload: Mapping[str, Any]) -> None:
        """Deliver *payload* to every notifier; failures are logged, never raised."""
        body = json.dumps(payload).encode()
        if self.webhook:
            self._post(body)
        if self.command:
            try:
                done = subprocess.run(self.command, shell=True, input=body, capture_output=True,
                                      timeout=self.timeout, check=False)
                if done.returncode != 0:
                    log.warning("the alert command exited with status %d", done.returncode)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("the alert command could not run: %s", exc)

    def _post(self, body: bytes) -> None:
        import urllib.error  # here, not at the top: with http and ssl, ~40 ms of every start-up
        import urllib.request

        assert self.webhook is not None
        delay = self.backoff
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.webhook, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    if 200 <= response.status < 300:
                        return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                reason = type(exc).__name__
            else:
                reason = "an unexpected answer"
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        log.warning("the alert webhook could not be reached (%s after %d attempts)", reason, self.retries + 1)


@hookimpl
def backupkit_engine_plugins(settings: Mapping[str, Any]) -> list[object] | None:
    """An :class:`Alerts` for an engine whose configuration has ``[plugins.alerts]``."""
    if "alerts" not in settings:
        return None
    return [Alerts.from_settings(settings["alerts"])]
