"""The output registry (analysis.outputs): every entry renders its declared files with its columns
from the tables it declares and nothing else; the steps, the Snakemake inputs and the captions
derive from it; the command line renders exactly a step's entries."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.context import Context
from analysis.outputs import (CONDITIONS, KINDS, OUTPUTS, PAPERS, STEPS, caption, data_path, files, outputs, render,
                              step_inputs, write_captions)
from analysis.tables import load_table
from analysis_fixtures import GEN, PROBE, REPO, TOP_K, render as render_fixture, tables
from pipeline.layout import Layout

COMPARED = ["reproduced", "published", "difference", "source"]
# the columns of every file under results/ (other tools read them): fixed, whatever the code does
EVAL_METRICS = ["spearman", "pearson", "kendall", "weighted_tau", "top3_gain", "trials_to_best"]
COLUMNS = {
    "zoo_accuracy": ["expert", "arch", "source", "init", "source_test_accuracy", "source_images", "parameters", "depth",
                     "seconds"],
    "finetune": ["expert", "target", "shots", "lr", "test_accuracy", "seconds"],
    "scores": ["expert", "target", "shots", "probe", "method", "score", "seconds", "feature_seconds"],
    "targets": ["target", "shots", "images", "classes"],
    "multidomain_accuracy": ["variant", "source", "source_test_accuracy", "source_images", "seconds"],
    "selection_eval": ["method", "target", "shots", *EVAL_METRICS, "n_experts", "degenerate",
                       *[f"{m}_ci_{b}" for m in EVAL_METRICS for b in ("low", "high")]],
    "selection_summary": ["method", "shots", "n_targets", *[c for m in EVAL_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")],
                          "degenerate_targets", "ground_truth", "n_seeds"],
    "stability_leave_one_out": ["method", "shots", "left_out", "metric", "mean", "n_targets", "n_left_out", "loo_min",
                                "loo_max", "max_change", "most_influential"],
    "setup_stability": ["kind", "setup_a", "setup_b", "metric", "kendall_tau", "n_methods", "n_pairs"],
    "static_baselines": ["method", "shots", "n_targets", *[c for m in EVAL_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")],
                         "degenerate_targets", "ground_truth", "n_seeds"],
    "noise_ceiling": ["target", "shots", "spearman", "pearson", "kendall", "weighted_tau", "n_seed_pairs", "n_experts"],
    "finetune_ground_truth": ["expert", "target", "shots", "n_seeds", "best_on_test_accuracy", "best_on_test_lr",
                              "validation_accuracy", "validation_lr", "seed_std", "ground_truth"],
    "compute_cost": ["shots", "item", "method", "multiple"],
    "regret": ["method", "target", "shots", "budget", "abs_regret", "rel_regret", "rel_delta",
               *[f"{m}_ci_{b}" for m in ("abs_regret", "rel_regret", "rel_delta") for b in ("low", "high")]],
    "parc_protocol": ["method", "shots", "pearson_mean", "pearson_std", "n_draws"],
    "probe_size_ablation": ["method", "shots", "probe", "top3_gain", "n_targets"],
    "gr_table2": ["model", "features", "method", "full", "5"],
    "recommendations": ["expert", "target", "shots", "probe", "method", "score", "seconds", "feature_seconds"],
    "fig2_finetune_error": ["expert", "arch", "source", "init", "target", "shots", "test_error", "is_generalist",
                            "beats_generalist"],
    "fig4_top3_gain": ["shots", "target", "column", "gain"],
    "fig6a_trials_to_best": ["method", "shots", "trials_to_best", "trials_to_best_ci_low", "trials_to_best_ci_high",
                             "n_targets", "degenerate_targets", "kind"],
    "fig6b_spearman": ["method", "shots", "spearman", "spearman_ci_low", "spearman_ci_high", "n_targets",
                       "degenerate_targets", "kind"],
    "fig8_theta_f": ["expert", "target", "shots", "lr", "epoch", "within_class", "between_class", "contrast"],
    "table1_zoo_accuracy": ["arch", "init", "a", "b", "gen"],
    "table2_multidomain": ["source", "single_domain", "shared", "multi_bn", "adapter"],
    "table3_compute": ["shots", "brute_force", "top3_finetune:knn_loo", "top3_finetune:lfc", "top3_finetune:logistic",
                       "top3_finetune:random", "score:knn_loo", "score:lfc", "score:logistic", "score:random"],
    "fig1_error_vs_shots": ["target", "shots", "series", "expert", "test_error", "n_targets"],
    "fig3_multidomain_finetune": ["expert", "source", "init", "target", "group", "test_error", "beats_generalist"],
    "fig5_multidomain_selection": ["selection", "shots", "target", "column", "gain", "panel"],
    "fig7_probe_size": ["method", "shots", "probe", "top3_gain", "n_targets"],
    "parc_table1": ["method", "shots", "pearson_mean", "pearson_std", "n_draws", "time_ms", "time_ms_std",
                    "time_with_features_ms"],
    "parc_table2_modes": ["method", "shots"] + [f"{m}_{s}" for m in ("source_and_arch", "architecture", "source",
                                                                     "target") for s in ("mean", "std")],
    "parc_table3_depth": ["method", "shots", "original_mean", "original_std", "depth_mean", "depth_std", "n_draws"],
    "parc_fig2_pca": ["base", "pca_dim", "method", "shots", "pearson_mean", "pearson_std", "n_draws"],
    "wm_regret_b12": ["pool", "strategy", "target", "shots", "budget", "rel_regret", "abs_regret"],
    "wm_zero_regret": ["pool", "strategy", "shots", "budget", "zero_regret_fraction", "n_targets"],
    "published_deshpande_table1": ["arch", "init", "dataset", *COMPARED],
    "published_deshpande_table2": ["dataset", "variant", *COMPARED],
    "published_deshpande_table3": ["shots", "item", "method", *COMPARED],
    "published_parc_mean_pc": ["method", *COMPARED],
    "published_parc_table2": ["method", "mode", *COMPARED],
    "published_parc_table3": ["method", "calibration", *COMPARED],
    "published_guided_table2": ["method", *COMPARED],
}
COLUMNS["selection_eval_multidomain"] = COLUMNS["selection_eval"]
COLUMNS.update({"score_failures": ["expert", "target", "shots", "probe", "method", "error"],
                "data_notes": ["dataset", "kind", "shots", "class", "images", "path", "reason"],
                "published_methods": ["table", "method", "reproduced_method", "rows", "reproduced_rows", "note"],
                # a zoo benchmark's (step=ground_truth)
                "ground_truth_scores": ["expert", "target", "shots", "probe", "method", "score", "accuracy",
                                        "accuracy_source"],
                "ground_truth_eval": ["method", "target", "shots", "probe", "weighted_tau", "kendall", "pearson",
                                      "spearman", "n_experts"],
                "published_ground_truth": ["method", "target", *COMPARED],
                "ground_truth_weighted_tau": ["method", "target", "weighted_tau"],
                "not_computable": ["expert", "method", "reason"]})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every output of the small benchmark after step=tables (the published ones included)."""
    results = tmp_path_factory.mktemp("rendered")
    render_fixture(results, paper=True)
    # and a zoo benchmark's, from the same score records and a ground truth of the fixture's accuracies
    ctx = Context(GEN, TOP_K, PROBE, layout=Layout(results), records=_records(results / "records"))
    for output in outputs("ground_truth", multidomain=False, theta_f=False, paper=False, zoo=True):
        render(output, ctx, Layout(results))
    return results


