"""The macro-F1 decision rule: offsets fitted on some people, applied alike by torch and ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import search.ensembling.honest as honest
from runners.metrics import macro_f1
from search.deploy import Bundle
from search.ensembling.decision import OLD_CLASSES, apply_offsets, fit_offsets, fit_rule
from search.ensembling.honest import DECISION_RULE, SELECTED, choice_probs, choose, honest_estimate, person_halves
from search.ensembling.selection import Candidate, SelectionSettings
from search.ensembling.votes import VoteSpec
from search.export import main as export_main
from tests.support.tiny_study import TinyStudy


def _under_predicting_old(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Old classes are rare, and the probabilities shy away from them, as a model trained on few old people."""
    rng = np.random.default_rng(seed)
    weights = np.where(np.arange(18) % 3 == 2, 1.0, 5.0)
    labels = rng.choice(18, size=n, p=weights / weights.sum())
    logits = rng.normal(0, 1.0, (n, 18))
    logits[np.arange(n), labels] += 2.5
    logits += np.log(weights)  # the training prior, which argmax follows
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def test_offsets_raise_macro_f1_on_rows_they_were_not_fitted_on() -> None:
    fit_probs, fit_labels = _under_predicting_old(3000, 0)
    test_probs, test_labels = _under_predicting_old(3000, 1)
    offsets = fit_offsets(fit_probs, fit_labels)
    assert offsets[2::3].min() > offsets[0::3].max()  # the rare old band is lifted
    before, after = macro_f1(test_labels, test_probs), macro_f1(test_labels, apply_offsets(test_probs, offsets))
    assert after > before + 0.02, (before, after)


def test_offsets_stay_at_zero_when_argmax_is_already_best() -> None:
    labels = np.repeat(np.arange(18), 5)
    probs = np.full((90, 18), 0.01)
    probs[np.arange(90), labels] = 0.83
    assert not np.any(fit_offsets(probs, labels))
    np.testing.assert_allclose(apply_offsets(probs, np.zeros(18)), probs)


def test_applied_offsets_are_probabilities_whose_argmax_is_the_rule() -> None:
    probs, _ = _under_predicting_old(200, 2)
    offsets = np.linspace(-1, 1, 18)
    out = apply_offsets(probs, offsets)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
    assert (out.argmax(1) == (np.log(probs) + offsets).argmax(1)).all()


def test_the_honest_estimate_fits_the_rule_on_the_selection_half_only() -> None:
    probs, labels = _under_predicting_old(1200, 3)
    people = np.repeat(np.arange(200), 6).astype(str)
    cands = [Candidate("s", 0, probs, {"backbone": "a", "age_cutoff": 60, "height": 8, "width": 8, "crop": "full"}, 0.5)]
    settings = SelectionSettings(max_members=1)
    rows = np.flatnonzero(people.astype(int) < 100)
    choices = {c.method: c for c in choose(cands, labels, settings, rows)}
    np.testing.assert_allclose(choices[DECISION_RULE].offsets, fit_offsets(probs[rows], labels[rows]))
    assert choices[DECISION_RULE].members == choices[SELECTED].members
    report = honest_estimate(cands, labels, people, settings, mode="split")
    assert report.score(DECISION_RULE).macro_f1 > report.score(SELECTED).macro_f1
    np.testing.assert_allclose(choice_probs(cands, choices[DECISION_RULE]),
                               apply_offsets(probs, np.asarray(choices[DECISION_RULE].offsets)))


