"""predict.py: the Predictor on real photos, flip symmetry, no-face and batch paths, artifact loading."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_fer import ImageLoadError
from fusion_fer.artifacts import ArtifactError, load_artifacts, save_artifacts
from fusion_fer.labels import CLASSES
from fusion_fer.landmarks import LandmarkStats
from fusion_fer.model import FusionConfig, FusionNet
from fusion_fer.predict import load_predictor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A randomly initialised model whose outputs are far from uniform (so differences show)."""
    torch.manual_seed(0)
    model = FusionNet(FusionConfig()).eval()
    with torch.no_grad():
        model.classifier[1].weight.mul_(30)
    stats = LandmarkStats(np.zeros(1404, np.float32), np.full(1404, 0.5, np.float32))
    return save_artifacts(tmp_path_factory.mktemp("model"), model, stats, temperature=1.0)


@pytest.fixture(scope="module")
def predictor(model_dir):
    return load_predictor(model_dir)


def test_predicts_every_face_with_box_probs_and_landmarks(predictor, hopper_rgb):
    faces = predictor.predict(hopper_rgb)
    assert len(faces) == 1
    f = faces[0]
    assert set(f.probs) == set(CLASSES) and abs(sum(f.probs.values()) - 1) < 1e-5
    assert f.label == max(f.probs, key=f.probs.get)
    x1, y1, x2, y2 = f.box
    assert f.landmarks.shape == (468, 3)
    # Landmarks come back in the photo's pixels, on the face.
    cx, cy = f.landmarks[:, 0].mean(), f.landmarks[:, 1].mean()
    assert x1 < cx < x2 and y1 < cy < y2
    d = f.to_dict(with_landmarks=True)
    assert d["label"] == f.label and len(d["landmarks"]) == 468


def test_a_face_and_its_mirror_get_the_same_probabilities(hopper_crop):
    """On the shipped (trained) model: flip averaging makes a face and its mirror agree.

    The two predictions differ only through Face Mesh's own noise on the flipped crop (the guided
    fusion reads features at the mesh points, so point jitter moves them a little). On Grace Hopper's
    48 px crop with one framing, the fused default: 0.06 with flip averaging, 0.25 without. With all
    three framings, which also average out some of the lopsidedness, 0.08 and 0.01.
    """
    flipped = np.ascontiguousarray(hopper_crop[:, ::-1])
    diffs = {}
    for flip in (True, False):
        p = load_predictor(flip=flip)
        p.zooms = (1.0,)  # one framing: the flip's own effect
        a, b = p.predict(hopper_crop, detect=False)[0].probs, p.predict(flipped, detect=False)[0].probs
        diffs[flip] = max(abs(a[c] - b[c]) for c in CLASSES)
    print(f"max probability difference, face vs mirror: {diffs[True]:.4f} flip-averaged, {diffs[False]:.4f} without")
    assert diffs[True] < 0.08 and diffs[True] < 0.5 * diffs[False]
    p = load_predictor()
    a, b = p.predict(hopper_crop, detect=False)[0].probs, p.predict(flipped, detect=False)[0].probs
    assert max(abs(a[c] - b[c]) for c in CLASSES) < 0.1 and max(a, key=a.get) == max(b, key=b.get)


def test_no_face_gives_an_empty_list(predictor):
    assert predictor.predict(np.full((480, 640, 3), 90, np.uint8)) == []


def test_batch_of_crops_matches_single_predictions(predictor, hopper_crop):
    crops = [hopper_crop, np.ascontiguousarray(hopper_crop[::-1]), hopper_crop[..., 0]]
    batch = predictor.predict_batch(crops)
    for crop, got in zip(crops, batch):
        one = predictor.predict(crop, detect=False)[0]
        assert got[0].label == one.label
        assert np.allclose(list(got[0].probs.values()), list(one.probs.values()), atol=1e-4)


