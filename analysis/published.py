"""The papers' published numbers beside the reproduced ones, and the key numbers of a run.

``report/published/*.csv`` hold numbers transcribed from the papers' tables (each row's ``source``
names paper and table; method, dataset and shot names are this project's):

- deshpande_table1.csv: expert source accuracy (arch, init: scratch = x / generalist = check mark,
  dataset), plus the "Reported Acc." literature row (arch "reported");
- deshpande_table2.csv: multi-domain accuracies (single_domain, shared, multi_bn, adapter);
- deshpande_table3.csv: compute multiples (brute_force, top3_finetune, score per method);
- parc_mean_pc.csv: PARC's mean Pearson (x100) and time per transfer (ms) per method, from its
  Table 1, Fig. 2b (PCA variants ``<m>_pca<d>``) and Table 4 (PARC, "+l" rows);
- parc_table2.csv (evaluation modes), parc_table3.csv (with the "+l" depth term);
- guided_table2.csv: Guided Recommendation's Table 2 (mean Pearson per benchmark, LR / FM
  recommenders trained on ImageNet history or leave-one-out).

`compare` puts reproduced and published values side by side with their difference; the
``compare_*`` adapters bring each reproduced table into the published shape. Every published
comparison uses the variant its paper used: `reproduced_method` (the one mapping) sends a row of
method ``m`` to the benchmark's ``ref_<m>`` (a selection variant with ``as_reference: true``,
configs/benchmark/paper.yaml) where the paper's numbers came from its reference code
(REFERENCE_CODE_METHODS); PARC's "<m>+l" rows read parc_table3_depth; PARC's RSA / DDS rows read
the variant with the probe network they name (PARC_PROBE_NETWORK_ROWS: ImageNet-pretrained ResNet-50
or AlexNet fine-tuned on the target, PARC Sec. 4). ``published_methods`` lists, per published method,
what it was compared with and why. They mean something
only on the paper benchmark (`is_paper_benchmark`): the outputs ``published_<name>`` exist there only.
Guided Recommendation's benchmarks (19 fine-grained, DomainNet, VTAB) are not this benchmark's
targets: its comparison is a reference point, not a reproduction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import LR_SELECTION_LABEL, REFERENCE_PREFIX, shots_order

PUBLISHED_DIR = Path(__file__).resolve().parents[1] / "report" / "published"
PAPER_SOURCES = ("resisc45", "food101", "logo2k", "landmarks_v2", "inaturalist2019", "imaterialist2019",
                 "imagenet", "places365")
PAPER_ARCHS = ("resnet", "densenet")  # ResNet-101, DenseNet-169
PARC_MODES = ("source_and_arch", "architecture", "source", "target")


def load_published(name: str) -> pd.DataFrame:
    """One transcribed table (``report/published/<name>.csv``); text columns never NaN."""
    df = pd.read_csv(PUBLISHED_DIR / f"{name}.csv", dtype={"shots": str, "method": str, "init": str})
    text = df.select_dtypes(exclude="number").columns
    df[text] = df[text].fillna("")
    return df


def is_paper_zoo(sources, archs) -> bool:
    """True for the paper's zoo: every paper source, only ResNet / DenseNet experts (also what the
    Snakefile asks to decide whether the published comparisons are outputs)."""
    return set(PAPER_SOURCES) <= set(sources) and set(archs) <= set(PAPER_ARCHS)


def is_paper_benchmark(zoo: pd.DataFrame) -> bool:
    """`is_paper_zoo` for a zoo table."""
    return is_paper_zoo(zoo["source"], zoo["arch"])


# --------------------------------------------------------------------------- which variant a row compares

# paper -> the published methods whose numbers came from the paper's reference code (a method with
# "+l" counts by its base): such a row compares with the benchmark's variant "ref_<method>"
# (selection.variants with ``as_reference: true``; "ref_heuristic" is computed by the analysis)
# where the benchmark has it, else with "<method>". PARC (dbolya/parc): every score but DDS, whose
# default equals the reference code (tests/data/reference_exact.json); Deshpande: Domain
# Similarity (the cvpr18-inaturalist-transfer notebook, min_images 5), the other scores as default.
REFERENCE_CODE_METHODS = {
    "parc": frozenset({"parc", "parc_pca32", "rsa", "rsa_pca32", "rsa_pca64", "rsa_alexnet_probe", "leep", "nce",
                       "hscore", "hscore_pca32", "knn_loo", "knn_loo_pca256", "logistic", "logistic_pca256",
                       "heuristic"}),
    "deshpande": frozenset({"domain_similarity"}),
}
CALIBRATED = "+l"  # PARC's depth term (analysis.strategies.CALIBRATED)
# PARC's RSA / DDS rows and the probe network each names (Bolya et al. Sec. 4, Table 1: ImageNet-pretrained
# AlexNet / ResNet-50 fine-tuned on the target; "RSA/DDS R-50" in Tables 2-4 and Fig. 2b): published
# method -> (the benchmark's variant reading that network, before any "ref_"; the network, one of the
# benchmark's probe_networks, configs/probe_network/<network>.yaml). Deshpande's rsa / dds rows keep
# the benchmark's first probe network (its App. C ResNet-18).
PARC_PROBE_NETWORK_ROWS = {
    "rsa": ("rsa_resnet50_probe", "resnet50"),
    "rsa_pca32": ("rsa_resnet50_probe_pca32", "resnet50"),
    "rsa_pca64": ("rsa_resnet50_probe_pca64", "resnet50"),
    "dds": ("dds_resnet50_probe", "resnet50"),
    "dds_pca64": ("dds_resnet50_probe_pca64", "resnet50"),
    "rsa_alexnet_probe": ("rsa_alexnet_probe", "alexnet"),
    "dds_alexnet_probe": ("dds_alexnet_probe", "alexnet"),
}
PROBE_NETWORK_NOTES = {
    "resnet50": "probe network resnet50: PARC's ImageNet-pretrained ResNet-50 (timm resnet50.tv_in1k) fine-tuned "
                "on the target",
    "alexnet": "probe network alexnet: PARC's ImageNet-pretrained AlexNet (torchvision IMAGENET1K_V1) fine-tuned "
               "on the target",
}


def _split(paper: str, method: str) -> tuple[str, str, str, str | None]:
    """A published method -> (its base without "+l", the variant it reads before any "ref_", the "+l"
    suffix or "", the PARC probe network it names or None)."""
    base, plus = (method[:-len(CALIBRATED)], CALIBRATED) if method.endswith(CALIBRATED) else (method, "")
    variant, network = PARC_PROBE_NETWORK_ROWS.get(base, (base, None)) if paper == "parc" else (base, None)
    return base, variant, plus, network


def reproduced_method(paper: str, method: str, available) -> str:
    """The reproduced method a published row of ``paper`` compares with (the one mapping of
    every comparison). A PARC RSA / DDS row first becomes the variant reading the probe network it
    names (PARC_PROBE_NETWORK_ROWS: "rsa_pca64" -> "rsa_resnet50_probe_pca64"); then "ref_" is put
    before it (a trailing "+l" kept) when the row's method is one of REFERENCE_CODE_METHODS[paper]
    and the benchmark has that "ref_" variant among ``available``."""
    base, variant, plus, _ = _split(paper, method)
    ref = f"{REFERENCE_PREFIX}{variant}{plus}"
    return ref if base in REFERENCE_CODE_METHODS.get(paper, ()) and ref in set(available) else f"{variant}{plus}"


def _note(paper: str, published: str, reproduced) -> str:
    """Why a row compares with what it does (reference variant, probe network)."""
    base, variant, _, network = _split(paper, published)
    parts = []
    if isinstance(reproduced, str) and reproduced.startswith(REFERENCE_PREFIX):
        parts.append(f"reference code: {reproduced}")
    elif base in REFERENCE_CODE_METHODS.get(paper, ()):
        parts.append(f"default variant: this benchmark has no {REFERENCE_PREFIX}{variant}")
    if network is not None:
        parts.append(PROBE_NETWORK_NOTES[network])
    return "; ".join(parts)


def compare(reproduced: pd.DataFrame, published: pd.DataFrame, keys, value: str = "value",
            paper: str | None = None) -> pd.DataFrame:
    """Every published row (on ``keys``) with the reproduced ``value`` beside it: columns keys,
    reproduced, published, difference (reproduced - published; NaN where not reproduced), source,
    reproduced_method and note. With a ``method`` key and ``paper``, a row's method is first
    mapped to the reproduced method (`reproduced_method`: the reference-code variant where the
    benchmark has one), recorded in ``reproduced_method``; ``note`` says why (`_note`)."""
    keys = list(keys)
    norm = lambda df: df.assign(**{k: df[k].fillna("").astype(str) for k in keys})  # noqa: E731
    pub = norm(published)[keys + [value] + (["source"] if "source" in published else [])]
    rep = norm(reproduced)[keys + [value]].drop_duplicates(keys)
    pub = pub.rename(columns={value: "published"})
    if paper is not None and "method" in keys:
        available = set(rep["method"])
        pub["reproduced_method"] = [reproduced_method(paper, m, available) for m in pub["method"]]
        pub["note"] = [_note(paper, m, r) for m, r in zip(pub["method"], pub["reproduced_method"])]
        on = [k for k in keys if k != "method"] + ["reproduced_method"]
        rep = rep.rename(columns={"method": "reproduced_method", value: "reproduced"})
        out = pub.merge(rep, on=on, how="left")
    else:
        out = pub.merge(rep.rename(columns={value: "reproduced"}), on=keys, how="left")
        out = out.assign(reproduced_method=out["method"] if "method" in keys else "", note="")
    out["difference"] = out["reproduced"].astype(float) - out["published"].astype(float)
    return out.reindex(columns=keys + ["reproduced", "published", "difference", "source", "reproduced_method", "note"])


def compare_deshpande_table1(table1: pd.DataFrame) -> pd.DataFrame:
    """table1_zoo_accuracy (arch, init, one column per source) vs Deshpande Table 1."""
    rep = table1.melt(id_vars=["arch", "init"], var_name="dataset", value_name="value")
    pub = load_published("deshpande_table1")
    pub = pub[pub["arch"] != "reported"].rename(columns={"accuracy": "value"})
    return compare(rep, pub, ["arch", "init", "dataset"])


def compare_deshpande_table2(table2: pd.DataFrame) -> pd.DataFrame:
    """table2_multidomain (source, single_domain, shared, multi_bn, adapter) vs Deshpande Table 2."""
    rep = table2.melt(id_vars=["source"], var_name="variant", value_name="value").rename(columns={"source": "dataset"})
    pub = load_published("deshpande_table2").rename(columns={"accuracy": "value"})
    return compare(rep, pub, ["dataset", "variant"])


def compare_deshpande_table3(compute_cost: pd.DataFrame) -> pd.DataFrame:
    """compute_cost.csv (shots, item, method, multiple) vs Deshpande Table 3."""
    pub = load_published("deshpande_table3").rename(columns={"multiple": "value"})
    return compare(compute_cost.rename(columns={"multiple": "value"}), pub, ["shots", "item", "method"], paper="deshpande")


def _full(df: pd.DataFrame, shots: str) -> pd.DataFrame:
    return df[df["shots"].astype(str) == shots] if "shots" in df else df


def compare_parc_mean_pc(parc_table1: pd.DataFrame, depth: pd.DataFrame | None = None,
                         shots: str = "full") -> pd.DataFrame:
    """parc_table1 (or parc_protocol.csv) mean Pearson x100 vs PARC Table 1, Fig. 2b and Table 4;
    Table 4's "<m>+l" rows from parc_table3_depth (``depth``: its ``depth_mean`` of method m),
    the table that holds PARC's depth term."""
    rep = _full(parc_table1, shots).rename(columns={"pearson_mean": "value"})[["method", "value"]]
    if depth is not None:
        plus = _full(depth, shots)
        rep = pd.concat([rep, pd.DataFrame({"method": plus["method"] + CALIBRATED, "value": plus["depth_mean"]})],
                        ignore_index=True)
    return compare(rep, load_published("parc_mean_pc").rename(columns={"pearson_mean": "value"}), ["method"],
                   paper="parc")


