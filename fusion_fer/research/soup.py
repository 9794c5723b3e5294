"""A model soup: the uniform average of the weights of training runs fine-tuned from one starting point.

    python -m fusion_fer.research.soup --run runs/a --run runs/b --out runs/soup
    python -m fusion_fer.research.export --run runs/soup --data cache/fer2013 --out my_model

Networks fine-tuned from the same weights (different seeds, say) stay in one basin of the loss, so
their average is a network as good as each, often better on data unlike the training set (Wortsman et
al. 2022, "Model soups"), and it costs nothing at inference: it is still one network. The soup is
written as a run folder (best.pt; args.json and stats.json of the first run; summary.json naming the ingredients), so
everything that reads a run (export, train.py --init) reads it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..artifacts import ArtifactError, refuse_shipped
from .training import load_run_model


class SoupError(ValueError):
    """The runs cannot be averaged (different networks, different landmark statistics, missing files)."""


def make_soup(runs: list[str | Path], out: str | Path) -> dict:
    """Averages the best weights of `runs` into the run folder `out`; returns its summary.

    Raises:
        SoupError: fewer than two runs, a run without best.pt, or runs whose networks, classes,
            landmark statistics or starting points differ (their average would mean nothing).
    """
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise SoupError("a soup needs at least two runs")
    for r in runs:
        missing = [f for f in ("best.pt", "args.json", "stats.json") if not (r / f).exists()]
        if missing:
            raise SoupError(f"{r} is not a finished training run (no {', '.join(missing)})")
    first_args = json.loads((runs[0] / "args.json").read_text())
    first_stats = (runs[0] / "stats.json").read_text()
    states, network, start = [], None, first_args.get("init")
    for r in runs:
        model, _, config = load_run_model(r)
        network = network or config.model.to_dict()
        if config.model.to_dict() != network:
            raise SoupError(f"{r}: its network ({config.model.mode}, {config.model.num_classes} classes) is not {runs[0]}'s")
        if (r / "stats.json").read_text() != first_stats:
            raise SoupError(f"{r}: landmark statistics differ from {runs[0]}'s (trained on other data)")
        if start is None or config.init != start:
            raise SoupError(f"{r}: runs must be fine-tuned from one starting point (--init), got {config.init!r} and {start!r}")
        states.append(model.state_dict())
    soup = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            soup[k] = torch.stack([s[k] for s in states]).mean(0)
        else:  # counters (BatchNorm's num_batches_tracked): the first run's
            soup[k] = v.clone()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(soup, out / "best.pt")
    (out / "args.json").write_text(json.dumps(first_args, indent=2))  # the settings (a TrainConfig); the recipe is in summary.json
    (out / "stats.json").write_text(first_stats)
    ingredients = [json.loads((r / "summary.json").read_text()) if (r / "summary.json").exists() else {} for r in runs]
    summary = {"soup_of": [str(r) for r in runs], "ingredients": ingredients, "finished": True,
               "train_faces": ingredients[0].get("train_faces"), "val_faces": ingredients[0].get("val_faces")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="a training run folder (give two or more)")
    p.add_argument("--out", required=True, help="the soup's run folder")
    args = p.parse_args(argv)
    try:
        refuse_shipped(args.out, "soup")
        summary = make_soup(args.run, args.out)
    except (ArtifactError, SoupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: the average of {len(summary['soup_of'])} runs ({', '.join(summary['soup_of'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
