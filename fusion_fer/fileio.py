"""Files that appear whole or not at all: a reader (the app, a resumed run, a second process) never sees
half of one, and a crash leaves the previous version in place."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` only when the block succeeds.

        with atomic_path("metrics.json") as tmp:
            tmp.write_text(...)
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")  # keeps the suffix: savefig and np.savez go by it
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` whole (flushed to disk before it replaces `path`: a crash leaves one version or the other)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: object, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent))
