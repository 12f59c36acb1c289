rule data_prep:
    """Generate (mini) or download and split one dataset; few-shot subsets and probe sets. Beside
    these records the directory holds the data itself (arrays.npz, or manifest.csv and the
    resized images): data_prep.readers.PreparedDataset is the one reader."""
    output:
        splits=RESULTS / "data/{dataset}/splits.json",
        classes=RESULTS / "data/{dataset}/classes.json",
        stats=RESULTS / "data/{dataset}/stats.json",
    params:
        seed=SEED,
        shots=lambda wc: hydra_list(SHOTS if wc.dataset in TARGETS else ["full"]),
        run_dir=lambda wc: run_dir("data_prep", wc.dataset),
        out_dir=lambda wc: data_dir(wc.dataset),
        # downloads and manual archives, kept outside the results (reused by every benchmark)
        raw_dir=lambda wc: Path(config["raw_data"]) / wc.dataset,
        overrides=overrides("data_prep"),
        probe_per_class=SELECTION["probe_per_class"],
        # the probe-size ablation and PARC's probe draws concern targets only
        probe_options=lambda wc: (
            f"'probe_ablation_per_class={hydra_list(SELECTION['probe_ablation_per_class'])}' "
            f"parc_draws={SELECTION['parc_draws']} parc_probe_size={SELECTION['parc_probe_size']}"
            if wc.dataset in TARGETS
            else ""
        ),
    threads: THREADS
    log:
        RESULTS / "logs/data_prep/{dataset}.log",
    benchmark:
        RESULTS / "benchmarks/data_prep/{dataset}.tsv"
    shell:
        "python -m data_prep dataset={wildcards.dataset} out_dir={params.out_dir} 'shots={params.shots}' "
        "probe_per_class={params.probe_per_class} {params.probe_options} seed={params.seed} "
        "raw_dir={params.raw_dir} workers={threads} {params.overrides} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"