def compare_parc_table2(modes: pd.DataFrame, shots: str = "full") -> pd.DataFrame:
    """parc_table2_modes (<mode>_mean columns) vs PARC Table 2."""
    rep = _full(modes, shots).melt(id_vars=["method"], value_vars=[f"{m}_mean" for m in PARC_MODES],
                                   var_name="mode", value_name="value")
    rep["mode"] = rep["mode"].str.removesuffix("_mean")
    return compare(rep, load_published("parc_table2").rename(columns={"pearson_mean": "value"}), ["method", "mode"],
                   paper="parc")


def compare_parc_table3(depth: pd.DataFrame, shots: str = "full") -> pd.DataFrame:
    """parc_table3_depth (original_mean, depth_mean) vs PARC Table 3 ("calibration": original / depth)."""
    def long(df):
        return df.melt(id_vars=["method"], value_vars=["original_mean", "depth_mean"], var_name="calibration",
                       value_name="value").assign(calibration=lambda d: d["calibration"].str.removesuffix("_mean"))
    pub = load_published("parc_table3")
    pub = long(pub).merge(pub[["method", "source"]], on="method")
    return compare(long(_full(depth, shots)), pub, ["method", "calibration"], paper="parc")


def compare_guided_table2(gr_table2: pd.DataFrame, shots: str = "full", benchmark: str = "fine_grained_19",
                          training: str = "loo") -> pd.DataFrame:
    """gr_table2.csv's ``shots`` column vs Guided Recommendation Table 2 on ``benchmark``
    (feature-based rows and the recommenders trained with ``training``: "loo" as here, or "imagenet")."""
    pub = load_published("guided_table2")
    pub = pub[(pub["benchmark"] == benchmark) & pub["training"].isin(["", training])]
    rep = gr_table2.rename(columns={shots: "value"}) if shots in gr_table2 else gr_table2.assign(value=np.nan)
    return compare(rep, pub.rename(columns={"pearson": "value"}), ["method"], paper="guided")