def _records(root: Path) -> dict:
    """The per-job records step=tables combines, written from the small benchmark's tables."""
    t, root = tables(), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    zoo = []
    for i, row in enumerate(t["zoo_accuracy"].to_dict("records")):
        zoo.append(root / f"zoo_{i}.json")
        zoo[-1].write_text(json.dumps(row))
    rows = {}
    for name in ("finetune", "scores"):
        rows[name] = root / f"{name}.json"
        rows[name].write_text(json.dumps({"rows": t[name].to_dict("records")}))
    md = []
    for variant, d in t["multidomain_accuracy"].groupby("variant"):
        md.append(root / f"md_{variant}.json")
        md[-1].write_text(json.dumps({"variant": variant, "seconds": 1.0,
                                      "source_test_accuracy": dict(zip(d["source"], d["source_test_accuracy"])),
                                      "source_images": dict(zip(d["source"], d["source_images"].astype(int)))}))
    target = root / "data" / "t1"
    target.mkdir(parents=True)
    (target / "splits.json").write_text(json.dumps({"train": {"full": list(range(12)), "5": list(range(4))}}))
    (target / "classes.json").write_text(json.dumps(["x", "y"]))
    theta = root / "theta_f.npz"
    rng = np.random.default_rng(0)
    np.savez(theta, labels=np.repeat([0, 1], 3), epochs=np.array([0, 5]), features=rng.normal(size=(2, 6, 4)),
             expert=GEN, target="t1", shots="full", lr=0.01)
    # a ground truth of every expert on every target and shots it was fine-tuned on, and published taus
    best = t["finetune"].groupby(["expert", "target", "shots"])["test_accuracy"].max()
    truth = root / "ground_truth.csv"
    best.rename("accuracy").reset_index().rename(columns={"expert": "model"}).assign(source="fixture").to_csv(truth, index=False)
    published = root / "published.csv"
    pd.DataFrame({"method": ["logistic", "knn_loo"], "target": ["t1", "t2"], "weighted_tau": [0.5, 0.1],
                  "source": "fixture"}).to_csv(published, index=False)
    return {"zoo": zoo, "finetune": [rows["finetune"]], "scores": [rows["scores"]], "multidomain": md,
            "target_dirs": [target], "theta_f": [theta], "ground_truth": [truth], "published_scores": [published]}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_output_renders_its_files_from_its_declared_tables(name, rendered, tmp_path):
    """Each entry, given only the tables it declares (no layout to fall back on), writes its files
    with the columns other tools read."""
    output, given = OUTPUTS[name], tables()
    declared = {r: given[r] if r in given else load_table(data_path(Layout(rendered), r))
                for r in output.reads if r in given or data_path(Layout(rendered), r).is_file()}
    ctx = Context(GEN, TOP_K, PROBE, tables=declared, records=_records(tmp_path / "records"))
    layout = Layout(tmp_path / "out")
    assert render(output, ctx, layout) == files(layout, output)[0]
    for path in files(layout, output):
        assert path.is_file() and path.stat().st_size > 0, path
    if output.kind == "markdown":
        assert layout.summary().read_text().startswith("# Summary")
    else:
        assert list(pd.read_csv(files(layout, output)[-1], nrows=0).columns) == COLUMNS[name]


