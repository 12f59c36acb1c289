# Analysis: every table and figure of the four papers. Each rule's outputs and table inputs come
# from the registry analysis/outputs.py (one entry per output: paper, step, inputs, renderer,
# caption) through the helpers at the end of rules/common.smk; paths from pipeline.layout (LAYOUT);
# command lines from stage_shell.


rule tables:
    """Combine the per-job records into long tables."""
    input:
        zoo=[LAYOUT.expert_metrics(e) for e in EXPERTS],
        finetune=[LAYOUT.record("finetune", e) for e in EXPERTS],
        scores=[LAYOUT.record("scores", e) for e in EXPERTS],
        multidomain=[LAYOUT.multidomain_metrics(v) for v in VARIANTS],
        targets=target_splits(),
    output:
        step_outputs("tables"),
    params:
        identity=lambda wc, input: identity(
            results_dir=RESULTS,
            zoo_records=list(input.zoo),
            finetune_records=list(input.finetune),
            score_records=list(input.scores),
            multidomain_records=list(input.multidomain),
            target_dirs=[LAYOUT.data_dir(t) for t in TARGETS],
        ),
        run_dir=LAYOUT.run_dir("analysis", "tables"),
    log:
        LAYOUT.log("analysis", "tables"),
    benchmark:
        LAYOUT.benchmark("analysis", "tables")
    shell:
        stage_shell("analysis", step="tables")


rule evaluate:
    """Every protocol: correlations, top-k gain, trials to best (Deshpande), regret per budget
    (Which-Model), PARC's probe draws, the probe-size ablation, the compute cost (Table 3) and the
    learned recommenders (Guided Recommendation); strategies are evaluated beside the scores."""
    input:
        step_tables("evaluate"),
    output:
        step_outputs("evaluate"),
    params:
        identity=analysis_identity(),
        run_dir=LAYOUT.run_dir("analysis", "evaluate"),
    log:
        LAYOUT.log("analysis", "evaluate"),
    benchmark:
        LAYOUT.benchmark("analysis", "evaluate")
    shell:
        stage_shell("analysis", step="evaluate")


rule stability:
    """How stable the verdicts are: leave-one-expert-out and leave-one-target-out changes, the setup stability
    of Agostinelli et al. (shots, pools, probe draws, seeds) and the static baselines; beside `evaluate`,
    from the same tables (a job of its own: both run at once)."""
    input:
        step_tables("stability"),
    output:
        step_outputs("stability"),
    params:
        # Hydra adds keys to a dict only with ++
        identity=analysis_identity(**{"++pools": POOLS}),
        run_dir=LAYOUT.run_dir("analysis", "stability"),
    log:
        LAYOUT.log("analysis", "stability"),
    benchmark:
        LAYOUT.benchmark("analysis", "stability")
    shell:
        stage_shell("analysis", step="stability")


rule figures:
    """Deshpande Figs. 2, 4, 6a, 6b (and 8), each with the CSV behind it."""
    input:
        tables=step_tables("figures"),
        theta_f=[LAYOUT.record("theta_f", e) for e in EXPERTS] if THETA_F else [],
    output:
        step_outputs("figures"),
    params:
        identity=lambda wc, input: analysis_identity(theta_f_records=list(input.theta_f) or None),
        run_dir=LAYOUT.run_dir("analysis", "figures"),
    log:
        LAYOUT.log("analysis", "figures"),
    benchmark:
        LAYOUT.benchmark("analysis", "figures")
    shell:
        stage_shell("analysis", step="figures")


rule artifacts:
    """Every other table and figure of the four papers (Deshpande Tables 1-3, Figs. 1, 3, 5, 7; PARC
    Tables 1-3 and Fig. 2; Which Model's regret figures), summary.md and, on the paper benchmark,
    the published numbers beside the reproduced ones."""
    input:
        step_tables("artifacts"),
    output:
        step_outputs("artifacts"),
    params:
        # Hydra adds keys to a dict only with ++
        identity=analysis_identity(**{"++pools": POOLS}),
        run_dir=LAYOUT.run_dir("analysis", "artifacts"),
    log:
        LAYOUT.log("analysis", "artifacts"),
    benchmark:
        LAYOUT.benchmark("analysis", "artifacts")
    shell:
        stage_shell("analysis", step="artifacts")


rule ground_truth:
    """A zoo benchmark: every expert's scores against the shipped ground-truth accuracies (weighted tau per
    method and target, as LogME and SFDA evaluate), beside the published correlations; nothing fine-tuned."""
    input:
        scores=[LAYOUT.record("scores", e) for e in EXPERTS],
        finetune=[LAYOUT.record("finetune", e) for e in EXPERTS] if FINETUNE_ZOO else [],
        ground_truth=[] if FINETUNE_ZOO else config["ground_truth"] or [],
        published=config["published_scores"] or [],
    output:
        step_outputs("ground_truth"),
    params:
        identity=lambda wc, input: identity(
            results_dir=RESULTS,
            probe_set=PROBE_SET,
            score_records=list(input.scores),
            finetune_records=list(input.finetune) or None,
            ground_truth=config["ground_truth"],
            published_scores=config["published_scores"],
            lr_selection=config["lr_selection"],
        ),
        run_dir=LAYOUT.run_dir("analysis", "ground_truth"),
    log:
        LAYOUT.log("analysis", "ground_truth"),
    benchmark:
        LAYOUT.benchmark("analysis", "ground_truth")
    shell:
        stage_shell("analysis", step="ground_truth")


ANALYSIS_OUTPUTS = [rules.ground_truth.output] if ZOO_BENCHMARK else [
    rules.tables.output,
    rules.evaluate.output,
    rules.stability.output,
    rules.figures.output,
    rules.artifacts.output,
]
