"""python -m search.predict: submission.csv in info.csv order, torch == onnx, missing images.

Issue 15: predict on bad photos is one line naming the file, 16-bit photos decode the same for
training and predict, ``--out`` may be a folder, and submission.csv follows the umask. Real
files on disk, the real bundle and the real image cache.

A bundle whose crop is face_detect: predict finds the faces before the network, cuts the
pixels the training cache cut, and torch and ONNX still agree.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from search.data import image_cache, load_eval, load_image, mtcnn
from search.deploy import Bundle, BundleError
from search.common.outputs import OutputExistsError
from search.predict import main, predict_eval, write_submission
from tests.support.portraits import draw_blank, draw_face
from tests.support.tiny_study import TinyStudy


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


def test_the_default_backend_is_onnx_on_the_cpu_and_torch_on_cuda(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from search.deploy.graph import choose_backend

    assert choose_backend("auto", "cpu") == "onnx" and choose_backend("torch", "cpu") == "torch"
    assert choose_backend("auto", "auto") == ("torch" if torch.cuda.is_available() else "onnx")
    assert choose_backend("onnx", "auto") == "onnx"
    eval_dir = tiny_study.data_root / "eval"
    outs = {}
    for flags in ([], ["--backend", "torch"]):
        out = tmp_path / f"sub{len(flags)}.csv"
        assert main(["--bundle", str(bundle_dir), "--data", str(eval_dir), "--out", str(out), "--device", "cpu",
                     *flags]) == 0
        outs[len(flags)] = out.read_bytes()
    printed = capsys.readouterr().out
    assert "(onnx)" in printed and "(torch)" in printed  # each run names the backend it used
    assert outs[0] == outs[2]  # the same submission either way


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


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` 8-bit RGB pixels: how a decompression bomb
    starts (PIL reads the size from IHDR before any pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _truncated(original: bytes) -> bytes:
    return original[: len(original) // 2]


BAD_IMAGES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "text file named .jpg": (lambda _: b"ImageID,ans\nthis is not a photo\n", "cannot identify image file"),
    "empty file": (lambda _: b"", "cannot identify image file"),
    "truncated JPEG": (_truncated, "runcated"),
    # 400 M pixels: over twice Image.MAX_IMAGE_PIXELS, which PIL itself refuses
    "decompression bomb": (lambda _: png_header_only(20_000, 20_000), "decompression bomb"),
    # 90 M pixels: between the limit and twice it, where PIL only warns and goes on decoding
    "decompression bomb PIL only warns about": (
        lambda _: png_header_only(10_000, 9_000),
        "decompression bomb",
    ),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_undecodable_image_is_one_line_naming_the_file(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    eval_dir = tmp_path / "eval"
    shutil.copytree(tiny_study.data_root / "eval", eval_dir)
    bad = Path(load_eval(eval_dir).paths[2])
    make, reason = BAD_IMAGES[case]
    bad.write_bytes(make(bad.read_bytes()))
    out = tmp_path / "submission.csv"
    argv = ["--bundle", str(bundle_dir), "--data", str(eval_dir), "--out", str(out), "--device", "cpu"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(argv) == 2
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert f"cannot decode image {bad}" in message and reason in message, message
    assert "replace it" in message and "\n" not in message and not error.exc_info
    assert not out.exists()


def _grey_ramp() -> np.ndarray:
    return (np.arange(64 * 48).reshape(64, 48) % 256).astype(np.uint8)


def _save_wide(path: Path, grey8: np.ndarray) -> None:
    """``grey8`` as a 16-bit greyscale PNG (mode I;16) or a 32-bit integer TIFF (mode I)."""
    wide = grey8.astype(np.uint16) * 257  # 255 -> 65535: the same picture with 16 bits a sample
    im = Image.fromarray(wide) if path.suffix == ".png" else Image.fromarray(wide.astype(np.int32))
    im.save(path)


@pytest.mark.parametrize(("name", "mode"), [("photo16.png", "I;16"), ("photo32.tif", "I")])
def test_16_bit_greyscale_decodes_like_its_8_bit_version(tmp_path: Path, name: str, mode: str) -> None:
    grey8 = _grey_ramp()
    wide, narrow = tmp_path / name, tmp_path / "photo8.png"
    _save_wide(wide, grey8)
    Image.fromarray(grey8).save(narrow)
    with Image.open(wide) as im:
        assert im.mode == mode
    got = load_image(wide, 32, 24, "face")
    np.testing.assert_array_equal(got, load_image(narrow, 32, 24, "face"))
    assert got.mean() < 200  # not clipped to white


def test_16_bit_png_is_the_same_in_the_training_cache_and_in_predict(
    bundle_dir: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "photo16.png"
    _save_wide(photo, _grey_ramp())
    bundle = Bundle.load(bundle_dir)
    cached = image_cache([str(photo)], bundle.height, bundle.width, bundle.crop, tmp_path / "cache", key="k")
    predicted = bundle.preprocess([photo])
    np.testing.assert_array_equal(np.asarray(cached), predicted)
    assert predicted.mean() < 200


def test_out_that_is_a_folder_gets_submission_csv_inside(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path
) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    eval_dir = tiny_study.data_root / "eval"
    argv = ["--bundle", str(bundle_dir), "--data", str(eval_dir), "--out", str(folder), "--device", "cpu"]
    assert main(argv) == 0
    assert [p.name for p in folder.iterdir()] == ["submission.csv"]
    sub = pd.read_csv(folder / "submission.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == pd.read_csv(eval_dir / "info.csv", dtype=str)["ImageID"].tolist()


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_submission_mode_follows_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    table = pd.DataFrame({"ImageID": ["a.jpg", "b.jpg"], "ans": [0, 17]})
    old = os.umask(mask)
    try:
        out = write_submission(table, tmp_path / "submission.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert pd.read_csv(out).equals(table)


needs_extra = pytest.mark.skipif(
    not mtcnn.available(), reason='needs the face extra: pip install -e ".[face]"'
)


@pytest.fixture
def face_bundle_dir(bundle_dir: Path, tmp_path: Path) -> Path:
    # the manifest is the one file the bundle does not checksum: the tiny bundle, retold as face_detect
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["preprocessing"]["crop"] = "face_detect"
    for member in manifest["members"]:
        member["config"]["crop"] = member["preprocessing"]["crop"] = "face_detect"
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture
def face_bundle(face_bundle_dir: Path) -> Bundle:
    return Bundle.load(face_bundle_dir)


@needs_extra
def test_face_detect_bundle_preprocesses_like_the_cache_and_torch_matches_onnx(
    face_bundle: Bundle, tmp_path: Path
) -> None:
    photos = [tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"]
    draw_face(photos[0], 192, 200)
    draw_face(photos[1], 130, 320, r=70)
    draw_blank(photos[2])
    cached = image_cache([str(p) for p in photos], face_bundle.height, face_bundle.width, "face_detect",
                         tmp_path / "cache", key="k")
    np.testing.assert_array_equal(np.asarray(cached), face_bundle.preprocess(photos))
    torch_probs = face_bundle.predict_proba(photos, backend="torch", device="cpu")
    onnx_probs = face_bundle.predict_proba(photos, backend="onnx", device="cpu")
    np.testing.assert_allclose(torch_probs, onnx_probs, atol=1e-4)


def test_a_face_detect_bundle_without_the_extra_says_what_to_install(
    face_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = mtcnn.importlib.util.find_spec
    monkeypatch.setattr(
        mtcnn.importlib.util, "find_spec", lambda name: None if name == "mtcnn" else real(name)
    )
    with pytest.raises(BundleError) as info:
        Bundle.load(face_bundle_dir)
    assert "preprocessing.crop 'face_detect'" in str(info.value) and 'pip install -e ".[face]"' in str(info.value)


@pytest.mark.parametrize("target", ["the bundle's manifest", "the bundle folder", "a user's csv"])
def test_out_never_writes_over_or_into_what_predict_did_not_write(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    notes = tmp_path / "notes.csv"
    notes.write_text("id,comment\n1,keep me\n")
    out = {"the bundle's manifest": bundle / "manifest.json", "the bundle folder": bundle,
           "a user's csv": notes}
    before = sorted((p, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    argv = ["--bundle", str(bundle), "--data", str(tiny_study.data_root / "eval"), "--out", str(out[target]),
            "--device", "cpu"]
    assert main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    if target == "a user's csv":
        assert f"--out {notes} is not a submission written by python -m search.predict" in message
    else:
        assert f"is inside the bundle {bundle.resolve()}" in message and "outside the bundle" in message
    assert "\n" not in message and not error.exc_info
    assert sorted((p, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()) == before
    Bundle.load(bundle)  # still whole: export --overwrite can replace it


def test_a_rerun_replaces_its_own_submission(tmp_path: Path) -> None:
    table = pd.DataFrame({"ImageID": ["a.jpg", "b.jpg"], "ans": [0, 17]})
    out = write_submission(table, tmp_path / "submission.csv")
    write_submission(table.assign(ans=[3, 4]), out)
    assert pd.read_csv(out)["ans"].tolist() == [3, 4]
    out.write_text("ImageID,ans,notes\na.jpg,0,mine\n")
    with pytest.raises(OutputExistsError, match="is not a submission"):
        write_submission(table, out)


def test_a_full_disk_during_predict_is_one_line_and_writes_nothing(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 23: ENOSPC while writing the submission was a traceback."""
    import search.common.atomic
    from tests.support.diskfull import fill_disk

    fill_disk(monkeypatch, search.common.atomic)
    out = tmp_path / "submission.csv"
    argv = ["--bundle", str(bundle_dir), "--data", str(tiny_study.data_root / "eval"), "--out", str(out),
            "--device", "cpu"]
    assert main(argv) == 1
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "No space left on device" in error.getMessage() and "no submission was written" in error.getMessage()
    assert not error.exc_info and os.listdir(tmp_path) == []


def test_ctrl_c_during_predict_exits_130_and_writes_nothing(
    bundle_dir: Path, tiny_study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.deploy.predict as cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "predict_eval", interrupted)
    argv = ["--bundle", str(bundle_dir), "--data", str(tiny_study.data_root / "eval"), "--out",
            str(tmp_path / "s.csv"), "--device", "cpu"]
    assert main(argv) == 130 and os.listdir(tmp_path) == []
