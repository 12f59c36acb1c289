"""Time and peak memory of every registered selection score on one (expert, target)-sized input.

    python benchmarks/selection_speed.py [--n-per-class 25] [--classes 100] [--dim 2048] [--repeat 3]

Inputs are seeded and class-structured: N = n_per_class x classes samples, d-dim
features, 1000 source classes for `probs`, 10,000-dim projected gradients, a
512-dim probe model for RSA/DDS and a source set of the same size. Each score runs
in a fresh subprocess so its peak memory is its own.
The floor is one `F @ F.T` (what LFC cannot avoid); every score is also reported as
a multiple of it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def make_inputs(n_per_class: int, classes: int, dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    means = rng.normal(size=(classes, dim))
    features = np.maximum(means[labels] + 2.0 * rng.normal(size=(len(labels), dim)), 0)  # ReLU-like, sparse
    logits = rng.normal(size=(len(labels), 1000)) + 2.0 * np.eye(classes, 1000)[labels]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return {
        "features": features,
        "labels": labels,
        "probs": probs,
        "gradients": rng.normal(size=(len(labels), 10_000)) + rng.normal(size=(classes, 10_000))[labels],
        "probe_features": means[labels][:, :512] + rng.normal(size=(len(labels), 512)),
        "source_features": np.maximum(rng.normal(size=features.shape), 0),
        "source_labels": labels.copy(),
        "seed": 0,
    }


# a score with options (the PED remapping included in its time), measured beside the registry's defaults
VARIANTS = {"pactran (dirichlet)": ("pactran", {"prior": "dirichlet"}), "pactran (gamma)": ("pactran", {"prior": "gamma"}),
            "logme + ped": ("logme", {"ped": True}), "sfda + ped": ("sfda", {"ped": True})}


def run_method(method: str, inputs: dict) -> None:
    from selection.scores import compute_score
    from selection.scores.ped import ped_remap

    score, options = VARIANTS.get(method, (method, {}))
    options = dict(options)
    if options.pop("ped", False):
        inputs = {**inputs, "features": ped_remap(inputs["features"], inputs["labels"])}
    compute_score(score, **inputs, **options)


def measure_one(method: str, args) -> dict:
    """Run in a child process: time `method` (best of --repeat) and the peak of the arrays it
    allocates (tracemalloc sees numpy's allocations; BLAS scratch space is not counted)."""
    import selection.scores  # noqa: F401  (imported before the clock starts)

    inputs = make_inputs(args.n_per_class, args.classes, args.dim)
    times = []
    tracemalloc.start()
    for _ in range(args.repeat):
        began = time.perf_counter()
        if method == "floor: F @ F.T":
            f = inputs["features"]
            _ = f @ f.T
        else:
            run_method(method, inputs)
        times.append(time.perf_counter() - began)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    return {"method": method, "seconds": min(times), "peak_extra_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-per-class", type=int, default=25)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="measure these methods only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.child, args)))
        return

    from selection.scores import SCORES

    methods = ["floor: F @ F.T"] + [m for m in [*sorted(SCORES), *VARIANTS] if not args.only or m in args.only]
    n = args.n_per_class * args.classes
    print(f"N = {n} ({args.n_per_class} per class x {args.classes} classes), d = {args.dim}; best of {args.repeat}")
    rows = []
    for i, method in enumerate(methods, 1):
        cmd = [sys.executable, __file__, "--child", method, "--n-per-class", str(args.n_per_class),
               "--classes", str(args.classes), "--dim", str(args.dim), "--repeat", str(args.repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"method": method, "seconds": float("nan"), "peak_extra_mb": float("nan")})
            print(f"[{i}/{len(methods)}] {method}: FAILED {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"[{i}/{len(methods)}] {method}: {rows[-1]['seconds']:.3f} s", file=sys.stderr)
    floor = rows[0]["seconds"]
    print(f"\n{'method':<22}{'seconds':>10}{'x floor':>10}{'peak MB':>10}")
    for row in rows:
        print(f"{row['method']:<22}{row['seconds']:>10.3f}{row['seconds'] / floor:>10.1f}{row['peak_extra_mb']:>10.0f}")


if __name__ == "__main__":
    main()