# published table -> (the reproduced tables it is compared with, adapter taking them in that order);
# each is the output published_<name> of analysis.outputs, on the paper benchmark only
COMPARISONS = {
    "deshpande_table1": (("table1_zoo_accuracy",), compare_deshpande_table1),
    "deshpande_table2": (("table2_multidomain",), compare_deshpande_table2),
    "deshpande_table3": (("compute_cost",), compare_deshpande_table3),
    "parc_mean_pc": (("parc_table1", "parc_table3_depth"), compare_parc_mean_pc),
    "parc_table2": (("parc_table2_modes",), compare_parc_table2),
    "parc_table3": (("parc_table3_depth",), compare_parc_table3),
    "guided_table2": (("gr_table2",), compare_guided_table2),
}


def published_table(name: str):
    """The renderer of output ``published_<name>``: ctx -> `compare` of the reproduced tables
    (read back from their CSVs) with the published one."""
    reproduced, adapter = COMPARISONS[name]

    def render(ctx) -> pd.DataFrame:
        return adapter(*(ctx.table(t) for t in reproduced)).drop(columns=MAPPING_COLUMNS)
    render.__doc__ = f"{adapter.__doc__.splitlines()[0]} (reads {', '.join(reproduced)})"
    return render


MAPPING_COLUMNS = ["reproduced_method", "note"]  # `compare`'s, kept out of published_<name> (fixed columns)
METHOD_COMPARISONS = ("deshpande_table3", "parc_mean_pc", "parc_table2", "parc_table3", "guided_table2")  # method-keyed
METHOD_COLUMNS = ["table", "method", "reproduced_method", "rows", "reproduced_rows", "note"]


