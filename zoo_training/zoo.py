"""A zoo file: experts of several kinds, mixable in one list (configs/zoo/<name>.yaml).

    experts:
      - name: mine                                   # unique: letters, digits, '_', '-', '.'
        checkpoint: results/mini/experts/resnet-mosaic   # trained by this pipeline (a folder with model.pt, or the file)
      - name: convnext_t
        timm: convnext_tiny.fb_in1k                  # timm model with its pretrained tag (Hugging Face hub cache)
      - name: resnet50
        torchvision: ResNet50_Weights.IMAGENET1K_V2  # a torchvision weights enum member (torch hub cache)
      - name: my_resnet50
        torchvision: ResNet50_Weights.IMAGENET1K_V2  # the architecture (and preprocessing) of these weights...
        weights: /data/my_resnet50.pth               # ...with this state dict instead (a path or an http(s) URL)
        sha256: 0f4a...                              # required with `weights`: checked before it is loaded

Every expert comes with its own preprocessing (input size, resize, mean/std, interpolation) from its
pretrained configuration: timm's `resolve_model_data_config` + `create_transform`, torchvision's
`weights.transforms()`, or what a checkpoint of this pipeline recorded of its source data. Each
expert has timm's interface (`forward_features`, `forward_head(pre_logits=True)`,
`get_classifier`, `reset_classifier`), so the feature scores, LEEP/NCE (its own head's source
classes) and fine-tuning treat every kind alike; torchvision's networks get it from
`TorchvisionExpert`. `read_zoo` checks the whole file (kinds, names, files, checksums' form, known
model names) before any model loads; `load_entry` loads one expert.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from torch import nn

from pipeline.errors import UserError

KINDS = ("checkpoint", "timm", "torchvision")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ZooError(UserError):
    """A zoo file that cannot be used: an entry without exactly one kind, a duplicate name, a missing
    file, an unknown model or weights name, a checksum that does not match."""


@dataclass(frozen=True)
class ZooEntry:
    """One expert of a zoo file: `kind` one of KINDS, `spec` its value (a checkpoint path, a timm
    model name with tag, a torchvision weights enum member), optional `weights` (path or URL) with
    its `sha256`."""

    name: str
    kind: str
    spec: str
    weights: str | None = None
    sha256: str | None = None


@dataclass
class Preprocessing:
    """What an expert expects of an image: resize the shorter side to `resize` px (`interpolation`),
    centre-crop `input_size` px, scale to [0, 1], normalise by `mean` / `std` (per RGB channel)."""

    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def transform(self) -> Callable:
        """The torchvision transform (PIL image -> (3, input_size, input_size) float tensor)."""
        from torchvision import transforms as T

        mode = T.InterpolationMode(self.interpolation)
        return T.Compose([T.Resize(self.resize, interpolation=mode), T.CenterCrop(self.input_size), T.ToTensor(),
                          T.Normalize(self.mean, self.std)])

    def train_transform(self) -> Callable:
        """Fine-tuning's augmentation at the expert's input size and statistics: torchvision's classification
        recipe (RandomResizedCrop + horizontal flip), as data_prep.readers.image_transform for the zoo's own."""
        from torchvision import transforms as T

        mode = T.InterpolationMode(self.interpolation)
        return T.Compose([T.RandomResizedCrop(self.input_size, interpolation=mode), T.RandomHorizontalFlip(),
                          T.ToTensor(), T.Normalize(self.mean, self.std)])

    def as_dict(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "resize": self.resize, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation}


@dataclass
class LoadedExpert:
    """An expert ready to score or fine-tune: `model` in timm's interface (eval mode), `transform` (PIL
    image -> normalised tensor, the library's own where it has one), `preprocessing` (what it does, for
    the report), `source_classes` (number of classes of its own head; 0: no head), `source` (the
    pipeline's source dataset name, for Domain Similarity; None when its source data is not here)."""

    name: str
    kind: str
    model: Any
    transform: Callable
    preprocessing: Preprocessing
    source_classes: int
    source: str | None = None
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ reading

