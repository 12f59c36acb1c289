rule data_prep:
    """Generate (mini) or download and split one dataset; few-shot subsets and probe sets. Beside
    these records the directory holds the data itself (arrays.npz, or manifest.csv and the
    resized images): data_prep.readers.PreparedDataset is the one reader."""
    output:
        splits=LAYOUT.splits("{dataset}"),
        classes=LAYOUT.data_record("{dataset}", "classes"),
        stats=LAYOUT.data_record("{dataset}", "stats"),
    params:
        identity=lambda wc, threads: identity(
            dataset=wc.dataset,
            out_dir=LAYOUT.data_dir(wc.dataset),
            shots=SHOTS if wc.dataset in TARGETS else ["full"],
            # null (every image) is said explicitly: identity() leaves None out
            probe_per_class="null" if PROBES["per_class"] is None else PROBES["per_class"],
            # the probe-size ablation and PARC's probe draws concern targets only
            probe_ablation_per_class=PROBES["ablation_per_class"] if wc.dataset in TARGETS else None,
            parc_draws=PROBES["parc_draws"] if wc.dataset in TARGETS else None,
            # downloads and manual archives, kept outside the results (reused by every benchmark)
            raw_dir=Path(config["raw_data"]) / wc.dataset,
            workers=threads,
        ),
        run_dir=lambda wc: LAYOUT.run_dir("data_prep", wc.dataset),
    threads: THREADS
    resources:
        **job_resources("data_prep", data_prep_runtime),
    log:
        LAYOUT.log("data_prep", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("data_prep", "{dataset}")
    shell:
        stage_shell("data_prep")
