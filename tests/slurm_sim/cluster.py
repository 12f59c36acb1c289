"""A simulated SLURM cluster on one machine, for running Snakemake's SLURM executor in tests.

One module implements `sbatch`, `srun`, `sacct`, `squeue`, `scancel`, `sinfo`, `scontrol`, `sacctmgr`
and `sshare`; the wrappers in `bin/` exec it as `$SLURMSIM_PYTHON cluster.py <command> ARGS`. The
cluster is `$SLURMSIM_DIR/cluster.json` (write it with `make_cluster`); every accepted submission is
recorded in `$SLURMSIM_DIR/jobs/<id>.json` (argv, resolved resources, state, steps).

Simulated, as a real cluster with `EnforcePartLimits=ALL` does it:
- option parsing with GNU getopt semantics and SLURM's one-line error wording (a rejected submission
  prints one line on stderr, exits 1 and runs nothing); `#SBATCH` directives in the script;
- controller checks, in slurmctld's order: partition, account (and account/partition pairs), QOS,
  reservation, time limit against the partition's MaxTime, node count, the site's accepted GPU
  syntax (`gpu_request`: "gpus", "gres" or "both"), GRES, then node configuration (GPUs, CPUs and
  memory per node, features);
- jobs run detached in their own session, in `-D`, with the submitter's environment (`--export`), the
  SLURM_* variables of a batch step, CUDA_VISIBLE_DEVICES set to the allocated indices ("0,1"), and
  stdout/stderr to `--output`/`--error` with `%j %x %A %a %u %N %n %t %s %%` substituted;
- the time limit (SIGTERM to the job's process group, SIGKILL after KillWait; state TIMEOUT),
  scancel (CANCELLED, shown by sacct as "CANCELLED by <uid>" like real sacct), states from the real
  exit status (COMPLETED, FAILED with ExitCode "rc:signal"), srun job steps inside a job (validated
  against the job's allocation, recorded as steps <id>.0, <id>.1, ...).

Time runs `seconds_per_minute` real seconds per SLURM minute (cluster field, default 60): with 0.05,
`-t 1` is killed after 0.05 s. Fault injection: `inject(...)` (or `$SLURMSIM_DIR/inject.json`) makes
the next `count` submissions whose job name, comment or script contains `match` end as `state`.

Not simulated: scheduling (every job starts at once, GPUs are always 0..n-1 of the first nodes),
job arrays, dependencies, real GPUs (torch still sees none), srun outside a job (real srun would
allocate one), MinJobAge purging from sacct (squeue does purge), multi-cluster federation.

The state directory and interpreter variables are named SLURMSIM_* and not SLURM_SIM_*: the jobstep
plugin deletes every SLURM_* variable but the job's identity before it calls srun.
"""

from __future__ import annotations

import contextlib
import fcntl
import getopt as pygetopt
import getpass
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

FINAL = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL")
COMPACT = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "TIMEOUT": "TO",
           "CANCELLED": "CA", "OUT_OF_MEMORY": "OOM", "NODE_FAIL": "NF"}
ARRAY_NONE = "4294967294"  # what %a expands to outside an array job


class SlurmError(Exception):
    """One line for stderr; the command exits 1."""


# ---------------------------------------------------------------- state directory and cluster


def sim_dir() -> Path:
    d = os.environ.get("SLURMSIM_DIR")
    if not d:
        raise SlurmError("slurm_sim: SLURMSIM_DIR is not set (the simulated cluster's state directory)")
    return Path(d)


def load_cluster(d: Path | None = None) -> dict:
    path = (d or sim_dir()) / "cluster.json"
    if not path.exists():
        raise SlurmError(f"slurm_sim: no cluster at {path}: write one with slurm_sim.cluster.make_cluster")
    cluster = json.loads(path.read_text())
    cluster.setdefault("user", getpass.getuser())
    return cluster


@contextlib.contextmanager
def locked(d: Path):
    with open(d / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_job(d: Path, jobid) -> dict:
    return json.loads((d / "jobs" / f"{jobid}.json").read_text())


def all_jobs(d: Path) -> list[dict]:
    jobs = []
    for p in (d / "jobs").glob("*.json"):
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            jobs.append(json.loads(p.read_text()))
    return sorted(jobs, key=lambda j: j["id"])


def update_job(d: Path, jobid, **changes) -> dict:
    with locked(d):
        job = read_job(d, jobid)
        job.update(changes)
        write_json(d / "jobs" / f"{jobid}.json", job)
    return job


def partition_of(cluster: dict, name: str) -> dict | None:
    return next((p for p in cluster["partitions"] if p["name"] == name), None)


def node_names(part: dict) -> list[str]:
    return [f"{part.get('node_prefix', part['name'])}{i:03d}" for i in range(1, part.get("nodes", 1) + 1)]


def hostlist(nodes: list[str]) -> str:
    """SLURM's compressed host list for nodes of one prefix: gpu[001-002] (contiguous) or gpu001."""
    if len(nodes) <= 1:
        return ",".join(nodes)
    prefix = re.match(r"\D*", nodes[0]).group()
    nums = [n[len(prefix):] for n in nodes]
    if len(set(map(int, nums))) == len(nums) and int(nums[-1]) - int(nums[0]) == len(nums) - 1:
        return f"{prefix}[{nums[0]}-{nums[-1]}]"
    return f"{prefix}[{','.join(nums)}]"


# ---------------------------------------------------------------- parsing


def getopt(prog: str, argv: list[str], table: dict, permute: bool) -> tuple[list, list]:
    """GNU getopt over `table` {long: (short or None, takes_arg)}; returns ([(long, value)], rest)
    or raises SlurmError with glibc's wording. `permute=False` stops at the first operand (sbatch's
    script, srun's command), as SLURM's "+" option strings do."""
    shorts = "".join(s + (":" if a else "") for s, a in table.values() if s)
    longs = [name + ("=" if a else "") for name, (_, a) in table.items()]
    try:
        pairs, rest = (pygetopt.gnu_getopt if permute else pygetopt.getopt)(argv, shorts, longs)
    except pygetopt.GetoptError as e:
        dash = "--" if f"option --{e.opt}" in e.msg else "-"
        if "not recognized" in e.msg:
            msg = f"unrecognized option '--{e.opt}'" if dash == "--" else f"invalid option -- '{e.opt}'"
        elif "requires argument" in e.msg:
            msg = f"option '--{e.opt}' requires an argument" if dash == "--" else \
                f"option requires an argument -- '{e.opt}'"
        elif "must not have" in e.msg:
            msg = f"option '--{e.opt}' doesn't allow an argument"
        else:
            msg = f"option '--{e.opt}' is ambiguous"
        raise SlurmError(f"{prog}: {msg}") from None
    by_short = {s: name for name, (s, _) in table.items() if s}
    return [(by_short[o[1:]] if len(o) == 2 else o[2:], v) for o, v in pairs], rest


def parse_time(text: str) -> int | None:
    """Minutes (rounded up) from SLURM's time syntax; None for UNLIMITED (also `0`); ValueError."""
    if text.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return None
    if m := re.fullmatch(r"(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?", text):  # D-H, D-H:M, D-H:M:S
        d, h, mi, s = (int(x or 0) for x in m.groups())
        secs = d * 86400 + h * 3600 + mi * 60 + s
    elif m := re.fullmatch(r"(\d+)(?::(\d+)(?::(\d+))?)?", text):  # M, M:S, H:M:S
        a, b, c = m.groups()
        secs = int(a) * 3600 + int(b) * 60 + int(c) if c else int(a) * 60 + int(b or 0)
    else:
        raise ValueError(text)
    return math.ceil(secs / 60) or None


def fmt_minutes(minutes: int | None) -> str:
    return "UNLIMITED" if minutes is None else fmt_duration(minutes * 60)


def fmt_duration(secs: float) -> str:
    secs = int(secs)
    d, h, m, s = secs // 86400, secs // 3600 % 24, secs // 60 % 60, secs % 60
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def parse_mem(text: str) -> int:
    """Megabytes from SLURM's memory syntax (K/M/G/T suffix, optional B; MB by default)."""
    m = re.fullmatch(r"(\d+)(?:([KkMmGgTt])[Bb]?)?", text)
    if not m:
        raise ValueError(text)
    n, unit = int(m.group(1)), (m.group(2) or "M").upper()
    return math.ceil(n / 1024) if unit == "K" else n * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit]


