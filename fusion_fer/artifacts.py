"""The shipped model folder: weights (safetensors) + config.json that rebuilds everything.

    artifacts/
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

from .data import CLASSES
from .faces import FaceConfig
from .landmarks import LandmarkStats, MeshConfig
from .model import FusionConfig, FusionNet
from .transforms import IMAGE_MEAN, IMAGE_STD

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "artifacts"
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """The model folder is missing files or was written by an incompatible version."""


def save_artifacts(out_dir: str | os.PathLike, model: FusionNet, stats: LandmarkStats, temperature: float = 1.0,
                   extra: dict | None = None) -> Path:
    """Writes model.safetensors and config.json (atomically: a reader never sees half a model)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, out / "model.safetensors")
    config = {
        "format_version": FORMAT_VERSION,
        "classes": list(CLASSES),
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
    """A model folder's config.json (classes, preprocessing, metrics), checked, without loading weights.

    Raises:
        ArtifactError: missing files or an unknown format version.
    """
    folder = Path(path) if path is not None else DEFAULT_DIR
    cfg_file, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise ArtifactError(f"{folder}: expected config.json and model.safetensors (train a model, or pass the folder of one)")
    config = json.loads(cfg_file.read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{cfg_file}: format_version {config.get('format_version')} is not {FORMAT_VERSION}")
    if tuple(config["classes"]) != CLASSES:
        raise ArtifactError(f"{cfg_file}: classes {config['classes']} differ from this version's {list(CLASSES)}")
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
    folder = Path(path) if path is not None else DEFAULT_DIR
    model = FusionNet(FusionConfig.from_dict(config["model"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    return model.to(device).eval(), LandmarkStats.from_dict(config["landmarks"]), config
