"""The shipped models: named model folders, each weights (safetensors) + config.json that rebuilds everything.

    artifacts/
      models.json         the names, which one is the default and the rule that chose it
      fer2013/            7 classes, FER2013 labels
      ferplus/            8 classes (+ contempt), FER+ vote distributions

    a model folder:
      model.safetensors   weights only, no pickled code
      config.json         model config, ordered classes, input size, image and landmark normalisation,
                          temperature, face/mesh settings, training settings
      metrics.json        evaluation (python -m fusion_fer.research.evaluate)
      *.png               confusion matrix, training curves
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .labels import FERPLUS_CLASSES
from .faces import FaceConfig
from .fileio import atomic_path, write_json
from .landmarks import LandmarkStats, MeshConfig
from .model import FusionConfig, FusionNet
from .transforms import IMAGE_MEAN, IMAGE_STD

_INSTALLED = Path(__file__).resolve().parent / "models"  # where `pip install .` puts the shipped models
DEFAULT_DIR = _INSTALLED if _INSTALLED.is_dir() else Path(__file__).resolve().parent.parent / "artifacts"  # the shipped collection
MODELS_FILE = "models.json"
FORMAT_VERSION = 1
KNOWN_CLASSES = FERPLUS_CLASSES  # every label a model may have: FER2013's 7 and contempt


class ArtifactError(RuntimeError):
    """The model folder is missing files or was written by an incompatible version, or a command may not write it."""


# Settings that name local folders (a run to start from, a soup's runs): a shipped folder keeps only their names.
PATH_SETTINGS = ("init", "soup_of", "data", "out", "photos")


def is_shipped(folder: str | os.PathLike) -> bool:
    """True for `artifacts/` itself and every folder inside it (the models this checkout ships)."""
    folder, root = Path(folder).resolve(), DEFAULT_DIR.resolve()
    return folder == root or root in folder.parents


def refuse_shipped(target: str | os.PathLike, command: str) -> None:
    """Raises ArtifactError when `target` is a shipped model's name or a folder in `artifacts/`.

    Research commands write to run or export folders; replacing a shipped model goes through export.
    """
    shipped_name = isinstance(target, str) and target in collection(DEFAULT_DIR).get("models", {}) and not Path(target).exists()
    if shipped_name or is_shipped(target):
        raise ArtifactError(
            f"{command} does not write shipped models ({target!r} is in {DEFAULT_DIR}): give it a run or export folder "
            "(e.g. runs/export/NAME); to replace a shipped model, export it: python -m fusion_fer.research.export "
            "--model runs/export/NAME --out artifacts/NAME --ship")


def portable(training: dict) -> dict:
    """Training settings without local paths: a starting point or ingredient run is kept by its folder name."""
    def name(v):
        return [name(x) for x in v] if isinstance(v, list) else (Path(v).name if isinstance(v, str) and v else v)
    return {k: (name(v) if k in PATH_SETTINGS else v) for k, v in training.items()}


def _write_portable(path: Path, data: dict, indent: int | None) -> None:
    """Writes a model folder's config.json or metrics.json, its training settings without local paths."""
    if "training" in data:
        data = {**data, "training": portable(data["training"])}
    write_json(path, data, indent=indent)


def collection(root: str | os.PathLike = DEFAULT_DIR) -> dict:
    """A folder of named models: its models.json ({"default": name, "models": {name: {...}}}), or {} if it is not one."""
    f = Path(root) / MODELS_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def model_names(root: str | os.PathLike = DEFAULT_DIR) -> list[str]:
    """The shipped models' names, the default first."""
    c = collection(root)
    names = list(c.get("models", {}))
    return sorted(names, key=lambda n: n != c.get("default"))


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """The model folder for a name ("ferplus", "fer2013"), a folder, or None (the default model).

    A folder that holds a models.json (a collection, such as `artifacts/`) means its default model.

    Raises:
        ArtifactError: an unknown name, or a collection without a default.
    """
    if model is None:
        model = DEFAULT_DIR
    names = collection(DEFAULT_DIR).get("models", {})
    if isinstance(model, str) and model in names and not Path(model).exists():
        return DEFAULT_DIR / model
    folder = Path(model)
    c = collection(folder)
    if c:
        if c.get("default") not in c.get("models", {}):
            raise ArtifactError(f"{folder / MODELS_FILE}: no valid default model")
        return folder / c["default"]
    if not folder.exists() and isinstance(model, str) and os.sep not in model and "/" not in model:
        raise ArtifactError(f"unknown model {model!r}: the shipped models are {', '.join(model_names()) or 'none'}, "
                            "or pass a model folder")
    return folder