def parse_int(prog: str, option: str, text: str) -> int:
    if not re.fullmatch(r"-?\d+", text):
        raise SlurmError(f'{prog}: error: Invalid numeric value "{text}" for --{option}.')
    if int(text) <= 0:
        raise SlurmError(f"{prog}: error: Numeric argument ({int(text)}) to small for --{option}.")
    return int(text)


def parse_gpu_count(text: str) -> tuple[str | None, int]:
    """`[type:]N` of --gpus/--gpus-per-node; ValueError if malformed."""
    *kind, count = text.split(":")
    if len(kind) > 1 or not count.isdigit():
        raise ValueError(text)
    return (kind[0] if kind else None), int(count)


def expand_filename(pattern: str, job: dict) -> str:
    values = {"j": str(job["id"]), "A": str(job["id"]), "a": ARRAY_NONE, "x": job["name"], "u": job["user"],
              "N": job["nodes"][0], "n": "0", "t": "0", "s": "batch"}

    def sub(m):
        if m.group(2) == "%":
            return "%"
        value = values[m.group(2)]
        return value.zfill(int(m.group(1))) if m.group(1) and value.isdigit() else value

    return re.sub(r"%(\d*)([jAaxuNnts%])", sub, pattern)


# ---------------------------------------------------------------- sbatch: options and validation

# long: (short, takes_arg)
SBATCH_OPTS = {
    "account": ("A", True), "array": ("a", True), "chdir": ("D", True), "clusters": ("M", True),
    "cluster": (None, True), "comment": (None, True), "constraint": ("C", True),
    "cpus-per-gpu": (None, True), "cpus-per-task": ("c", True), "error": ("e", True),
    "exclude": ("x", True), "export": (None, True), "gpus": ("G", True), "gpus-per-node": (None, True),
    "gres": (None, True), "job-name": ("J", True), "mail-type": (None, True), "mail-user": (None, True),
    "mem": (None, True), "mem-per-cpu": (None, True), "nodes": ("N", True), "no-requeue": (None, False),
    "ntasks": ("n", True), "ntasks-per-gpu": (None, True), "ntasks-per-node": (None, True),
    "output": ("o", True), "parsable": (None, False), "partition": ("p", True), "qos": ("q", True),
    "quiet": ("Q", False), "requeue": (None, False), "reservation": (None, True), "time": ("t", True),
    "wrap": (None, True),
}
SRUN_OPTS = {
    "cpu-bind": (None, True), "cpus-per-gpu": (None, True), "cpus-per-task": ("c", True),
    "exclusive": (None, False), "export": (None, True), "gpus": ("G", True),
    "gpus-per-node": (None, True), "gres": (None, True), "jobid": (None, True), "job-name": ("J", True),
    "label": ("l", False), "mem": (None, True), "mem-per-cpu": (None, True), "nodes": ("N", True),
    "ntasks": ("n", True), "overlap": (None, False), "quiet": ("Q", False), "time": ("t", True),
    "unbuffered": ("u", False), "verbose": ("v", False),
}


def parse_common(prog: str, o: dict) -> dict:
    """The syntax checks sbatch and srun make on their own, before asking the controller."""
    r = {}
    if "time" in o:
        try:
            r["time"] = parse_time(o["time"])
        except ValueError:
            raise SlurmError(f"{prog}: error: Invalid --time specification") from None
    for key in ("mem", "mem-per-cpu"):
        if key in o:
            try:
                r[key] = parse_mem(o[key])
            except ValueError:
                raise SlurmError(f"{prog}: error: Invalid --{key} specification") from None
    if "mem" in r and "mem-per-cpu" in r:
        raise SlurmError(f"{prog}: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.")
    for key in ("cpus-per-task", "cpus-per-gpu", "ntasks", "ntasks-per-node", "ntasks-per-gpu"):
        if key in o:
            r[key] = parse_int(prog, key, o[key])
    if "nodes" in o:
        m = re.fullmatch(r"(\d+)(?:-\d+)?", o["nodes"])
        if not m or int(m.group(1)) == 0:
            raise SlurmError(f'{prog}: error: "{o["nodes"]}" is not a valid node count')
        r["nodes"] = int(m.group(1))
    if "gpus-per-node" in o and "gpu" in re.split(r"[,:]", o.get("gres", "")):
        raise SlurmError(f"{prog}: fatal: --gpus-per-node and --gres=gpu are mutually exclusive.")
    return r


def gpu_request(o: dict, nodes: int) -> tuple[str | None, int, list[str]] | None:
    """(type, GPUs per node, syntaxes used) of the request, None without GPUs; ValueError if malformed.
    --gpus (per job) and --gres=gpu (per node) given together are both satisfied by the larger count."""
    kind, per_node, used = None, 0, []
    if "gpus" in o:
        kind, total = parse_gpu_count(o["gpus"])
        per_node, used = math.ceil(total / nodes), used + ["gpus"]
    if "gpus-per-node" in o:
        kind, per_node = parse_gpu_count(o["gpus-per-node"])
        used.append("gpus")
    for item in filter(None, o.get("gres", "").split(",")):
        name, *rest = item.split(":")
        if name != "gpu" or len(rest) > 2 or (rest and not rest[-1].isdigit() and len(rest) == 2):
            raise ValueError(item)
        count = int(rest[-1]) if rest and rest[-1].isdigit() else 1
        kind = rest[0] if rest and not rest[0].isdigit() else kind
        per_node, used = max(per_node, count), used + ["gres"]
    return (kind, per_node, used) if used else None