def published_methods(ctx) -> pd.DataFrame:
    """published_methods.csv: for every method of a method-keyed published table (Deshpande Table 3,
    PARC Tables 1-4 and Fig. 2b, Guided Recommendation Table 2), the reproduced method its rows are
    compared with (`reproduced_method`: the reference-code variant where the benchmark has one),
    its published rows and how many got a reproduced value, and a note: the variant and probe
    network used, or why a row has no reproduced value."""
    frames = []
    for name in METHOD_COMPARISONS:
        reproduced, adapter = COMPARISONS[name]
        c = adapter(*(ctx.table(t) for t in reproduced))
        c = c[c["method"] != ""].assign(table=name, has=lambda d: d["reproduced"].notna(),
                                         reproduced_method=lambda d: d["reproduced_method"].fillna(""))
        per_method = c.groupby(["table", "method", "reproduced_method", "note"], sort=False, as_index=False)
        frames.append(per_method.agg(rows=("has", "size"), reproduced_rows=("has", "sum")))
    out = pd.concat(frames, ignore_index=True)
    missing = out["reproduced_rows"] == 0
    why = "no reproduced value: " + out.loc[missing, "reproduced_method"] + " is not in the results"
    out.loc[missing, "note"] = why + out.loc[missing, "note"].map(lambda n: f"; {n}" if n else "")
    return out[METHOD_COLUMNS]


