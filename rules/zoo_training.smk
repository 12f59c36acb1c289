rule zoo_training:
    """Train one single-domain expert on its source, from scratch or from the generalist's weights
    (torchrun with one rank per GPU: pipeline.launch)."""
    input:
        unpack(get_zoo_inputs),
    output:
        weights=protected(LAYOUT.expert_weights("{expert}")),
        metrics=LAYOUT.expert_metrics("{expert}"),
    wildcard_constraints:
        expert="|".join(SINGLE_DOMAIN_EXPERTS),
    params:
        identity=lambda wc, input, threads: identity(
            expert=wc.expert,
            arch=ARCHS[Expert.parse(wc.expert).arch],
            source=Expert.parse(wc.expert).source,
            source_dir=LAYOUT.data_dir(Expert.parse(wc.expert).source),
            init=input.get("init"),
            out_dir=LAYOUT.expert_dir(wc.expert),
            # resumable state beside the job, deliberately not an output (Snakemake deletes failed outputs)
            checkpoint=LAYOUT.checkpoint("zoo_training", wc.expert),
            threads=threads,
        ),
        run_dir=lambda wc: LAYOUT.run_dir("zoo_training", wc.expert),
    threads: THREADS
    resources:
        **job_resources("zoo_training", zoo_runtime),
    log:
        LAYOUT.log("zoo_training", "{expert}"),
    benchmark:
        LAYOUT.benchmark("zoo_training", "{expert}")
    shell:
        stage_shell("zoo_training", launcher=True)


if MULTIDOMAIN:
    # the multi-domain expert's jobs exist only when the benchmark config has a `multidomain` block

    rule multidomain:
        """The multi-domain expert on all sources in one variant (Shared, Multi-BN or Adapter): at most
        `per_source_cap` images per source per epoch; per-domain source accuracy (Table 2)."""
        input:
            sources=[LAYOUT.splits(s) for s in SOURCES],
        output:
            weights=protected(LAYOUT.multidomain_weights("{variant}")),
            metrics=LAYOUT.multidomain_metrics("{variant}"),
        params:
            identity=lambda wc, threads: identity(
                variant=wc.variant,
                arch=ARCHS[MULTIDOMAIN["arch"]],
                sources=SOURCES,
                data_root=LAYOUT.data_root(),
                out_dir=LAYOUT.multidomain_dir(wc.variant),
                checkpoint=LAYOUT.checkpoint("multidomain", wc.variant),
                threads=threads,
            ),
            run_dir=lambda wc: LAYOUT.run_dir("multidomain", wc.variant),
        threads: THREADS
        resources:
            **job_resources("multidomain", multidomain_runtime),
        log:
            LAYOUT.log("multidomain", "{variant}"),
        benchmark:
            LAYOUT.benchmark("multidomain", "{variant}")
        shell:
            stage_shell("multidomain", launcher=True)

    rule domain_experts:
        """Each domain of the fine-tuned variant as a single-domain expert {arch}-{source}-md."""
        input:
            LAYOUT.multidomain_weights(MULTIDOMAIN["finetune_variant"]),
        output:
            weights=[protected(LAYOUT.expert_weights(e)) for e in DOMAIN_EXPERTS],
            metrics=[LAYOUT.expert_metrics(e) for e in DOMAIN_EXPERTS],
        params:
            identity=lambda wc, input: identity(
                init=input[0], arch=ARCHS[MULTIDOMAIN["arch"]], experts=DOMAIN_EXPERTS, out_dir=LAYOUT.experts_root()
            ),
            run_dir=LAYOUT.run_dir("domain_experts"),
        log:
            LAYOUT.log("domain_experts"),
        benchmark:
            LAYOUT.benchmark("domain_experts")
        shell:
            stage_shell("multidomain", step="domain_experts")


rule zoo_entry:
    """An expert of the zoo file beside the experts trained here: its metrics (parameters, depth, input size,
    GMACs; source and init "zoo"), nothing trained. It is fine-tuned and scored like the others."""
    input:
        lambda wc: local_files(ZOO[wc.expert]),
    output:
        metrics=LAYOUT.expert_metrics("{expert}"),
    wildcard_constraints:
        expert="|".join(map(re.escape, ZOO)) or NEVER,
    params:
        out_dir=lambda wc: LAYOUT.expert_dir(wc.expert),
    log:
        LAYOUT.log("zoo_training", "{expert}"),
    shell:
        f"python -m zoo_training.zoo '{ZOO_FILE}' '{{wildcards.expert}}' '{{params.out_dir}}' > {{log}} 2>&1"