def read_zoo(path: str | Path, root: str | Path = ".") -> list[ZooEntry]:
    """The entries of a zoo file, checked: a YAML mapping with a non-empty list `experts`, each entry a
    mapping with a unique `name` and exactly one kind key (checkpoint / timm / torchvision); `weights`
    and `sha256` (64 hex digits) together, not with checkpoint; checkpoint paths and local weights
    files exist (relative to `root`); timm names are timm models with pretrained weights; torchvision
    names are weights enum members. Raises ZooError naming the file and the entry; loads no model."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"zoo file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ZooError(f"zoo file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    items = data.get("experts") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ZooError(f"zoo file {path}: expected a non-empty list `experts:` of entries with a name and one of {KINDS}")
    entries, seen = [], set()
    for i, item in enumerate(items, 1):
        where = f"zoo file {path}, entry {i}"
        if not isinstance(item, dict):
            raise ZooError(f"{where}: expected a mapping (name: ..., plus one of {KINDS}), got {item!r}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ZooError(f"{where}: `name` must be letters, digits, '_', '-' or '.' (got {name!r})")
        where = f"zoo file {path}, expert {name!r}"
        if name in seen:
            raise ZooError(f"{where}: the name is used twice")
        seen.add(name)
        unknown = sorted(set(item) - {"name", "weights", "sha256", *KINDS})
        if unknown:
            raise ZooError(f"{where}: unknown key(s) {unknown}; an entry has name, one of {KINDS}, and optionally weights + sha256")
        kinds = [k for k in KINDS if k in item]
        if len(kinds) != 1:
            raise ZooError(f"{where}: names {'no kind' if not kinds else 'several kinds ' + str(kinds)}; "
                           f"give exactly one of {', '.join(KINDS)}")
        kind, spec = kinds[0], item[kinds[0]]
        if not isinstance(spec, str) or not spec:
            raise ZooError(f"{where}: `{kind}` must be a non-empty string, got {spec!r}")
        weights, sha256 = item.get("weights"), item.get("sha256")
        if (weights is None) != (sha256 is None):
            raise ZooError(f"{where}: `weights` and `sha256` go together (the checksum is checked before loading)")
        if weights is not None and kind == "checkpoint":
            raise ZooError(f"{where}: a checkpoint is its own weights; drop `weights`/`sha256`")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256.lower())):
            raise ZooError(f"{where}: sha256 must be 64 hexadecimal digits, got {sha256!r}")
        entry = ZooEntry(name, kind, spec, None if weights is None else str(weights),
                         None if sha256 is None else sha256.lower())
        _check_entry(entry, Path(root), where)
        entries.append(entry)
    return entries


def zoo_expert(path: str | Path, name: str, root: str | Path = ".") -> LoadedExpert:
    """The expert `name` of the zoo file `path`, loaded (`load_entry`). Raises ZooError when the file has
    no such expert."""
    entries = {e.name: e for e in read_zoo(path, root)}
    if name not in entries:
        raise ZooError(f"zoo file {path} has no expert {name!r}; it has {', '.join(entries)}")
    return load_entry(entries[name], root)


def load_job_expert(zoo_file: str, name: str, expert_path: str) -> tuple[nn.Module, LoadedExpert | None]:
    """A stage job's expert (selection, fine-tuning): the expert `name` of `zoo_file`, with its own
    preprocessing and head (`zoo_expert`), or else the checkpoint `expert_path` this pipeline trained, read
    with the target's preprocessing (None), which its source shared. Returns (network, the zoo entry or None)."""
    if zoo_file:
        loaded = zoo_expert(zoo_file, name)
        return loaded.model, loaded
    from zoo_training.experts import load_expert

    return load_expert(expert_path)[0], None


def local_files(entry: ZooEntry, root: str | Path = ".") -> list[Path]:
    """The files of this machine an entry loads from, for a workflow's inputs: a checkpoint's model.pt, a
    local `weights` file; none for hub caches and URLs (fetched when the job runs)."""
    if entry.kind == "checkpoint":
        return [checkpoint_file(entry.spec, Path(root), f"expert {entry.name!r}")]
    return [Path(root) / entry.weights] if entry.weights and not _is_url(entry.weights) else []


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _check_entry(entry: ZooEntry, root: Path, where: str) -> None:
    if entry.kind == "checkpoint":
        checkpoint_file(entry.spec, root, where)
    elif entry.kind == "timm":
        import timm

        if "." not in entry.spec:
            raise ZooError(f"{where}: timm name {entry.spec!r} has no pretrained tag (e.g. convnext_tiny.fb_in1k); "
                           f"`timm.list_pretrained('{entry.spec}*')` lists them")
        if entry.spec not in timm.list_pretrained(entry.spec) and entry.weights is None:
            raise ZooError(f"{where}: timm has no pretrained model {entry.spec!r} (timm {timm.__version__}); "
                           f"`timm.list_pretrained('{entry.spec.split('.')[0]}*')` lists the tags")
        if not timm.is_model(entry.spec.split(".")[0]):
            raise ZooError(f"{where}: timm has no architecture {entry.spec.split('.')[0]!r}")
    else:
        torchvision_weights(entry.spec, where)
    if entry.weights is not None and not _is_url(entry.weights) and not (root / entry.weights).is_file():
        raise ZooError(f"{where}: weights file {root / entry.weights} does not exist")


