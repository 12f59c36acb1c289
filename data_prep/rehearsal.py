"""`make rehearsal`: the paper benchmark's DAG on small fakes of its 19 datasets, served over local HTTP.

    python -m data_prep.rehearsal [--config configs/benchmark/rehearsal.yaml] [--cores 2] [-- <snakemake args>]

1. builds each dataset's fake in its real raw layout (data_prep.fakes; once: a rebuild only when the
   sizes change) under <results>/fakes/;
2. serves <results>/fakes/server/ on 127.0.0.1 (HTTP with Range support) for as long as the run lasts;
3. writes, into the benchmark's first `config_dirs` folder, dataset/<name>.yaml for every source and
   target: the real configs/dataset/<name>.yaml with its URLs pointed at the server, its checksums and
   sizes those of the fake's files, its class count the fake's and image_size 32 (the reader kind, split
   rule, options and notes stay the real ones; what a fake needs besides is listed in its notes); the
   manual datasets' files (ImageNet, Logo-2K+, Stanford Cars, the iMaterialist lists) are placed in
   <raw_data>/<name>/, as a user would;
4. writes fake ImageNet weights of the benchmark's pretrained probe networks (data_prep.fake_weights:
   timm's resnet50.tv_in1k, torchvision's AlexNet IMAGENET1K_V1) into the caches the real ones are read
   from, <results>/weights/hf (HF_HUB_CACHE) and <results>/weights/torch (TORCH_HOME), once;
5. runs `python -m pipeline run --cores N --configfile <config>` (Snakemake; resumes after a killed run),
   its jobs reading those caches offline (HF_HUB_CACHE, TORCH_HOME, HF_HUB_OFFLINE=1), with `--report`
   then <results>/report.html, and prints the jobs per rule with their seconds (from
   <results>/benchmarks/).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from data_prep import fake_weights, fakes
from data_prep.fakes import Size

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "benchmark" / "rehearsal.yaml"
# a source: 3 classes of 5 training and 2 test images (Domain Similarity needs 5 per source class); a target:
# 3 classes of 6 + 2 (5-shot is 5 of 6; a 20-shot setting, if a config asks for one, trains on all 6:
# options.short_classes: all_available); 40 px images, trained at 32 px
SOURCE_SIZE = Size(classes=3, train=5, test=2, side=40)
TARGET_SIZE = Size(classes=3, train=6, test=2, side=40)
IMAGE_SIZE = 32


class RehearsalError(RuntimeError):
    pass


def load(config: Path) -> dict:
    bench = yaml.safe_load(Path(config).read_text())
    if not bench.get("config_dirs"):
        raise RehearsalError(f"{config}: a rehearsal needs config_dirs (where the fakes' dataset configs go)")
    unknown = [n for n in bench["sources"] + bench["targets"] if n not in fakes.FAKES]
    if unknown:
        raise RehearsalError(f"{config}: {unknown} have no fake in data_prep/fakes.py (fakes exist for {fakes.REAL})")
    return bench


def build_fakes(names: dict[str, Size], root: Path) -> dict[str, dict]:
    """Each dataset's fake under root/{server,raw}/<name>/, rebuilt only when its size changed; returns
    what each config must change (root/built/<name>.json)."""
    changes, began = {}, time.monotonic()
    for i, (name, size) in enumerate(names.items(), 1):
        stamp = root / "built" / f"{name}.json"
        if stamp.is_file() and json.loads(stamp.read_text())["size"] == asdict(size):
            changes[name] = json.loads(stamp.read_text())["changes"]
            continue
        changes[name] = fakes.build(name, root, size)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"size": asdict(size), "changes": changes[name]}))
        took = time.monotonic() - began
        print(f"rehearsal: built the fake of {name} ({i}/{len(names)}, {took:.0f}s, eta {took / i * (len(names) - i):.0f}s)",
              flush=True)
    return changes


def write_configs(bench: dict, sizes: dict[str, Size], changes: dict[str, dict], root: Path, url: str) -> Path:
    """dataset/<name>.yaml of every fake into the first config_dirs folder; manual files into raw_data."""
    out = Path(bench["config_dirs"][0]) / "dataset"
    out.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        cfg = fakes.fake_config(name, root, url, changes[name], size, image_size=IMAGE_SIZE)
        what = [f"{cfg['num_classes']} classes of {size.train} training and {size.test} test images of {size.side} px "
                f"(trained at {IMAGE_SIZE} px)"]
        if name in bench["targets"]:
            # a fake holds fewer training images per class than 20-shot asks: such a class trains on all it has
            cfg["train_per_class"] = None
            cfg["options"] = {**(cfg.get("options") or {}), "short_classes": "all_available"}
            what.append("a class short of a shot setting trains on all its images (options.short_classes: all_available)")
        extra = {k: v for k, v in changes[name].items() if k in ("split", "options", "shards")}
        if extra:
            what.append(f"changed for the fake's size: {json.dumps(extra)}")
        cfg["notes"] = (f"REHEARSAL COPY of configs/dataset/{name}.yaml, written by data_prep/rehearsal.py for a fake "
                        f"of the real layout served at {url}/{name}/ (checksums are the fake's): {'; '.join(what)}. "
                        f"The real notes: {cfg.get('notes', '')}")
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, width=120))
        manual, raw = root / "raw" / name, Path(bench.get("raw_data", "data/raw")) / name
        for path in sorted(manual.rglob("*")) if manual.is_dir() else []:
            dest = raw / path.relative_to(manual)
            if path.is_file() and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
    return out



def fill_weights(bench: dict) -> dict[str, str]:
    """Fake ImageNet weights of the benchmark's pretrained probe networks (its `probe_networks`, defined as
    its selection preset composes them) under <results>/weights; returns the environment that points
    the jobs at them (data_prep.fake_weights.fill_caches)."""
    from omegaconf import OmegaConf

    from pipeline.benchmark import validate_schema
    from pipeline.stages import compose

    bench = validate_schema(bench)
    defined = compose("selection", bench["preset"] or bench["benchmark"], config_dirs=bench["config_dirs"]).probe_networks
    definitions = {n: OmegaConf.to_container(defined[n], resolve=True) for n in bench["probe_networks"] if n in defined}
    return fake_weights.fill_caches(Path(bench["results"]) / "weights", definitions)


def job_counts(results: Path) -> dict[str, tuple[int, float]]:
    """{rule: (jobs, summed seconds)} from the Snakemake benchmark files of a run."""
    counts: dict[str, list] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        rule = tsv.stem if rule == "analysis" else rule
        lines = tsv.read_text().splitlines()
        seconds = float(lines[1].split("\t")[0]) if len(lines) > 1 else 0.0
        entry = counts.setdefault(rule, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    return {k: (v[0], v[1]) for k, v in counts.items()}


# the published tables whose every row the rehearsal must give a reproduced value (issue 10): Deshpande
# Tables 1-3 and PARC Tables 1-3 (with Table 4 and Fig. 2b in parc_mean_pc); Guided Recommendation's
# Table 2 is a reference point only (its benchmarks are not this zoo)
CHECKED_COMPARISONS = ("deshpande_table1", "deshpande_table2", "deshpande_table3", "parc_mean_pc", "parc_table2",
                       "parc_table3")


def unreproduced_rows(results: Path) -> list[str]:
    """Every row of the CHECKED_COMPARISONS tables (<results>/tables/published_<name>.csv) that has no
    reproduced value, as "<table>: <row's keys>"; a missing table counts as one such row."""
    import pandas as pd

    from pipeline.layout import Layout

    missing = []
    for name in CHECKED_COMPARISONS:
        path = Layout(results).table(f"published_{name}")
        if not path.is_file():
            missing.append(f"{name}: no table {path}")
            continue
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        keys = list(table.columns[: table.columns.get_loc("reproduced")])
        for _, row in table[table["reproduced"] == ""].iterrows():
            missing.append(f"{name}: " + ", ".join(f"{k}={row[k]}" for k in keys))
    return missing


def prepare(config: Path = DEFAULT_CONFIG, port: int = 0):
    """Build the fakes and the fake pretrained weights, start the server and write the configs; returns
    (benchmark, server, the jobs' environment). The caller closes the server."""
    bench = load(config)
    sizes = {n: SOURCE_SIZE for n in bench["sources"]} | {n: TARGET_SIZE for n in bench["targets"]}
    root = Path(bench["results"]) / "fakes"
    changes = build_fakes(sizes, root)
    server = fakes.Server(root / "server", port)
    write_configs(bench, sizes, changes, root, server.url)
    return bench, server, fill_weights(bench)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the benchmark config (default: %(default)s)")
    parser.add_argument("--cores", default="all", help="snakemake --cores (default: all)")
    parser.add_argument("--port", type=int, default=0, help="port of the local server (default: a free one)")
    parser.add_argument("--report", action="store_true", help="then write <results>/report.html (snakemake --report)")
    parser.add_argument("snakemake", nargs="*", help="further snakemake arguments (after --)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    try:
        bench, server, env = prepare(args.config, args.port)
    except RehearsalError as err:
        print(f"rehearsal: error: {err}", file=sys.stderr)
        return 2
    print(f"rehearsal: fakes of {len(bench['sources']) + len(bench['targets'])} datasets served at {server.url} "
          f"({time.monotonic() - began:.0f}s); dataset configs in {bench['config_dirs'][0]}/dataset; pretrained "
          f"weights (fakes) read offline from {env['HF_HUB_CACHE']} and {env['TORCH_HOME']}", flush=True)
    env = {**os.environ, **env}
    try:
        # --configfile last: it takes several values
        cmd = [sys.executable, "-m", "pipeline", "run", *args.snakemake, "--cores", str(args.cores),
               "--configfile", str(args.config)]
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if rc == 0 and args.report:
            report = Path(bench["results"]) / "report.html"
            rc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile",
                                 str(args.config), "--report", str(report)], cwd=ROOT, env=env).returncode
    finally:
        server.close()
    wall = time.monotonic() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every job, rolled up through Snakemake
    cpu = usage.ru_utime + usage.ru_stime
    counts = job_counts(Path(bench["results"]))
    print(f"rehearsal: {'done' if rc == 0 else f'snakemake exited with {rc}'} in {wall / 60:.1f} min of wall time, "
          f"{cpu / 60:.1f} min of CPU time (all processes); jobs per rule (wall seconds summed over jobs):", flush=True)
    for rule, (n, seconds) in sorted(counts.items(), key=lambda kv: -kv[1][1]):
        print(f"  {rule:16s} {n:4d} jobs {seconds:8.0f} s")
    if rc == 0 and bench["benchmark"] == "rehearsal":  # the whole paper DAG (a cut lacks sources and targets)
        missing = unreproduced_rows(Path(bench["results"]))
        print(f"rehearsal: {len(missing)} published rows of Deshpande Tables 1-3 and PARC Tables 1-3 without a "
              f"reproduced value" + "".join(f"\n  {m}" for m in missing), flush=True)
        rc = 1 if missing else 0
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
