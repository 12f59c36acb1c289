"""The registry of every table and figure the analysis writes (the data in analysis/outputs.yaml, the
queries here): one entry per output, from which
the analysis steps (`python -m analysis step=<step>` renders `outputs(step, ...)`), the Snakemake
rules' outputs and inputs (rules/analysis.smk) and the report's captions (`write_captions`) are
derived.

An `Output` names its file stem (``tables/<name>.csv``; a figure: ``figures/<name>.png`` and the
data behind it, ``figures/<name>.csv``; the summary: ``summary.md``), the paper it reproduces,
the step that writes it, the result tables it reads, its renderer and its caption, and the
conditions under which the benchmark has it (``multidomain``: a multi-domain expert;
``paper``: the paper's zoo, for the published numbers; ``theta_f``: a Theta_F grid point).

A renderer is ``"module:function"``, imported only when rendered, so that importing this module
stays cheap (the Snakefile imports it): a table's renderer maps the `analysis.context.Context`
to the table, a figure's takes the .png path too and writes the figure and its data, the
summary's returns Markdown. Captions may name ``{top_k}``, ``{probe_set}`` and ``{probe_label}``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from analysis.tables import LR_SELECTION_LABEL
from pipeline.layout import Layout, probe_label

STEPS = ("tables", "evaluate", "stability", "figures", "artifacts", "ground_truth")
KINDS = ("table", "figure", "markdown")
CONDITIONS = ("multidomain", "paper", "theta_f")
PAPERS = {"benchmark": "this benchmark's result tables",
          "deshpande": "Deshpande et al. 2021, A linearized framework and a new benchmark for model selection",
          "parc": "Bolya et al. 2021, Scalable Diverse Model Selection for Accessible Transfer Learning (PARC)",
          "which_model": "Renggli et al. 2022, Which Model to Transfer? Finding a Needle in the Growing Haystack",
          "guided": "Li et al. 2023, Guided Recommendation for Model Fine-Tuning",
          "standard": "the field's standard benchmark of LogME (You et al. 2021) and SFDA (Shao et al. 2022): "
                      "ImageNet models x 11 targets against published fine-tuning accuracies"}
CATEGORIES = {"table": "Tables", "figure": "Figures", "markdown": "Summary"}


@dataclass(frozen=True)
class Output:
    name: str  # file stem, fixed: other tools read these files
    paper: str  # a key of PAPERS
    kind: str  # table | figure | markdown
    step: str  # the analysis step that writes it
    reads: tuple[str, ...]  # result tables (or figure data) its renderer reads, by name
    render: str  # "module:function"
    when: tuple[str, ...]  # conditions of CONDITIONS, all needed
    caption: str  # reStructuredText, may name {top_k}, {probe_set}, {probe_label}

    @property
    def category(self) -> str:
        """The report's section: Tables, Figures, Summary or Published numbers."""
        return "Published numbers" if self.name.startswith("published_") else CATEGORIES[self.kind]

    def renderer(self) -> Callable:
        module, function = self.render.split(":")
        return getattr(importlib.import_module(module), function)

    def applies(self, multidomain: bool, theta_f: bool, paper: bool) -> bool:
        flags = {"multidomain": multidomain, "theta_f": theta_f, "paper": paper}
        return all(flags[c] for c in self.when)


REGISTRY = Path(__file__).with_name("outputs.yaml")


def load_registry(path: Path = REGISTRY) -> dict[str, Output]:
    """The entries of outputs.yaml by name, in render order. Raises ValueError naming an entry whose
    paper, kind, step or condition is unknown, or a name that repeats."""
    import yaml

    out: dict[str, Output] = {}
    for entry in yaml.safe_load(path.read_text()):
        o = Output(entry["name"], entry["paper"], entry["kind"], entry["step"], tuple(entry.get("reads", ())),
                   f"analysis.{entry['render']}", tuple(entry.get("when", ())), entry["caption"])
        if (o.paper not in PAPERS or o.kind not in KINDS or o.step not in STEPS or set(o.when) - set(CONDITIONS)
                or o.name in out):
            raise ValueError(f"{path}: entry {o.name!r} has an unknown paper, kind, step or condition, or repeats a name")
        out[o.name] = o
    return out


OUTPUTS: dict[str, Output] = load_registry()


def outputs(step: str | None = None, *, multidomain: bool, theta_f: bool, paper: bool, zoo: bool = False) -> list[Output]:
    """The outputs of a benchmark (of one ``step``, or of all), in rendering order: those whose
    conditions hold for a benchmark with / without a multi-domain expert, a Theta_F grid point
    and the paper's zoo. A zoo benchmark (experts trained elsewhere, a shipped ground truth) has
    only the outputs of step ``ground_truth``, any other benchmark all but those."""
    return [o for o in OUTPUTS.values() if (step is None or o.step == step) and (o.step == "ground_truth") == zoo
            and o.applies(multidomain, theta_f, paper)]


def files(layout: Layout, output: Output) -> list[Path]:
    """Every file an output writes: a table's CSV, a figure's .png and its data (.csv), summary.md."""
    if output.kind == "figure":
        return [layout.figure(output.name), layout.figure_data(output.name)]
    return [layout.summary()] if output.kind == "markdown" else [layout.table(output.name)]


def data_path(layout: Layout, name: str) -> Path:
    """Where the data of output ``name`` is read back from (a figure: the CSV behind it)."""
    output = OUTPUTS[name]
    return files(layout, output)[-1]


def step_inputs(layout: Layout, step: str, **conditions) -> list[Path]:
    """The files a step reads that other steps write (the Snakemake rule's inputs)."""
    own = {o.name for o in OUTPUTS.values() if o.step == step}
    active = {o.name for o in outputs(None, **conditions)}
    names = dict.fromkeys(r for o in outputs(step, **conditions) for r in o.reads if r not in own and r in active)
    return [data_path(layout, name) for name in names]


def render(output: Output, ctx, layout: Layout) -> Path:
    """Render one output with ``ctx`` (`analysis.context.Context`) into ``layout``; returns its
    main file (a figure: the .png)."""
    path = files(layout, output)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    if output.kind == "figure":
        output.renderer()(ctx, path)
    elif output.kind == "table":
        output.renderer()(ctx).to_csv(path, index=False)
    else:
        path.write_text(output.renderer()(ctx))
    return path


def caption(output: Output, top_k: int, probe_set: str, lr_selection: str = "test") -> str:
    """An output's caption with the benchmark's top-k and main probe set filled in; an output that reads the
    fine-tune table ends with the ground truth it shows (the benchmark's lr_selection)."""
    text = output.caption.format(top_k=top_k, probe_set=probe_set, probe_label=probe_label(probe_set))
    if "finetune" in output.reads:
        text += (f" *Ground truth:* the fine-tuned test accuracy, mean over the fine-tuning seeds, at "
                 f"{LR_SELECTION_LABEL[lr_selection]} (``lr_selection: {lr_selection}``).")
    return text


def write_captions(folder, top_k: int, probe_set: str, lr_selection: str = "test") -> Path:
    """Write ``<name>.rst`` for every output into ``folder`` (the report's captions; a file is
    rewritten only when its text changed); returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for output in OUTPUTS.values():
        path, text = folder / f"{output.name}.rst", caption(output, top_k, probe_set, lr_selection) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return folder