def checkpoint_file(spec: str, root: Path = Path("."), where: str = "checkpoint") -> Path:
    """model.pt of a `checkpoint:` entry (the expert's folder, or the file itself)."""
    path = root / spec
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise ZooError(f"{where}: no checkpoint at {path} (an expert folder of a run, results/<benchmark>/experts/<id>, "
                       f"holding model.pt)")
    return path


def torchvision_weights(spec: str, where: str = "torchvision"):
    """The weights enum member `spec` names (e.g. "ResNet50_Weights.IMAGENET1K_V2") and the name of the
    model builder it belongs to."""
    from torchvision import models

    try:
        weights = models.get_weight(spec)
    except (ValueError, KeyError, AttributeError):
        raise ZooError(f"{where}: {spec!r} is not a torchvision weights enum member "
                       f"(e.g. ResNet50_Weights.IMAGENET1K_V2; `torchvision.models.get_model_weights('resnet50')`)") from None
    builders = [name for name in models.list_models() if models.get_model_weights(name) is type(weights)]
    if not builders:
        raise ZooError(f"{where}: no torchvision model builder takes {spec!r}")
    return weights, builders[0]


# ------------------------------------------------------------------------------------------ loading

def load_entry(entry: ZooEntry, root: str | Path = ".", cache_dir: str | Path | None = None) -> LoadedExpert:
    """One zoo expert on the CPU, in eval mode. `cache_dir`: where a `weights:` URL is downloaded to
    (default: the torch hub cache's checkpoints folder). Raises ZooError (a checksum mismatch, a state
    dict that does not fit the architecture)."""
    root = Path(root)
    loader = {"checkpoint": _load_checkpoint, "timm": _load_timm, "torchvision": _load_torchvision}[entry.kind]
    weights = None if entry.weights is None else verified_weights(entry, root, cache_dir)
    loaded = loader(entry, root, weights)
    loaded.model.eval()
    return loaded


def verified_weights(entry: ZooEntry, root: Path, cache_dir: str | Path | None = None) -> Path:
    """The local file of an entry's `weights` (a URL is downloaded once into `cache_dir`), its SHA-256
    checked against the entry's. Raises ZooError on a mismatch."""
    if _is_url(entry.weights):
        import torch.hub

        folder = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
        path = folder / Path(entry.weights.split("?")[0]).name
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(entry.weights, str(path), progress=True)
    else:
        path = root / entry.weights
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != entry.sha256:
        raise ZooError(f"expert {entry.name!r}: {path} has SHA-256 {digest.hexdigest()}, not the zoo file's {entry.sha256}; "
                       f"a damaged or different file (delete it to download it again)")
    return path


def _load_checkpoint(entry: ZooEntry, root: Path, weights: Path | None) -> LoadedExpert:
    from zoo_training.experts import load_expert

    path = checkpoint_file(entry.spec, root, f"expert {entry.name!r}")
    model, meta = load_expert(path)
    if "preprocessing" not in meta:
        raise ZooError(f"expert {entry.name!r}: {path} records no preprocessing (written by an older version of "
                       f"this pipeline); train it again")
    prep = Preprocessing(**{**meta["preprocessing"], "mean": tuple(meta["preprocessing"]["mean"]),
                            "std": tuple(meta["preprocessing"]["std"])})
    return LoadedExpert(entry.name, entry.kind, model, prep.transform(), prep, int(meta["num_classes"]),
                        meta.get("source"), {k: v for k, v in meta.items() if k in ("expert", "arch", "classes", "variant")})


def _load_timm(entry: ZooEntry, root: Path, weights: Path | None) -> LoadedExpert:
    import timm
    from timm.data import create_transform, resolve_model_data_config

    overlay = {"pretrained_cfg_overlay": {"file": str(weights)}} if weights is not None else {}
    try:
        model = timm.create_model(entry.spec, pretrained=True, **overlay)
    except (RuntimeError, OSError) as err:
        raise ZooError(f"expert {entry.name!r}: timm could not load {entry.spec!r}: {str(err).splitlines()[0]} "
                       f"(offline, the Hugging Face cache must hold it: HF_HUB_CACHE)") from None
    config = resolve_model_data_config(model)
    size = int(config["input_size"][-1])
    prep = Preprocessing(size, int(size / config.get("crop_pct", 1.0)), tuple(config["mean"]), tuple(config["std"]),
                         config.get("interpolation", "bilinear"))
    return LoadedExpert(entry.name, entry.kind, model, create_transform(**config, is_training=False), prep,
                        int(getattr(model, "num_classes", 0) or 0))