def resolve(cluster: dict, o: dict) -> dict:
    """Validate an sbatch request as slurmctld would; the job's resolved resources."""
    r = parse_common("sbatch", o)
    if "array" in o:
        raise SlurmError("sbatch: error: slurm_sim: job arrays (--array) are not simulated")
    for key in ("clusters", "cluster"):
        if key in o and o[key] != cluster["name"]:
            raise SlurmError(f"sbatch: error: '{o[key]}' can't be reached now, or it is an invalid entry "
                             "for --cluster.  Use 'sacctmgr list clusters' to see available clusters.")

    def reject(msg):
        return SlurmError(f"sbatch: error: Batch job submission failed: {msg}")

    default = next((p for p in cluster["partitions"] if p.get("default")), cluster["partitions"][0])
    part = partition_of(cluster, o.get("partition", default["name"]))
    if part is None:
        raise reject("Invalid partition name specified")
    account = o.get("account", cluster.get("default_account") or "").lower()
    accounts = {a.lower(): parts for a, parts in cluster["accounts"].items()}
    if accounts and (account not in accounts or (accounts[account] and part["name"] not in accounts[account])):
        raise reject("Invalid account or account/partition combination specified")
    qos = o.get("qos") or cluster["qos"][0]
    if qos not in cluster["qos"]:
        raise reject("Invalid qos specification")
    if "reservation" in o and o["reservation"] not in cluster.get("reservations", []):
        raise reject("Requested reservation is invalid")
    max_time = parse_time(str(part.get("max_time", "UNLIMITED")))
    limit = r["time"] if "time" in o else parse_time(str(part.get("default_time", part.get("max_time", "UNLIMITED"))))
    if max_time is not None and (limit is None or limit > max_time):
        raise reject("Requested time limit is invalid (missing or exceeds some limit)")
    nodes = r.get("nodes", 1)
    free = [n for n in node_names(part) if n not in o.get("exclude", "").split(",")]
    if nodes > len(node_names(part)):
        raise reject("Node count specification invalid")
    allowed = {"both": {"gpus", "gres"}}.get(cluster["gpu_request"], {cluster["gpu_request"]})
    try:
        gpus = gpu_request(o, nodes)
    except ValueError:
        raise reject("Invalid generic resource (gres) specification") from None
    cluster_types = {p.get("gpu_type") for p in cluster["partitions"] if p.get("gpus_per_node")}
    if gpus and (set(gpus[2]) - allowed or not cluster_types or gpus[0] not in cluster_types | {None}):
        raise reject("Invalid generic resource (gres) specification")
    gpu_type, gpus_per_node = (gpus or (None, 0, []))[:2]
    ntasks = r.get("ntasks", r.get("ntasks-per-node", 1) * nodes)
    tasks_per_node = r.get("ntasks-per-node", math.ceil(ntasks / nodes))
    cpus_per_task = r.get("cpus-per-task", 1)
    cpus = r["cpus-per-gpu"] * gpus_per_node if "cpus-per-gpu" in r and gpus_per_node else tasks_per_node * cpus_per_task
    node_mem = part["mem_per_node_mb"]
    if "mem-per-cpu" in r:
        mem = r["mem-per-cpu"] * cpus
    else:  # --mem=0 or no request: the whole node (no DefMemPerCPU is simulated)
        mem = r.get("mem") or node_mem
    features = set(filter(None, re.split(r"[&|,()\[\]]|\*\d+", o.get("constraint", ""))))
    if (gpus_per_node > part.get("gpus_per_node", 0) or (gpu_type and gpu_type != part.get("gpu_type"))
            or cpus > part["cpus_per_node"] or mem > node_mem or nodes > len(free)):
        raise reject("Requested node configuration is not available")
    if features - set(part.get("features", [])):
        raise reject("Invalid feature specification")
    return {
        "partition": part["name"], "account": account, "qos": qos, "time_limit": limit, "nodes_count": nodes,
        "nodes": free[:nodes], "ntasks": ntasks, "cpus_per_task": cpus_per_task, "cpus_per_node": cpus,
        "mem_per_node_mb": mem, "mem_per_cpu_mb": r.get("mem-per-cpu"), "gpus_per_node": gpus_per_node,
        "gpu_type": gpu_type, "gpu_indices": list(range(gpus_per_node)), "gres": o.get("gres"),
        "constraint": o.get("constraint"), "reservation": o.get("reservation"),
    }


def sbatch_directives(script: str) -> list[str]:
    """`#SBATCH` options of the script's leading comment block."""
    args = []
    for line in script.splitlines()[1:]:
        if line.startswith("#SBATCH"):
            args += shlex.split(line[len("#SBATCH"):], comments=True)
        elif line.strip() and not line.startswith("#"):
            break
    return args


def take_injection(d: Path, job: dict, script: str) -> dict | None:
    """The first rule of inject.json matching this job, its count decremented (under the lock)."""
    path = d / "inject.json"
    if not path.exists():
        return None
    rules = json.loads(path.read_text())
    for rule in rules:
        text = "\n".join([job["name"], job["comment"] or "", script])
        if rule.get("count", 1) > 0 and rule["match"] in text:
            rule["count"] = rule.get("count", 1) - 1
            write_json(path, rules)
            return {k: rule[k] for k in ("match", "state", "run", "after") if k in rule}
    return None


