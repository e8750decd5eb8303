"""A bundle whose crop is face_detect: predict finds the faces before the network, cuts the
pixels the training cache cut, and torch and ONNX still agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from search.bundle import Bundle, BundleError
from search.data import image_cache, mtcnn

from tests.data.portraits import draw_blank, draw_face

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
        member["config"]["crop"] = "face_detect"
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
