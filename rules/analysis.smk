rule tables:
    """Combine the per-job records into long tables."""
    input:
        zoo=expand(RESULTS / "experts/{expert}/metrics.json", expert=EXPERTS),
        finetune=expand(RESULTS / "records/finetune/{expert}.json", expert=EXPERTS),
        scores=expand(RESULTS / "records/scores/{expert}.json", expert=EXPERTS),
        multidomain=expand(RESULTS / "multidomain/{variant}/metrics.json", variant=VARIANTS),
        targets=[data_dir(t) / "splits.json" for t in TARGETS],
    output:
        zoo=table("zoo_accuracy"),
        targets=table("targets"),
        finetune=table("finetune"),
        scores=table("scores"),
        multidomain=[table("multidomain_accuracy")] if MULTIDOMAIN else [],
    params:
        results=RESULTS,
        zoo=lambda wc, input: hydra_list(input.zoo),
        finetune=lambda wc, input: hydra_list(input.finetune),
        scores=lambda wc, input: hydra_list(input.scores),
        multidomain=lambda wc, input: hydra_list(input.multidomain),
        target_dirs=hydra_list([data_dir(t) for t in TARGETS]),
        run_dir=run_dir("analysis", "tables"),
    log:
        RESULTS / "logs/analysis/tables.log",
    benchmark:
        RESULTS / "benchmarks/analysis/tables.tsv"
    shell:
        "python -m analysis preset=" + PRESET + "/analysis step=tables results_dir={params.results} 'zoo_records={params.zoo}' "
        "'finetune_records={params.finetune}' 'score_records={params.scores}' "
        "'multidomain_records={params.multidomain}' 'target_dirs={params.target_dirs}' "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule evaluate:
    """Every protocol: correlations, top-k gain, trials to best (Deshpande), regret per budget
    (Which-Model), PARC's probe draws, the probe-size ablation, and the compute cost (Table 3);
    strategies (task-agnostic, hybrid, "+l") are evaluated beside the scores."""
    input:
        zoo=TABLES / "zoo_accuracy.csv",
        finetune=TABLES / "finetune.csv",
        scores=TABLES / "scores.csv",
    output:
        selection=table("selection_eval"),
        cost=table("compute_cost"),
        regret=table("regret"),
        parc=table("parc_protocol"),
        ablation=table("probe_size_ablation"),
        gr_table2=table("gr_table2"),
        recommendations=table("recommendations"),
        multidomain=[table("selection_eval_multidomain")] if MULTIDOMAIN else [],
    params:
        results=RESULTS,
        generalist=REFERENCE_EXPERT,
        run_dir=run_dir("analysis", "evaluate"),
        top_k=3,
        seed=SEED,
    log:
        RESULTS / "logs/analysis/evaluate.log",
    benchmark:
        RESULTS / "benchmarks/analysis/evaluate.tsv"
    shell:
        "python -m analysis preset=" + PRESET + "/analysis step=evaluate results_dir={params.results} generalist={params.generalist} "
        "top_k={params.top_k} seed={params.seed} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule figures:
    """Figures 2, 4, 6a and 6b of the paper, each with the CSV behind it."""
    input:
        zoo=TABLES / "zoo_accuracy.csv",
        finetune=TABLES / "finetune.csv",
        scores=TABLES / "scores.csv",
        recommendations=TABLES / "recommendations.csv",
        theta_f=expand(RESULTS / "records/theta_f/{expert}.npz", expert=EXPERTS) if THETA_F else [],
    output:
        figures=[
            report(FIGURES / f"{name}.png", caption=CAPTIONS / f"{name}.rst", category="Figures")
            for name in FIGURE_NAMES
        ],
        data=[FIGURES / f"{name}.csv" for name in FIGURE_NAMES],
    params:
        results=RESULTS,
        generalist=REFERENCE_EXPERT,
        run_dir=run_dir("analysis", "figures"),
        top_k=3,
        theta_f=lambda wc, input: f"'theta_f_records={hydra_list(input.theta_f)}'" if THETA_F else "",
    log:
        RESULTS / "logs/analysis/figures.log",
    benchmark:
        RESULTS / "benchmarks/analysis/figures.tsv"
    shell:
        "python -m analysis preset=" + PRESET + "/analysis step=figures results_dir={params.results} generalist={params.generalist} "
        "top_k={params.top_k} {params.theta_f} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule artifacts:
    """Every other table and figure of the four papers (Deshpande Tables 1-3, Fig. 1, 3, 5, 7; PARC
    Tables 1-3 and Fig. 2; Which Model's regret figures), summary.md and, on the paper benchmark,
    the published numbers beside the reproduced ones."""
    input:
        zoo=TABLES / "zoo_accuracy.csv",
        finetune=TABLES / "finetune.csv",
        scores=TABLES / "scores.csv",
        evaluated=rules.evaluate.output,
    output:
        [artifact_output(name) for name in ARTIFACT_NAMES],
        [FIGURES / f"{name}.csv" for name in ARTIFACT_NAMES if ARTIFACT_KINDS[name] == "figure"],
        [table(f"published_{name}", category="Published numbers") for name in PUBLISHED] if IS_PAPER else [],
        summary=report(RESULTS / "summary.md", caption=CAPTIONS / "summary.rst", category="Summary"),
    params:
        results=RESULTS,
        generalist=REFERENCE_EXPERT,
        top_k=3,
        multidomain=bool(MULTIDOMAIN),
        pools=hydra_dict({name: hydra_list(archs) if archs is not None else "null" for name, archs in POOLS.items()}),
        run_dir=run_dir("analysis", "artifacts"),
    log:
        RESULTS / "logs/analysis/artifacts.log",
    benchmark:
        RESULTS / "benchmarks/analysis/artifacts.tsv"
    shell:
        "python -m analysis preset=" + PRESET + "/analysis step=artifacts results_dir={params.results} generalist={params.generalist} "
        "top_k={params.top_k} multidomain={params.multidomain} '++pools={params.pools}' "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


ANALYSIS_OUTPUTS = [
    rules.tables.output,
    rules.evaluate.output,
    rules.figures.output,
    rules.artifacts.output,
]
