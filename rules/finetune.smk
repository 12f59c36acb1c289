rule finetune:
    """Fine-tune one expert on every target x shot setting x learning rate (one process: start-up
    costs seconds on a CPU). Finished grid points survive a killed job in {output}.partial."""
    input:
        unpack(get_finetune_inputs),
    output:
        record=LAYOUT.record("finetune", "{expert}"),
        # Fig. 8's features, when the benchmark names a theta_f grid point
        theta_f=[LAYOUT.record("theta_f", "{expert}")] if THETA_F else [],
    params:
        identity=lambda wc, input, output, threads: identity(
            expert=wc.expert,
            expert_path=None if wc.expert in ZOO else input.weights,
            zoo_file=ZOO_FILE if wc.expert in ZOO else None,
            data_root=LAYOUT.data_root(),
            targets=TARGETS,
            # the multi-domain expert's domains: full target tasks only (the paper's Fig. 3 and 5)
            shots=["full"] if wc.expert not in ZOO and Expert.parse(wc.expert).kind == "md" else SHOTS,
            full_targets=FULL_TARGETS,
            seeds=FINETUNE_SEEDS,
            out=output.record,
            theta_f={**THETA_F, "probe_set": PROBE_SET} if THETA_F else None,
            theta_f_out=output.theta_f[0] if THETA_F else None,
            threads=threads,
        ),
        run_dir=lambda wc: LAYOUT.run_dir("finetune", wc.expert),
    threads: THREADS
    resources:
        **job_resources("finetune", finetune_runtime),
    log:
        LAYOUT.log("finetune", "{expert}"),
    benchmark:
        LAYOUT.benchmark("finetune", "{expert}")
    shell:
        stage_shell("finetune", launcher=True)
