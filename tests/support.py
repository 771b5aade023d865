"""Helpers the tests share: start real servers (uvicorn, `chroma run`) as subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's browser; `playwright install` is never run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float, what: str = "the condition", every: float = 0.02) -> T:
    """Wait for something to happen instead of sleeping a guessed time: poll `predicate` until it returns something
    truthy (returned), or fail after `timeout` seconds saying `what` did not happen. `predicate` may raise to stop
    early (e.g. a process exited before the point it was awaited at)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(every)
    return result


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll until `url` answers (any status below 500), or fail with the process output."""

    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout, f"{url} answering", every=0.2)
    except AssertionError as error:
        raise TimeoutError(str(error)) from None


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def qa_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `qa` subprocess: isolated data folder, no LLM, no stray QA_* from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") and k != "OPENAI_API_KEY"}
    env.update({"QA_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@contextmanager
def api_server(data_dir: Path, workers: int = 1, startup_timeout: float = 60.0, **env: str) -> Iterator[str]:
    """`qa serve` on a free port; yields its base URL once /health answers."""
    port = free_port()
    log = open(data_dir.parent / f"server-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        cwd=ROOT, env=qa_env(data_dir, **env), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=startup_timeout, proc=proc)
        yield url
    finally:
        stop(proc)
        log.close()


@contextmanager
def chroma_server(path: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """The real `chroma run` server from the chromadb package."""
    port = port or free_port()
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", proc=proc)
        yield url, proc
    finally:
        stop(proc)


def _pg_bin() -> Path:
    """The newest PostgreSQL server binaries of the Debian packages (postgresql-NN), or QA_TEST_PG_BIN."""
    if os.environ.get("QA_TEST_PG_BIN"):
        return Path(os.environ["QA_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class PostgresServer:
    """A throwaway PostgreSQL cluster (Debian's binaries) on 127.0.0.1, run as the `postgres` user when the
    tests run as root (PostgreSQL refuses to run as root), without fsync (a test server: speed over
    durability). Stoppable and restartable on the same port."""

    def __init__(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="qa-pg-"))  # not under pytest's root-only tmp folders
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")

    def _run(self, *args: object) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database, a copy of `template` (file-level copy: milliseconds); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def close(self) -> None:
        with suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


def sql_rows(docs: Any, query: str, params: tuple = ()) -> list[tuple]:
    """Raw SQL through a SQL store's own database (qa.db; `?` placeholders on SQLite, `%s` on PostgreSQL)."""
    with docs.db.read() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(query, params)]