def cmd_sbatch(argv: list[str]) -> int:
    d = sim_dir()
    cluster = load_cluster(d)
    pairs, rest = getopt("sbatch", argv, SBATCH_OPTS, permute=False)
    cli = dict(pairs)
    parse_common("sbatch", cli)  # option syntax fails before the script is read, as in sbatch's first pass
    if "wrap" in cli:
        if rest:
            raise SlurmError("sbatch: error: script arguments not permitted with --wrap option")
        script = f"#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{cli['wrap']}\n"
    elif rest:
        try:
            script = Path(rest[0]).read_text()
        except OSError:
            raise SlurmError(f"sbatch: error: Unable to open file {rest[0]}") from None
    else:
        script = sys.stdin.read()
    if not script.strip():
        raise SlurmError("sbatch: error: Batch script is empty!")
    if not script.startswith("#!"):
        raise SlurmError("sbatch: error: This does not look like a batch script.  The first line must "
                         "start with #! followed by the path to an interpreter.")
    directives = sbatch_directives(script)
    o = dict(getopt("sbatch", directives, SBATCH_OPTS, permute=False)[0]) | cli
    resources = resolve(cluster, o)
    submit_dir = os.getcwd()
    workdir = os.path.abspath(o.get("chdir", submit_dir))
    user = cluster["user"]
    (d / "jobs").mkdir(exist_ok=True)
    with locked(d):
        counter = d / "next_id"
        jobid = int(counter.read_text()) if counter.exists() else cluster.get("first_job_id", 1000)
        counter.write_text(str(jobid + 1))
        name = o.get("job-name") or (Path(rest[0]).name if rest else "wrap" if "wrap" in o else "sbatch")
        job = {
            "id": jobid, "name": name, "comment": o.get("comment"), "user": user, "uid": os.getuid(),
            "argv": argv, "directives": directives, "script_args": rest[1:] if "wrap" not in cli else [],
            "options": o, **resources, "submit_dir": submit_dir, "workdir": workdir,
            "export": o.get("export", "ALL"), "requeue": "requeue" in o, "state": "PENDING", "reason": "None",
            "exit_code": None, "signal": 0, "submit_time": time.time(), "start_time": None, "end_time": None,
            "cancel_requested": False, "requid": None, "pgid": None, "steps": [],
        }
        job["output"] = os.path.join(workdir, expand_filename(o.get("output", "slurm-%j.out"), job))
        job["error"] = os.path.join(workdir, expand_filename(o["error"], job)) if "error" in o else job["output"]
        job["injection"] = take_injection(d, job, script)
        (d / "jobs" / f"{jobid}.sh").write_text(script)
        os.chmod(d / "jobs" / f"{jobid}.sh", 0o755)
        write_json(d / "jobs" / f"{jobid}.json", job)
    subprocess.Popen([sys.executable, os.path.abspath(__file__), "_run", str(jobid)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    suffix = f";{cluster['name']}" if "clusters" in o or "cluster" in o else ""
    if "parsable" in o:
        print(f"{jobid}{suffix}")
    elif "quiet" not in o:
        print(f"Submitted batch job {jobid}" + (f" on cluster {cluster['name']}" if suffix else ""))
    return 0


# ---------------------------------------------------------------- running a job


def slurm_variables(job: dict, cluster: dict) -> dict:
    """The SLURM_* variables (and GPU ones) that every step of the job sees, the batch step included."""
    nodelist = hostlist(job["nodes"])
    env = {
        "SLURM_JOB_ID": str(job["id"]), "SLURM_JOBID": str(job["id"]), "SLURM_JOB_NAME": job["name"],
        "SLURM_JOB_PARTITION": job["partition"], "SLURM_JOB_ACCOUNT": job["account"],
        "SLURM_JOB_QOS": job["qos"], "SLURM_JOB_USER": job["user"], "SLURM_JOB_UID": str(job["uid"]),
        "SLURM_CLUSTER_NAME": cluster["name"], "SLURM_SUBMIT_DIR": job["submit_dir"],
        "SLURM_SUBMIT_HOST": socket.gethostname(), "SLURM_JOB_NUM_NODES": str(job["nodes_count"]),
        "SLURM_NNODES": str(job["nodes_count"]), "SLURM_NODELIST": nodelist, "SLURM_JOB_NODELIST": nodelist,
        "SLURMD_NODENAME": job["nodes"][0], "SLURM_NTASKS": str(job["ntasks"]), "SLURM_NPROCS": str(job["ntasks"]),
        "SLURM_CPUS_ON_NODE": str(job["cpus_per_node"]), "SLURM_JOB_CPUS_PER_NODE": str(job["cpus_per_node"]),
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
        "SLURM_JOB_START_TIME": str(int(job["start_time"])), "SLURM_EXPORT_ENV": job["export"],
    }
    o = job["options"]
    optional = {"SLURM_CPUS_PER_TASK": o.get("cpus-per-task"), "SLURM_CPUS_PER_GPU": o.get("cpus-per-gpu"),
                "SLURM_MEM_PER_NODE": job["mem_per_node_mb"] if "mem" in o else None,
                "SLURM_MEM_PER_CPU": job["mem_per_cpu_mb"], "SLURM_GPUS": o.get("gpus"),
                "SLURM_GPUS_PER_NODE": o.get("gpus-per-node"), "SLURM_JOB_COMMENT": job["comment"],
                "SLURM_NTASKS_PER_NODE": o.get("ntasks-per-node")}
    env.update({k: str(v) for k, v in optional.items() if v is not None})
    if job["gpu_indices"]:
        ids = ",".join(map(str, job["gpu_indices"]))
        env.update(SLURM_GPUS_ON_NODE=str(len(job["gpu_indices"])), SLURM_JOB_GPUS=ids,
                   CUDA_VISIBLE_DEVICES=ids, GPU_DEVICE_ORDINAL=ids)
    return env


def job_environment(job: dict, cluster: dict) -> dict:
    """The batch step's environment: --export of the submitter's, plus SLURM's variables."""
    tokens = job["export"].split(",")
    keep = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "SLURMSIM_DIR", "SLURMSIM_PYTHON"}  # login env
    if "ALL" in tokens:
        env = dict(os.environ)
    else:
        env = {k: v for k, v in os.environ.items() if k in keep or k in tokens}
    env.update(t.split("=", 1) for t in tokens if "=" in t)
    return env | slurm_variables(job, cluster) | {"SLURM_TASK_PID": str(os.getpid())}


def kill_group(pgid: int | None, sig: int) -> None:
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def run_job(jobid: str) -> None:
    """The detached process behind one job: start it, enforce its limit, record how it ended."""
    d = sim_dir()
    cluster = load_cluster(d)
    scale = cluster.get("seconds_per_minute", 60) / 60  # real seconds per simulated second
    with locked(d):
        job = read_job(d, jobid)
        if job["cancel_requested"]:
            return
        job.update(state="RUNNING", start_time=time.time())
        write_json(d / "jobs" / f"{jobid}.json", job)
    inj = job["injection"] or {}
    if inj and not inj.get("run", True):
        time.sleep(0.05)
        update_job(d, jobid, state=inj["state"], exit_code=0 if inj["state"] == "TIMEOUT" else 1,
                   end_time=time.time())
        return
    try:
        out = open(job["output"], "w")
        err = out if job["error"] == job["output"] else open(job["error"], "w")
    except OSError:  # real slurmstepd cannot open the file: the job fails without a log
        update_job(d, jobid, state="FAILED", exit_code=1, reason="slurm_sim: cannot open --output/--error",
                   end_time=time.time())
        return
    workdir = job["workdir"] if os.path.isdir(job["workdir"]) else "/tmp"
    proc = subprocess.Popen([str(d / "jobs" / f"{jobid}.sh"), *job["script_args"]], cwd=workdir,
                            env=job_environment(job, cluster), stdin=subprocess.DEVNULL, stdout=out,
                            stderr=err, start_new_session=True)
    job = update_job(d, jobid, pgid=proc.pid)
    limit = None if job["time_limit"] is None else job["time_limit"] * 60 * scale
    inj_after = inj.get("after", 1.0 if inj.get("state") == "TIMEOUT" else None) if inj else None
    ended_as, kill_at = None, None
    while proc.poll() is None:
        now, elapsed = time.time(), time.time() - job["start_time"]
        if ended_as is None:
            if read_job(d, jobid)["cancel_requested"]:
                ended_as = "CANCELLED"
            elif limit is not None and elapsed >= limit:
                ended_as = "TIMEOUT"
            elif inj_after is not None and elapsed >= inj_after:
                ended_as = inj["state"]
            if ended_as:
                kill_group(proc.pid, signal.SIGTERM)
                kill_at = now + cluster.get("kill_wait", 30) * scale
        elif now >= kill_at:
            kill_group(proc.pid, signal.SIGKILL)
        deadlines = [x for x in (limit and job["start_time"] + limit, kill_at) if x]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.01, min([0.25] + [t - time.time() for t in deadlines])))
    kill_group(proc.pid, signal.SIGKILL)  # the job's leftover processes end with it
    rc = proc.returncode
    with locked(d):
        job = read_job(d, jobid)
        if job["cancel_requested"]:
            ended_as = "CANCELLED"
        state = ended_as or (inj.get("state") if inj else None) or ("COMPLETED" if rc == 0 else "FAILED")
        exit_code = max(rc, 0) if state != "FAILED" or rc != 0 else 1
        job.update(state=state, exit_code=exit_code, signal=-rc if rc < 0 else 0, end_time=time.time())
        write_json(d / "jobs" / f"{jobid}.json", job)


# ---------------------------------------------------------------- srun (job steps)


