"""Running ``pg_dump``, ``pg_restore``, ``pg_dumpall`` and ``psql`` as child processes
whose output or input is a backup stream, and turning their failures into one-line
errors that say what to do."""

from __future__ import annotations

import contextlib
import fcntl
import re
import subprocess
import threading
from collections.abc import Callable, Sequence

from backupkit.errors import BackupkitError, RestoreError, SourceError
from backupkit.plugin import Reader, Writer, held_back
from backupkit.sources.postgres.connection import Conn

CHUNK = 1 << 20
_STDERR_KEEP = 64 << 10

#: (pattern in a program's stderr, what to tell the user); the first match wins.
ADVICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"permission denied for (?:large object|table pg_largeobject)"),
     "the role cannot read large objects (only a superuser or their owner can); connect as "
     "their owner or a superuser, or set 'large_objects = false'"),
    (re.compile(r"permission denied for (table|sequence|schema) (\S+)"),
     "the role lacks SELECT (USAGE for a schema) on it; GRANT it, or leave it out with "
     "'exclude_tables'/'exclude_schemas'"),
    (re.compile(r"password authentication failed|no password supplied"),
     "check the password (in 'url', 'password', PGPASSWORD or a passfile)"),
    (re.compile(r'database "[^"]+" does not exist'), "check the database name"),
    (re.compile(r"could not connect|Connection refused|could not translate host name"),
     "check that the server is running and 'host'/'port' are right"),
    (re.compile(r"server version: .*pg_dump version|aborting because of server version mismatch"),
     "install a pg_dump at least as new as the server, or point 'bin_dir' at it"),
    (re.compile(r"No space left on device"), "free space in the temporary directory"),
)


def explain(program: str, stderr: str, conn: Conn) -> str:
    """The one line to show for *program*'s failure: its first error, and advice."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "FATAL:" in ln or "ERROR:" in ln] or lines
    first = errors[0] if errors else "no message"
    first = re.sub(rf"^{re.escape(program)}: (error: )?", "", first)
    first = re.sub(r"^(pg_restore|pg_dump|pg_dumpall|psql): (error: )?", "", first)
    for pattern, advice in ADVICE:
        if pattern.search(stderr):
            return conn.redact(f"{first}; {advice}")
    return conn.redact(first)


def _widen(pipe: object) -> None:
    """Make a pipe hold 1 MiB (Linux; the default 64 KiB means 16 times the reads)."""
    try:
        fcntl.fcntl(pipe.fileno(), 1031, CHUNK)  # type: ignore[attr-defined]  # F_SETPIPE_SZ
    except (OSError, AttributeError, ValueError):
        pass  # not Linux, or over the system's pipe-max-size: the default works, only slower


class Child:
    """A client program run with the connection's environment, its stderr collected
    in a thread (the last 64 KiB)."""

    def __init__(self, args: Sequence[str], conn: Conn, *, stdin: bool = False, stdout: bool = False) -> None:
        self.program = args[0].rsplit("/", 1)[-1]
        self.conn = conn
        try:
            self.proc = subprocess.Popen(
                list(args), env=conn.child_env(), cwd="/",
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise SourceError(f"cannot run {args[0]}: {exc.strerror}") from None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                _widen(pipe)
        self._err = bytearray()
        self._reader = threading.Thread(target=self._drain, name=f"backupkit-{self.program}-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err += line
            if len(self._err) > _STDERR_KEEP:
                del self._err[: len(self._err) - _STDERR_KEEP]

    @property
    def stderr(self) -> str:
        """What the program wrote to stderr so far (the end of it)."""
        return self._err.decode("utf-8", "replace")

    def finish(self, error: type[BackupkitError], what: str) -> str:
        """Wait for the program; raise *error* naming *what* unless it exited 0."""
        code = self.proc.wait()
        self._reader.join(timeout=10)
        self.close()
        if code != 0:
            detail = explain(self.program, self.stderr, self.conn) if self.stderr.strip() else (
                f"{self.program} exited with status {code}")
            raise error(f"{what}: {detail}")
        return self.stderr

    def kill(self) -> None:
        """Stop the program now (on an error or Ctrl-C); safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        self.close()

    def close(self) -> None:
        """Close the pipes to the program (once it ended)."""
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _alongside(during: Callable[[], None] | None) -> tuple[threading.Thread | None, list[BaseException]]:
    errors: list[BaseException] = []
    if during is None:
        return None, errors

    def run() -> None:
        try:
            during()
        except BaseException as exc:  # reported after the program ends
            errors.append(exc)

    helper = threading.Thread(target=run, name="backupkit-postgres-counts", daemon=True)
    helper.start()
    return helper, errors


def _joined(helper: threading.Thread | None, errors: list[BaseException]) -> None:
    if helper is not None:
        helper.join()
    if errors:
        raise errors[0]


def run_program(args: Sequence[str], conn: Conn, *, what: str,
                during: Callable[[], None] | None = None) -> str:
    """Run a program that writes its own files; *during* runs in a thread meanwhile."""
    child = Child(args, conn)
    try:
        helper, errors = _alongside(during)
        stderr = child.finish(SourceError, what)
        _joined(helper, errors)
        return stderr
    except BaseException:
        child.kill()
        raise


def stream_out(args: Sequence[str], conn: Conn, out: Writer, *, what: str,
               during: Callable[[], None] | None = None) -> str:
    """Run a program whose stdout is the backup stream; copy it to *out*. *during* runs
    in a helper thread while the program writes.
    Returns the program's stderr; raises :class:`SourceError` when it fails."""
    child = Child(args, conn, stdout=True)
    try:
        helper, errors = _alongside(during)
        assert child.proc.stdout is not None
        # Whole chunks (read returns short only at the end): pg_dump writes 4 KiB at a
        # time, so read1 returned ~23 KiB a call, and the pipe then joined ~40 of them
        # into each chunk: ~40,000 Python calls and a copy of every byte more per GiB.
        while chunk := child.proc.stdout.read(CHUNK):
            out.write(chunk)
        stderr = child.finish(SourceError, what)
        _joined(helper, errors)
        return stderr
    except BaseException:
        child.kill()
        raise


def stream_in(args: Sequence[str], conn: Conn, stream: Reader, *, what: str) -> str:
    """Run a program reading the raw stream on its stdin; raise :class:`RestoreError`
    when it fails, and stop it at once when the stream does (nothing is committed: the
    programs are run in one transaction and the stream's last bytes held back)."""
    child = Child(args, conn, stdin=True)
    try:
        assert child.proc.stdin is not None
        try:
            for chunk in held_back(stream):
                child.proc.stdin.write(chunk)
            child.proc.stdin.close()
        except BrokenPipeError:
            pass  # the program stopped reading: its exit status says why
        return child.finish(RestoreError, what)
    except BaseException:
        child.kill()
        raise
