"""CPU-bound ingest work (decoding and cleaning, chunking, sentence splitting) run in a worker process, so a
2 MB article never holds the server's GIL: /health and /ask keep answering while it is prepared.

Hand-written because the stdlib pool alone does not say what to do when its worker dies: here the call is
then run in-process (slower for the server, never lost) and the next call gets a fresh worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
LARGE_CHARS = 100_000  # inputs above this go to the worker; smaller ones prepare in a fraction of a second
log = logging.getLogger("qa.cpu")


def import_modules(names: tuple[str, ...]) -> None:
    """Run in the worker to import what its calls need before the first one arrives."""
    import importlib

    for name in names:
        importlib.import_module(name)


class CpuPool:
    """One spawned worker process (started on first use, kept for the service's lifetime); `run` blocks the
    calling thread only, which waits without holding the GIL."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the server has threads (and onnxruntime's), which fork would copy mid-state
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the worker; fn must be a module-level function and its arguments picklable."""
        try:
            return self._executor().submit(fn, *args).result()
        except BrokenProcessPool:
            log.warning("the ingest worker process died; running this step in-process and starting a new one")
            with self._lock:
                self._pool = None
            return fn(*args)

    def run_if_large(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the worker when an argument (bytes, text, or an object's `.text`) is over
        LARGE_CHARS; in-process otherwise, where a normal article takes milliseconds and pays no pickling."""
        sizes = [len(a) for a in args if isinstance(a, bytes | str)]
        sizes += [len(a.text) for a in args if isinstance(getattr(a, "text", None), str)]
        return self.run(fn, *args) if max(sizes, default=0) > LARGE_CHARS else fn(*args)

    def warm(self, modules: tuple[str, ...]) -> None:
        """Start the worker and import `modules` in it, in the background: the first upload does not wait for
        a process to spawn and import llama-index (seconds on a loaded machine)."""
        threading.Thread(target=self.run, args=(import_modules, modules), daemon=True, name="cpu-warm").start()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
