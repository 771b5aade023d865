"""Start `qa serve` on 127.0.0.1 for a benchmark and stop it afterwards."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import ROOT, clean_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 120.0, poll: float = 0.02) -> float:
    """Seconds until GET /health answers 200 (polling every `poll` s); raises if the process dies."""
    started = time.perf_counter()
    with httpx.Client(timeout=2) as client:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {proc.returncode}")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(poll)
    raise TimeoutError(f"{url}/health did not answer within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s: a benchmarked server is never left running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve(data_dir: Path, workers: int = 1, log: Path | None = None, **env: str) -> Iterator[tuple[str, int, float]]:
    """`qa serve` on a free port: yields (base URL, pid, seconds until /health answered)."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers)],
        cwd=ROOT, env=clean_env(QA_DATA_DIR=str(data_dir), **env), stdout=out, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_health(url, proc)
        yield url, proc.pid, time.perf_counter() - started
    finally:
        _stop(proc)
        if log:
            out.close()


@contextmanager
def chroma(path: Path) -> Iterator[str]:
    """`chroma run --path PATH` on a free 127.0.0.1 port (the server mode's vector store); yields its URL."""
    import shutil

    port = free_port()
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        with httpx.Client(timeout=2) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma run exited with {proc.returncode}")
                try:
                    if client.get(f"{url}/api/v2/heartbeat").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 60:
                    raise TimeoutError("chroma run did not answer within 60 s")
                time.sleep(0.1)
        yield url
    finally:
        _stop(proc)
