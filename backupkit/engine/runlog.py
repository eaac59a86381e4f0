"""A run's log: the log records of the threads working for one backup, stored in
``logs/`` when the run ends (sealed like the manifest when the set seals manifests)."""

from __future__ import annotations

import logging
import threading

from backupkit.crypto.keys import Keyring
from backupkit.crypto.sealed import seal_manifest
from backupkit.errors import BackupkitError
from backupkit.plugin import RunInfo, Sink

log = logging.getLogger("backupkit")

#: The run a thread works for (set by the engine in the threads of a backup): a run's
#: log takes only its own records, not those of another run in the same process.
_thread_run = threading.local()


def working_for(run_id: str | None) -> None:
    """Mark the calling thread as working for run *run_id* (``None``: for none)."""
    _thread_run.id = run_id


class RunLog(logging.Handler):
    """Collects a run's log records for its log file in ``logs/``: those of the threads
    working for the run (see :func:`working_for`)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(logging.INFO)
        self.run_id = run_id
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep *record* if it comes from a thread of this run (at most 100,000 lines)."""
        if getattr(_thread_run, "id", None) == self.run_id and len(self.lines) < 100_000:
            self.lines.append(self.format(record))

    # The ``backupkit`` logger's effective level is WARNING unless the host app says
    # otherwise, which would drop every INFO line before it reaches this handler:
    # lower it to INFO while any run is capturing, and put it back afterwards.
    _lock = threading.Lock()
    _saved_level: int | None = None

    def attach(self) -> None:
        """Start capturing: the calling thread works for the run from now on."""
        working_for(self.run_id)
        logger = logging.getLogger("backupkit")
        with RunLog._lock:
            if not any(isinstance(h, RunLog) for h in logger.handlers):
                RunLog._saved_level = logger.level
                if not logger.isEnabledFor(logging.INFO):
                    logger.setLevel(logging.INFO)
            logger.addHandler(self)

    def detach(self) -> None:
        """Stop capturing, and put the logger's level back once no run captures."""
        logger = logging.getLogger("backupkit")
        with RunLog._lock:
            logger.removeHandler(self)
            if RunLog._saved_level is not None and not any(
                isinstance(h, RunLog) for h in logger.handlers
            ):
                logger.setLevel(RunLog._saved_level)
                RunLog._saved_level = None
        working_for(None)

    def store(self, sink: Sink, run: RunInfo, keyring: Keyring, *, seal: bool) -> None:
        """Store the captured lines as the run's log; a failure is only a warning (a full
        disk must not hide the run's real outcome). It goes to ``run.log_key``."""
        try:
            text = ("\n".join(self.lines) + "\n").encode()
            if seal:
                text = seal_manifest(text, keyring.writing_key(what=f"the log of run {run.run_id}"))
            sink.put_bytes(run.log_key, text, run_id=run.run_id)
        except (BackupkitError, OSError) as exc:
            log.warning("could not write the run log: %s", exc)