def test_a_bundle_ships_the_offsets_and_torch_and_onnx_apply_them_alike(tiny_study: TinyStudy, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    assert export_main(["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out),
                        "--max-members", "2", "--decision-rule", "on"]) == 0
    bundle = Bundle.load(out)
    assert bundle.manifest.offsets is None or len(bundle.offsets) == 18
    # the manifest names the rule's parts, the old-band offset among them (inside the offsets the graph applies)
    assert set(bundle.manifest.rule) == {"tau", "old_band_offset"} and bundle.old_band_offset is not None
    # The tiny study's rule may be all zeros; force one so both backends must apply it.
    offsets = [0.0] * 18
    offsets[2::3] = [1.5] * 6
    from search.deploy.graph import (
        build_checkpoint,
        build_ensemble,
        export_onnx,
        onnx_predict,
        onnx_session,
        torch_predict,
    )

    modules = [build_checkpoint(m.config, out / m.checkpoints[0])[0] for m in bundle.members]
    net = build_ensemble(modules, bundle.weights, offsets)
    plain = build_ensemble(modules, bundle.weights)
    export_onnx(net, tmp_path / "rule.onnx", bundle.height, bundle.width)
    images = np.random.default_rng(0).integers(0, 256, (9, bundle.height, bundle.width, 3), dtype=np.uint8)
    got_torch = torch_predict(net, images)
    got_onnx = onnx_predict(onnx_session(tmp_path / "rule.onnx"), images)
    np.testing.assert_allclose(got_torch, got_onnx, atol=1e-4)
    np.testing.assert_allclose(got_torch, apply_offsets(torch_predict(plain, images), np.asarray(offsets)), atol=1e-5)
    unruled = tmp_path / "argmax"
    assert export_main(["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(unruled),
                        "--max-members", "2", "--decision-rule", "off"]) == 0
    assert Bundle.load(unruled).manifest.offsets is None and Bundle.load(unruled).offsets is None


def test_auto_ships_the_row_with_the_best_held_out_score(tiny_study: TinyStudy) -> None:
    from search.ensembling.candidates import load_candidates
    from search.ensembling.procedure import pick_method, run_procedure
    from search.export import shipped_method

    outcome = run_procedure(load_candidates(tiny_study.name, tiny_study.storage))
    scores = {s.method: s.macro_f1 for s in outcome.honest.scores}
    first_best = next(m for m in outcome.methods if scores[m] == max(scores.values()))
    assert shipped_method(outcome, "auto") == outcome.shipped == first_best
    assert outcome.why.startswith(f"highest held-out macro-F1, {scores[first_best]:.4f} (next: ")
    assert (shipped_method(outcome, "on"), shipped_method(outcome, "off")) == (DECISION_RULE, SELECTED)
    for score in outcome.honest.scores:  # pretend the rule won on the held-out half, then lost
        score.macro_f1 = 0.5 if score.method == DECISION_RULE else 0.4
    assert pick_method(outcome)[0] == DECISION_RULE
    for score in outcome.honest.scores:
        score.macro_f1 = 0.4 if score.method == DECISION_RULE else 0.45
    assert pick_method(outcome)[0] == "best single"  # a tie goes to the simpler, earlier row
    # given weights: the given vote ships, with the rule only when it held up on the held-out half
    given = run_procedure(
        load_candidates(tiny_study.name, tiny_study.storage), vote=VoteSpec("soft", ((f"{tiny_study.name}#0", 1.0),))
    )
    plain, rule = given.vote.method, str(given.vote.rule_method)
    helps = given.honest.score(rule).macro_f1 >= given.honest.score(plain).macro_f1
    assert shipped_method(given, "auto") == (rule if helps else plain)


def _shy_of_the_old_band(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced classes, but the model puts the old line too high: old log-probabilities lowered by 2,
    which no prior explains (the classes are equally common) and only an old-band offset undoes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 18, n)
    logits = rng.normal(0, 1.0, (n, 18))
    logits[np.arange(n), labels] += 2.5
    logits -= 2.0 * OLD_CLASSES
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels


def test_the_old_band_offset_moves_the_old_line_for_macro_f1_on_rows_it_was_not_fitted_on() -> None:
    fit_probs, fit_labels = _shy_of_the_old_band(4000, 0)
    test_probs, test_labels = _shy_of_the_old_band(4000, 1)
    rule, tau_only = fit_rule(fit_probs, fit_labels), fit_rule(fit_probs, fit_labels, old_band=False)
    assert 1.0 <= rule.old_band_offset <= 3.0 and tau_only.old_band_offset == 0.0
    np.testing.assert_allclose(rule.offsets, fit_offsets(fit_probs, fit_labels))
    with_line = macro_f1(test_labels, apply_offsets(test_probs, rule.offsets))
    without = macro_f1(test_labels, apply_offsets(test_probs, tau_only.offsets))
    assert with_line > without + 0.02, (with_line, without)


def test_an_old_band_offset_fitted_on_one_half_is_never_scored_on_it(monkeypatch) -> None:
    probs, labels = _shy_of_the_old_band(1200, 4)
    people = np.repeat(np.arange(200), 6).astype(str)
    cands = [Candidate("s", 0, probs, {"backbone": "a", "age_cutoff": 60, "height": 8, "width": 8, "crop": "full"}, 0.5)]
    fitted_on: list[np.ndarray] = []

    def spy(p: np.ndarray, y: np.ndarray, old_band: bool = True):
        fitted_on.append(np.asarray(p))
        return fit_rule(p, y, old_band)

    monkeypatch.setattr(honest, "fit_rule", spy)
    report = honest_estimate(cands, labels, people, SelectionSettings(max_members=1), mode="cv")
    folds = person_halves(people, labels)
    assert len(fitted_on) == len(folds) == 2
    for fitted, (select_rows, score_rows) in zip(fitted_on, folds, strict=True):
        np.testing.assert_array_equal(fitted, probs[select_rows])  # fitted on the selection half, row for row
        assert not set(people[select_rows]) & set(people[score_rows])
    rule_rows = [c for c in report.scores if c.method == DECISION_RULE]
    assert rule_rows and report.score(DECISION_RULE).macro_f1 > report.score(SELECTED).macro_f1
    off = honest_estimate(cands, labels, people, SelectionSettings(max_members=1), mode="cv",
                          vote=VoteSpec(old_band=False))
    assert off.vote["old_band_offset"] == "off"
    assert report.score(DECISION_RULE).macro_f1 > off.score(DECISION_RULE).macro_f1


def test_choose_records_the_rule_s_parts() -> None:
    probs, labels = _shy_of_the_old_band(600, 5)
    cands = [Candidate("s", 0, probs, {"backbone": "a", "age_cutoff": 60, "height": 8, "width": 8, "crop": "full"}, 0.5)]
    choice = {c.method: c for c in choose(cands, labels, SelectionSettings(max_members=1))}[DECISION_RULE]
    rule = fit_rule(probs, labels)
    assert (choice.tau, choice.old_band_offset) == (rule.tau, rule.old_band_offset) and choice.old_band_offset > 0
    np.testing.assert_allclose(choice.offsets, rule.offsets)
