rule zoo_training:
    """Train one single-domain expert on its source, from scratch or from the generalist's weights
    (torchrun with one process per GPU when the profile gives the rule several)."""
    input:
        unpack(zoo_inputs),
    output:
        weights=protected(RESULTS / "experts/{expert}/model.pt"),
        metrics=RESULTS / "experts/{expert}/metrics.json",
    wildcard_constraints:
        expert="|".join(SINGLE_DOMAIN_EXPERTS),
    params:
        launcher=launcher,
        seed=SEED,
        arch=lambda wc: ARCHS[expert_parts(wc.expert)[0]],
        source=lambda wc: expert_parts(wc.expert)[1],
        source_dir=lambda wc: data_dir(expert_parts(wc.expert)[1]),
        init=lambda wc, input: f"init={input.init}" if "init" in input.keys() else "",
        out_dir=lambda wc: RESULTS / "experts" / wc.expert,
        # resumable state beside the job, deliberately not an output (Snakemake deletes failed outputs)
        checkpoint=lambda wc: RESULTS / "work/zoo_training" / wc.expert / "last.pt",
        run_dir=lambda wc: run_dir("zoo_training", wc.expert),
        overrides=overrides("zoo_training"),
    threads: THREADS
    resources:
        gpu=0,
    log:
        RESULTS / "logs/zoo_training/{expert}.log",
    benchmark:
        RESULTS / "benchmarks/zoo_training/{expert}.tsv"
    shell:
        "{params.launcher} zoo_training expert={wildcards.expert} arch={params.arch} source={params.source} "
        "source_dir={params.source_dir} {params.init} out_dir={params.out_dir} checkpoint={params.checkpoint} "
        "seed={params.seed} threads={threads} {params.overrides} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


if MULTIDOMAIN:
    # the multi-domain expert's jobs exist only when the benchmark config has a `multidomain` block

    rule multidomain:
        """The multi-domain expert on all sources in one variant (Shared, Multi-BN or Adapter): at most
        `per_source_cap` images per source per epoch; per-domain source accuracy (Table 2)."""
        input:
            sources=[data_dir(s) / "splits.json" for s in SOURCES],
        output:
            weights=protected(RESULTS / "multidomain/{variant}/model.pt"),
            metrics=RESULTS / "multidomain/{variant}/metrics.json",
        params:
            launcher=launcher,
            seed=SEED,
            arch=ARCHS[MULTIDOMAIN["arch"]],
            sources=hydra_list(SOURCES),
            data_root=RESULTS / "data",
            cap=MULTIDOMAIN["per_source_cap"],
            out_dir=lambda wc: RESULTS / "multidomain" / wc.variant,
            checkpoint=lambda wc: RESULTS / "work/multidomain" / wc.variant / "last.pt",
            run_dir=lambda wc: run_dir("multidomain", wc.variant),
            overrides=overrides("multidomain"),
        threads: THREADS
        resources:
            gpu=0,
        log:
            RESULTS / "logs/multidomain/{variant}.log",
        benchmark:
            RESULTS / "benchmarks/multidomain/{variant}.tsv"
        shell:
            "{params.launcher} zoo_training job=multidomain variant={wildcards.variant} arch={params.arch} "
            "'sources={params.sources}' data_root={params.data_root} per_source_cap={params.cap} "
            "out_dir={params.out_dir} checkpoint={params.checkpoint} seed={params.seed} threads={threads} "
            "{params.overrides} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"


    rule domain_experts:
        """Each domain of the fine-tuned variant as a single-domain expert {arch}-{source}-md."""
        input:
            RESULTS / f"multidomain/{MULTIDOMAIN['finetune_variant']}/model.pt",
        output:
            weights=[protected(expert_weights(e)) for e in DOMAIN_EXPERTS],
            metrics=[RESULTS / "experts" / e / "metrics.json" for e in DOMAIN_EXPERTS],
        params:
            experts=hydra_list(DOMAIN_EXPERTS),
            experts_dir=RESULTS / "experts",
            run_dir=run_dir("domain_experts"),
        log:
            RESULTS / "logs/domain_experts.log",
        benchmark:
            RESULTS / "benchmarks/domain_experts.tsv"
        shell:
            "python -m zoo_training job=domain_experts init={input} 'experts={params.experts}' "
            "out_dir={params.experts_dir} hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"
