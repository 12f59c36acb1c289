"""A small benchmark's result tables with hand-computable answers, shared by the analysis tests:
a zoo of 6 single-domain experts and the 3 domains of a multi-domain expert, 3 targets at 2 shot
settings, scores on the main probe set, the probe-size ablation's sets and 2 PARC draws."""
from pathlib import Path

import pandas as pd

from analysis.context import Context
from analysis.outputs import OUTPUTS, files
from analysis.tables import parse_expert
from pipeline.layout import Layout

REPO = Path(__file__).resolve().parents[1]
GEN = "resnet-gen"
PROBE = "per_class_25"  # the main probe set
TOP_K = 3
TARGETS = ("t1", "t2", "t3")
# best fine-tuned accuracy on the full targets; best: t1 resnet-a-init, t2 and t3 resnet-b
ACC = {"resnet-gen": (70, 60, 50), "densenet-gen": (68, 62, 48), "resnet-a": (80, 55, 45),
       "resnet-a-init": (85, 58, 52), "densenet-a": (75, 65, 40), "resnet-b": (60, 70, 55)}
ACC_MD = {"resnet-gen-md": (72, 61, 49), "resnet-a-md": (78, 59, 51), "resnet-b-md": (65, 66, 53)}
# zoo: expert -> (source_test_accuracy, source_images, parameters, depth); task-agnostic top-1: resnet-a-init
ZOO = {"resnet-gen": (60, 1000, 100, 10), "densenet-gen": (62, 1000, 80, 20), "resnet-a": (70, 100, 100, 10),
       "resnet-a-init": (75, 100, 100, 10), "densenet-a": (72, 100, 80, 20), "resnet-b": (50, 500, 100, 10),
       "resnet-gen-md": (55, 1000, 100, 10), "resnet-a-md": (65, 100, 100, 10), "resnet-b-md": (45, 500, 100, 10)}
# logistic: t1 picks the best first; t2 the best second; t3 the best third
LOGISTIC = {"t1": ["resnet-a-init", "resnet-a", "densenet-a", "resnet-b", "densenet-gen", "resnet-gen"],
            "t2": ["densenet-a", "resnet-b", "resnet-a-init", "resnet-a", "densenet-gen", "resnet-gen"],
            "t3": ["resnet-a-init", "densenet-gen", "resnet-b", "resnet-a", "densenet-a", "resnet-gen"]}


def acc(expert, target, shots):
    """Best fine-tuned accuracy (%) of an expert on a target."""
    full = {**ACC, **ACC_MD}[expert][TARGETS.index(target)]
    return full if shots == "full" else full - (5 if expert == "densenet-gen" else 20)


def tables() -> dict[str, pd.DataFrame]:
    """zoo_accuracy, finetune, scores, multidomain_accuracy and targets of the small benchmark."""
    zoo = pd.DataFrame([{"expert": e, **parse_expert(e), "source_test_accuracy": a, "source_images": n,
                         "parameters": p, "depth": d, "seconds": 1.0} for e, (a, n, p, d) in ZOO.items()])
    grid = [(e, t, s) for e in ACC for t in TARGETS for s in ("full", "5")]
    grid += [(e, t, "full") for e in ACC_MD for t in TARGETS]
    finetune = pd.DataFrame([{"expert": e, "target": t, "shots": s, "lr": lr, "test_accuracy": acc(e, t, s) - drop,
                              "seconds": 10.0} for e, t, s in grid for lr, drop in ((0.01, 0), (0.001, 10))])
    rows = []

    def add(method, probe, fn, shots=("full", "5"), experts=ACC):
        rows.extend({"expert": e, "target": t, "shots": s, "probe": probe, "method": method,
                     "score": float(fn(e, t, s)), "seconds": 0.1, "feature_seconds": 1.0}
                    for e in experts for t in TARGETS for s in shots)
    add("lfc", PROBE, lambda e, t, s: -acc(e, t, s))  # the worst ranking
    add("knn_loo", PROBE, acc)
    add("logistic", PROBE, lambda e, t, s: -LOGISTIC[t].index(e))
    add("random", PROBE, lambda e, t, s: len(e) % 7)
    for probe in ("per_class_50", "all"):
        add("lfc", probe, lambda e, t, s: acc(e, t, "full"), shots=("full",))
    for d in (0, 1):
        draw = f"parc_draw{d}"
        # parc: Pearson 100 on every target of draw 0; -100 on t3 of draw 1
        add("parc", draw, lambda e, t, s: acc(e, t, s) * (-1 if d == 1 and t == "t3" else 1), shots=("full",))
        add("parc_pca8", draw, acc, shots=("full",))
        add("lfc", draw, lambda e, t, s: -acc(e, t, s), shots=("full",))
        add("random", draw, lambda e, t, s: len(e) % 7, shots=("full",))
    add("lfc", PROBE, acc, shots=("full",), experts=ACC_MD)  # the domains: a perfect ranking
    add("random", PROBE, lambda e, t, s: 0.0, shots=("full",), experts=ACC_MD)
    md = pd.DataFrame([{"variant": v, "source": s, "source_test_accuracy": a + i, "source_images": n, "seconds": 1.0}
                       for v, a in (("shared", 40.0), ("multi_bn", 60.0), ("adapter", 50.0))
                       for i, (s, n) in enumerate((("a", 100), ("b", 500), ("gen", 1000)))])
    targets = pd.DataFrame([{"target": t, "shots": s, "images": 100 if s == "full" else 20, "classes": 4 + i}
                            for i, t in enumerate(TARGETS) for s in ("full", "5")])
    return {"zoo_accuracy": zoo, "finetune": finetune, "scores": pd.DataFrame(rows), "multidomain_accuracy": md,
            "targets": targets}


def context(results=None, pools=None, **given) -> Context:
    """A Context over `tables()` (replaced or extended by ``given``; None drops a table), reading
    everything else (outputs of earlier steps) from ``results`` when given."""
    t = {**tables(), **given}
    return Context(GEN, TOP_K, PROBE, layout=None if results is None else Layout(results), pools=pools,
                   tables={k: v for k, v in t.items() if v is not None})


def read(results, name: str) -> pd.DataFrame:
    """An output's data (a figure: the CSV behind it) as the analysis wrote it."""
    return pd.read_csv(files(Layout(results), OUTPUTS[name])[-1], dtype={"shots": str})




def render(results, names=None, paper: bool = False, **given) -> dict[str, Path]:
    """Render the outputs ``names`` (default: every output after step=tables) and every output they
    read, in the registry's order, over `tables()` into ``results``; returns name -> main file."""
    from analysis.outputs import outputs, render as render_output

    active = {o.name: o for o in outputs(multidomain=True, theta_f=False, paper=paper) if o.step != "tables"}
    todo, stack = set(), list(active if names is None else names)
    while stack:
        name = stack.pop()
        if name in active and name not in todo:
            todo.add(name)
            stack += list(active[name].reads)
    ctx = context(results, **given)
    return {name: render_output(o, ctx, Layout(results)) for name, o in active.items() if name in todo}
