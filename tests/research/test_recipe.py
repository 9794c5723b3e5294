"""research/recipe.py: the rule that chooses test-time framings and class offsets, and the command."""
from __future__ import annotations

import json

import numpy as np

from fusion_fer.labels import FERPLUS_CLASSES


def _views(ck_right_at_11: bool, fer_right_at_11: float):
    """Selection views made by hand: at zoom 1.0 every FER+ face is right and every CK+ face is called
    surprise; at zoom 1.1 the CK+ faces are right when `ck_right_at_11`, and a share of FER+ faces too."""
    from fusion_fer.research.recipe import SelectionViews

    rng = np.random.default_rng(0)
    yf = rng.integers(0, 7, 200)
    yc = rng.integers(0, 6, 60)

    def probs(y, right):
        p = np.full((len(y), 8), 0.1 / 7)
        pred = np.where(right, y, (y + 1) % 7)
        p[np.arange(len(y)), pred] = 0.9
        return p

    fer = {1.0: probs(yf, np.ones(200, bool)), 1.1: probs(yf, np.arange(200) < fer_right_at_11 * 200)}
    ck = {1.0: probs(np.full(60, 5), np.ones(60, bool)), 1.1: probs(yc, np.full(60, ck_right_at_11))}
    return SelectionViews(fer, ck, yf, yf, yc)


def test_recipe_rule_takes_a_better_framing_only_within_the_accuracy_floor():
    from fusion_fer.research.recipe import RecipeConfig, choose_recipe, current_recipe

    config = RecipeConfig(zoom_sets=((1.0,), (1.1,)))

    def current(v):  # zoom 1.0, no offsets, fitted by the rule (held out): admissible
        return current_recipe(v, FERPLUS_CLASSES, (1.0,), np.zeros(8), held_out=True, config=config)

    # zoom 1.1 fixes CK+ and keeps FER+: chosen
    v = _views(True, 1.0)
    c = choose_recipe(v, FERPLUS_CLASSES, current(v), config)
    assert c["current"]["admissible"] and c["changed"] and c["chosen"]["zooms"] == [1.1]
    assert c["chosen"]["ckplus_accuracy"] == 1.0 and c["chosen"]["admissible"]
    assert c["chosen"]["score"] > c["current"]["score"] + 0.01 and len(c["candidates"]) == 6  # 2 framings x 3 offset kinds
    # the same CK+ gain, but FER+ guard-half accuracy falls 5 points below the plain inference (the floor is 0.3)
    v = _views(True, 0.95)
    c = choose_recipe(v, FERPLUS_CLASSES, current(v), config)
    assert not c["changed"] and c["chosen"] is c["current"] and c["chosen"]["zooms"] == [1.0]
    assert not any(r["admissible"] for r in c["candidates"] if r["zooms"] == [1.1])
    assert max(r["score"] for r in c["candidates"]) > c["current"]["score"]  # a better score existed, below the floor


def test_recipe_rule_replaces_a_current_recipe_it_cannot_trust_even_with_a_lower_score():
    from fusion_fer.research.recipe import RecipeConfig, choose_recipe, current_recipe

    config = RecipeConfig(zoom_sets=((1.0,), (1.1,)))
    v, costly = _views(True, 1.0), _views(True, 0.95)
    cases = [  # (views, current recipe): each at zoom 1.1, which gets every CK+ face right
        # offsets beyond the bound: never admissible, whoever fitted them
        (v, current_recipe(v, FERPLUS_CLASSES, (1.1,), np.r_[np.zeros(7), -1.0], held_out=True, config=config)),
        # offsets not fitted by this rule (config.json does not say so): they may have seen the guard half
        (v, current_recipe(v, FERPLUS_CLASSES, (1.1,), np.zeros(8), config=config)),
        # fitted by the rule, but the framing costs 5 points of FER+ guard-half accuracy
        (costly, current_recipe(costly, FERPLUS_CLASSES, (1.1,), np.zeros(8), held_out=True, config=config)),
    ]
    for views, cur in cases:
        c = choose_recipe(views, FERPLUS_CLASSES, cur, config)
        assert not cur["admissible"] and c["changed"] and c["chosen"]["admissible"]
        assert c["chosen"]["score"] < cur["score"] + config.min_gain  # replaced although it does not score 0.01 more
    assert c["chosen"]["zooms"] == [1.0] and c["chosen"]["score"] < c["current"]["score"]