def test_bad_inputs_raise_clear_errors(predictor, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        predictor.predict(bad)
    with pytest.raises(ArtifactError, match="config.json and model.safetensors"):
        load_artifacts(tmp_path)


def test_artifacts_round_trip(model_dir):
    model, stats, config = load_artifacts(model_dir)
    assert config["classes"] == list(CLASSES) and config["image_size"] == 48
    assert config["face"]["crop_scale"] > 1.0 and len(config["landmarks"]["mean"]) == 1404
    assert config["model"]["fusion"] == "guided" and len(config["model"]["guide_points"]) == len(model.config.guide_points)
    x, z, f = torch.randn(2, 1, 48, 48), torch.randn(2, 1404), torch.ones(2, dtype=torch.bool)
    g = torch.rand(2, len(model.config.guide_points), 2) * 2 - 1
    again, _, _ = load_artifacts(model_dir)
    assert torch.allclose(model(x, z, f, g), again(x, z, f, g))


def test_model_folders_from_before_guided_fusion_still_load(tmp_path):
    """config.json without a "fusion" key (written before it existed) is a concat model."""
    import json

    torch.manual_seed(0)
    model = FusionNet(FusionConfig(fusion="concat")).eval()
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    folder = save_artifacts(tmp_path, model, stats)
    cfg = json.loads((folder / "config.json").read_text())
    for key in ("fusion", "guide_points", "guide_stage", "guide_dim"):
        del cfg["model"][key]
    (folder / "config.json").write_text(json.dumps(cfg))
    again, _, _ = load_artifacts(folder)
    x, z, f = torch.randn(2, 1, 48, 48), torch.randn(2, 1404), torch.ones(2, dtype=torch.bool)
    assert again.config.fusion == "concat" and torch.allclose(model(x, z, f), again(x, z, f))


def test_fast_stream_detection_keeps_the_prediction(hopper_rgb):
    """The webcam path detects on a 320 px copy with a larger minimum face; the smoothed label must not change.

    Its boxes differ a little (IoU ~0.9) from full detection, which moves single-frame probabilities: the
    default reads one framing, so one box shifted by 11 px turns a single frame's neutral (0.85) into a
    near tie (sad 0.52). At most one single frame in ten may differ; smoothed, every frame agrees.
    """
    import cv2

    from fusion_fer.stream import StreamState

    p = load_predictor()
    fast_kw = StreamState().predict_kwargs()
    slow_state, fast_state = StreamState(), StreamState()
    face = cv2.resize(hopper_rgb, (376, 440))
    differ = 0
    for i in range(10):
        frame = np.full((480, 640, 3), 70, np.uint8)
        x = 132 + int(12 * np.sin(i / 3))
        frame[20:460, x:x + 376] = face
        full, fast = p.predict(frame), p.predict(frame, **fast_kw)
        assert len(full) == len(fast) == 1
        differ += full[0].label != fast[0].label
        assert slow_state.update(full, p.classes)[0].label == fast_state.update(fast, p.classes)[0].label
    assert differ <= 1


def test_shipped_models_load_by_name_and_the_default_comes_first(tmp_path):
    from fusion_fer import FERPLUS_CLASSES, model_names
    from fusion_fer.artifacts import DEFAULT_DIR, collection

    names = model_names()
    default = collection()["default"]
    assert names[0] == default and set(names) == set(collection()["models"])
    for name in names:
        p = load_predictor(name)
        assert p.name == name and p.classes in (CLASSES, FERPLUS_CLASSES)
        assert p.model.config.num_classes == len(p.classes)
        assert (len(p.model.config.guide_points) > 0) == (p.model.config.mode == "fused")  # guided fusion reads mesh points
    assert load_predictor().name == default == load_predictor(DEFAULT_DIR).name  # a collection folder means its default
    with pytest.raises(ArtifactError, match="unknown model 'happyface'.*" + names[0]):
        load_predictor("happyface")


def test_a_collection_folder_of_ones_own_loads_its_default(model_dir, tmp_path):
    import json
    import shutil

    shutil.copytree(model_dir, tmp_path / "mine")
    (tmp_path / "models.json").write_text(json.dumps({"default": "mine", "models": {"mine": {}}}))
    p = load_predictor(tmp_path)
    assert p.name == "mine" and p.classes == CLASSES
    (tmp_path / "models.json").write_text(json.dumps({"default": "gone", "models": {"mine": {}}}))
    with pytest.raises(ArtifactError, match="no valid default"):
        load_predictor(tmp_path)


def test_a_second_model_shares_the_detector_and_mesh(model_dir, predictor):
    other = load_predictor(model_dir, share=predictor)
    assert other.detector is predictor.detector and other.mesh is predictor.mesh


def test_shipped_models_answer_as_before_on_the_sample_photos():
    """Labels, probabilities and boxes of both shipped models on the sample photos and an assembled group,
    against tests/data/golden_predictions.json (re-recorded when the mesh became the Face Landmarker's, and
    ferplus's again each time the default was retrained: every label as before but fer2013's on Grace Hopper,
    neutral before, now sad, a near tie)."""
    import json

    from fusion_fer.samples import astronaut, cameraman, grace_hopper

    from .helpers import group_photo

    golden = json.loads((Path(__file__).parent / "data" / "golden_predictions.json").read_text())
    photos = {"grace_hopper": grace_hopper(), "astronaut": astronaut(), "cameraman": cameraman(),
              "group_crowd_0": np.asarray(group_photo("crowd", seed=0)[0])}
    for model, expected in golden.items():
        predictor = load_predictor(model)
        for name, photo in photos.items():
            got = predictor.predict(photo)
            assert [f.label for f in got] == [f["label"] for f in expected[name]], (model, name)
            for face, want in zip(got, expected[name]):
                assert np.allclose(face.box, want["box"], atol=1.0), (model, name)
                assert max(abs(face.probs[c] - p) for c, p in want["probs"].items()) < 2e-3, (model, name)


def test_a_model_folder_can_soften_the_crops_it_reads(model_dir, tmp_path, hopper_rgb):
    """`soften` in config.json blurs what the network sees (not the mesh): the landmarks stay, the answer moves."""
    import json
    import shutil

    soft = tmp_path / "soft"
    shutil.copytree(model_dir, soft)
    cfg = json.loads((soft / "config.json").read_text())
    (soft / "config.json").write_text(json.dumps({**cfg, "soften": 1.5}))
    sharp, blurred = load_predictor(model_dir).predict(hopper_rgb)[0], load_predictor(soft).predict(hopper_rgb)[0]
    assert load_predictor(soft).soften == 1.5 and load_predictor(model_dir).soften == 0.0
    assert np.array_equal(sharp.landmarks, blurred.landmarks) and sharp.box == blurred.box
    assert max(abs(sharp.probs[c] - blurred.probs[c]) for c in sharp.probs) > 1e-4


def test_every_shipped_model_is_fused_and_answers_a_face_without_landmarks():
    """The product's design: CNN + landmark MLP + guided fusion. A face the mesh cannot mark (here a flat
    grey crop) still gets probabilities, from the image branch."""
    from fusion_fer import model_names

    blank = np.full((48, 48), 128, np.uint8)
    for name in model_names():
        p = load_predictor(name)
        assert p.model.config.mode == "fused" and p.model.config.fusion == "guided", name
        [face] = p.predict(blank, detect=False)
        assert face.landmarks is None and abs(sum(face.probs.values()) - 1) < 1e-4 and face.label in p.classes


def test_predict_at_a_known_box_is_predict_without_detection(hopper_rgb):
    """A tracker's box gives the same crop, hence the same answer, as the detection it came from; the live
    recipe is the photo recipe with the model's live framings only; a box without a face has no mesh."""
    p = load_predictor()
    full = p.predict(hopper_rgb)[0]
    at = p.predict_at(hopper_rgb, [full.box])[0]
    assert at.label == full.label and max(abs(at.probs[c] - full.probs[c]) for c in p.classes) < 1e-5
    assert np.allclose(at.landmarks, full.landmarks, atol=1e-3)
    zooms, live_zooms = p.zooms, p.live_zooms
    try:
        p.zooms, p.live_zooms = (0.9, 1.0, 1.1), (1.0,)  # a photo recipe of three framings, a live one of one
        live, photo = p.predict(hopper_rgb, live=True)[0], p.predict(hopper_rgb)[0]
        p.zooms = p.live_zooms
        same = p.predict(hopper_rgb)[0]
    finally:
        p.zooms, p.live_zooms = zooms, live_zooms
    assert live.probs == same.probs and live.probs != photo.probs
    blank = np.full_like(hopper_rgb, 90)
    assert p.predict_at(blank, [full.box])[0].landmarks is None
    assert p.predict_at(hopper_rgb, []) == []


def test_the_image_goes_down_through_the_modules_once(predictor):
    """The image's walk through `predict`: followed line by line in predict.py, faces.py and imageio.py, it
    climbs back up into predict.py at most twice and comes back to a file it had left at most 3 times
    (one way in for pixels in imageio, detection, crops and their inverse in faces)."""
    import os
    import sys

    import fusion_fer
    from fusion_fer.samples import grace_hopper

    root = os.path.dirname(fusion_fer.__file__)
    files = {os.path.join(root, f) for f in ("predict.py", "faces.py", "imageio.py")}
    path = str(grace_hopper())
    predictor.predict(path)  # first call: lazy imports and threads start outside the trace
    stays: list[str] = []

    def trace(frame, event, arg):
        f = frame.f_code.co_filename
        if event == "line" and f in files and (not stays or stays[-1] != f):
            stays.append(f)
        return trace

    sys.settrace(trace)
    try:
        faces = predictor.predict(path)
    finally:
        sys.settrace(None)
    assert len(faces) == 1 and faces[0].landmarks is not None
    names = [os.path.basename(f) for f in stays]
    climbs = sum(b == "predict.py" for b in names[1:])
    returns = sum(b in names[:i] for i, b in enumerate(names[1:], 1))
    assert {"faces.py", "imageio.py"} <= set(names)  # the trace saw the walk
    assert climbs <= 2 and returns <= 3, " > ".join(names)


def test_the_mesh_beside_the_network_gives_the_sequential_answer_and_gives_torchs_threads_back(predictor, hopper_rgb):
    """`predict` runs the image branch while the mesh is found on another thread; the answer must equal the
    one from the finished mesh (`crop_probs`, which evaluation uses), and torch must get its threads back."""
    import torch

    threads = torch.get_num_threads()
    face = predictor.predict(hopper_rgb)[0]
    assert torch.get_num_threads() == threads
    found = predictor.find_faces(hopper_rgb)
    points, ok, _ = predictor.mesh_points(found.crops)
    probs = predictor.crop_probs(found.crops, points, ok)[0]
    assert np.allclose([face.probs[c] for c in predictor.classes], probs, atol=1e-5)


def test_importing_fusion_fer_shortens_torchs_openmp_spin_unless_the_user_chose_one():
    import os
    import subprocess
    import sys

    def spin(env):
        code = "import os, fusion_fer; print(os.environ['GOMP_SPINCOUNT'])"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert spin(env) == "30000"
    assert spin({**env, "GOMP_SPINCOUNT": "5"}) == "5"
