"""The left/right permutation of Face Mesh points (the product's `landmarks.mirror_index` asset),
derived from a prepared cache: each training face is meshed again mirrored, and points are matched.

    python -m fusion_fer.research.mirror --cache cache/fer2013 [--n 1000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..landmarks import MIRROR_INDEX_FILE, N_POINTS, FaceMesh, eye_indices, tesselation_edges
from .prepare import load_cache


def derive_mirror_index(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Finds the left/right point permutation from meshes of faces and of their flips.

    For each face, mesh(flip(crop)) reflected back lies on the same physical points as
    mesh(crop), but each point carries its mirror partner's index. Summing the point-to-point
    distances over many faces and solving the assignment recovers the permutation; averaging
    over faces removes the mesh's per-face jitter.

    Args:
        pairs: (mesh(crop), mesh(flip(crop))) in crop units, each (468, 3).

    Returns:
        (468,) permutation, an involution.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.zeros((N_POINTS, N_POINTS), dtype=np.float64)
    for orig, flipped in pairs:
        a = orig[:, :2].astype(np.float64)
        b = flipped[:, :2].astype(np.float64).copy()
        b[:, 0] = 1.0 - b[:, 0]  # back into the original's frame
        cost += np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    # A mirror swaps pairs, so the two directions of the cost must agree: solve on their sum.
    _, index = linear_sum_assignment(cost + cost.T)
    if not np.array_equal(index[index], np.arange(N_POINTS)):
        raise ValueError("the matched permutation is not an involution; use more (or cleaner) faces")
    return index.astype(np.int64)


def mirror_edge_agreement(index: np.ndarray) -> float:
    """Fraction of mesh edges that the permutation maps onto mesh edges (1.0 for a perfect mirror)."""
    edges = tesselation_edges()
    edge_set = {tuple(e) for e in edges.tolist()}
    mapped = np.sort(index[edges], axis=1)
    return float(np.mean([tuple(e) in edge_set for e in mapped.tolist()]))


def main(argv: list[str] | None = None) -> int:
    """`python -m fusion_fer.research.mirror --cache DIR`: rebuilds the mirror index asset."""
    p = argparse.ArgumentParser(description="Derive the left/right landmark permutation from a prepared cache.")
    p.add_argument("--cache", required=True, help="a prepared cache folder (its training crops are used)")
    p.add_argument("--n", type=int, default=1000, help="faces to match")
    p.add_argument("--out", default=str(MIRROR_INDEX_FILE))
    args = p.parse_args(argv)
    cache = load_cache(args.cache)
    mesh = FaceMesh()
    pairs = []
    for i in np.flatnonzero(cache.found & (cache.splits == 0)):
        flipped = mesh(np.ascontiguousarray(cache.images[i][:, ::-1]))
        if flipped is not None:
            pairs.append((cache.landmarks[i], flipped.points))
        if len(pairs) >= args.n:
            break
    index = derive_mirror_index(pairs)
    left, right = eye_indices()
    doc = {
        "about": "Face Mesh point i of a face is point index[i] of its horizontal mirror image.",
        "derived_by": f"python -m fusion_fer.research.mirror --cache <FER2013 cache> --n {args.n}",
        "faces": len(pairs),
        "fixed_points": int(np.sum(index == np.arange(N_POINTS))),
        "tesselation_edge_agreement": round(mirror_edge_agreement(index), 4),
        "eyes_swap": bool(np.array_equal(np.sort(index[left]), right)),
        "index": index.tolist(),
    }
    Path(args.out).write_text(json.dumps(doc))
    print(json.dumps({k: v for k, v in doc.items() if k != "index"}, indent=2))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