def test_registry_is_consistent():
    assert set(COLUMNS) | {"summary"} == set(OUTPUTS)
    for name, o in OUTPUTS.items():
        assert o.name == name and o.paper in PAPERS and o.kind in KINDS and o.step in STEPS
        assert set(o.when) <= set(CONDITIONS) and callable(o.renderer()), name
        earlier = list(OUTPUTS)[:list(OUTPUTS).index(name)]
        # reads name outputs; one of the same step is rendered before it
        assert all(r in OUTPUTS and (OUTPUTS[r].step != o.step or r in earlier) for r in o.reads), name
        assert caption(o, TOP_K, PROBE).startswith("**"), name
    md_only = {n for n, o in OUTPUTS.items() if "multidomain" in o.when}
    assert md_only == {"multidomain_accuracy", "selection_eval_multidomain", "table2_multidomain",
                       "fig3_multidomain_finetune", "fig5_multidomain_selection", "published_deshpande_table2"}
    assert [o.name for o in outputs("figures", multidomain=False, theta_f=True, paper=False)] == [
        "fig2_finetune_error", "fig4_top3_gain", "fig6a_trials_to_best", "fig6b_spearman", "fig8_theta_f"]
    assert not [o for o in outputs(multidomain=True, theta_f=True, paper=False) if o.name.startswith("published_")]
    # a zoo benchmark has the ground-truth step's outputs and nothing else; any other benchmark none of them
    zoo = [o.name for o in outputs(multidomain=False, theta_f=False, paper=False, zoo=True)]
    assert zoo == ["ground_truth_scores", "ground_truth_eval", "published_ground_truth", "ground_truth_weighted_tau",
                   "not_computable"]
    assert not set(zoo) & {o.name for o in outputs(multidomain=True, theta_f=True, paper=True)}
    # cheap to import for the Snakefile: no scipy, no matplotlib
    code = "import sys, analysis.outputs; assert not {'scipy', 'matplotlib'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_paths_inputs_and_captions(tmp_path):
    layout = Layout("R")
    assert files(layout, OUTPUTS["fig1_error_vs_shots"]) == [Path("R/figures/fig1_error_vs_shots.png"),
                                                             Path("R/figures/fig1_error_vs_shots.csv")]
    assert files(layout, OUTPUTS["parc_table1"]) == [Path("R/tables/parc_table1.csv")]
    assert files(layout, OUTPUTS["summary"]) == [Path("R/summary.md")]
    flags = dict(multidomain=False, theta_f=False, paper=False)
    assert step_inputs(layout, "evaluate", **flags) == [layout.table(n) for n in
                                                        ("zoo_accuracy", "finetune", "scores", "targets")]
    assert step_inputs(layout, "figures", **flags) == [layout.table(n) for n in ("finetune", "scores", "recommendations",
                                                                                 "selection_summary", "noise_ceiling")]
    assert layout.table("multidomain_accuracy") in step_inputs(layout, "artifacts", **{**flags, "multidomain": True})
    folder = write_captions(tmp_path, top_k=5, probe_set="per_class_10")
    assert sorted(p.stem for p in folder.glob("*.rst")) == sorted(OUTPUTS)
    fig7 = (folder / "fig7_probe_size.rst").read_text()
    assert "top-5" in fig7 and "``per_class_10``: 10 per class" in fig7 and "25" not in fig7
    assert "``{arch}-{source}``" in (folder / "zoo_accuracy.rst").read_text()
    # every output that reads the fine-tune table says which ground truth it shows
    assert "lr_selection: test" in (folder / "selection_eval.rst").read_text()
    assert "lr_selection" not in (folder / "zoo_accuracy.rst").read_text()
    write_captions(tmp_path / "v", top_k=5, probe_set="per_class_10", lr_selection="validation")
    assert "the lr chosen on validation data" in (tmp_path / "v" / "fig6b_spearman.rst").read_text()
    stamp = (folder / "fig7_probe_size.rst").stat().st_mtime_ns
    write_captions(tmp_path, top_k=5, probe_set="per_class_10")  # unchanged text: not rewritten
    assert (folder / "fig7_probe_size.rst").stat().st_mtime_ns == stamp


