"""The shipped models: named model folders, each weights (safetensors) + config.json that rebuilds everything.

    artifacts/
      models.json         the names, which one is the default and the rule that chose it
      fer2013/            7 classes, FER2013 labels
      ferplus/            8 classes (+ contempt), FER+ vote distributions

    a model folder:
      model.safetensors   weights only, no pickled code
      config.json         model config, ordered classes, input size, image and landmark normalisation,
                          temperature, face/mesh settings, training settings
      metrics.json        evaluation (python -m fusion_fer.evaluate)
      *.png               confusion matrix, training curves
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from .data import FERPLUS_CLASSES
from .faces import FaceConfig
from .landmarks import LandmarkStats, MeshConfig
from .model import FusionConfig, FusionNet
from .transforms import IMAGE_MEAN, IMAGE_STD

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "artifacts"  # the shipped collection
MODELS_FILE = "models.json"
FORMAT_VERSION = 1
KNOWN_CLASSES = FERPLUS_CLASSES  # every label a model may have: FER2013's 7 and contempt


class ArtifactError(RuntimeError):
    """The model folder is missing files or was written by an incompatible version."""


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
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, out / "model.safetensors")
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
    tmp = out / "config.json.tmp"
    tmp.write_text(json.dumps(config))
    os.replace(tmp, out / "config.json")
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
