"""research/export.py: the one writer of model folders."""
from __future__ import annotations

import json

import pytest

from fusion_fer.research.prepare import load_cache
from fusion_fer.research.training import TrainConfig, train

from .conftest import SMALL


def test_test_time_framings_are_chosen_on_publictest_and_travel_with_the_model(tiny_cache, tmp_path, capsys):
    from fusion_fer.research import evaluate, export
    from fusion_fer.predict import load_predictor
    from fusion_fer.research.training import load_run_model

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "run", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    model, stats, _ = load_run_model(tmp_path / "run")
    choice = evaluate.select_zooms(model, stats, cache)
    acc = choice["public_test_accuracy"]
    assert set(acc) == {"1.0", "1.0 1.1", "0.9 1.0", "0.9 1.0 1.1"}
    best = max(acc, key=acc.get)
    assert choice["chosen"] == ([float(z) for z in best.split()] if acc[best] - acc["1.0"] >= evaluate.ZOOM_MIN_GAIN else [1.0])
    # a fixed set is stored in the exported config.json and the Predictor averages those framings
    # --blind: a candidate's export prints nothing about PrivateTest, but its metrics.json has the report
    capsys.readouterr()
    assert export.main(["--run", str(tmp_path / "run"), "--data", str(tiny_cache), "--zooms", "0.9 1.0",
                        "--out", str(tmp_path / "model"), "--blind"]) == 0
    out = capsys.readouterr().out
    assert "PrivateTest" in out and "not printed" in out and "accuracy" not in out and "recall" not in out
    assert "accuracy" in json.loads((tmp_path / "model" / "metrics.json").read_text())["with_flip"]
    p = load_predictor(tmp_path / "model")
    assert p.zooms == (0.9, 1.0)
    two = p.predict(cache.images[0], detect=False)[0].probs
    p.zooms = (1.0,)
    one = p.predict(cache.images[0], detect=False)[0].probs
    assert max(abs(two[c] - one[c]) for c in one) > 1e-4  # the extra framing changes the answer


def _tree(folder):
    return {str(f.relative_to(folder)): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.rglob("*")) if f.is_file()}


def test_research_commands_refuse_shipped_models(tiny_cache, tmp_path, capsys):
    """Only export --ship writes into artifacts/: training, soups, selection, reports and a plain export are
    refused with a message that says where to write instead, and the shipped folders stay as they were."""
    import pytest

    import train as train_cli
    from fusion_fer.artifacts import DEFAULT_DIR, ArtifactError, update_model
    from fusion_fer.research import evaluate, export, select, soup

    before = _tree(DEFAULT_DIR)
    train(load_cache(tiny_cache), tmp_path / "run", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    run = str(tmp_path / "run")
    capsys.readouterr()
    for argv in (["--run", run, "--data", str(tiny_cache), "--out", str(DEFAULT_DIR / "ferplus")],
                 ["--run", run, "--data", str(tiny_cache), "--out", str(DEFAULT_DIR / "brand_new")]):
        assert export.main(argv) == 2
        assert "does not write shipped models" in capsys.readouterr().err
    assert select.main(["--model", "ferplus", "--data", str(tmp_path), "--apply", str(DEFAULT_DIR / "ferplus")]) == 2
    assert "select --apply does not write shipped models" in capsys.readouterr().err
    assert soup.main(["--run", run, "--run", run, "--out", str(DEFAULT_DIR / "soup")]) == 2
    assert evaluate.main(["--model", "fer2013", "--suite", str(tmp_path), "--out", str(DEFAULT_DIR / "fer2013")]) == 2
    assert "only export writes" in capsys.readouterr().err
    args = train_cli.get_args_parser().parse_args(["--data", str(tiny_cache), "--out", str(DEFAULT_DIR / "x"), "--epochs", "1"])
    assert train_cli.main(args) == 2 and "train.py does not write shipped models" in capsys.readouterr().err
    with pytest.raises(ArtifactError, match="shipped"):
        update_model(DEFAULT_DIR / "ferplus", metrics={"x": 1})
    with pytest.raises(SystemExit):  # --ship outside artifacts/ is a usage error
        export.main(["--model", "ferplus", "--out", str(tmp_path / "m"), "--ship"])
    assert _tree(DEFAULT_DIR) == before


def test_export_ships_a_model_with_its_report_card_and_no_local_paths(tiny_cache, tmp_path, monkeypatch):
    """A run -> an export folder -> a (stand-in) shipped folder with a report merged in: config.json names the
    run it started from without its path, a card already there is kept, and the report's files arrive."""
    from fusion_fer import artifacts
    from fusion_fer.predict import load_predictor
    from fusion_fer.research import export

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "start", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    train(cache, tmp_path / "tune", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL, init=str(tmp_path / "start")),
          progress=False)
    assert export.main(["--run", str(tmp_path / "tune"), "--data", str(tiny_cache), "--out", str(tmp_path / "cand")]) == 0
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"suite": {"report": {"x": 1}}}))
    (report / "suite.md").write_text("# a report\n")
    shipped = tmp_path / "artifacts"
    (shipped / "mine").mkdir(parents=True)
    (shipped / "mine" / "README.md").write_text("# mine: a card written by people\n")
    monkeypatch.setattr(artifacts, "DEFAULT_DIR", shipped)
    assert export.main(["--model", str(tmp_path / "cand"), "--out", str(shipped / "mine")]) == 2  # no --ship
    assert export.main(["--model", str(tmp_path / "cand"), "--report", str(report), "--out", str(shipped / "mine"), "--ship"]) == 0
    folder = shipped / "mine"
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["init"] == "start" and str(tmp_path) not in (folder / "config.json").read_text()
    assert str(tmp_path) not in (folder / "metrics.json").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["suite"] == {"report": {"x": 1}} and "with_flip" in metrics
    assert (folder / "README.md").read_text().startswith("# mine: a card") and (folder / "suite.md").read_text() == "# a report\n"
    assert (folder / "training_log.csv").is_file() and (folder / "confusion_matrix.png").is_file()
    one = load_predictor(folder).predict(cache.images[0], detect=False)[0].probs
    two = load_predictor(tmp_path / "cand").predict(cache.images[0], detect=False)[0].probs
    assert one == two
    # the webcam's recipe: the framings a report was scored with become the folder's live ones
    live = tmp_path / "live"
    live.mkdir()
    (live / "metrics.json").write_text(json.dumps({"suite": {"config": {"zooms": [0.9]}, "select": {"x": 2}}}))
    (report / "metrics.json").write_text(json.dumps({"suite": {"config": {"zooms": None}}}))
    assert export.main(["--model", str(folder), "--live-report", str(report), "--out", str(shipped / "mine"), "--ship"]) == 2
    assert export.main(["--model", str(folder), "--live-report", str(live), "--out", str(shipped / "mine"), "--ship"]) == 0
    assert load_predictor(folder).live_zooms == (0.9,) and load_predictor(tmp_path / "cand").live_zooms == (1.0,)
    assert json.loads((folder / "metrics.json").read_text())["live_suite"]["select"] == {"x": 2}


