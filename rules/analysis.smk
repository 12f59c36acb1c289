# Analysis: every table and figure of the four papers. Each rule's outputs and table inputs come
# from the registry analysis/outputs.py (one entry per output: paper, step, inputs, renderer,
# caption); paths from pipeline.layout (LAYOUT). Needs from common.smk: LAYOUT, PROBE_SET, RESULTS,
# EXPERTS, VARIANTS, TARGETS, MULTIDOMAIN, THETA_F, SOURCES, ARCHS, POOLS, SELECTION, SEED,
# REFERENCE_EXPERT, hydra_list, hydra_dict.
from analysis.outputs import files as output_files, outputs as analysis_outputs, step_inputs, write_captions
from analysis.published import is_paper_zoo

# which conditional outputs this benchmark has; the published numbers only on the paper's zoo
ANALYSIS_CONDITIONS = dict(multidomain=bool(MULTIDOMAIN), theta_f=bool(THETA_F), paper=is_paper_zoo(SOURCES, ARCHS))
# the report's captions, written from the registry with this benchmark's top-k and main probe set
CAPTIONS = write_captions(LAYOUT.run_dir("analysis", "captions"), SELECTION["top_k"], PROBE_SET)


def step_outputs(step):
    """A step's files; the main file of each output (a table, a figure's .png) goes to the report."""
    out = []
    for o in analysis_outputs(step, **ANALYSIS_CONDITIONS):
        main, *data = output_files(LAYOUT, o)
        out += [report(main, caption=CAPTIONS / f"{o.name}.rst", category=o.category), *data]
    return out


def step_tables(step):
    """The tables a step reads that other steps write."""
    return step_inputs(LAYOUT, step, **ANALYSIS_CONDITIONS)


# every step but tables is told who the reference expert, the main probe set and top-k are
ANALYSIS_SETTINGS = (f"reference_expert={REFERENCE_EXPERT} probe_set={PROBE_SET} top_k={SELECTION['top_k']} "
                     f"multidomain={bool(MULTIDOMAIN)}")


rule tables:
    """Combine the per-job records into long tables."""
    input:
        zoo=[LAYOUT.expert_metrics(e) for e in EXPERTS],
        finetune=[LAYOUT.record("finetune", e) for e in EXPERTS],
        scores=[LAYOUT.record("scores", e) for e in EXPERTS],
        multidomain=[LAYOUT.multidomain_dir(v) / "metrics.json" for v in VARIANTS],
        targets=[LAYOUT.splits(t) for t in TARGETS],
    output:
        step_outputs("tables"),
    params:
        results=RESULTS,
        zoo=lambda wc, input: hydra_list(input.zoo),
        finetune=lambda wc, input: hydra_list(input.finetune),
        scores=lambda wc, input: hydra_list(input.scores),
        multidomain=lambda wc, input: hydra_list(input.multidomain),
        target_dirs=hydra_list([LAYOUT.data_dir(t) for t in TARGETS]),
        run_dir=LAYOUT.run_dir("analysis", "tables"),
    log:
        LAYOUT.log("analysis", "tables"),
    benchmark:
        LAYOUT.benchmark("analysis", "tables")
    shell:
        "python -m analysis step=tables results_dir={params.results} 'zoo_records={params.zoo}' "
        "'finetune_records={params.finetune}' 'score_records={params.scores}' "
        "'multidomain_records={params.multidomain}' 'target_dirs={params.target_dirs}' "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule evaluate:
    """Every protocol: correlations, top-k gain, trials to best (Deshpande), regret per budget
    (Which-Model), PARC's probe draws, the probe-size ablation, the compute cost (Table 3) and the
    learned recommenders (Guided Recommendation); strategies are evaluated beside the scores."""
    input:
        step_tables("evaluate"),
    output:
        step_outputs("evaluate"),
    params:
        results=RESULTS,
        settings=ANALYSIS_SETTINGS,
        seed=SEED,
        run_dir=LAYOUT.run_dir("analysis", "evaluate"),
    log:
        LAYOUT.log("analysis", "evaluate"),
    benchmark:
        LAYOUT.benchmark("analysis", "evaluate")
    shell:
        "python -m analysis step=evaluate results_dir={params.results} {params.settings} seed={params.seed} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule figures:
    """Deshpande Figs. 2, 4, 6a, 6b (and 8), each with the CSV behind it."""
    input:
        tables=step_tables("figures"),
        theta_f=[LAYOUT.record("theta_f", e) for e in EXPERTS] if THETA_F else [],
    output:
        step_outputs("figures"),
    params:
        results=RESULTS,
        settings=ANALYSIS_SETTINGS,
        theta_f=lambda wc, input: f"'theta_f_records={hydra_list(input.theta_f)}'" if THETA_F else "",
        run_dir=LAYOUT.run_dir("analysis", "figures"),
    log:
        LAYOUT.log("analysis", "figures"),
    benchmark:
        LAYOUT.benchmark("analysis", "figures")
    shell:
        "python -m analysis step=figures results_dir={params.results} {params.settings} {params.theta_f} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule artifacts:
    """Every other table and figure of the four papers (Deshpande Tables 1-3, Figs. 1, 3, 5, 7; PARC
    Tables 1-3 and Fig. 2; Which Model's regret figures), summary.md and, on the paper benchmark,
    the published numbers beside the reproduced ones."""
    input:
        step_tables("artifacts"),
    output:
        step_outputs("artifacts"),
    params:
        results=RESULTS,
        settings=ANALYSIS_SETTINGS,
        pools=hydra_dict({name: hydra_list(archs) if archs is not None else "null" for name, archs in POOLS.items()}),
        run_dir=LAYOUT.run_dir("analysis", "artifacts"),
    log:
        LAYOUT.log("analysis", "artifacts"),
    benchmark:
        LAYOUT.benchmark("analysis", "artifacts")
    shell:
        "python -m analysis step=artifacts results_dir={params.results} {params.settings} '++pools={params.pools}' "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


ANALYSIS_OUTPUTS = [
    rules.tables.output,
    rules.evaluate.output,
    rules.figures.output,
    rules.artifacts.output,
]
