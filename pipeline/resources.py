"""What every job asks of the machine: GPUs, torchrun ranks, and on SLURM its partition, account,
CPUs, memory and a runtime derived from the work it does (the benchmark's `site` block).

GPUs. `snakemake --resources gpu=N` says how many GPUs the run may hold at once: on one node, the
node's; `profiles/slurm` sets a cluster-wide cap. A training job (zoo, multi-domain) takes
`site.gpus_per_node` of them (one torchrun rank each), every other GPU job one; with no `gpu`
resource given, no job gets a GPU and all run on the CPU. `device: cpu` runs every job on the CPU
with as many torchrun ranks as it would have had GPUs. The job's GPUs themselves are assigned at
launch (`pipeline.launch`).

Runtime. images x epochs at `site.images_per_second` (one GPU, bf16, channels_last, 224 px; a
forward pass counts a third of a training step) over the job's GPUs, times `site.safety`, at least
`site.min_runtime_min` and at most `site.max_runtime_h`; a training job that does not fit resumes
from its checkpoint when the profile retries it, fine-tuning from its finished grid points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# rules whose job trains on a whole node (torchrun, one rank per GPU) / uses one GPU
NODE_RULES = ("zoo_training", "multidomain")
ONE_GPU_RULES = ("finetune", "selection", "probe_model")
FORWARD = 1 / 3  # a forward pass against a training step (forward + backward)


def train_images(dataset: dict, shots: str = "full") -> int:
    """Training images of a dataset config in one shot setting: `shots` per class for few-shot, else
    the paper's count capped at `train_per_class` per class (the count of a generated dataset)."""
    classes = int(dataset["num_classes"])
    if shots != "full":
        return int(shots) * classes
    per_class = dataset.get("train_per_class")
    capped = classes * per_class if per_class else None
    paper = dataset.get("paper_train")
    return min(x for x in (paper, capped) if x) if (paper or capped) else classes


def held_out_images(dataset: dict) -> int:
    """Held-out (test) images of a dataset config (the paper's count, else a quarter of the training images)."""
    return int(dataset.get("paper_test") or math.ceil(train_images(dataset) / 4))


def all_images(dataset: dict) -> int:
    """Images a dataset's preparation decodes and resizes (all of the paper's, else train + test)."""
    return int(dataset.get("paper_train") or train_images(dataset)) + held_out_images(dataset)


def download_mb(dataset: dict) -> float:
    """Megabytes a dataset's preparation downloads (its files' declared sizes)."""
    files = (dataset.get("download") or {}).get("files") or []
    return sum(f.get("size") or 0 for f in files) / 1e6


@dataclass(frozen=True)
class Site:
    """The benchmark's `site` block (configs/schema/benchmark.schema.yaml) and its `device`."""

    settings: dict
    device: str = "auto"

    def __getattr__(self, key):  # site.<key> reads the block (only called for names the class lacks)
        if key == "settings":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(key)
        try:
            return self.settings[key]
        except KeyError:
            raise AttributeError(key) from None

    def wanted_gpus(self, rule: str) -> int:
        """GPUs a job of `rule` would take with GPUs to spare."""
        return self.gpus_per_node if rule in NODE_RULES else int(rule in ONE_GPU_RULES)

    def gpus(self, rule: str, given: int | None) -> int:
        """GPUs a job of `rule` uses: none with device=cpu or no `gpu` resource (`given` None), else
        what it wants, at most `given` (the run's --resources gpu)."""
        if self.device == "cpu" or given is None:
            return 0
        return min(self.wanted_gpus(rule), given)

    def ranks(self, rule: str, given: int | None) -> int:
        """Processes of a job (torchrun ranks): a training job's GPUs, or on the CPU as many as it
        would have had GPUs (device=cpu); one for every other job."""
        if rule not in NODE_RULES:
            return 1
        return max(1, min(self.wanted_gpus(rule), given or 0))

    def gpu_rate(self, arch: str | None) -> float:
        """Training images per second of `arch` on one GPU (`site.images_per_second`)."""
        table = self.settings["images_per_second"]
        return float(table.get(arch) or table["default"])

    def runtime_minutes(self, *, gpus: int, ranks: int, arch: str | None = None, train: float = 0,
                        forward: float = 0, cpu_seconds: float = 0) -> int:
        """Minutes a job asks for: `train` training images and `forward` forward-only images on its
        GPUs (else its CPU ranks), plus `cpu_seconds` of CPU work; times `safety`, clipped to
        [min_runtime_min, max_runtime_h]."""
        rate = self.gpu_rate(arch) * gpus if gpus else self.cpu_images_per_second * ranks
        seconds = (train + FORWARD * forward) / rate + cpu_seconds
        minutes = math.ceil(self.safety * seconds / 60)
        return int(min(max(minutes, math.ceil(self.min_runtime_min)), math.floor(60 * self.max_runtime_h)))

    def slurm(self, gpus: int, ranks: int) -> dict:
        """SLURM resources of a job with `gpus` GPUs and `ranks` processes (the executor plugin's
        names): partition, account, the GPU request (--gpus or --gres), CPUs and memory."""
        out = {}
        partition = self.gpu_partition if gpus else self.cpu_partition
        if partition:
            out["slurm_partition"] = partition
        if self.account:
            out["slurm_account"] = self.account
        if gpus and self.gpu_request == "gres":
            out["gres"] = f"gpu:{gpus}"
        out["gpu"] = gpus if self.gpu_request == "gpus" else 0
        units = max(gpus, ranks)
        cpu_only = gpus == 0 and ranks == 1
        out["cpus_per_task"] = self.cpu_job_cpus if cpu_only else self.cpus_per_gpu * units
        out["mem_mb"] = int(1000 * (self.cpu_job_mem_gb if cpu_only else self.mem_per_gpu_gb * units))
        return out
