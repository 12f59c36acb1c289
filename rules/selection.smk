rule selection:
    """Selection for one expert, in one process (importing torch and timm costs ~7 s per process):
    one forward pass per (target, shots, probe set) writes the caches every score shares (LGC's
    projected per-sample gradients on the default probe sets, the expert's own source features),
    then every selection method runs on them (numpy only) into one record."""
    input:
        unpack(selection_inputs),
    output:
        caches=expert_caches("{expert}"),
        record=RESULTS / "records/scores/{expert}.json",
    params:
        targets=hydra_list(TARGETS),
        shots=hydra_list(SHOTS),
        data_root=RESULTS / "data",
        source_dir=lambda wc: data_dir(expert_parts(wc.expert)[1]),
        cache_dir=lambda wc: RESULTS / "features" / wc.expert,
        probe_dir=RESULTS / "probe_models",
        lgc_dim=SELECTION["lgc_dim"],
        methods=hydra_list(SELECTION["methods"]),
        plugins=hydra_list(SELECTION.get("plugins", [])),
        variants=hydra_dict(SELECTION["variants"]),
        seed=SEED,
        run_dir=lambda wc: run_dir("selection", wc.expert),
        overrides=overrides("selection"),
    threads: THREADS
    resources:
        gpu=0,
    log:
        RESULTS / "logs/selection/{expert}.log",
    benchmark:
        RESULTS / "benchmarks/selection/{expert}.tsv"
    shell:
        "python -m selection step=select expert={wildcards.expert} expert_path={input.weights} "
        "data_root={params.data_root} 'targets={params.targets}' 'shots={params.shots}' "
        "cache_dir={params.cache_dir} source_dir={params.source_dir} lgc_dim={params.lgc_dim} "
        "'methods={params.methods}' 'plugins={params.plugins}' 'variants={params.variants}' "
        "probe_dir={params.probe_dir} out={output.record} seed={params.seed} threads={threads} "
        "{params.overrides} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


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