def _load_torchvision(entry: ZooEntry, root: Path, weights: Path | None) -> LoadedExpert:
    enum, builder = torchvision_weights(entry.spec, f"expert {entry.name!r}")
    # GoogLeNet / Inception-v3 without their auxiliary heads: one output in training too
    extra = {"aux_logits": False} if builder in ("googlenet", "inception_v3") else {}
    if weights is None:
        net = _torchvision_model(builder, enum, extra, entry.name)
    else:
        # torchvision loads a file already in $TORCH_HOME/hub/checkpoints without downloading: a private
        # TORCH_HOME whose file under the weights' own name is the user's (checked) state dict, so the
        # builder's own steps run (aux heads, transform_input) and the shared cache is never written
        previous = os.environ.get("TORCH_HOME")
        with tempfile.TemporaryDirectory() as private:
            cached = Path(private) / "hub" / "checkpoints" / Path(enum.url).name
            cached.parent.mkdir(parents=True)
            os.symlink(weights.resolve(), cached)
            os.environ["TORCH_HOME"] = private
            try:
                net = _torchvision_model(builder, enum, extra, entry.name)
            finally:
                if previous is None:
                    os.environ.pop("TORCH_HOME", None)
                else:
                    os.environ["TORCH_HOME"] = previous
    t = enum.transforms()
    prep = Preprocessing(int(t.crop_size[0]), int(t.resize_size[0]), tuple(t.mean), tuple(t.std), t.interpolation.value)
    model = TorchvisionExpert(net)
    return LoadedExpert(entry.name, entry.kind, model, t, prep, model.get_classifier().out_features)


def _torchvision_model(builder: str, enum, extra: dict, name: str) -> nn.Module:
    from torchvision import models

    try:
        return models.get_model(builder, weights=enum, **extra)
    except RuntimeError as err:
        raise ZooError(f"expert {name!r}: the weights do not fit {builder}: {str(err).splitlines()[0]}") from None
    except OSError as err:  # URLError included: not cached and no network
        raise ZooError(f"expert {name!r}: torchvision could not read {enum} ({err}); offline, the torch hub cache "
                       f"($TORCH_HOME/hub/checkpoints/{Path(enum.url).name}) must hold it") from None


class TorchvisionExpert(nn.Module):
    """A torchvision classifier behind timm's interface: its last `nn.Linear` (in module order) is the
    head; the rest, with the head replaced by an identity, gives the penultimate features
    (forward_features), so forward_head(pre_logits=True) is the identity. Raises ZooError for a network
    with no Linear head (e.g. SqueezeNet's convolutional classifier)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ZooError(f"{type(net).__name__} has no Linear classifier; it cannot be an expert here")
        self.head_path = linears[-1]
        self.net = net
        self.head = net.get_submodule(self.head_path)
        self._set(self.head_path, nn.Identity())

    def _set(self, path: str, module) -> None:
        parent, _, leaf = path.rpartition(".")
        setattr(self.net.get_submodule(parent) if parent else self.net, leaf, module)

    def forward_features(self, x):
        return self.net(x)

    def forward_head(self, x, pre_logits: bool = False):
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.head(self.net(x))

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes)


# ------------------------------------------------------------------------------------------ describing

def describe(zoo_file: str | Path, name: str, out_dir: str | Path) -> dict:
    """{out_dir}/metrics.json of a zoo file's expert beside the experts trained here: its model
    meta-features (parameters, depth, input size, GMACs: zoo_training.architectures) with source and init
    "zoo" (analysis.tables reads an id that is not {arch}-{source}[-init|-md] so), and no source accuracy
    (None): its source data are not part of the benchmark. Raises ZooError (zoo_expert)."""
    import json

    from zoo_training.architectures import depth, gmacs, parameter_count

    expert = zoo_expert(zoo_file, name)
    size = expert.preprocessing.input_size
    record = {"expert": name, "arch": name, "source": "zoo", "init": "zoo", "source_test_accuracy": None,
              "source_images": None, "seconds": 0.0, "parameters": parameter_count(expert.model),
              "depth": depth(expert.model), "input_size": size, "gmacs": gmacs(expert.model, size),
              "kind": expert.kind, "preprocessing": expert.preprocessing.as_dict()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> None:
    """python -m zoo_training.zoo <zoo file> <expert name> <out_dir>: the expert's metrics.json (`describe`)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m zoo_training.zoo", description=describe.__doc__.split("\n")[0])
    parser.add_argument("zoo_file")
    parser.add_argument("expert")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    try:
        describe(args.zoo_file, args.expert, args.out_dir)
    except ZooError as err:  # one line, no traceback
        sys.exit(f"zoo: {err}")


if __name__ == "__main__":
    main()
