"""web/build.py's checks that need no browser: the MTCNN weights it exports for the page are the pinned ones."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .helpers import web_build


def test_the_build_refuses_mtcnn_weights_that_are_not_the_pinned_ones(tmp_path):
    """The wheel's own files pass; a copy with one byte changed in rnet.pt is refused, naming the file."""
    import facenet_pytorch

    build = web_build()
    wheel = Path(facenet_pytorch.__file__).parent / "data"
    build.check_mtcnn_weights(wheel)
    copy = tmp_path / "data"
    shutil.copytree(wheel, copy)
    data = bytearray((copy / "rnet.pt").read_bytes())
    data[-1] ^= 1
    (copy / "rnet.pt").write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="rnet.pt is not facenet-pytorch 2.5.3's MTCNN weights"):
        build.check_mtcnn_weights(copy)
