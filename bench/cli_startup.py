"""Where the seconds of `qa ask` go: wall and CPU time of each start-up phase in one process (the stages'
imports, the chromadb import, the service with its ONNX session and the gazetteer's GeoNames names, opening the
index, the first and a second answer), then `qa ask` itself as a subprocess, wall and CPU (user+sys), median
of --runs.

    python -m bench.cli_startup [--data-dir DIR] [--runs 5] [--phases-only]

Without --data-dir the seeds are ingested into a temporary folder first. Run it with the tree to measure as
the current directory (a second checkout measures the code before a change); CPU time is the figure to quote
on a busy machine, wall time only on an idle one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = r'''
import time
def now(): return time.perf_counter(), time.process_time()
marks = [("start", now())]
import qa.cli
marks.append(("import qa.cli and the stages", now()))
from qa.config import load_settings
from qa.service import build_service
settings = load_settings()
marks.append(("import qa.service, settings", now()))
import chromadb
marks.append(("import chromadb", now()))
service = build_service(settings)
marks.append(("build_service (ONNX session, gazetteer, stores)", now()))
service.startup(); service.docs.count()
marks.append(("open the index (startup, count)", now()))
service.ask("Where is the Shayrat Airbase?")
marks.append(("first answer (Chroma client, sentence vectors)", now()))
service.ask("How many Tomahawk missiles were fired?")
marks.append(("second answer", now()))
for (name, (w, c)), (_, (w0, c0)) in zip(marks[1:], marks[:-1]):
    print(f"{name:50s} wall {w - w0:5.2f} s   cpu {c - c0:5.2f} s")
(w0, c0), (w1, c1) = marks[0][1], marks[-2][1]
print(f"{'to the first answer':50s} wall {w1 - w0:5.2f} s   cpu {c1 - c0:5.2f} s")
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--phases-only", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cli-startup-"))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    try:
        data = args.data_dir
        if data is None:
            data = workdir / "data"
            subprocess.run([sys.executable, "-m", "qa.cli", "ingest", "seeds"], env={**env, "QA_DATA_DIR": str(data)},
                           check=True, capture_output=True)
        env["QA_DATA_DIR"] = str(data)
        subprocess.run([sys.executable, "-c", PHASES], env=env, check=True)
        if args.phases_only:
            return
        walls, cpus = [], []
        for _ in range(args.runs):
            before = os.times()
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Where is the Shayrat Airbase?", "--sources",
                            "none"], env=env, check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
            after = os.times()
            cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
        print(f"qa ask, median of {args.runs}: wall {statistics.median(walls):.2f} s, "
              f"cpu {statistics.median(cpus):.2f} s (wall {min(walls):.2f}-{max(walls):.2f})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