def test_export_writes_model_onnx_that_answers_as_the_pytorch_model(tiny_cache, tmp_path):
    """model.onnx beside the weights, described in config.json; on the same inputs (faces and their
    mirrors, landmarks found and missing) ONNX Runtime's log-probabilities are the model's within 1e-4."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from fusion_fer.artifacts import load_artifacts
    from fusion_fer.research import export

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "run", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    assert export.main(["--run", str(tmp_path / "run"), "--data", str(tiny_cache), "--out", str(tmp_path / "m"),
                        "--blind"]) == 0
    _check_onnx(tmp_path / "m", np, ort, torch, load_artifacts)


def test_every_shipped_model_carries_model_onnx_that_answers_as_its_weights():
    import numpy as np
    import onnxruntime as ort
    import torch

    from fusion_fer.artifacts import collection, load_artifacts

    for name in collection()["models"]:
        _check_onnx(name, np, ort, torch, load_artifacts)


def _check_onnx(folder, np, ort, torch, load_artifacts) -> None:
    model, _, config = load_artifacts(folder, "cpu")
    onnx = config["onnx"]
    assert onnx["inputs"] == ["images", "landmarks", "found", "points"] and onnx["output"] == "log_probs"
    session = ort.InferenceSession(str(_folder(config) / onnx["file"]))
    rng = np.random.default_rng(0)
    c = model.config
    b = 6
    feed = {"images": rng.normal(size=(b, 1, c.image_size, c.image_size)).astype(np.float32),
            "landmarks": rng.normal(size=(b, c.landmark_dim)).astype(np.float32),
            "found": np.array([1, 1, 0, 1, 0, 1], np.float32),
            "points": rng.uniform(-0.9, 0.9, size=(b, onnx["guide_points"], 2)).astype(np.float32)}
    got = session.run(None, feed)[0]
    with torch.no_grad():
        want = torch.log_softmax(model(*(torch.from_numpy(feed[k]) for k in ("images", "landmarks")),
                                       torch.from_numpy(feed["found"]) > 0.5, torch.from_numpy(feed["points"])), 1).numpy()
    assert got.shape == (b, len(config["classes"])) and np.abs(got - want).max() < 1e-4
    assert np.abs(want[0] - want[1]).max() > 1e-3  # different faces, different answers: the check can fail


def _folder(config):
    from pathlib import Path

    return Path(config["folder"])


def test_export_sets_detection_settings_that_the_predictor_then_uses(model8, tmp_path, capsys):
    """`--face KEY=VALUE` writes a FaceConfig field into the folder; a wrong key or type is refused, with nothing written."""
    from fusion_fer.predict import load_predictor
    from fusion_fer.research import export

    out = tmp_path / "m"
    assert export.main(["--model", str(model8), "--out", str(out), "--face", "edge_side=180", "--face", "edge_pass=false"]) == 0
    face = json.loads((out / "config.json").read_text())["face"]
    assert face["edge_side"] == 180 and face["edge_pass"] is False
    p = load_predictor(out)
    assert p.face_config.edge_side == 180 and not p.face_config.edge_pass
    assert export.main(["--model", str(model8), "--out", str(tmp_path / "bad"), "--face", "edge_side=wide"]) == 2
    assert "edge_side takes an int" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert export.main(["--model", str(model8), "--out", str(tmp_path / "bad"), "--face", "nope=1"]) == 2
    assert export.main(["--model", str(model8), "--out", str(tmp_path / "bad"), "--face", "edge_pass=maybe"]) == 2
    assert "edge_pass takes a bool" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_export_drops_a_detection_setting_the_code_no_longer_has(model8, tmp_path):
    """A folder written when FaceConfig had a setting it has since lost does not load; exporting it again (in
    place) drops that setting, keeps the others, and the folder loads."""
    from fusion_fer.predict import load_predictor
    from fusion_fer.research import export

    out = tmp_path / "m"
    assert export.main(["--model", str(model8), "--out", str(out), "--face", "edge_side=180"]) == 0
    config = json.loads((out / "config.json").read_text())
    config["face"]["retired_setting"] = [[1, 0]]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(TypeError, match="retired_setting"):
        load_predictor(out)
    assert export.main(["--model", str(out), "--out", str(out)]) == 0
    face = json.loads((out / "config.json").read_text())["face"]
    assert "retired_setting" not in face and face["edge_side"] == 180
    assert load_predictor(out).face_config.edge_side == 180
