rule features:
    """One forward pass per (target, shots, probe set): the caches every score shares; LGC's
    projected per-sample gradients on the default probe set; the expert's own source features."""
    input:
        unpack(features_inputs),
    output:
        expert_caches("{expert}"),
    params:
        targets=hydra_list(TARGETS),
        shots=hydra_list(SHOTS),
        data_root=RESULTS / "data",
        source_dir=lambda wc: data_dir(expert_parts(wc.expert)[1]),
        cache_dir=lambda wc: RESULTS / "features" / wc.expert,
        lgc_dim=SELECTION["lgc_dim"],
        seed=SEED,
        run_dir=lambda wc: run_dir("features", wc.expert),
        overrides=overrides("selection"),
    threads: THREADS
    resources:
        gpu=0,
    log:
        RESULTS / "logs/features/{expert}.log",
    benchmark:
        RESULTS / "benchmarks/features/{expert}.tsv"
    shell:
        "python -m selection step=features expert={wildcards.expert} expert_path={input.weights} "
        "data_root={params.data_root} 'targets={params.targets}' 'shots={params.shots}' "
        "cache_dir={params.cache_dir} source_dir={params.source_dir} lgc_dim={params.lgc_dim} "
        "seed={params.seed} threads={threads} {params.overrides} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule probe_model:
    """RSA/DDS's small network trained on one target (per shot setting) and its probe-set features."""
    input:
        data_dir("{target}") / "splits.json",
    output:
        probe_model_caches("{target}"),
    params:
        shots=hydra_list(SHOTS),
        data_root=RESULTS / "data",
        probe_dir=RESULTS / "probe_models",
        seed=SEED,
        run_dir=lambda wc: run_dir("probe_model", wc.target),
        overrides=overrides("selection"),
    threads: THREADS
    resources:
        gpu=0,
    log:
        RESULTS / "logs/probe_model/{target}.log",
    benchmark:
        RESULTS / "benchmarks/probe_model/{target}.tsv"
    shell:
        "python -m selection step=probe_model 'targets=[{wildcards.target}]' 'shots={params.shots}' "
        "data_root={params.data_root} probe_dir={params.probe_dir} seed={params.seed} threads={threads} "
        "{params.overrides} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


rule scores:
    """Every selection method on the expert's caches (numpy only)."""
    input:
        unpack(scores_inputs),
    output:
        RESULTS / "records/scores/{expert}.json",
    params:
        targets=hydra_list(TARGETS),
        shots=hydra_list(SHOTS),
        methods=hydra_list(SELECTION["methods"]),
        plugins=hydra_list(SELECTION.get("plugins", [])),
        variants=hydra_dict(SELECTION["variants"]),
        cache_dir=lambda wc: RESULTS / "features" / wc.expert,
        probe_dir=RESULTS / "probe_models",
        seed=SEED,
        run_dir=lambda wc: run_dir("scores", wc.expert),
        overrides=overrides("selection"),
    log:
        RESULTS / "logs/scores/{expert}.log",
    benchmark:
        RESULTS / "benchmarks/scores/{expert}.tsv"
    shell:
        "python -m selection step=scores expert={wildcards.expert} data_root=none "
        "'targets={params.targets}' 'shots={params.shots}' 'methods={params.methods}' 'plugins={params.plugins}' "
        "'variants={params.variants}' cache_dir={params.cache_dir} probe_dir={params.probe_dir} "
        "out={output} seed={params.seed} {params.overrides} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"
