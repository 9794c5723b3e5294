"""The training loop: class-balanced sampling, AdamW + warm-up + cosine, early stopping on
PublicTest, a checkpoint every epoch (atomic) and `--resume`.

With photo sources (`TrainConfig.photos`), a fixed share of every batch comes from them (domain-balanced
batches), under their own stronger augmentation; with `fold`, one fold of their persons is held out and
scored after every epoch, so that an epoch can be chosen on people the run never saw.

`train.py` is the command line; this module is what tests and scripts import.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..fileio import atomic_path
from ..landmarks import LandmarkStats, normalize
from ..model import FusionConfig, FusionNet
from ..predict import log_probs
from .augment import PHOTO, AugmentConfig, augment_batch
from .data import CLASSES, FERPLUS_CLASSES, ferplus8
from .prepare import Cache, CacheError, load_cache
from .sources import person_folds


LABEL_SETS = ("fer2013", "ferplus", "ferplus8")


def classes_of(labels: str) -> tuple[str, ...]:
    """The class names a model trained on `labels` predicts."""
    return FERPLUS_CLASSES if labels == "ferplus8" else CLASSES


@dataclass
class TrainConfig:
    """Optimisation settings; saved as args.json beside the weights."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0  # linear warm-up, then cosine to zero
    label_smoothing: float = 0.1
    balance_power: float = 0.5  # sampler weight per class = count ** -power (0: natural mix, 1: fully balanced)
    patience: int = 12  # stop when PublicTest accuracy has not improved for this many epochs
    labels: str = "fer2013"  # fer2013 | ferplus (7-class majority) | ferplus8 (8 classes, vote distributions as soft targets)
    # ferplus8: the weight of FER2013's own label in each FER face's target, (1 - w) * FER+ votes + w * FER2013 label.
    # The raters relabelled 4 faces in 10; a little of the original label keeps a model that learns FER+ (and photos)
    # from drifting away from FER2013's answers as well.
    fer2013_weight: float = 0.0
    # FER2013 has no contempt: with this, its label takes its share only of the votes it can express (a face's
    # weight is fer2013_weight x (1 - its contempt share)), so it moves a face the raters call contempt less
    fer2013_spare_contempt: bool = False
    init: str | None = None  # start from this model folder or run folder (fine-tuning); a new head if the classes differ
    refit_stats: bool = False  # fine-tuning: standardise landmarks with this cache's statistics, not the init model's (a new mesh model)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # bfloat16 autocast (2x faster on CPUs with AVX512-BF16, and on GPUs)
    max_minutes: float | None = None  # stop (resumably) after this much training time in this process
    photos: tuple[str, ...] = ()  # prepared photo-source caches (research.sources) trained on beside the main cache
    photo_share: float = 0.25  # share of every batch drawn from the photo sources (equal parts per source)
    folds: int = 3  # folds by person over each photo source
    fold: int | None = None  # hold this fold's persons out of training and score them every epoch (None: train on all)
    keep_epoch: int | None = None  # best.pt holds this epoch's weights (an epoch chosen on folds), not the best PublicTest one
    model: FusionConfig = field(default_factory=FusionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    photo_augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(**PHOTO))

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SETS:
            raise ValueError(f"Invalid labels {self.labels!r}. Only {', '.join(LABEL_SETS)} are supported.")
        if not 0.0 <= self.fer2013_weight <= 1.0:
            raise ValueError(f"fer2013_weight is a share of the target, between 0 and 1, not {self.fer2013_weight}")
        if self.fer2013_weight and self.labels != "ferplus8":
            raise ValueError("fer2013_weight mixes FER2013's label into FER+ vote targets: it needs labels ferplus8")
        if self.fer2013_spare_contempt and not self.fer2013_weight:
            raise ValueError("fer2013_spare_contempt shapes fer2013_weight's mix: it needs a fer2013_weight")
        if self.model.num_classes != len(classes_of(self.labels)):
            self.model = replace(self.model, num_classes=len(classes_of(self.labels)))
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"Invalid device {self.device!r}. Only auto, cpu and cuda are supported.")
        self.photos = tuple(str(p) for p in self.photos)
        if self.photos and not 0.0 < self.photo_share < 1.0:
            raise ValueError(f"photo_share is the share of a batch from the photo sources, between 0 and 1, not {self.photo_share}")
        if self.fold is not None and not (self.photos and 0 <= self.fold < self.folds):
            raise ValueError(f"fold {self.fold} needs photo sources and 0 <= fold < folds ({self.folds})")
        if self.keep_epoch is not None and not 1 <= self.keep_epoch <= self.epochs:
            raise ValueError(f"keep_epoch {self.keep_epoch} is not one of the run's epochs (1-{self.epochs})")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def cache_labels(cache: Cache, labels: str) -> np.ndarray:
    """The hard labels that evaluation scores: FER2013's, or FER+ majority labels (-1 = not used)."""
    if labels == "ferplus8":
        return ferplus8(_votes(cache))[0]
    if labels == "ferplus":
        if cache.ferplus_labels is None:
            raise ValueError("--labels ferplus needs a cache prepared with --ferplus fer2013new.csv")
        return cache.ferplus_labels
    return cache.labels


