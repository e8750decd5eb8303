"""The face_detect crop: faces found once per photo on real JPEGs, cached, fallback counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.data import cache, faces, mtcnn
from search.data.cache import crop_problem, face_boxes, faces_file, image_cache, load_image, load_photos
from tests.support.portraits import draw_blank, draw_face

needs_extra = pytest.mark.skipif(
    not mtcnn.available(), reason='needs the face extra: pip install -e ".[face]"'
)


@pytest.fixture
def portraits(tmp_path: Path) -> list[str]:
    """Two faces at different places, then a photo without one."""
    src = tmp_path / "src"
    src.mkdir()
    draw_face(src / "centre.jpg", 192, 200)
    draw_face(src / "left.jpg", 120, 300, r=70)
    draw_blank(src / "empty.jpg")
    return [str(src / n) for n in ("centre.jpg", "left.jpg", "empty.jpg")]


@needs_extra
def test_finds_the_drawn_face_where_it_is(portraits: list[str], tmp_path: Path) -> None:
    boxes = face_boxes(portraits, tmp_path / "c", key="k")
    for box, (cx, cy, r) in zip(boxes[:2], [(192, 200, 90), (120, 300, 70)], strict=True):
        assert box is not None
        x1, y1, x2, y2 = box
        assert abs((x1 + x2) / 2 - cx) < 0.25 * r and abs((y1 + y2) / 2 - cy) < 0.5 * r
        assert r < x2 - x1 < 2.6 * r  # the face, not the photo
    assert boxes[2] is None


@needs_extra
def test_crop_follows_the_face_and_a_photo_without_one_gets_the_face_crop(
    portraits: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="search.data"):
        rows = image_cache(portraits, 64, 48, "face_detect", tmp_path / "c", key="k")
    assert np.array_equal(rows[2], load_image(portraits[2], 64, 48, "face"))
    # the face sits low-left in left.jpg: the fixed crop cuts it off-centre, the detected one centres it
    fixed = load_image(portraits[1], 64, 48, "face")
    skin = np.array([225, 190, 160])

    def skin_centre(img: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(np.abs(img.astype(int) - skin).sum(-1) < 40)
        return np.array([xs.mean() / img.shape[1], ys.mean() / img.shape[0]])

    assert np.abs(skin_centre(rows[1]) - 0.5).max() < 0.12
    assert np.abs(skin_centre(fixed) - 0.5).max() > 0.15
    assert "a face was found in 2 of 3 photos" in caplog.text and "1 use the fixed 'face' crop" in caplog.text
    _, meta = cache.cache_files(portraits, 64, 48, "face_detect", tmp_path / "c", "k")
    assert json.loads(meta.read_text())["faces_missing"] == 1


@needs_extra
def test_faces_are_found_once_and_kept_beside_the_image_cache(
    portraits: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = image_cache(portraits, 64, 48, "face_detect", tmp_path / "c", key="k")
    path = faces_file(portraits, tmp_path / "c", "k")
    assert path.parent == tmp_path / "c" and len(json.loads(path.read_text())["boxes"]) == 3

    def no_detection(_rgb: np.ndarray) -> None:
        raise AssertionError("the faces were found again")

    monkeypatch.setattr(faces, "find_face", no_detection)
    image_cache(portraits, 32, 24, "face_detect", tmp_path / "c", key="k")  # another size: same boxes
    again = image_cache(portraits, 64, 48, "face_detect", tmp_path / "c", key="k")
    assert np.array_equal(first, again)


@needs_extra
def test_predict_finds_the_same_faces_and_cuts_the_same_pixels(portraits: list[str], tmp_path: Path) -> None:
    cached = image_cache(portraits, 64, 48, "face_detect", tmp_path / "c", key="k")
    fresh = load_photos(portraits, 64, 48, "face_detect", n_jobs=2)
    np.testing.assert_array_equal(np.asarray(cached), fresh)


@needs_extra
def test_an_unusable_box_file_is_found_again(
    portraits: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    boxes = face_boxes(portraits, tmp_path / "c", key="k")
    path = faces_file(portraits, tmp_path / "c", "k")
    info = json.loads(path.read_text())
    info["boxes"][0] = [10, 10, 5, 5]
    path.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="search.data"):
        assert face_boxes(portraits, tmp_path / "c", key="k") == boxes
    assert str(path) in caplog.text and "box 0" in caplog.text and "finding the faces again" in caplog.text


@needs_extra
def test_the_image_cache_of_a_detected_crop_is_keyed_on_the_detector(portraits: list[str]) -> None:
    names = {cache.cache_name(portraits, 64, 48, crop, "k") for crop in ("face", "face_detect")}
    assert len(names) == 2
    assert faces.detector_key().startswith("mtcnn-")


@pytest.mark.parametrize(
    ("face", "out", "expect"),
    [
        ((150.0, 150.0, 250.0, 250.0), (64, 48), (140.0, 130.0, 260.0, 290.0)),  # centred, 160 high, 120 wide
        ((0.0, 0.0, 100.0, 100.0), (64, 48), (0.0, 0.0, 120.0, 160.0)),  # shifted inside at the corner
        ((0.0, 0.0, 380.0, 380.0), (64, 48), (0.0, 0.0, 384.0, 512.0)),  # shrunk to the photo
    ],
)
def test_crop_box_has_the_input_aspect_and_stays_in_the_photo(
    face: faces.FaceBox, out: tuple[int, int], expect: tuple[float, float, float, float]
) -> None:
    left, top, right, bottom = faces.crop_pixels(face, 384, 512, *out)
    np.testing.assert_allclose((left, top, right, bottom), expect, atol=1e-6)
    assert (right - left) / (bottom - top) == pytest.approx(out[1] / out[0])


def test_without_the_extra_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mtcnn.importlib.util.find_spec
    monkeypatch.setattr(
        mtcnn.importlib.util, "find_spec", lambda name: None if name == "mtcnn" else real(name)
    )
    problem = crop_problem("face_detect")
    assert problem is not None and 'pip install -e ".[face]"' in problem
    assert crop_problem("face") is None
    assert "use one of face, face_detect, full, tight" in str(crop_problem("head"))


def test_a_box_file_entry_that_is_no_box_names_it() -> None:
    with pytest.raises(ValueError, match="box 3: a face box must be"):
        faces.box_from_json([1, 2, "x", 4], "box 3")
    assert faces.box_from_json(None, "box 0") is None
    assert faces.box_from_json([1, 2, 3.5, 4], "box 0") == (1.0, 2.0, 3.5, 4.0)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.95], [20, 20, 30, 30, 0.5]], dtype=float)
    assert mtcnn._nms(boxes, 0.5).tolist() == [1, 2]
    assert mtcnn._nms(boxes, 0.9).tolist() == [1, 0, 2]


@needs_extra
def test_no_face_in_a_blank_photo_and_one_in_a_drawn_portrait(tmp_path: Path) -> None:
    draw_face(tmp_path / "f.jpg", 192, 220)
    rgb = np.asarray(Image.open(tmp_path / "f.jpg").convert("RGB"))
    found = mtcnn.detect(rgb, faces.config())
    assert found.shape[1] == 5 and found[0, 4] > 0.5
    assert mtcnn.detect(np.full((512, 384, 3), 128, np.uint8), faces.config()).shape == (0, 5)


def test_a_study_file_with_face_detect_is_checked_when_it_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.studyfile.parse import StudyFileError, load_study_spec

    text = (Path(__file__).resolve().parents[3] / "studies" / "smoke.toml").read_text()
    path = tmp_path / "faces.toml"
    path.write_text(text.replace('crop = "face"', 'crop = "face_detect"', 1))
    if mtcnn.available():
        assert load_study_spec(path).base_config().crop == "face_detect"
    real = mtcnn.importlib.util.find_spec
    monkeypatch.setattr(
        mtcnn.importlib.util, "find_spec", lambda name: None if name == "mtcnn" else real(name)
    )
    with pytest.raises(StudyFileError) as info:
        load_study_spec(path)
    message = str(info.value)
    assert "faces.toml" in message and "fixed.crop" in message and 'pip install -e ".[face]"' in message
