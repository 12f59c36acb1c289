rule selection:
    """Selection for one expert, in one process (importing torch and timm costs ~7 s per process):
    one forward pass per (target, shots, probe set) writes the caches every score shares (LGC's
    projected per-sample gradients on the paper's probe sets, the expert's own source features),
    then every selection method runs on them (numpy only) into one record."""
    input:
        unpack(get_selection_inputs),
    output:
        caches=expert_caches("{expert}"),
        record=LAYOUT.record("scores", "{expert}"),
    wildcard_constraints:
        expert="|".join(map(re.escape, TRAINED_EXPERTS)) or NEVER,
    params:
        identity=lambda wc, input, output, threads: identity(
            expert=wc.expert,
            # a zoo expert is loaded by name from the zoo file and has no source data here
            expert_path=None if wc.expert in ZOO else input.weights,
            zoo_file=ZOO_FILE if wc.expert in ZOO else None,
            data_root=LAYOUT.data_root(),
            targets=TARGETS,
            shots=SHOTS,
            probe_set=PROBE_SET,
            source_dir=None if wc.expert in ZOO else LAYOUT.data_dir(Expert.parse(wc.expert).source),
            cache_dir=LAYOUT.feature_dir(wc.expert),
            probe_dir=LAYOUT.probe_model_dir(),
            probe_network_names=PROBE_NETWORKS,
            methods=SELECTION["methods"],
            plugins=SELECTION["plugins"],
            variants=SELECTION["variants"] or {},
            out=output.record,
            threads=threads,
        ),
        run_dir=lambda wc: LAYOUT.run_dir("selection", wc.expert),
    threads: THREADS
    resources:
        **job_resources("selection", selection_runtime),
    log:
        LAYOUT.log("selection", "{expert}"),
    benchmark:
        LAYOUT.benchmark("selection", "{expert}")
    shell:
        stage_shell("selection", launcher=True)


# an expert of the zoo file: the same job, but it has no source images here (Domain Similarity: not computable)
use rule selection as selection_zoo with:
    output:
        caches=expert_caches("{expert}", source=False),
        record=LAYOUT.record("scores", "{expert}"),
    wildcard_constraints:
        expert="|".join(map(re.escape, ZOO)) or NEVER,


rule probe_model:
    """One of RSA/DDS's probe networks (configs/probe_network/<network>.yaml) trained on one target (per
    shot setting) and its probe-set features; the networks of a target train in parallel."""
    input:
        LAYOUT.splits("{target}"),
    output:
        probe_model_caches("{network}", "{target}"),
        LAYOUT.probe_model_manifest("{network}", "{target}"),
    params:
        identity=lambda wc, threads: identity(
            targets=[wc.target],
            shots=SHOTS,
            probe_set=PROBE_SET,
            data_root=LAYOUT.data_root(),
            probe_dir=LAYOUT.probe_model_dir(),
            probe_network_names=[wc.network],
            methods=SELECTION["methods"],
            threads=threads,
        ),
        run_dir=lambda wc: LAYOUT.run_dir("probe_model", wc.network, wc.target),
    threads: THREADS
    resources:
        **job_resources("probe_model", probe_model_runtime),
    log:
        LAYOUT.log("probe_model", "{network}", "{target}"),
    benchmark:
        LAYOUT.benchmark("probe_model", "{network}", "{target}")
    shell:
        stage_shell("selection", step="probe_model", launcher=True)