def _votes(cache: Cache) -> np.ndarray:
    if cache.ferplus_votes is None:
        raise ValueError("--labels ferplus8 needs a cache prepared with --ferplus fer2013new.csv by this version "
                         "(it stores the raw votes); run `python -m fusion_fer.research.prepare` again (finished shards are reused)")
    return cache.ferplus_votes


def training_targets(cache: Cache, labels: str, fer2013_weight: float = 0.0,
                     spare_contempt: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """What training fits: (hard labels for sampling and train accuracy, -1 = row not used;
    soft targets (N, C) or None). FER+ 8-class: the vote distribution of every face whose top
    vote is an emotion, mixed with `fer2013_weight` of the face's FER2013 label where it has one
    (FER2013's 7 classes are the first 7 of FER+'s 8); its hard label is the target's argmax.
    `spare_contempt`: that weight times the face's share of votes that are not contempt (FER2013 has no
    contempt, so its label moves the raters' contempt less)."""
    if labels == "ferplus8":
        _, soft, usable = ferplus8(_votes(cache))
        if fer2013_weight:
            own = (cache.labels >= 0) & usable
            onehot = np.eye(soft.shape[1], dtype=np.float32)[np.where(own, cache.labels, 0)]
            w = fer2013_weight * (1 - soft[:, [FERPLUS_CLASSES.index("contempt")]]) if spare_contempt else fer2013_weight
            soft = np.where(own[:, None], (1 - w) * soft + w * onehot, soft).astype(np.float32)
        return np.where(usable, soft.argmax(1), -1).astype(np.int64), soft
    return cache_labels(cache, labels), None


def load_model_or_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[FusionNet, LandmarkStats, str, int | None]:
    """A training run folder (best.pt) or a model folder or shipped name (config.json + model.safetensors).

    Returns:
        (model in eval mode, landmark statistics, the labels it was trained on, its epochs or None)

    Raises:
        ArtifactError: neither a run nor a usable model folder.
    """
    from ..artifacts import load_artifacts

    if (Path(path) / "best.pt").exists():
        model, stats, tcfg = load_run_model(path, device)
        return model, stats, tcfg.labels, tcfg.epochs
    model, stats, cfg = load_artifacts(path, device)
    training = cfg.get("training", {})
    return model, stats, training.get("labels", "fer2013"), training.get("epochs")


def init_weights(path: str | os.PathLike) -> tuple[dict, FusionConfig, LandmarkStats]:
    """Weights, model config and landmark statistics of a model folder (artifacts) or a run folder, to fine-tune from."""
    from ..artifacts import ArtifactError

    try:
        model, stats, _, _ = load_model_or_run(path)
    except ArtifactError:
        raise ValueError(f"--init {path}: expected a model folder (model.safetensors) or a run folder (best.pt)") from None
    return model.state_dict(), model.config, stats


def load_init(model: FusionNet, state: dict) -> tuple[list[str], list[str]]:
    """Loads a fine-tuning start into `model`. Tensors of the same shape are copied; a head with more
    classes (FER+ adds contempt after our 7) keeps the old classes' rows and starts the new ones afresh.

    Returns:
        (grown tensors, tensors left as initialised)
    """
    own = model.state_dict()
    keep, grown = {}, []
    for k, v in state.items():
        if k in own and own[k].shape == v.shape:
            keep[k] = v
        elif k in own and own[k].shape[1:] == v.shape[1:] and own[k].shape[0] > v.shape[0]:
            keep[k] = own[k].clone()
            keep[k][:v.shape[0]] = v
            grown.append(k)
    model.load_state_dict(keep, strict=False)
    return grown, sorted(set(own) - set(keep))


@dataclass
class PhotoSet:
    """One prepared photo source as training reads it: the faces it trains on and the persons it holds out."""

    name: str
    cache: Cache
    labels: np.ndarray  # (N,) into the model's classes; -1 where the model has no such class (contempt, 7 classes)
    train_idx: np.ndarray  # faces found, outside the held-out fold
    heldout_idx: np.ndarray  # every face of the held-out persons, found or not (a miss counts as wrong)
    weights: np.ndarray  # sampling weights over train_idx (class-balanced, summing to 1)


def photo_sets(config: TrainConfig) -> list[PhotoSet]:
    """The photo sources of `config`, with their folds by person.

    Raises:
        CacheError: a path is not a prepared photo-source cache.
    """
    classes = classes_of(config.labels)
    sets = []
    for path in config.photos:
        cache = load_cache(path)
        if cache.persons is None:
            raise CacheError(f"{path}: not a photo-source cache (no persons); prepare it with "
                             "`python -m fusion_fer.research.prepare --photos SOURCE --out DIR`")
        names = cache.meta.get("classes", FERPLUS_CLASSES)
        labels = np.array([classes.index(names[k]) if names[k] in classes else -1 for k in cache.labels], np.int64)
        fold = person_folds(cache.persons, config.folds)
        held = np.zeros(len(labels), bool) if config.fold is None else fold == config.fold
        train_idx = np.flatnonzero(~held & cache.face & (labels >= 0))
        if len(train_idx) == 0:
            raise ValueError(f"{path}: no faces to train on outside the held-out fold")
        name = Path(cache.meta.get("source", path)).name or Path(path).name
        sets.append(PhotoSet(name, cache, labels, train_idx, np.flatnonzero(held & (labels >= 0)),
                             sampler_weights(labels[train_idx], config.balance_power)))
    return sets


def draw_epoch(steps: int, n_main: int, n_photo: int, weights: np.ndarray, photos: list[PhotoSet],
               gen: torch.Generator) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """One epoch's draws: positions into the main cache's training faces (steps * n_main, by `weights`) and, for
    every step, each photo source's rows (n_photo in all). Each face of a batch picks its source at random with
    equal odds, so no source is starved when the share does not divide evenly; inside a source, by its weights."""
    order = torch.multinomial(torch.from_numpy(weights), steps * n_main, replacement=True, generator=gen).numpy()
    if not photos or n_photo == 0:
        return order, []
    pools = [ps.train_idx[torch.multinomial(torch.from_numpy(ps.weights), steps * n_photo, replacement=True,
                                            generator=gen).numpy()] for ps in photos]
    pick = torch.randint(0, len(photos), (steps, n_photo), generator=gen).numpy()
    per_step = [[pool[s * n_photo:(s + 1) * n_photo][pick[s] == k] for k, pool in enumerate(pools)] for s in range(steps)]
    return order, per_step


def heldout_accuracy(model: FusionNet, ps: PhotoSet, stats: LandmarkStats, device: torch.device, bf16: bool) -> float:
    """Accuracy of the label a user sees (argmax over all classes, with the mirror) on the held-out persons;
    a photo whose face detection missed is wrong."""
    idx = ps.heldout_idx
    probs = predict_cache(model, ps.cache, idx, stats, device, flip=True, bf16=bf16)
    return float(((probs.argmax(1) == ps.labels[idx]) & ps.cache.face[idx]).mean())


def fit_landmark_stats(cache: Cache, train_idx: np.ndarray) -> LandmarkStats:
    """Landmark mean/std over the training faces that have landmarks."""
    return LandmarkStats.fit(normalize(cache.landmarks[train_idx]), cache.found[train_idx])


def sampler_weights(labels: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(labels).astype(np.float64)
    per_class = np.where(counts > 0, np.maximum(counts, 1) ** -power, 0.0)
    w = per_class[labels]
    return w / w.sum()


def channels_last_ok(config: FusionConfig) -> torch.memory_format:
    """channels_last speeds CPU convolutions ~1.5x, but oneDNN in torch 2.15 corrupts memory in the
    backward pass of convolutions with fewer than 16 channels, so tiny models stay contiguous."""
    return torch.channels_last if min(config.widths) >= 16 else torch.contiguous_format


def lr_at(step: float, total: float, warmup: float, base: float) -> float:
    """Linear warm-up to `base`, then cosine annealing to zero."""
    if step < warmup:
        return base * (step + 1) / max(1.0, warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1.0, total - warmup))))