def cmd_srun(argv: list[str]) -> int:
    d = sim_dir()
    pairs, command = getopt("srun", argv, SRUN_OPTS, permute=False)
    o = dict(pairs)
    r = parse_common("srun", o)
    jobid = o.get("jobid") or os.environ.get("SLURM_JOB_ID")
    if not jobid:
        raise SlurmError("srun: error: slurm_sim: srun outside a job allocation is not simulated "
                         "(real srun would allocate a job); run it inside sbatch")
    try:
        job = read_job(d, jobid)
    except FileNotFoundError:
        raise SlurmError(f"srun: error: Unable to confirm allocation for job {jobid}: Invalid job id specified") from None
    if job["state"] != "RUNNING":
        raise SlurmError(f"srun: error: Unable to confirm allocation for job {jobid}: "
                         "Job/step already completing or completed")
    if not command:
        raise SlurmError("srun: fatal: No command given to execute.")

    def reject(msg):
        return SlurmError(f"srun: error: Unable to create step for job {jobid}: {msg}")

    nodes = r.get("nodes", job["nodes_count"])
    ntasks = r.get("ntasks", nodes)
    cpus = (r["cpus-per-gpu"] * len(job["gpu_indices"]) if "cpus-per-gpu" in r
            else math.ceil(ntasks / nodes) * r.get("cpus-per-task", 1))
    try:
        gpus = gpu_request(o, nodes)
    except ValueError:
        raise reject("Invalid generic resource (gres) specification") from None
    step_gpus = job["gpu_indices"] if gpus is None else job["gpu_indices"][: gpus[1]]
    mem = r.get("mem") or (r["mem-per-cpu"] * cpus if "mem-per-cpu" in r else 0)
    if nodes > job["nodes_count"]:
        raise reject("Requested node configuration is not available")
    if cpus > job["cpus_per_node"]:
        raise reject("More processors requested than permitted")
    if gpus and (gpus[1] > len(job["gpu_indices"]) or (gpus[0] and gpus[0] != job["gpu_type"])):
        raise reject("Invalid generic resource (gres) specification")
    if mem > job["mem_per_node_mb"]:
        raise reject("Memory required by task is not available")
    with locked(d):
        job = read_job(d, jobid)
        step = {"id": len(job["steps"]), "name": os.path.basename(command[0]), "argv": argv, "ntasks": ntasks,
                "cpus": cpus, "gpu_indices": step_gpus, "state": "RUNNING", "exit_code": None,
                "start_time": time.time(), "end_time": None}
        job["steps"].append(step)
        write_json(d / "jobs" / f"{jobid}.json", job)
    env = {**os.environ, **slurm_variables(job, load_cluster(d)), "SLURM_STEP_ID": str(step["id"]),
           "SLURM_STEPID": str(step["id"]), "SLURM_NTASKS": str(ntasks), "SLURM_NPROCS": str(ntasks),
           "SLURM_STEP_NUM_TASKS": str(ntasks), "SLURM_STEP_NUM_NODES": str(nodes),
           "SLURM_STEP_NODELIST": hostlist(job["nodes"][:nodes])}
    for key, var in (("cpus-per-task", "SLURM_CPUS_PER_TASK"), ("gpus", "SLURM_GPUS")):
        if key in o:
            env[var] = o[key]
    for var in ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "SLURM_GPUS_ON_NODE", "SLURM_STEP_GPUS"):
        env.pop(var, None)
    if step_gpus:
        ids = ",".join(map(str, step_gpus))
        env.update(CUDA_VISIBLE_DEVICES=ids, GPU_DEVICE_ORDINAL=ids, SLURM_STEP_GPUS=ids,
                   SLURM_GPUS_ON_NODE=str(len(step_gpus)))
    procs = [subprocess.Popen(command, env=dict(env, SLURM_PROCID=str(i), SLURM_LOCALID=str(i)))
             for i in range(ntasks)]
    codes = [p.wait() for p in procs]
    rc = next((c for c in codes if c != 0), 0)
    with locked(d):
        job = read_job(d, jobid)
        job["steps"][step["id"]].update(state="COMPLETED" if rc == 0 else "FAILED", exit_code=max(rc, 0),
                                        end_time=time.time())
        write_json(d / "jobs" / f"{jobid}.json", job)
    if rc:
        print(f"srun: error: {job['nodes'][0]}: task 0: Exited with exit code {rc}", file=sys.stderr)
    return rc if rc > 0 else (128 - rc if rc < 0 else 0)


# ---------------------------------------------------------------- sacct / squeue


def display_state(job: dict, for_sacct: bool) -> str:
    if job["state"] == "CANCELLED" and for_sacct and job["requid"] is not None:
        return f"CANCELLED by {job['requid']}"  # as real sacct prints it
    return job["state"]


def fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) if t else "Unknown"


def tres(job: dict) -> str:
    parts = [f"billing={job['cpus_per_node']}", f"cpu={job['cpus_per_node'] * job['nodes_count']}"]
    if job["gpus_per_node"]:
        parts.append(f"gres/gpu={job['gpus_per_node'] * job['nodes_count']}")
    return ",".join(parts + [f"mem={job['mem_per_node_mb']}M", f"node={job['nodes_count']}"])


def elapsed(job_or_step: dict) -> float:
    start = job_or_step["start_time"]
    return 0 if not start else (job_or_step["end_time"] or time.time()) - start


def sacct_rows(job: dict, cluster: dict, allocations: bool, wanted_steps: set | None) -> list[dict]:
    """One dict of sacct fields for the job and, unless -X, for its batch step and srun steps."""
    exit_code = f"{job['exit_code'] if job['exit_code'] is not None else 0}:{job['signal']}"
    base = {"jobid": str(job["id"]), "jobidraw": str(job["id"]), "jobname": job["name"],
            "state": display_state(job, True), "exitcode": exit_code, "partition": job["partition"],
            "account": job["account"], "alloccpus": job["cpus_per_node"] * job["nodes_count"],
            "ncpus": job["cpus_per_node"] * job["nodes_count"], "nnodes": job["nodes_count"],
            "nodelist": hostlist(job["nodes"]) if job["start_time"] else "None assigned",
            "elapsed": fmt_duration(elapsed(job)), "timelimit": fmt_minutes(job["time_limit"]),
            "submit": fmt_time(job["submit_time"]), "start": fmt_time(job["start_time"]),
            "end": fmt_time(job["end_time"]), "reqmem": f"{job['mem_per_node_mb']}M",
            "comment": job["comment"] or "", "reason": job["reason"], "user": job["user"], "uid": job["uid"],
            "workdir": job["workdir"], "alloctres": tres(job) if job["start_time"] else "",
            "reqtres": tres(job), "totalcpu": "00:00:00", "maxrss": "", "qos": job["qos"],
            "cluster": cluster["name"]}
    rows = [] if wanted_steps else [base]
    if allocations and not wanted_steps:
        return rows
    batch_state = "CANCELLED" if job["state"] == "TIMEOUT" else job["state"]
    steps = [{"id": "batch", "name": "batch", "state": batch_state, "exit_code": job["exit_code"],
              "signal": job["signal"], "start_time": job["start_time"], "end_time": job["end_time"]}
             ] if job["start_time"] else []
    for step in steps + job["steps"]:
        if wanted_steps and str(step["id"]) not in wanted_steps:
            continue
        rows.append(base | {"jobid": f"{job['id']}.{step['id']}", "jobidraw": f"{job['id']}.{step['id']}",
                            "jobname": step["name"], "state": step["state"],
                            "exitcode": f"{step['exit_code'] or 0}:{step.get('signal', 0)}", "elapsed": fmt_duration(elapsed(step)),
                            "start": fmt_time(step["start_time"]), "end": fmt_time(step["end_time"]),
                            "timelimit": "", "comment": "", "reason": "", "account": job["account"],
                            "user": "", "submit": fmt_time(step["start_time"]), "maxrss": "0"})
    return rows


# name: default width (negative: left-justified), as in sacct's field table
SACCT_FIELDS = {
    "JobID": -12, "JobIDRaw": -12, "JobName": 10, "State": 10, "ExitCode": 8, "Partition": 10,
    "Account": 10, "AllocCPUS": 10, "NCPUS": 10, "NNodes": 8, "NodeList": -15, "Elapsed": 10,
    "Timelimit": 10, "Submit": 19, "Start": 19, "End": 19, "ReqMem": 10, "Comment": 15, "Reason": 22,
    "User": 9, "UID": 6, "WorkDir": -15, "AllocTRES": -10, "ReqTRES": -10, "TotalCPU": 10, "MaxRSS": 10,
    "QOS": 10, "Cluster": 10,
}


