"""search.ensemble CLI and search.export on a tiny real study.

Issue 15: ``search.export --overwrite`` never deletes what a user owns: it replaces only a
bundle, checked through its manifest. Real exports of the tiny study, real folders on disk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors import safe_open

from runners.config import TrialConfig
from search.deploy import Bundle, Manifest
from search.ensemble import main as ensemble_main
from search.ensembling.decision import apply_offsets
from search.ensembling.honest import METHODS
from runners.metrics import macro_f1
from search.ensembling.selection import soft_vote
from search.export import main as export_main
from tests.support.tiny_study import TinyStudy


def test_manifest_describes_members_preprocessing_classes_metrics(
    bundle_dir: Path, tiny_study: TinyStudy
) -> None:
    Manifest.read(bundle_dir)  # validates
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["format_version"] == 3 and m["study"] == tiny_study.name
    assert 1 <= len(m["members"]) <= 3
    assert sum(x["weight"] for x in m["members"]) == pytest.approx(1.0)
    assert m["vote"] == {"kind": "soft", "weights": "learned"}
    for member in m["members"]:
        config = TrialConfig.from_dict(member["config"])
        assert config == tiny_study.configs[member["trial"]]
        assert member["name"] == f"{tiny_study.name}#{member['trial']}"
        pre = member["preprocessing"]
        assert (pre["height"], pre["width"], pre["crop"]) == (32, 32, "full")
        assert len(pre["mean"]) == 3 and len(pre["std"]) == 3
        (checkpoint,) = member["checkpoints"]
        with safe_open(str(bundle_dir / checkpoint), framework="pt") as f:  # safetensors, not pickle
            assert any(k.startswith("net.") for k in f.keys())
    pre = m["preprocessing"]
    assert (pre["height"], pre["width"], pre["crop"], pre["layout"], pre["dtype"]) == (
        32,
        32,
        "full",
        "NHWC",
        "uint8",
    )
    assert len(m["classes"]) == 18
    assert m["classes"][17] == {"index": 17, "mask": "not_wear", "gender": "female", "age": ">=60"}
    assert m["classes"][6] == {"index": 6, "mask": "incorrect", "gender": "male", "age": "<30"}
    assert set(m["files"]) == {"ensemble.onnx"} | {c for x in m["members"] for c in x["checkpoints"]}
    assert 0.0 <= m["metrics"]["selection"]["macro_f1"] <= 1.0
    assert [s["method"] for s in m["metrics"]["honest"]["scores"]] == list(METHODS)
    shipped = m["metrics"]["shipped"]
    held_out = {s["method"]: s for s in m["metrics"]["honest"]["scores"]}[shipped["method"]]
    assert shipped["estimate"]["macro_f1"] == held_out["macro_f1"]
    assert shipped["estimate"]["sd_over_people"] == held_out["macro_f1_sd"] > 0  # its spread over people
    assert not list(bundle_dir.parent.glob(".tiny.tmp-*"))  # the temporary folder was renamed away


def test_onnx_graph_is_valid_with_a_dynamic_batch(bundle_dir: Path) -> None:
    model = onnx.load(str(bundle_dir / "ensemble.onnx"))
    onnx.checker.check_model(model)
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    bundle = Bundle.load(bundle_dir)
    for n in (1, 7):
        batch = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        probs = bundle.predict_proba(batch, backend="onnx")
        assert probs.shape == (n, 18)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_reloaded_bundle_reproduces_the_validation_macro_f1(bundle_dir: Path, tiny_study: TinyStudy) -> None:
    bundle = Bundle.load(bundle_dir)
    labels = tiny_study.validation.labels
    vote = soft_vote([tiny_study.store.load_probs(m.trial) for m in bundle.members], bundle.weights)
    stored = apply_offsets(vote, None if bundle.offsets is None else np.asarray(bundle.offsets))
    for backend in ("torch", "onnx"):
        probs = bundle.predict_proba(tiny_study.val_paths(), backend=backend, batch_size=16)
        np.testing.assert_allclose(probs, stored, atol=1e-4)
        score = macro_f1(labels, probs)
        assert abs(score - bundle.manifest.metrics["selection"]["macro_f1"]) <= 1e-4


def test_ensemble_cli_prints_the_table_and_saves_json(
    tiny_study: TinyStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = ensemble_main(
        ["--name", tiny_study.name, "--storage", tiny_study.storage, "--mode", "split", "--max-members", "3"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    for method in METHODS:
        assert method in out
    assert "held-out (split)" in out and "bench eval labels" in out
    saved = json.loads((tiny_study.store.root / "ensemble.json").read_text())
    assert saved["honest"]["mode"] == "split"
    assert set(saved["eval_labels"]) == set(METHODS)
    for scores in saved["eval_labels"].values():
        assert 0.0 <= scores["macro_f1"] <= 1.0
    final = {f["method"]: f for f in saved["final"]}
    assert len(final["top-3 soft vote"]["members"]) == 3
    assert final["selected ensemble"]["validation_macro_f1"] >= final["best single"]["validation_macro_f1"]
    rule = final["selected + decision rule"]["decision_rule"]
    assert set(rule) == {"tau", "old_band_offset"} and final["selected ensemble"]["decision_rule"] is None
    assert f"tau {rule['tau']:.2f}, old-band offset {rule['old_band_offset']:+.2f}" in out
    shipped = {x["method"]: x for x in saved["honest"]["scores"]}[saved["shipped"]]
    assert f"± {shipped['macro_f1_sd']:.3f} over people (held-out, split)" in out


def test_ensemble_cli_unknown_study_is_a_clear_error(
    tiny_study: TinyStudy, caplog: pytest.LogCaptureFixture
) -> None:
    rc = ensemble_main(["--name", "nope", "--storage", tiny_study.storage])
    assert rc == 2
    assert "no study 'nope'" in caplog.text and "tiny" in caplog.text


def test_export_refuses_an_existing_folder_unless_overwrite(
    tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    old = out / "manifest.json"
    old.write_text(json.dumps({**json.loads(old.read_text()), "marker": "the old bundle"}))
    args = [
        "--name",
        tiny_study.name,
        "--storage",
        tiny_study.storage,
        "--out",
        str(out),
        "--max-members",
        "2",
    ]
    assert export_main(args) == 2
    assert "--overwrite" in caplog.text and "marker" in Manifest.read(out).extra
    assert export_main([*args, "--overwrite"]) == 0  # an existing bundle is replaced
    assert "marker" not in Manifest.read(out).extra
    assert len(Bundle.load(out).members) <= 2
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temporary or backup folder left


def test_export_without_checkpoints_names_the_missing_file(tiny_study: TinyStudy, tmp_path: Path) -> None:
    import shutil

    from search.ensembling.candidates import load_candidates
    from search.ensembling.procedure import run_procedure
    from search.export import export_bundle

    outcome = run_procedure(load_candidates(tiny_study.name, tiny_study.storage))
    chosen = outcome.candidates[outcome.choice().members[0]]
    moved = tmp_path / "weights.safetensors"
    shutil.copyfile(chosen.weights, moved)
    chosen.weights.unlink()
    try:
        with pytest.raises(FileNotFoundError, match=f"trial {chosen.name}"):
            export_bundle(outcome, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]
    finally:
        shutil.copyfile(moved, chosen.weights)


def test_ensemble_cli_with_a_hard_vote_reports_the_hard_vote(
    tiny_study: TinyStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = ensemble_main(["--name", tiny_study.name, "--storage", tiny_study.storage, "--mode", "split",
                        "--vote", "hard"])
    assert rc == 0
    assert "selected ensemble, hard vote" in capsys.readouterr().out
    saved = json.loads((tiny_study.store.root / "ensemble.json").read_text())
    assert saved["vote"]["vote"] == "hard" and "selected ensemble, hard vote" in saved["eval_labels"]
    assert [s["method"] for s in saved["honest"]["scores"]][-1] == "selected ensemble, hard vote"


def test_export_with_given_weights_and_a_hard_vote(tiny_study: TinyStudy, tmp_path: Path) -> None:
    from search.ensembling.votes import hard_vote

    out = tmp_path / "hard"
    argv = ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out),
            "--weights", "0=1,3=3", "--vote", "hard"]
    assert export_main([*argv, "--decision-rule", "on"]) == 2  # a hard vote has no decision rule
    assert export_main(argv) == 0
    bundle = Bundle.load(out)
    assert bundle.vote == "hard" and bundle.offsets is None
    assert [m.trial for m in bundle.members] == [0, 3] and bundle.weights == [0.25, 0.75]
    assert json.loads((out / "manifest.json").read_text())["vote"] == {"kind": "hard", "weights": "given"}
    stored = hard_vote([tiny_study.store.load_probs(m.trial) for m in bundle.members], bundle.weights)
    for backend in ("torch", "onnx"):
        probs = bundle.predict_proba(tiny_study.val_paths(), backend=backend, batch_size=16)
        np.testing.assert_allclose(probs, stored, atol=1e-4)


def test_a_member_of_several_checkpoints_ships_their_mean(tiny_study: TinyStudy, tmp_path: Path) -> None:
    """A group of checkpoints of one architecture (as fold models would be) is one voter."""
    from search.deploy.writer import MemberSource, write_bundle

    config = tiny_study.configs[0].to_dict()  # trials 0 and 2 are both test_resnet at 32x32
    checkpoints = (tiny_study.store.weights_path(0), tiny_study.store.weights_path(2))
    group = MemberSource("tiny#0+2", config, checkpoints, 1.0)
    write_bundle([group], tmp_path / "group")
    bundle = Bundle.load(tmp_path / "group")
    assert bundle.members[0].checkpoints == ("members/0-0.safetensors", "members/0-1.safetensors")
    expected = (tiny_study.store.load_probs(0) + tiny_study.store.load_probs(2)) / 2
    for backend in ("torch", "onnx"):
        probs = bundle.predict_proba(tiny_study.val_paths(), backend=backend, batch_size=16)
        np.testing.assert_allclose(probs, expected, atol=1e-4)


def snapshot(path: Path) -> dict[str, bytes | str]:
    """Every entry under ``path`` (or the file itself) with its bytes, or its link target."""
    if path.is_symlink():
        return {".": f"-> {path.readlink()}"}
    if path.is_file():
        return {".": path.read_bytes()}
    return {
        p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else "dir")
        for p in sorted(path.rglob("*"))
    }


def work_folder(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.mkdir()
    shutil.copyfile(tiny.workdir / "studies.db", out / "studies.db")
    (out / "cache").mkdir()
    (out / "cache" / "images.npy").write_bytes(b"\x93NUMPY cache")
    (out / "trials" / "tiny" / "trial_0000").mkdir(parents=True)
    (out / "trials" / "tiny" / "trial_0000" / "weights.safetensors").write_bytes(b"weights")


def folder_with_foreign_manifest(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "my web app", "version": "1.0"}))
    (out / "index.html").write_text("<h1>mine</h1>")


def bundle_holding_a_user_file(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    shutil.copytree(bundle, out)
    (out / "notes.txt").write_text("my notes on this ensemble")


def plain_file(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.write_text("a file the user owns")


def symlink_to_a_bundle(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    target = out.with_name("real-bundle")
    shutil.copytree(bundle, target)
    out.symlink_to(target, target_is_directory=True)


NOT_BUNDLES: dict[str, Callable[[TinyStudy, Path, Path], None]] = {
    "work folder with studies.db": work_folder,
    "folder with another program's manifest.json": folder_with_foreign_manifest,
    "bundle holding a file the manifest does not list": bundle_holding_a_user_file,
    "a file": plain_file,
    "a symlink to a bundle": symlink_to_a_bundle,
}


@pytest.mark.parametrize("case", list(NOT_BUNDLES))
def test_overwrite_refuses_what_is_not_a_bundle_and_deletes_nothing(
    tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    out = tmp_path / "target"
    NOT_BUNDLES[case](tiny_study, bundle_dir, out)
    before = {p.name: snapshot(p) for p in tmp_path.iterdir()}
    argv = ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out), "--overwrite"]
    assert export_main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert f"--out {out} is not a bundle" in message and "nothing was deleted" in message
    assert "Choose another --out" in message and "\n" not in message and not error.exc_info
    assert {p.name: snapshot(p) for p in tmp_path.iterdir()} == before  # nothing deleted, nothing left


def test_the_next_export_removes_what_a_killed_export_left(
    tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.search.verbs.test_clean import _killed_build

    out = tmp_path / "bundle"
    left = _killed_build(out)  # kill -9 during the build: a hidden folder with copies of the weights
    caplog.set_level(logging.INFO, logger="search.common.atomic")
    argv = ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out),
            "--max-members", "1"]
    assert export_main(argv) == 0
    assert not left.exists() and [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert f"removed {left}, left by a build that was killed" in caplog.text


# ------------------------------------------------------------------------------------------------
# issue 23: a full disk, Ctrl-C and absurd weights end in one line, with nothing half written


def _export_argv(tiny_study: TinyStudy, out: Path, *extra: str) -> list[str]:
    return ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out), *extra]


def _one_error(caplog: pytest.LogCaptureFixture) -> str:
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not error.exc_info and "\n" not in error.getMessage()
    return error.getMessage()


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(
    tiny_study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    import search.deploy.writer as writer

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(writer.shutil, "copyfile", full)
    out = tmp_path / "bundle"
    assert export_main(_export_argv(tiny_study, out, "--max-members", "1")) == 1
    message = _one_error(caplog)
    assert "writing the bundle failed: No space left on device" in message and "free some disk space" in message
    assert os.listdir(tmp_path) == [], "no bundle and no temporary folder"


def test_ctrl_c_during_export_exits_130_and_leaves_nothing(
    tiny_study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import search.deploy.writer as writer

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "export_onnx", interrupted)
    out = tmp_path / "bundle"
    assert export_main(_export_argv(tiny_study, out, "--max-members", "1")) == 130
    assert any("interrupted: nothing was written" in r.getMessage() for r in caplog.records)
    assert os.listdir(tmp_path) == [], "no bundle and no temporary folder"


def test_export_weights_of_1e308_name_the_entry(
    tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Their sum overflowed and the error said "got (0.0, 0.0)"."""
    out = tmp_path / "bundle"
    assert export_main(_export_argv(tiny_study, out, "--weights", "0=1e308,1=1e308")) == 2
    assert "--weights entry '0=1e308': the weight must be from 0 to 1e+06" in _one_error(caplog)
    assert not out.exists()


def test_an_opset_torch_cannot_export_is_one_line(
    tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "bundle"
    assert export_main(_export_argv(tiny_study, out, "--max-members", "1", "--opset", "99")) == 2
    assert "--opset 99: torch cannot export the ensemble at this opset" in _one_error(caplog)
    assert os.listdir(tmp_path) == []
    with pytest.raises(SystemExit):  # below what the exporter writes: refused by the parser, before any work
        export_main(_export_argv(tiny_study, out, "--opset", "3"))
