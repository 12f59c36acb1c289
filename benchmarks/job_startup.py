"""Start-up time of a stage job, cold (a new Python importing torch, timm and the stage) and warm (a fork of
pipeline.warm's server, as `make run` starts its jobs).

    python benchmarks/job_startup.py [--repeat 5] [--module finetune]

Each measurement runs ``python -m pipeline.warm <module> preset=mini/<module> --cfg job`` (every import of the
stage, then Hydra composes and prints its configuration) and prints the median wall seconds of each way.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(module: str, socket_path: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_WARM_SOCKET"}
    if socket_path:
        env["PIPELINE_WARM_SOCKET"] = socket_path
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.warm", module, f"preset=mini/{module}", "--cfg", "job"], cwd=ROOT,
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--module", default="finetune")
    args = parser.parse_args()
    cold = [timed(args.module, None) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "socket")
        server = subprocess.Popen([sys.executable, "-m", "pipeline.warm", "serve", path], cwd=ROOT)
        try:
            while not os.path.exists(path):
                time.sleep(0.05)
            ready = timed(args.module, path)  # waits for the server's imports
            warm = [timed(args.module, path) for _ in range(args.repeat)]
        finally:
            server.terminate()
            server.wait()
    print(f"{args.module} job start-up, median of {args.repeat}: cold {statistics.median(cold):.2f} s, "
          f"warm {statistics.median(warm):.2f} s (the server's own imports: {ready:.2f} s, once per run)")


if __name__ == "__main__":
    main()