published_deshpande_table1, published_deshpande_table2, published_deshpande_table3 = (
    published_table(f"deshpande_table{i}") for i in (1, 2, 3))
published_parc_mean_pc, published_parc_table2, published_parc_table3 = (
    published_table(n) for n in ("parc_mean_pc", "parc_table2", "parc_table3"))
published_guided_table2 = published_table("guided_table2")


# --------------------------------------------------------------------------- summary.md

def _md_table(df: pd.DataFrame, digits: int = 2) -> str:
    """A pipe table (no tabulate dependency)."""
    def fmt(v):
        return ("" if np.isnan(v) else f"{v:.{digits}f}") if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _by_shots(df: pd.DataFrame, value: str, index: str = "method", aggregate: str = "mean") -> pd.DataFrame:
    """``aggregate`` (mean; "first" for values already one per cell) of ``value`` per ``index`` (rows, in
    order of appearance) and shots (columns)."""
    from analysis.protocols import method_order
    wide = df.groupby([index, "shots"])[value].agg(aggregate).unstack("shots")
    rows = method_order(wide.index) if index == "method" else list(dict.fromkeys(df[index]))
    wide = wide.reindex(index=rows, columns=shots_order(wide.columns))
    wide.columns.name = None
    return wide.reset_index()


def _failures_and_notes(ctx) -> list[str]:
    """summary.md's "Failed scores" (every failed method: expert, target, shots, probe, error) and
    "Data notes" (short classes, dropped files and classes per target) sections, when non-empty."""
    out = []
    failures = ctx.table("score_failures", optional=True)
    if failures is not None and len(failures):
        out += ["## Failed scores", "", f"{len(failures)} score(s) raised an error and are left out where they "
                f"failed ({', '.join(sorted(failures['method'].astype(str).unique()))}):", "",
                _md_table(failures.fillna("")), ""]
    notes = ctx.table("data_notes", optional=True)
    if notes is not None and len(notes):
        counts = notes.groupby(["dataset", "kind"]).size()
        out += ["## Data notes", "", "What data preparation changed in the targets: "
                + "; ".join(f"{d}: {n} {k.replace('_', ' ')}(s)" for (d, k), n in counts.items()) + ".", "",
                _md_table(notes.assign(images=notes["images"].map(lambda v: "" if pd.isna(v) else str(int(v))))
                          .fillna("")), ""]
    return out