def test_recipe_offsets_fitted_on_one_half_are_checked_on_the_other():
    """FER+ faces that an angry-vs-disgust offset fixes on the fitting half and breaks on the guard half."""
    from fusion_fer.research.recipe import RecipeConfig, SelectionViews, choose_recipe, current_recipe

    n = 200
    y = np.where(np.arange(n) % 2 == 0, 0, 1)  # fitting half: angry; guard half: disgust
    p = np.full((n, 8), 0.0)
    p[:, 0], p[:, 1] = 0.45, 0.55  # every face called disgust: wrong on the fitting half, right on the guard half
    ck_y = np.arange(60) % 6
    ck = np.full((60, 8), 0.1 / 7)
    ck[np.arange(60), ck_y] = 0.9
    v = SelectionViews({1.0: p}, {1.0: ck}, y, y, ck_y)
    config = RecipeConfig(zoom_sets=((1.0,),))
    c = choose_recipe(v, FERPLUS_CLASSES, current_recipe(v, FERPLUS_CLASSES, (1.0,), np.zeros(8), True, config), config)
    pub = next(r for r in c["candidates"] if r["offsets"] == "publictest")
    assert pub["bias"][0] - pub["bias"][1] > 0.2 and max(abs(b) for b in pub["bias"]) <= 0.6
    assert pub["ferplus_accuracy"] == 0.0 and pub["ferplus_accuracy_plain"] == 1.0 and not pub["admissible"]
    assert not c["changed"] and c["chosen"]["bias"] == [0.0] * 8


def test_recipe_offsets_stay_within_their_bound():
    """CK+ faces called surprise, 0.05 to 1.1 log-units away from their own class: a wide bound fixes them all."""
    from fusion_fer.research.recipe import RecipeConfig, SelectionViews, fit_offsets_both

    rng = np.random.default_rng(1)
    yf = rng.integers(0, 7, 200)
    fer = np.full((200, 8), 0.1 / 7)
    fer[np.arange(200), yf] = 0.9
    ck_y = np.arange(60) % 5  # angry, disgust, fear, happy, sad: never surprise (5)
    ck = np.full((60, 8), 0.01)
    ck[:, 5] = 0.68
    ck[np.arange(60), ck_y] = 0.68 * np.exp(-np.linspace(0.05, 1.1, 60))
    v = SelectionViews({1.0: fer}, {1.0: ck}, yf, yf, ck_y)
    fitted = {}
    for bound in (0.3, 0.6):
        config = RecipeConfig(zoom_sets=((1.0,),), max_offset=bound)
        fitted[bound] = fit_offsets_both(v, FERPLUS_CLASSES, (1.0,), np.zeros(8), 0.99, config)
        assert np.abs(fitted[bound]).max() <= bound + 1e-9
    ck_right = {b: float((np.argmax(np.log(ck) + f, 1) == ck_y).mean()) for b, f in fitted.items()}
    assert 0.0 < ck_right[0.3] < 0.7 and ck_right[0.6] == 1.0  # +-0.3 moves a class at most 0.6 against surprise


def test_recipe_command_writes_the_chosen_recipe_into_the_folder(shared, model8, tmp_path, capsys):
    import shutil

    from fusion_fer.research import recipe
    from fusion_fer.predict import load_predictor

    folder = tmp_path / "m"
    shutil.copytree(model8, folder)
    assert recipe.main(["--model", str(folder), "--data", str(shared), "--apply"]) == 0
    out = capsys.readouterr().out
    rec = json.loads((folder / "metrics.json").read_text())["recipe"]
    assert len(rec["candidates"]) == 3 * len(recipe.RecipeConfig().zoom_sets) and "| framings" in out
    assert rec["current"]["zooms"] == [1.0] and rec["current"]["images"] == 2
    # the folder's offsets were not fitted by this rule, so the best admissible recipe replaces them
    assert not rec["current"]["admissible"] and rec["changed"] and rec["applied"] and rec["chosen"]["admissible"]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["zooms"] == rec["chosen"]["zooms"] and cfg["class_bias"] == rec["chosen"]["bias"]
    assert cfg["recipe"] == recipe.RECIPE_PROVENANCE and load_predictor(folder).zooms == tuple(rec["chosen"]["zooms"])
    # run again: the recipe it wrote is now the admissible current one, and the same candidates cannot beat it by 0.01
    # (without --apply nothing in the folder changes; --json keeps the candidates)
    before = (folder / "metrics.json").read_text()
    assert recipe.main(["--model", str(folder), "--data", str(shared), "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["current"]["admissible"] and not again["changed"] and (folder / "metrics.json").read_text() == before
    assert recipe.main(["--model", str(folder), "--data", str(tmp_path / "nothing")]) == 2
    assert "fer2013_reconstructed.csv.gz" in capsys.readouterr().err
