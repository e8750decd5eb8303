from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from search.reporting.errorgallery import (
    THUMB_HEIGHT,
    ValidationPhotos,
    bundle_gallery,
    gallery_html,
    group_mistakes,
    trial_gallery,
)
from tests.support.tiny_study import TinyStudy


def _probs(predicted: list[int], confidence: list[float]) -> np.ndarray:
    probs = np.full((len(predicted), 18), 0.0, dtype=np.float32)
    for i, (p, c) in enumerate(zip(predicted, confidence, strict=True)):
        probs[i] = (1 - c) / 17
        probs[i, p] = c
    return probs


def test_mistakes_are_grouped_by_confusion_worst_pairs_and_surest_mistakes_first() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    predicted = [1, 1, 1, 0, 1, 5, 5, 0, 3]  # 0->1 three times, 2->5 twice, 1->0 and 2->0 once, two right
    confidence = [0.5, 0.9, 0.7, 0.6, 0.9, 0.4, 0.8, 0.9, 0.9]
    n_wrong, pairs = group_mistakes(labels, _probs(predicted, confidence), max_pairs=3, per_pair=2)
    assert n_wrong == 7
    assert [(t, p, n) for t, p, n, _ in pairs] == [(0, 1, 3), (2, 5, 2), (1, 0, 1)]  # ties by class index
    assert [m.row for m in pairs[0][3]] == [1, 2]  # the two surest of the three, surest first
    assert pairs[0][3][0].confidence == np.float32(0.9)


def test_the_best_trial_and_the_bundle_galleries_show_thumbnails_with_their_maps(
    tiny_study: TinyStudy, bundle_dir: Path
) -> None:
    photos = ValidationPhotos.load(tiny_study.store, str(tiny_study.data_root), None, tiny_study.workdir)
    assert photos.paths == tiny_study.val_paths()
    labels = tiny_study.validation.labels
    for gallery, probs in (
        (trial_gallery(photos, tiny_study.store, 0, max_pairs=2, per_pair=2), tiny_study.store.load_probs(0)),
        (bundle_gallery(photos, bundle_dir, tiny_study.name, max_pairs=2, per_pair=2), None),
    ):
        assert 1 <= len(gallery.pairs) <= 2 and all(1 <= len(ms) <= 2 for *_, ms in gallery.pairs)
        if probs is not None:
            assert gallery.n_wrong == int((probs.argmax(1) != labels).sum())
        page = gallery_html(gallery)
        for *_, ms in gallery.pairs:
            for m in ms:
                assert m.true != m.predicted and m.picture in page
                image = Image.open(io.BytesIO(base64.b64decode(m.picture.split(",", 1)[1])))
                # the photo and its Grad-CAM overlay side by side, at display height (32x32 input)
                assert image.format == "JPEG" and image.size == (2 * THUMB_HEIGHT, THUMB_HEIGHT)
                left, right = np.asarray(image)[:, :THUMB_HEIGHT], np.asarray(image)[:, THUMB_HEIGHT:]
                assert np.abs(left.astype(int) - right.astype(int)).mean() > 5  # the map is drawn on
    assert "member tiny#" in gallery.cam_of


def test_a_bundle_of_another_study_is_refused(tiny_study: TinyStudy, bundle_dir: Path) -> None:
    import pytest

    photos = ValidationPhotos.load(tiny_study.store, str(tiny_study.data_root), None, tiny_study.workdir)
    with pytest.raises(ValueError, match="exported from study 'tiny', not 'other'"):
        bundle_gallery(photos, bundle_dir, "other")