def save_artifacts(out_dir: str | os.PathLike, model: FusionNet, stats: LandmarkStats, temperature: float = 1.0,
                   extra: dict | None = None, classes: tuple[str, ...] | None = None) -> Path:
    """Writes model.safetensors and config.json (atomically: a reader never sees half a model).

    `classes` names the model's outputs in order (default: FER2013's 7, or those plus contempt for 8 outputs).
    """
    from safetensors.torch import save_file

    classes = tuple(classes or KNOWN_CLASSES[:model.config.num_classes])
    if len(classes) != model.config.num_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.config.num_classes} outputs")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    config = {
        "format_version": FORMAT_VERSION,
        "classes": list(classes),
        "model": model.config.to_dict(),
        "image_size": model.config.image_size,
        "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD,
        "landmarks": stats.to_dict(),
        "temperature": float(temperature),
        "face": asdict(FaceConfig()),
        "mesh": asdict(MeshConfig()),
        **(extra or {}),
    }
    _write_portable(out / "config.json", config, indent=None)
    return out


def update_model(folder: str | os.PathLike, *, config: dict | None = None, metrics: dict | None = None,
                 files: dict[str, str | os.PathLike] | None = None, ship: bool = False) -> Path:
    """Adds to an existing model folder: keys merged into config.json and metrics.json (other sections
    survive), and files copied in (`{name in the folder: source path}`).

    Args:
        ship: allow a folder in `artifacts/` (only export passes it).

    Raises:
        ArtifactError: a shipped folder without `ship`, or a folder that is not a model.
    """
    folder = Path(folder)
    if not ship:
        refuse_shipped(folder, "this command")
    if not (folder / "config.json").is_file():
        raise ArtifactError(f"{folder}: not a model folder (no config.json)")
    if config is not None:
        _write_portable(folder / "config.json", {**json.loads((folder / "config.json").read_text()), **config}, indent=None)
    if metrics is not None:
        f = folder / "metrics.json"
        _write_portable(f, {**(json.loads(f.read_text()) if f.is_file() else {}), **metrics}, indent=2)
    for name, src in (files or {}).items():
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(src, tmp)
    return folder


def copy_model(src: str | os.PathLike, out: str | os.PathLike, ship: bool = False) -> Path:
    """Copies a model folder's files to `out`, config.json last (so a reader never sees a mix); a card
    (README.md) already in `out` is kept, since people write it.

    Raises:
        ArtifactError: `out` is shipped and `ship` is not set, or `src` is not a model folder.
    """
    src, out = Path(src), Path(out)
    if not ship:
        refuse_shipped(out, "this command")
    if not (src / "config.json").is_file():
        raise ArtifactError(f"{src}: not a model folder (no config.json)")
    out.mkdir(parents=True, exist_ok=True)
    keep_card = (out / "README.md").is_file()
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in ("config.json", "metrics.json") and not (f.name == "README.md" and keep_card):
            with atomic_path(out / f.name) as tmp:
                shutil.copyfile(f, tmp)
    metrics = json.loads((src / "metrics.json").read_text()) if (src / "metrics.json").is_file() else {}
    _write_portable(out / "metrics.json", metrics, indent=2)
    _write_portable(out / "config.json", json.loads((src / "config.json").read_text()), indent=None)
    return out


def load_config(path: str | os.PathLike | None = None) -> dict:
    """A model's config.json (classes, preprocessing, metrics), checked, without loading weights.

    `path`: a model name, a model folder, or None for the default model (see `resolve_model`).

    Raises:
        ArtifactError: an unknown name, missing files or an unknown format version.
    """
    folder = resolve_model(path)
    cfg_file, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise ArtifactError(f"{folder}: expected config.json and model.safetensors (train a model, or pass the folder of one)")
    config = json.loads(cfg_file.read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{cfg_file}: format_version {config.get('format_version')} is not {FORMAT_VERSION}")
    classes = config.get("classes", [])
    if not classes or set(classes) - set(KNOWN_CLASSES) or len(set(classes)) != len(classes):
        raise ArtifactError(f"{cfg_file}: classes {classes} are not distinct names from this version's {list(KNOWN_CLASSES)}")
    config["folder"] = str(folder)
    return config


def load_artifacts(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[FusionNet, LandmarkStats, dict]:
    """Rebuilds the model from a folder (default: the shipped `artifacts/`).

    Returns:
        (model in eval mode, landmark statistics, the whole config.json dict)

    Raises:
        ArtifactError: missing files or an unknown format version.
    """
    from safetensors.torch import load_file

    config = load_config(path)
    folder = Path(config["folder"])
    model_config = FusionConfig.from_dict(config["model"])
    if model_config.num_classes != len(config["classes"]):
        raise ArtifactError(f"{folder}: {len(config['classes'])} class names for a model with {model_config.num_classes} outputs")
    model = FusionNet(model_config)
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    return model.to(device).eval(), LandmarkStats.from_dict(config["landmarks"]), config