@torch.inference_mode()
def predict_cache(model: FusionNet, cache: Cache, idx: np.ndarray, stats: LandmarkStats, device: torch.device,
                  flip: bool = True, batch_size: int = 512, bf16: bool = False, zooms: tuple[float, ...] = (1.0,),
                  soften_sigma: float = 0.0) -> np.ndarray:
    """Class probabilities (len(idx), classes) for cached faces, with or without flip averaging, over `zooms` framings,
    the crops softened as a model folder's `soften` asks (the Predictor's own preprocessing)."""
    model.eval()
    out = []
    for s in range(0, len(idx), batch_size):
        b = idx[s:s + batch_size]
        logp = log_probs(model, cache.images[b], cache.landmarks[b], cache.found[b], stats, device, flip=flip, bf16=bf16,
                         zooms=zooms, soften_sigma=soften_sigma)
        out.append(torch.exp(logp).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes), np.float32)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state(gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["gen"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def plot_curves(rows: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [r["train_loss"] for r in rows], label="train")
    a1.plot(ep, [r["val_loss"] for r in rows], label="PublicTest")
    a1.set_xlabel("epoch"), a1.set_ylabel("loss"), a1.legend(), a1.grid(alpha=0.3)
    a2.plot(ep, [r["train_acc"] for r in rows], label="train (augmented)")
    a2.plot(ep, [r["val_acc"] for r in rows], label="PublicTest")
    for key in [k for k in rows[0] if k.startswith("heldout_")]:
        a2.plot(ep, [r[key] for r in rows], label=f"{key[8:]} (held-out persons)", linestyle="--")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.legend(), a2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def train(cache: Cache, out_dir: str | os.PathLike, config: TrainConfig, resume: bool = False,
          progress: bool = True) -> dict:
    """Trains a FusionNet on a prepared cache.

    Writes to `out_dir`: checkpoint.pt (every epoch, for --resume), best.pt (best PublicTest
    accuracy; a state_dict), log.csv, curves.png, args.json, stats.json.

    Returns:
        Summary: best epoch and PublicTest accuracy, epochs run, whether it finished.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    labels = cache_labels(cache, config.labels)
    train_labels, soft = training_targets(cache, config.labels, config.fer2013_weight, config.fer2013_spare_contempt)
    train_idx = np.flatnonzero((cache.splits == 0) & (train_labels >= 0) & cache.face)
    val_idx = np.flatnonzero((cache.splits == 1) & (labels >= 0) & cache.face)
    public_idx = np.flatnonzero((cache.splits == 1) & ((labels >= 0) | (cache.labels >= 0)) & cache.face)
    if len(train_idx) == 0:
        raise ValueError("no labelled training faces in the cache")
    if len(val_idx) == 0:
        raise ValueError("no labelled PublicTest (validation) faces in the cache: early stopping needs them")
    init_state = None
    if config.init:
        init_state, init_model, stats = init_weights(config.init)
        # The architecture comes from the model fine-tuned; only the number of classes may change.
        config.model = FusionConfig.from_dict({**init_model.to_dict(), "num_classes": config.model.num_classes})
    if not config.init or config.refit_stats:
        stats = fit_landmark_stats(cache, train_idx)
    (out / "stats.json").write_text(json.dumps(stats.to_dict()))

    model = FusionNet(config.model)
    if init_state is not None and not (resume and (out / "checkpoint.pt").exists()):
        grown, fresh = load_init(model, init_state)
        print(f"fine-tuning from {config.init}" + (f"; heads grown by new classes: {', '.join(grown)}" if grown else "")
              + (f"; new (untrained) tensors: {', '.join(fresh)}" if fresh else ""))
    model = model.to(device)
    memory_format = channels_last_ok(config.model)
    model = model.to(memory_format=memory_format)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    steps_per_epoch = max(1, len(train_idx) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = config.warmup_epochs * steps_per_epoch
    weights = sampler_weights(train_labels[train_idx], config.balance_power)
    photos = photo_sets(config)
    n_photo = round(config.batch_size * config.photo_share) if photos else 0
    n_main = config.batch_size - n_photo
    n_classes = config.model.num_classes

    start_epoch, best_acc, best_epoch, rows = 1, -1.0, 0, []
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)  # our own file: it holds RNG states
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], gen)
        start_epoch, best_acc, best_epoch, rows = ckpt["epoch"] + 1, ckpt["best_acc"], ckpt["best_epoch"], ckpt["rows"]
        print(f"resuming from epoch {ckpt['epoch']} (best PublicTest accuracy {best_acc:.4f} at epoch {best_epoch})")
    (out / "args.json").write_text(json.dumps(asdict(config), indent=2))

    t_start = time.time()
    finished = start_epoch > config.epochs or (start_epoch - 1 - best_epoch) >= config.patience
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        model.train()
        t0 = time.time()
        order, photo_rows = draw_epoch(steps_per_epoch, n_main, n_photo, weights, photos, gen)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        for step in bar:
            b = train_idx[order[step * n_main:(step + 1) * n_main]]
            parts = [(cache, b, config.augment, train_labels[b], soft[b] if soft is not None else None)]
            for ps, sel in zip(photos, photo_rows[step] if photos else ()):
                hard = ps.labels[sel]
                parts.append((ps.cache, sel, config.photo_augment, hard,
                              np.eye(n_classes, dtype=np.float32)[hard] if soft is not None else None))
            xs, zs, guides, fs, hards, ys = [], [], [], [], [], []
            for src, sel, aug, hard, target in parts:
                if len(sel) == 0:
                    continue
                found = src.found[sel].copy()
                if config.model.mode == "fused" and config.model.modality_dropout > 0:
                    # Hide landmarks on some faces so the image branch alone must carry them.
                    found &= torch.rand(len(sel), generator=gen).numpy() >= config.model.modality_dropout
                x1, z1, g1 = augment_batch(src.images[sel], src.landmarks[sel], found, stats, config.model.image_size, aug,
                                           gen, guide_points=config.model.guide_points if config.model.uses_points else ())
                xs.append(x1), zs.append(z1), guides.append(g1), fs.append(found), hards.append(hard)
                ys.append(target if target is not None else hard)
            x = torch.cat(xs).to(device, non_blocking=True).contiguous(memory_format=memory_format)
            z = torch.cat(zs).to(device, non_blocking=True)
            guide = torch.cat(guides).to(device, non_blocking=True) if guides[0] is not None else None
            f = torch.from_numpy(np.concatenate(fs)).to(device)
            y_hard = torch.from_numpy(np.concatenate(hards)).to(device)
            y = torch.from_numpy(np.concatenate(ys)).to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at((epoch - 1) * steps_per_epoch + step, total_steps, warmup, config.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss, logits = model.training_loss(x, z, f, y, criterion, points=guide)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(y_hard)
            tot_correct += int((logits.argmax(1) == y_hard).sum())
            seen += len(y_hard)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        probs = predict_cache(model, cache, val_idx, stats, device, flip=False, bf16=config.bf16)
        val_loss = float(-np.log(np.clip(probs[np.arange(len(val_idx)), labels[val_idx]], 1e-8, None)).mean())
        val_acc = float((probs.argmax(1) == labels[val_idx]).mean())
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": tot_loss / seen, "train_acc": tot_correct / seen,
               "val_loss": val_loss, "val_acc": val_acc}
        if photos:
            # What the fold rule reads: PublicTest and the held-out persons as a user's label is made (the mirror).
            mirrored = predict_cache(model, cache, public_idx, stats, device, flip=True, bf16=config.bf16).argmax(1)
            at_val = np.searchsorted(public_idx, val_idx)
            row["val_acc_mirror"] = float((mirrored[at_val] == labels[val_idx]).mean())
            if config.labels == "ferplus8":
                # FER2013's own labels on the same faces (its 7 classes are the first 7 of the 8; contempt is wrong).
                own = cache.labels[public_idx] >= 0
                row["val_acc_fer2013_mirror"] = float((mirrored[own] == cache.labels[public_idx][own]).mean())
            for ps in photos:
                if len(ps.heldout_idx):
                    row[f"heldout_{ps.name}"] = heldout_accuracy(model, ps, stats, device, config.bf16)
        row["seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch = val_acc, epoch
        if epoch == config.keep_epoch or (config.keep_epoch is None and improved):
            _atomic_torch_save(model.state_dict(), out / "best.pt")
        _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "best_acc": best_acc,
                            "best_epoch": best_epoch, "rows": rows, "rng": _rng_state(gen), "config": asdict(config)}, ckpt_path)
        _write_log(rows, out / "log.csv")
        plot_curves(rows, out / "curves.png")
        held = "".join(f" | {k[8:]} {v:.4f}" for k, v in row.items() if k.startswith("heldout_"))
        print(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | PublicTest loss {val_loss:.4f} "
              f"acc {val_acc:.4f}{' *' if improved else ''}{held} | {row['seconds']:.0f}s", flush=True)
        if epoch == config.keep_epoch:
            print(f"epoch {epoch} is the one kept; the later epochs of the schedule cannot change it")
            finished = True
            break
        if config.keep_epoch is None and epoch - best_epoch >= config.patience:
            print(f"early stop: no PublicTest improvement for {config.patience} epochs")
            finished = True
            break
        if config.max_minutes is not None and (time.time() - t_start) / 60 > config.max_minutes:
            print(f"time budget of {config.max_minutes} min reached after epoch {epoch}; continue with --resume")
            break
    else:
        finished = True
    summary = {"best_epoch": best_epoch, "best_public_acc": best_acc, "epochs_run": len(rows), "last_epoch": epoch,
               "finished": finished, "train_faces": int(len(train_idx)), "val_faces": int(len(val_idx))}
    if config.keep_epoch is not None:
        summary["kept_epoch"] = config.keep_epoch  # best.pt: chosen on folds, whatever PublicTest said
    if photos:
        summary["photo_sources"] = {ps.name: {"train_faces": int(len(ps.train_idx)), "heldout_faces": int(len(ps.heldout_idx))}
                                    for ps in photos}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _write_log(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """A training run's settings, from its args.json."""
    args = json.loads((Path(run_dir) / "args.json").read_text())
    model_cfg = FusionConfig.from_dict(args.pop("model"))
    aug = AugmentConfig(**args.pop("augment"))
    photo_aug = AugmentConfig(**args.pop("photo_augment")) if "photo_augment" in args else AugmentConfig(**PHOTO)
    return TrainConfig(**args, model=model_cfg, augment=aug, photo_augment=photo_aug)


def load_run_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[FusionNet, LandmarkStats, TrainConfig]:
    """The best model of a training run, its landmark statistics and its settings."""
    run = Path(run_dir)
    config = run_config(run)
    model = FusionNet(config.model)
    model.load_state_dict(torch.load(run / "best.pt", map_location=device, weights_only=True))
    stats = LandmarkStats.from_dict(json.loads((run / "stats.json").read_text()))
    return model.to(device).eval(), stats, config