def parse_fields(prog: str, spec: str, table: dict) -> list[tuple[str, int]]:
    """`Name[%width],...` -> [(name, width)]; names case-insensitive, prefixes allowed as in sacct."""
    fields = []
    for item in filter(None, spec.split(",")):
        name, _, width = item.partition("%")
        match = next((f for f in table if f.lower() == name.lower()), None) or \
            next((f for f in table if f.lower().startswith(name.lower())), None)
        if match is None:
            raise SlurmError(f'{prog}: error: Invalid field requested: "{name}"')
        fields.append((match, int(width) if width else table[match]))
    return fields


def print_table(rows: list[dict], fields: list, header: bool, parsable: str | None) -> None:
    """sacct/sacctmgr/sshare output: `|`-separated (parsable2 no trailing `|`) or fixed width, where a
    value longer than its column is cut with a trailing `+` as SLURM does."""
    def cell(value, width):
        text, w = str(value), abs(width)
        text = text if len(text) <= w else text[: w - 1] + "+"
        return text.ljust(w) if width < 0 else text.rjust(w)

    lines = []
    if parsable:
        lines = ["|".join(str(r[n.lower()]) for n, _ in fields) + ("|" if parsable == "p" else "") for r in rows]
        if header:
            lines.insert(0, "|".join(n for n, _ in fields) + ("|" if parsable == "p" else ""))
    else:
        lines = [" ".join(cell(r[n.lower()], w) for n, w in fields) + " " for r in rows]
        if header:
            lines[:0] = [" ".join(cell(n, w) for n, w in fields) + " ",
                         " ".join("-" * abs(w) for _, w in fields) + " "]
    if lines:
        print("\n".join(lines))


def parse_when(text: str) -> float:
    """sacct's --starttime/--endtime: now[-+N{seconds,minutes,hours,days,weeks}], dates, HH:MM[:SS]."""
    units = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
    if m := re.fullmatch(r"now(?:([-+])(\d+)(second|minute|hour|day|week)?s?)?", text.lower()):
        sign = -1 if m.group(1) == "-" else 1
        return time.time() + sign * int(m.group(2) or 0) * units[m.group(3) or "second"]
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return time.mktime(time.strptime(text, fmt))
    if m := re.fullmatch(r"(\d\d):(\d\d)(?::(\d\d))?", text):
        today = time.localtime()
        return time.mktime(today[:3] + (int(m[1]), int(m[2]), int(m[3] or 0)) + today[6:])
    raise SlurmError(f"sacct: error: Invalid time specification: {text}")


def parse_states(prog: str, text: str) -> set | None:
    """-s/--states: names or compact codes, comma separated; None for all."""
    if text.lower() == "all":
        return None
    names = set()
    by_code = {v: k for k, v in COMPACT.items()}
    for s in text.upper().split(","):
        state = by_code.get(s, s if s in COMPACT else None)
        if state is None:
            raise SlurmError(f"{prog}: error: Invalid job state specified: {s}")
        names.add(state)
    return names


SACCT_OPTS = {
    "allusers": ("a", False), "accounts": ("A", True), "allocations": ("X", False), "brief": ("b", False),
    "clusters": ("M", True), "cluster": (None, True), "duplicates": ("D", False), "endtime": ("E", True),
    "format": ("o", True), "fields": (None, True), "jobs": ("j", True), "name": (None, True),
    "noheader": ("n", False), "noconvert": (None, False), "parsable": ("p", False),
    "parsable2": ("P", False), "partition": ("r", True), "state": ("s", True), "starttime": ("S", True),
    "truncate": ("T", False), "units": (None, True), "user": ("u", True), "uid": (None, True),
}


def cmd_sacct(argv: list[str]) -> int:
    d = sim_dir()
    cluster = load_cluster(d)
    pairs, rest = getopt("sacct", argv, SACCT_OPTS, permute=True)
    if rest:
        raise SlurmError(f"sacct: error: Unknown arguments: {' '.join(rest)}")
    o = dict(pairs)
    spec = o.get("format", o.get("fields", "JobID,State,ExitCode" if "brief" in o else
                                  "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"))
    fields = parse_fields("sacct", spec, SACCT_FIELDS)
    wanted: dict[str, set | None] = {}  # job id -> wanted steps (None: the job itself)
    for token in filter(None, o.get("jobs", "").split(",")):
        jid, _, step = token.partition(".")
        if not re.fullmatch(r"\d+(_\d+)?", jid):
            raise SlurmError(f"sacct: error: Invalid job id: {token}")
        if step:
            wanted.setdefault(jid, set())
            if wanted[jid] is not None:
                wanted[jid].add(step)
        else:
            wanted[jid] = None
    states = parse_states("sacct", o["state"]) if "state" in o else None
    midnight = time.mktime(time.localtime()[:3] + (0, 0, 0) + time.localtime()[6:])
    start = parse_when(o["starttime"]) if "starttime" in o else (0 if wanted or states else midnight)
    end = parse_when(o["endtime"]) if "endtime" in o else time.time()
    users = set(o["user"].split(",")) if "user" in o and "allusers" not in o else None
    rows = []
    for job in all_jobs(d):
        if wanted and str(job["id"]) not in wanted:
            continue
        if (users and job["user"] not in users) or ("name" in o and job["name"] not in o["name"].split(",")):
            continue
        if ("partition" in o and job["partition"] not in o["partition"].split(","))\
                or ("accounts" in o and job["account"] not in o["accounts"].lower().split(",")):
            continue
        if (states and job["state"] not in states) or job["submit_time"] > end or (job["end_time"] or time.time()) < start:
            continue
        rows += sacct_rows(job, cluster, "allocations" in o, wanted.get(str(job["id"])))
    parsable = "P" if "parsable2" in o else "p" if "parsable" in o else None
    print_table(rows, fields, "noheader" not in o, parsable)
    return 0


def fmt_used(secs: float) -> str:
    secs = int(secs)
    d, h, m, s = secs // 86400, secs // 3600 % 24, secs // 60 % 60, secs % 60
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


SQUEUE_OPTS = {
    "account": ("A", True), "all": ("a", False), "clusters": ("M", True), "format": ("o", True),
    "jobs": ("j", True), "me": (None, False), "name": ("n", True), "noheader": ("h", False),
    "partition": ("p", True), "states": ("t", True), "user": ("u", True),
}
SQUEUE_DEFAULT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"


