"""Train fusion_fer's classifier.

    python train.py --data ../shared/data/fer2013/fer2013_reconstructed.csv.gz --out runs/fer2013
    python train.py --data cache/fer2013 --out runs/fer2013 --resume
    python train.py --data my_photos/ --out runs/mine          # root/<class>/*.jpg, faces cropped by MTCNN
    python train.py --data cache/fer2013 --labels ferplus8 --init artifacts/ferplus --out runs/mixed \
        --photos ../shared/data/taiwanese_dev --photos ../shared/data/ckplus48@A --fold 0   # FER+ and clear photos

`--data` may be a FER2013 CSV, a prepared cache (python -m fusion_fer.research.prepare) or an image
folder; anything but a cache is prepared first, into <out>/cache (resumable too). Each `--photos` source
(a <class>/*.jpg folder, a CSV with file, label and person, or a prepared photo cache) is prepared into
<out>/photos/<name> the same way, through detection, the calibrated crop and the mesh.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fusion_fer.artifacts import ArtifactError, refuse_shipped
from fusion_fer.model import FUSIONS, MODES, FusionConfig
from fusion_fer.research.augment import ROBUST, AugmentConfig
from fusion_fer.research.data import DatasetError, open_dataset
from fusion_fer.research.prepare import CacheError, PrepareConfig, load_cache, prepare
from fusion_fer.research.sources import read_photo_source
from fusion_fer.research.training import LABEL_SETS, TrainConfig, train


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz), a prepared cache folder, or an image folder")
    p.add_argument("--out", required=True, help="run folder: checkpoints, best weights, log.csv, curves.png")
    p.add_argument("--labels", choices=LABEL_SETS, default="fer2013",
                   help="FER2013 labels, FER+ majority labels (7 classes), or FER+ vote distributions over 8 classes (adds contempt)")
    p.add_argument("--init", default=None, help="fine-tune from this model folder (e.g. artifacts) or run folder")
    p.add_argument("--refit-landmark-stats", dest="refit_stats", action="store_true",
                   help="with --init: standardise the landmarks with this data's statistics (when the cache's mesh "
                        "comes from another landmark model than the one the model learnt from)")
    p.add_argument("--robust", action="store_true",
                   help="robustness augmentation: wider framing jitter, low resolution, blur, gamma, noise, JPEG (fusion_fer.research.augment.ROBUST)")
    p.add_argument("--jpeg", type=float, default=None, metavar="P",
                   help="also re-encode this share of training faces as JPEG (quality 30-95), on top of the chosen "
                        "augmentation: for models that will mostly see JPEG photos")
    p.add_argument("--sharpen", type=float, default=None, metavar="P",
                   help="sharpen a share P of training faces (unsharp mask), so that sharp photos look familiar")
    p.add_argument("--fer2013-weight", type=float, default=TrainConfig.fer2013_weight, metavar="W",
                   help="with --labels ferplus8: each FER face's target is (1-W) FER+ votes + W its FER2013 label")
    p.add_argument("--fer2013-spare-contempt", action="store_true",
                   help="with --fer2013-weight: W times each face's share of votes that are not contempt (FER2013 has no "
                        "contempt, so its label moves the raters' contempt less)")
    p.add_argument("--photos", action="append", default=[], metavar="SOURCE",
                   help="a photo source to learn from beside --data (repeatable): <class>/*.jpg, a CSV with file, label and "
                        "person, a folder with such a labels.csv (PATH@A: half A of its persons), or a prepared photo cache")
    p.add_argument("--photo-share", type=float, default=TrainConfig.photo_share,
                   help="share of every batch drawn from the photo sources, equal parts per source")
    p.add_argument("--folds", type=int, default=TrainConfig.folds, help="folds by person over each photo source")
    p.add_argument("--fold", type=int, default=None,
                   help="hold this fold's persons out of training and score them after every epoch (for choosing)")
    p.add_argument("--keep-epoch", type=int, default=None,
                   help="keep this epoch's weights (chosen on folds) instead of the best PublicTest epoch")
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--ferplus", default=None, help="FER+ fer2013new.csv (when --data is a CSV and --labels ferplus)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (auto: CUDA if available)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    p.add_argument("--mode", choices=MODES, default="fused", help="fused model, or one branch alone (ablation)")
    p.add_argument("--fusion", choices=FUSIONS, default=FusionConfig.fusion,
                   help="fused models: concat (pooled CNN + landmark MLP) or guided (also CNN features read at mesh points)")
    p.add_argument("--image-size", type=int, default=48, help="CNN input side (48-64)")
    p.add_argument("--patience", type=int, default=12, help="early-stopping patience on PublicTest accuracy, in epochs")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--balance-power", type=float, default=0.5, help="class sampling weight = count^-power (0 none, 1 full)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32 instead of bfloat16 autocast")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this many minutes (continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (for logs)")
    return p


def augment_config(args: argparse.Namespace) -> AugmentConfig:
    """The training augmentation that --robust, --jpeg and --sharpen ask for."""
    preset = dict(ROBUST) if args.robust else {}
    if args.jpeg is not None:
        if not 0.0 <= args.jpeg <= 1.0:
            raise ValueError(f"--jpeg is a probability between 0 and 1, not {args.jpeg}")
        preset["jpeg_p"] = args.jpeg
    if args.sharpen is not None:
        if not 0.0 <= args.sharpen <= 1.0:
            raise ValueError(f"--sharpen is a probability between 0 and 1, not {args.sharpen}")
        preset["sharpen_p"] = args.sharpen
    return AugmentConfig(**preset)


def prepare_photos(src: str, out: Path, image_size: int, progress: bool) -> str:
    """A photo cache: `src` itself (finished, or unfinished: loading it then says to resume it), or the source
    prepared (resumably) into <out>/photos/<name>."""
    if (Path(src) / "meta.json").exists() or (Path(src) / "plan.json").exists():
        return src
    source = read_photo_source(src)
    folder = out / "photos" / source.name
    prepare(source.dataset(), folder, PrepareConfig(image_size=max(48, image_size)), progress=progress)
    return str(folder)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data = Path(args.data)
    try:
        refuse_shipped(out, "train.py")
        augment = augment_config(args)  # bad settings fail before any preprocessing
        if (data / "meta.json").exists() or (data / "plan.json").exists():
            cache = load_cache(data)
        else:
            ds = open_dataset(data, ferplus=args.ferplus)
            prepare(ds, out / "cache", PrepareConfig(image_size=max(48, args.image_size)), progress=args.progress)
            cache = load_cache(out / "cache")
        photos = [prepare_photos(src, out, args.image_size, args.progress) for src in args.photos]
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, labels=args.labels, device=args.device,
            patience=args.patience, label_smoothing=args.label_smoothing, balance_power=args.balance_power,
            seed=args.seed, bf16=args.bf16, max_minutes=args.max_minutes, init=args.init, warmup_epochs=args.warmup_epochs,
            refit_stats=args.refit_stats, photos=tuple(photos), photo_share=args.photo_share, folds=args.folds,
            fold=args.fold, keep_epoch=args.keep_epoch, fer2013_weight=args.fer2013_weight,
            fer2013_spare_contempt=args.fer2013_spare_contempt,
            augment=augment,
            model=FusionConfig(mode=args.mode, image_size=args.image_size, fusion=args.fusion),
        )
        summary = train(cache, out, config, resume=args.resume, progress=args.progress)
    except (ArtifactError, DatasetError, CacheError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
