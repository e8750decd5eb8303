"""python -m search.predict: submission.csv in info.csv order, torch == onnx, missing images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.data import load_eval
from search.deploy import Bundle
from search.predict import main, predict_eval

from .conftest import TinyStudy


@pytest.mark.parametrize("which", ["selected", "mixed sizes, soft vote", "mixed sizes, hard vote"])
def test_torch_and_onnx_give_the_same_classes_and_probabilities(
    bundle_dir: Path, mixed_bundles: dict[str, Path], tiny_study: TinyStudy, which: str
) -> None:
    folder = bundle_dir if which == "selected" else mixed_bundles[which.rsplit(" ", 2)[-2]]
    bundle = Bundle.load(folder)
    if which != "selected":  # two members of different input sizes and crops in one graph
        sizes = {(m.preprocessing.height, m.preprocessing.width, m.preprocessing.crop) for m in bundle.members}
        assert sizes == {(32, 32, "full"), (40, 24, "face")} and bundle.vote == which.rsplit(" ", 2)[-2]
        assert (bundle.height, bundle.width, bundle.crop) == (55, 32, "full")
    eval_dir = tiny_study.data_root / "eval"
    t_table, t_probs = predict_eval(bundle, eval_dir, backend="torch", batch_size=8, progress=False)
    o_table, o_probs = predict_eval(bundle, eval_dir, backend="onnx", batch_size=16, progress=False)
    np.testing.assert_allclose(t_probs, o_probs, atol=1e-4)
    assert t_table.equals(o_table)


def test_submission_follows_info_csv_order(bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path) -> None:
    eval_dir = tiny_study.data_root / "eval"
    for backend in ("torch", "onnx"):
        out = tmp_path / f"sub_{backend}.csv"
        rc = main(
            [
                "--bundle",
                str(bundle_dir),
                "--data",
                str(eval_dir),
                "--out",
                str(out),
                "--backend",
                backend,
                "--batch-size",
                "10",
                "--device",
                "cpu",
            ]
        )
        assert rc == 0
    info = pd.read_csv(eval_dir / "info.csv", dtype=str)
    torch_sub = pd.read_csv(tmp_path / "sub_torch.csv", dtype={"ImageID": str})
    onnx_sub = pd.read_csv(tmp_path / "sub_onnx.csv", dtype={"ImageID": str})
    assert list(torch_sub.columns) == ["ImageID", "ans"]
    assert torch_sub["ImageID"].tolist() == info["ImageID"].tolist()
    assert torch_sub["ans"].between(0, 17).all()
    assert torch_sub.equals(onnx_sub)
    # the rows are really each image's own prediction: check a few against the API
    bundle = Bundle.load(bundle_dir)
    paths = load_eval(eval_dir).paths
    for i in (0, len(info) - 1):
        assert Path(paths[i]).name.startswith(info["ImageID"][i])
        assert bundle.predict_proba([paths[i]]).argmax() == torch_sub["ans"][i]


def test_default_output_is_submission_csv_in_the_current_folder(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "--bundle",
                str(bundle_dir),
                "--data",
                str(tiny_study.data_root),
                "--tta-flip",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == len(pd.read_csv(tiny_study.data_root / "eval" / "info.csv"))
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temporary file left


def test_missing_image_is_an_error_and_writes_nothing(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    eval_dir = tmp_path / "eval"
    shutil.copytree(tiny_study.data_root / "eval", eval_dir)
    info = pd.read_csv(eval_dir / "info.csv", dtype=str)
    gone = info["ImageID"][3]
    Path(load_eval(eval_dir).paths[3]).unlink()
    out = tmp_path / "submission.csv"
    assert main(["--bundle", str(bundle_dir), "--data", str(eval_dir), "--out", str(out)]) == 2
    assert not out.exists()
    assert gone in caplog.text and "line 5" in caplog.text  # header is line 1, so row 3 is line 5


def test_tampered_bundle_stops_predict(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    with open(bundle / "members" / "0.safetensors", "ab") as f:
        f.write(b"x")
    out = tmp_path / "submission.csv"
    assert (
        main(["--bundle", str(bundle), "--data", str(tiny_study.data_root / "eval"), "--out", str(out)]) == 2
    )
    assert "checksum mismatch" in caplog.text and not out.exists()