def summary_markdown(ctx) -> str:
    """summary.md: the key numbers of a run as Markdown: mean over targets of Spearman, Pearson,
    top-k gain and trials to best per method (selection_eval), PARC's mean Pearson over probe
    draws (parc_protocol), the fraction of targets with zero regret at budgets 1-3
    (wm_zero_regret's data, else computed from the tables), the failed scores and data notes
    (`_failures_and_notes`) and, on the paper benchmark, the mean absolute difference to each
    published table (published_*). Missing tables are skipped or
    recomputed from the result tables."""
    from analysis.outputs import OUTPUTS
    from analysis.protocols import evaluate_selection
    from analysis.which_model import WM_ZERO, pool_rankings, zero_regret_curve
    k = ctx.top_k
    out = ["# Summary", ""]
    summary = ctx.table("selection_summary", optional=True)
    ev = ctx.table("selection_eval", optional=True)
    if summary is None and ev is None:
        ev = evaluate_selection(ctx.single("finetune"), ctx.single("scores"), ctx.reference_expert, k, ctx.probe_set)
    titles = (("spearman", "Spearman correlation"), ("pearson", "Pearson correlation"),
              (f"top{k}_gain", f"top-{k} gain over the generalist (% points)"), ("trials_to_best", "trials to the best expert"))
    if summary is not None:
        out += [f"Ground truth: {LR_SELECTION_LABEL[ctx.lr_selection]}, mean over the fine-tuning seeds; "
                "[low, high]: 95% bootstrap interval over targets and seeds (selection_summary.csv)", ""]
    for value, title in titles:
        if summary is not None and value in summary:
            shown = summary.assign(**{value: [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" if lo == lo else f"{m:.3g}" for m, lo, hi in
                                              zip(summary[value], summary[f"{value}_ci_low"], summary[f"{value}_ci_high"])]})
            out += [f"## Mean {title} over targets", "", _md_table(_by_shots(shown, value, aggregate="first")), ""]
        elif ev is not None and value in ev:
            out += [f"## Mean {title} over targets", "", _md_table(_by_shots(ev, value)), ""]
    parc = ctx.table("parc_protocol", optional=True)
    if parc is not None and len(parc):
        parc = parc.assign(pearson=[f"{m:.1f} ± {s:.1f}" if s == s else f"{m:.1f}" for m, s in zip(parc["pearson_mean"], parc["pearson_std"])])
        out += ["## PARC: mean Pearson (x100) over probe draws", "",
                _md_table(parc.pivot(index="method", columns="shots", values="pearson")
                          .reindex(columns=shots_order(parc["shots"])).reset_index().rename_axis(columns=None)), ""]
    zero = ctx.table("wm_zero_regret", optional=True)
    if zero is None:
        zero = zero_regret_curve(*pool_rankings(ctx, None), ctx.probe_set).assign(pool="all")
    zero = zero[zero["budget"] <= 3]
    for pool, z in zero.groupby("pool", sort=False):
        wide = z.pivot_table(index="strategy", columns=["shots", "budget"], values="zero_regret_fraction")
        columns = [(s, b) for s in shots_order(z["shots"]) for b in sorted(z["budget"].unique())]
        wide = wide.reindex(index=[s for s in WM_ZERO if s in wide.index] + sorted(set(wide.index) - set(WM_ZERO)),
                            columns=columns)
        wide.columns = [f"{s}, B={b}" for s, b in columns]
        out += [f"## Fraction of targets with zero regret (pool: {pool})", "",
                _md_table(wide.rename_axis("strategy").reset_index()), ""]
    out += _failures_and_notes(ctx)
    published = sorted(n for n in OUTPUTS if n.startswith("published_"))
    diffs = [(n.removeprefix("published_"), d) for n in published
             if (d := ctx.table(n, optional=True)) is not None and "difference" in d]
    if diffs:
        out += ["## Reproduced vs published (mean |difference| over the rows reproduced)", "",
                _md_table(pd.DataFrame([{"table": n, "rows": int(d["difference"].notna().sum()),
                                         "mean_abs_difference": float(d["difference"].abs().mean())}
                                        for n, d in diffs])), ""]
    return "\n".join(out)
