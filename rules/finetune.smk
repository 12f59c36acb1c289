rule finetune:
    """Fine-tune one expert on every target x shot setting x learning rate (one process: start-up
    costs seconds on a CPU). Finished grid points survive a killed job in {output}.partial."""
    input:
        weights=RESULTS / "experts/{expert}/model.pt",
        targets=[data_dir(t) / "splits.json" for t in TARGETS],
    output:
        record=RESULTS / "records/finetune/{expert}.json",
        # Fig. 8's features, when the benchmark names a theta_f grid point
        theta_f=[RESULTS / "records/theta_f/{expert}.npz"] if THETA_F else [],
    params:
        seed=SEED,
        targets=hydra_list(TARGETS),
        # the multi-domain expert's domains: full target tasks only (the paper's Fig. 3 and 5)
        shots=lambda wc: hydra_list(["full"] if is_domain_expert(wc.expert) else SHOTS),
        full_targets=hydra_list(FULL_TARGETS),
        lrs=hydra_list(config["finetune_lrs"]),
        theta_f=lambda wc, output: (f"'theta_f={hydra_dict(THETA_F)}' theta_f_out={output.theta_f[0]}"
                                    if THETA_F else ""),
        data_root=RESULTS / "data",
        run_dir=lambda wc: run_dir("finetune", wc.expert),
        overrides=overrides("finetune"),
    threads: THREADS
    resources:
        gpu=0,
    log:
        RESULTS / "logs/finetune/{expert}.log",
    benchmark:
        RESULTS / "benchmarks/finetune/{expert}.tsv"
    shell:
        "python -m finetune expert={wildcards.expert} expert_path={input.weights} data_root={params.data_root} "
        "'targets={params.targets}' 'shots={params.shots}' 'full_targets={params.full_targets}' "
        "'lrs={params.lrs}' out={output.record} {params.theta_f} "
        "seed={params.seed} threads={threads} {params.overrides} "
        "hydra.run.dir={params.run_dir} hydra.job.chdir=false > {log} 2>&1"