def cmd_squeue(argv: list[str]) -> int:
    d = sim_dir()
    cluster = load_cluster(d)
    pairs, rest = getopt("squeue", argv, SQUEUE_OPTS, permute=True)
    o = dict(pairs)
    if rest:
        raise SlurmError(f"squeue: error: Unrecognized option: {rest[0]}")
    ids = set(filter(None, o.get("jobs", "").split(",")))
    states = parse_states("squeue", o["states"]) if "states" in o else (None if ids else {"PENDING", "RUNNING"})
    min_age = cluster.get("min_job_age", 300)
    jobs = [j for j in all_jobs(d)
            if (not ids or str(j["id"]) in ids) and (states is None or j["state"] in states)
            and (j["end_time"] is None or time.time() - j["end_time"] < min_age)
            and ("name" not in o or j["name"] in o["name"].split(","))
            and ("user" not in o or j["user"] in o["user"].split(","))
            and ("partition" not in o or j["partition"] in o["partition"].split(","))
            and ("account" not in o or j["account"] in o["account"].lower().split(","))]
    if ids and not jobs:
        raise SlurmError("slurm_load_jobs error: Invalid job id specified")
    headers = {"i": "JOBID", "A": "JOBID", "j": "NAME", "P": "PARTITION", "u": "USER", "a": "ACCOUNT",
               "T": "STATE", "t": "ST", "M": "TIME", "l": "TIME_LIMIT", "D": "NODES", "C": "CPUS",
               "R": "NODELIST(REASON)", "N": "NODELIST", "k": "COMMENT", "q": "QOS", "Z": "WORK_DIR",
               "b": "TRES_PER_NODE"}

    def value(job, code):
        pending = job["state"] == "PENDING"
        return {"i": job["id"], "A": job["id"], "j": job["name"], "P": job["partition"], "u": job["user"],
                "a": job["account"], "T": job["state"], "t": COMPACT.get(job["state"], job["state"]),
                "M": fmt_used(elapsed(job)), "l": fmt_minutes(job["time_limit"]), "D": job["nodes_count"],
                "C": job["cpus_per_node"] * job["nodes_count"], "N": "" if pending else hostlist(job["nodes"]),
                "R": "(None)" if pending else hostlist(job["nodes"]), "k": job["comment"] or "(null)",
                "q": job["qos"], "Z": job["workdir"],
                "b": f"gres/gpu:{job['gpus_per_node']}" if job["gpus_per_node"] else "N/A"}[code]

    fmt = o.get("format", SQUEUE_DEFAULT)
    spec = re.compile(r"%(\.?)(-?)(\d*)([a-zA-Z])")
    for code in spec.findall(fmt):
        if code[3] not in headers:
            raise SlurmError(f"squeue: error: slurm_sim: squeue format %{code[3]} is not simulated")

    def render(get):
        def one(m):
            text, width = str(get(m.group(4))), int(m.group(3) or 0)
            text = text[:width] if width else text  # squeue cuts a value to its column
            return text.rjust(width) if m.group(1) else text.ljust(width)
        return spec.sub(one, fmt)

    lines = [] if "noheader" in o else [render(lambda c: headers[c])]
    lines += [render(lambda c, j=job: value(j, c)) for job in jobs]
    if lines:
        print("\n".join(lines))
    return 0


# ---------------------------------------------------------------- scancel, sinfo, scontrol, accounts

SCANCEL_OPTS = {"clusters": ("M", True), "name": ("n", True), "partition": ("p", True),
                "quiet": ("Q", False), "state": ("t", True), "user": ("u", True), "verbose": ("v", False)}


def cmd_scancel(argv: list[str]) -> int:
    d = sim_dir()
    pairs, ids = getopt("scancel", argv, SCANCEL_OPTS, permute=True)
    o = dict(pairs)
    for token in ids:
        if not re.fullmatch(r"\d+", token):
            raise SlurmError(f"scancel: error: Invalid job id {token}")
    if not ids and not ({"name", "partition", "state", "user"} & set(o)):
        raise SlurmError("scancel: error: No job identification provided")
    states = parse_states("scancel", o["state"]) if "state" in o else None
    with locked(d):
        for job in all_jobs(d):
            if job["state"] in FINAL or (ids and str(job["id"]) not in ids) \
                    or ("name" in o and job["name"] != o["name"]) or ("user" in o and job["user"] != o["user"]) \
                    or ("partition" in o and job["partition"] != o["partition"]) \
                    or (states and job["state"] not in states):
                continue  # like real scancel: finished or unknown jobs are skipped silently
            job.update(cancel_requested=True, requid=os.getuid())
            if job["state"] == "PENDING":
                job.update(state="CANCELLED", end_time=time.time())
            write_json(d / "jobs" / f"{job['id']}.json", job)
            kill_group(job["pgid"], signal.SIGTERM)
    return 0


def cmd_sinfo(argv: list[str]) -> int:
    cluster = load_cluster()
    pairs, _ = getopt("sinfo", argv, {"format": ("o", True), "noheader": ("h", False),
                                      "partition": ("p", True), "summarize": ("s", False)}, permute=True)
    o = dict(pairs)
    fmt = o.get("format", "%9P %.5a %.10l %.6D %.6t %N")
    headers = {"P": "PARTITION", "R": "PARTITION", "a": "AVAIL", "l": "TIMELIMIT", "D": "NODES",
               "c": "CPUS", "m": "MEMORY", "G": "GRES", "N": "NODELIST", "t": "STATE", "T": "STATE"}
    spec = re.compile(r"%(\.?)(-?)(\d*)([a-zA-Z])")

    def value(part, code):
        gres = f"gpu:{part.get('gpu_type') or 'gpu'}:{part['gpus_per_node']}" if part.get("gpus_per_node") else "(null)"
        return {"P": part["name"] + ("*" if part.get("default") else ""), "R": part["name"], "a": "up",
                "l": fmt_minutes(parse_time(str(part.get("max_time", "UNLIMITED")))), "D": part.get("nodes", 1),
                "c": part["cpus_per_node"], "m": part["mem_per_node_mb"], "G": gres,
                "N": hostlist(node_names(part)), "t": "idle", "T": "idle"}.get(code, "")

    def render(get):
        def one(m):
            text, width = str(get(m.group(4))), int(m.group(3) or 0)
            return text.rjust(width) if m.group(1) else text.ljust(width)
        return spec.sub(one, fmt)

    parts = [p for p in cluster["partitions"] if "partition" not in o or p["name"] in o["partition"].split(",")]
    lines = ([] if "noheader" in o else [render(lambda c: headers.get(c, c))]) + \
        [render(lambda c, p=p: value(p, c)) for p in parts]
    print("\n".join(lines))
    return 0


def cmd_scontrol(argv: list[str]) -> int:
    d = sim_dir()
    cluster = load_cluster(d)
    words = [w for w in argv if not w.startswith("-")]
    if len(words) >= 2 and words[0] == "show" and words[1] == "config":
        conf = {"ClusterName": cluster["name"], "EnforcePartLimits": "ALL",
                "KillWait": f"{cluster.get('kill_wait', 30)} sec", "MaxArraySize": 1001,
                "MinJobAge": f"{cluster.get('min_job_age', 300)} sec", "SlurmctldHost[0]": socket.gethostname(),
                "SLURM_VERSION": "24.05.0 (slurm_sim)"}
        print(f"Configuration data as of {fmt_time(time.time())}")
        print("\n".join(f"{k:<23}= {v}" for k, v in conf.items()))
    elif len(words) >= 2 and words[0] == "show" and words[1] in ("partition", "partitions"):
        for p in cluster["partitions"]:
            if len(words) > 2 and p["name"] != words[2]:
                continue
            n = p.get("nodes", 1)
            gpus = f",gres/gpu={p['gpus_per_node'] * n}" if p.get("gpus_per_node") else ""
            print(f"PartitionName={p['name']}\n   Default={'YES' if p.get('default') else 'NO'} State=UP\n"
                  f"   MaxNodes=UNLIMITED MaxTime={fmt_minutes(parse_time(str(p.get('max_time', 'UNLIMITED'))))}\n"
                  f"   Nodes={hostlist(node_names(p))}\n   TotalCPUs={p['cpus_per_node'] * n} TotalNodes={n}\n"
                  f"   TRES=cpu={p['cpus_per_node'] * n},mem={p['mem_per_node_mb'] * n}M,node={n}{gpus}\n")
    elif len(words) >= 3 and words[0] == "show" and words[1] == "job":
        try:
            job = read_job(d, words[2])
        except FileNotFoundError:
            raise SlurmError("slurm_load_jobs error: Invalid job id specified") from None
        print(f"JobId={job['id']} JobName={job['name']}\n   UserId={job['user']}({job['uid']}) "
              f"Account={job['account']} QOS={job['qos']}\n   JobState={job['state']} Reason={job['reason']}\n"
              f"   TimeLimit={fmt_minutes(job['time_limit'])}\n   Partition={job['partition']} "
              f"NodeList={hostlist(job['nodes'])}\n   TRES={tres(job)}\n   Comment={job['comment']}\n"
              f"   WorkDir={job['workdir']}\n   StdOut={job['output']}\n")
    else:
        raise SlurmError(f"scontrol: error: slurm_sim: scontrol {' '.join(words)} is not simulated")
    return 0


