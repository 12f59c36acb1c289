# Model selection for fine-tuning: the benchmark of Deshpande et al. (2021) as one DAG.
#   snakemake --cores all                                   # the embedded mini benchmark
#   snakemake --cores all --configfile configs/benchmark/<name>.yaml
# A config given with --configfile is the whole benchmark; configs/benchmark/mini.yaml applies only
# when none is given (pipeline.benchmark.load_benchmark validates it and fills the schema's defaults).
import sys

from snakemake.utils import min_version

from pipeline.benchmark import BenchmarkError, load_benchmark

min_version("9.19")  # earlier 9.x releases read bare profile runtimes as seconds (snakemake#4039)

try:
    benchmark = load_benchmark(dict(config))
except BenchmarkError as err:
    # a user mistake: one clear line naming the key, no traceback, before any job runs
    sys.exit(f"benchmark config error: {err}")
config.clear()
config.update(benchmark)


# combining tables, figures and the domain split of the multi-domain expert take seconds:
# they run where Snakemake runs, never as cluster jobs
localrules:
    all,
    tables,
    evaluate,
    stability,
    figures,
    artifacts,
    ground_truth,
    domain_experts,
    zoo_entry,


include: "rules/common.smk"
include: "rules/data_prep.smk"
include: "rules/zoo_training.smk"
include: "rules/finetune.smk"
include: "rules/selection.smk"
include: "rules/analysis.smk"


rule all:
    input:
        ANALYSIS_OUTPUTS,
    default_target: True