def test_analysis_imports_no_torch():
    modules = ", ".join(f"analysis.{p.stem}" for p in sorted((REPO / "analysis").glob("*.py")) if p.stem != "__init__")
    code = f"import sys, {modules}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_modules_stay_small_and_import_no_private_names():
    for path in sorted((REPO / "analysis").glob("*.py")):
        assert len(path.read_text().splitlines()) <= 450, path.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("analysis", "pipeline"):
                assert not [a.name for a in node.names if a.name.startswith("_")], (path.name, node.module)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis", "preset=mini/analysis", *args, "hydra.job.chdir=false"],
                          cwd=REPO, capture_output=True, text=True, timeout=180)


def test_cli_renders_exactly_each_steps_outputs(tmp_path):
    records, res = _records(tmp_path / "records"), tmp_path / "res"
    lst = lambda paths: "[" + ",".join(str(p) for p in paths) + "]"  # noqa: E731
    hydra = f"hydra.run.dir={tmp_path / 'hydra'}"
    settings = (f"reference_expert={GEN}", f"probe_set={PROBE}", "multidomain=true", "++pools={all:null,res:[resnet]}")
    r = _cli("step=tables", f"results_dir={res}", f"zoo_records={lst(records['zoo'])}",
             f"finetune_records={lst(records['finetune'])}", f"score_records={lst(records['scores'])}",
             f"multidomain_records={lst(records['multidomain'])}", f"target_dirs={lst(records['target_dirs'])}", hydra)
    assert r.returncode == 0, r.stderr
    printed = [line for line in r.stdout.splitlines() if line.startswith(str(res))]  # Hydra logs there too
    for step in ("evaluate", "stability", "figures", "artifacts"):
        extra = [f"theta_f_records={lst(records['theta_f'])}"] if step == "figures" else []
        r = _cli(f"step={step}", f"results_dir={res}", *settings, *extra, hydra)
        assert r.returncode == 0, r.stderr
        printed += [line for line in r.stdout.splitlines() if line.startswith(str(res))]
    expected = [files(Layout(res), o)[0] for o in outputs(multidomain=True, theta_f=True, paper=False)]
    assert [Path(p) for p in printed] == expected
    written = {p.relative_to(res) for p in res.rglob("*") if p.is_file()}
    assert written == {f.relative_to(res) for o in outputs(multidomain=True, theta_f=True, paper=False)
                       for f in files(Layout(res), o)}
    assert len(pd.read_csv(res / "tables" / "finetune.csv")) == len(tables()["finetune"])


def test_cli_user_mistakes_are_one_line(tmp_path):
    res, hydra = tmp_path / "res", f"hydra.run.dir={tmp_path / 'hydra'}"
    tabs = res / "tables"
    tabs.mkdir(parents=True)
    for name, df in tables().items():
        df.to_csv(tabs / f"{name}.csv", index=False)
    for args, msg in ((("step=evaluate", "reference_expert=vit-nope", f"probe_set={PROBE}"), "not in the fine-tune table"),
                      (("step=evaluate", f"probe_set={PROBE}"), "needs reference_expert"),
                      (("step=figures", f"reference_expert={GEN}"), "needs probe_set"),
                      (("step=plot",), "unknown step")):
        r = _cli(f"results_dir={res}", *args, hydra)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _cli(f"results_dir={tmp_path / 'empty'}", "step=evaluate", f"reference_expert={GEN}", f"probe_set={PROBE}", hydra)
    assert r.returncode == 1 and "table not found" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # a programming error (here a KeyError on a table without its method column) keeps its traceback
    tables()["scores"].drop(columns="method").to_csv(tabs / "scores.csv", index=False)
    r = _cli(f"results_dir={res}", "step=evaluate", f"reference_expert={GEN}", f"probe_set={PROBE}", hydra)
    assert r.returncode != 0 and "Traceback" in r.stderr and "KeyError" in r.stderr, r.stderr