def association_rows(cluster: dict, user: str) -> list[dict]:
    if user != cluster["user"]:
        return []
    default = cluster.get("default_account") or ""
    return [{"user": user, "account": account, "partition": part, "defaultaccount": default,
             "cluster": cluster["name"], "qos": ",".join(cluster["qos"]), "name": account}
            for account, parts in cluster["accounts"].items() for part in (parts or [""])]


ASSOC_FIELDS = {"Cluster": 10, "Account": 10, "User": 10, "Partition": 10, "DefaultAccount": 10,
                "QOS": 20, "Name": 10}


def cmd_sacctmgr(argv: list[str]) -> int:
    cluster = load_cluster()
    pairs, words = getopt("sacctmgr", argv, {"noheader": ("n", False), "associations": ("s", False),
                                             "parsable": ("p", False), "parsable2": ("P", False),
                                             "immediate": ("i", False)}, permute=True)
    o = dict(pairs)
    if len(words) < 2 or words[0] not in ("list", "show") or words[1].rstrip("s") not in ("user", "association", "account"):
        raise SlurmError(f"sacctmgr: error: slurm_sim: sacctmgr {' '.join(words)} is not simulated")
    args = dict(w.split("=", 1) for w in words[2:] if "=" in w)
    args = {k.lower(): v for k, v in args.items()}
    names = [w for w in words[2:] if "=" not in w]
    user = (names or [args.get("user", args.get("users", cluster["user"]))])[0]
    kind = words[1].rstrip("s")
    rows = association_rows(cluster, user)
    if kind == "account":
        rows = [{**r, "user": ""} for r in {r["account"]: r for r in rows}.values()]
    default = "Cluster,Account,User,Partition,QOS" if kind == "association" or "associations" in o \
        else "User,DefaultAccount" if kind == "user" else "Name"
    fields = parse_fields("sacctmgr", args.get("format", default), ASSOC_FIELDS)
    if kind == "user" and "associations" not in o:
        rows = rows[:1]
    parsable = "P" if "parsable2" in o else "p" if "parsable" in o else None
    print_table(rows, fields, "noheader" not in o, parsable)
    return 0


def cmd_sshare(argv: list[str]) -> int:
    cluster = load_cluster()
    pairs, _ = getopt("sshare", argv, {"Users": ("U", False), "noheader": ("n", False), "format": ("o", True),
                                       "parsable2": ("P", False), "parsable": ("p", False),
                                       "users": ("u", True), "all": ("a", False)}, permute=True)
    o = dict(pairs)
    rows = association_rows(cluster, o.get("users", cluster["user"]))
    rows = list({r["account"]: r for r in rows}.values())
    fields = parse_fields("sshare", o.get("format", "Account,User"), ASSOC_FIELDS)
    print_table(rows, fields, "noheader" not in o, "P" if "parsable2" in o else "p" if "parsable" in o else None)
    return 0


# ---------------------------------------------------------------- helpers for tests

DEFAULT_PARTITIONS = [
    {"name": "cpu", "default": True, "max_time": "1-00:00:00", "nodes": 8, "cpus_per_node": 64,
     "mem_per_node_mb": 256000, "gpus_per_node": 0},
    {"name": "gpu", "max_time": "3-00:00:00", "nodes": 4, "cpus_per_node": 128, "mem_per_node_mb": 512000,
     "gpus_per_node": 8, "gpu_type": "a100"},
]


def make_cluster(directory, partitions: list[dict] | None = None, accounts=None, default_account: str | None = None,
                 gpu_request: str = "both", seconds_per_minute: float = 60, **extra) -> Path:
    """Write `directory/cluster.json` and return it. Partitions: dicts with `name`, `max_time` (SLURM time
    or minutes), `nodes`, `cpus_per_node`, `mem_per_node_mb`, `gpus_per_node`, optional `gpu_type`,
    `default` (the default partition), `default_time`, `features`. Accounts: names, or {name: [partitions]
    it may use, or None for all}; `default_account` is the user's default (first account if None).
    `gpu_request`: which GPU syntax the site accepts, "gpus" (--gpus/--gpus-per-node), "gres" (--gres=gpu)
    or "both". Extra fields: name, qos (list, first is the default), reservations, kill_wait (seconds),
    min_job_age (seconds), first_job_id, user."""
    if gpu_request not in ("gpus", "gres", "both"):
        raise ValueError(f"gpu_request must be 'gpus', 'gres' or 'both', not {gpu_request!r}")
    accounts = accounts if accounts is not None else ["proj_a", "proj_b"]
    accounts = dict(accounts) if isinstance(accounts, dict) else {a: None for a in accounts}
    directory = Path(directory)
    (directory / "jobs").mkdir(parents=True, exist_ok=True)
    cluster = {"name": "simcluster", "qos": ["normal"], "kill_wait": 30, "min_job_age": 300,
               "partitions": partitions or DEFAULT_PARTITIONS, "accounts": accounts,
               "default_account": default_account or next(iter(accounts), None), "gpu_request": gpu_request,
               "seconds_per_minute": seconds_per_minute, **extra}
    write_json(directory / "cluster.json", cluster)
    return directory / "cluster.json"


def inject(directory, match: str, state: str = "TIMEOUT", count: int = 1, run: bool = True,
           after: float | None = None) -> None:
    """Make the next `count` submissions whose job name, --comment or script contains `match` end as
    `state` (TIMEOUT, FAILED, OUT_OF_MEMORY, NODE_FAIL). run=False: the script never starts. Otherwise
    it runs and is killed after `after` real seconds (default 1 s for TIMEOUT; for other states it runs
    to its end and the job is then reported `state`). The plugin's comment is `rule_<rule>_wildcards_<...>`,
    so match="rule_finetune" targets the finetune rule."""
    if state not in FINAL or state in ("COMPLETED", "CANCELLED"):
        raise ValueError(f"cannot inject state {state!r}")
    directory = Path(directory)
    with locked(directory):
        path = directory / "inject.json"
        rules = json.loads(path.read_text()) if path.exists() else []
        rule = {"match": match, "state": state, "count": count, "run": run}
        write_json(path, rules + [rule | ({"after": after} if after is not None else {})])


def jobs(directory) -> list[dict]:
    """Every recorded submission, oldest first."""
    return all_jobs(Path(directory))


COMMANDS = {"sbatch": cmd_sbatch, "srun": cmd_srun, "sacct": cmd_sacct, "squeue": cmd_squeue,
            "scancel": cmd_scancel, "sinfo": cmd_sinfo, "scontrol": cmd_scontrol, "sacctmgr": cmd_sacctmgr,
            "sshare": cmd_sshare}


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `sacct | head -1` ends quietly, as the C tools do
    if argv[0] == "_run":
        run_job(argv[1])
        return 0
    try:
        return COMMANDS[argv[0]](argv[1:])
    except SlurmError as e:
        print(e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
