# Model selection for fine-tuning: the benchmark of Deshpande et al. (2021) as one DAG.
#   snakemake --cores all                                   # the embedded mini benchmark
#   snakemake --cores all --configfile configs/benchmark/<name>.yaml
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "configs/benchmark/mini.yaml"


try:
    validate(config, "configs/schema/benchmark.schema.yaml")
except WorkflowError as err:
    # keep the one line that names the problem, not the whole schema dump
    detail = next((line for line in str(err).splitlines() if line.startswith("ValidationError")), str(err))
    sys.exit(f"benchmark config error (configs/schema/benchmark.schema.yaml): {detail}")


# combining tables, figures and the domain split of the multi-domain expert take seconds:
# they run where Snakemake runs, never as cluster jobs
localrules:
    all,
    tables,
    evaluate,
    figures,
    artifacts,
    domain_experts,


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
