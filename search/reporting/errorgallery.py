"""The report's wrong validation photos: grouped by confusion, each with its Grad-CAM.

For the study's best trial (its kept validation probabilities and weights) and for an exported
bundle (run on the study's validation photos), the wrong predictions are grouped by
(true class -> predicted class), the pairs with most mistakes first, the most confident
mistakes first within a pair. Each picture is the photo as the model saw it (its crop and size)
beside the same photo with the Grad-CAM of the predicted class (search/reporting/gradcam.py); for a
bundle, the map is its heaviest member's. Pictures are inline JPEG, so the report stays one file;
``max_pairs`` x ``per_pair`` bounds how many.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from runners.classes import CLASS_NAMES
from search.data import load_recorded_train
from search.data.cache import load_photos
from search.reporting.gradcam import grad_cam, overlay
from search.storage.trialstore import TrialStore, Validation

log = logging.getLogger(__name__)

THUMB_HEIGHT = 112  # display height of each half of a picture, pixels
MAX_PAIRS, PER_PAIR = 6, 4


@dataclass(frozen=True)
class Mistake:
    row: int  # index into the validation set
    true: int
    predicted: int
    confidence: float  # the predicted class's probability
    picture: str = ""  # data: URI of photo | photo with Grad-CAM


@dataclass
class Gallery:
    title: str  # e.g. "best trial #3 (test_resnet)"
    cam_of: str  # whose Grad-CAM the pictures show
    n_images: int
    n_wrong: int
    pairs: list[tuple[int, int, int, list[Mistake]]] = field(default_factory=list)  # true, pred, count, shown
    note: str = ""  # why there are no pictures, when there are none


def group_mistakes(
    labels: np.ndarray, probs: np.ndarray, max_pairs: int = MAX_PAIRS, per_pair: int = PER_PAIR
) -> tuple[int, list[tuple[int, int, int, list[Mistake]]]]:
    """(number wrong, the ``max_pairs`` confusion pairs with most mistakes, each with its
    ``per_pair`` most confident mistakes); ties between pairs go by class index."""
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    by_pair: dict[tuple[int, int], list[Mistake]] = {}
    for row in wrong:
        t, p = int(labels[row]), int(predicted[row])
        by_pair.setdefault((t, p), []).append(Mistake(int(row), t, p, float(probs[row, p])))
    ranked = sorted(by_pair.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:max_pairs]
    pairs = [(t, p, len(ms), sorted(ms, key=lambda m: (-m.confidence, m.row))[:per_pair]) for (t, p), ms in ranked]
    return len(wrong), pairs


def _data_uri(image: np.ndarray) -> str:
    pil = Image.fromarray(image)
    scale = THUMB_HEIGHT / pil.height
    pil = pil.resize((max(1, round(pil.width * scale)), THUMB_HEIGHT), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pictures(gallery: Gallery, paths: Sequence[str], classifier: Any, size: tuple[int, int, str]) -> None:
    """Fill each shown mistake's picture: photo at ``size``, beside it the Grad-CAM of its prediction."""
    shown = [m for _, _, _, ms in gallery.pairs for m in ms]
    if not shown:
        return
    h, w, crop = size
    photos = load_photos([paths[m.row] for m in shown], h, w, crop)
    cams = grad_cam(classifier, photos, np.array([m.predicted for m in shown]))
    pictures = iter(_data_uri(np.concatenate([photo, overlay(photo, cam)], axis=1)) for photo, cam in zip(photos, cams))
    gallery.pairs = [(t, p, n, [Mistake(m.row, m.true, m.predicted, m.confidence, next(pictures)) for m in ms])
                     for t, p, n, ms in gallery.pairs]


@dataclass(frozen=True)
class ValidationPhotos:
    """The study's validation photos on disk, in the order of its validation probabilities."""

    validation: Validation
    paths: list[str]

    @classmethod
    def load(cls, store: TrialStore, data_root: str | None, relabel: str | None, workdir: Path) -> ValidationPhotos:
        validation = store.load_validation()
        if not data_root or not Path(data_root).exists():
            raise FileNotFoundError(f"the study's data root {data_root} is not on this machine")
        data = load_recorded_train(Path(data_root), relabel, validation.fingerprint,
                                   verified_dir=Path(workdir) / "cache")
        return cls(validation, [data.paths[r] for r in validation.rows])


def trial_gallery(photos: ValidationPhotos, store: TrialStore, number: int, max_pairs: int = MAX_PAIRS,
                  per_pair: int = PER_PAIR) -> Gallery:
    """The wrong validation photos of trial ``number`` (its kept probabilities and weights)."""
    from search.deploy.graph import build_checkpoint

    config = store.load_config(number)
    title = f"best trial #{number} ({config.get('backbone')})"
    n_wrong, pairs = group_mistakes(photos.validation.labels, store.load_probs(number), max_pairs, per_pair)
    gallery = Gallery(title, f"trial #{number}", len(photos.paths), n_wrong, pairs)
    classifier, _, _ = build_checkpoint(config, store.weights_path(number))
    _pictures(gallery, photos.paths, classifier, (int(config["height"]), int(config["width"]), str(config["crop"])))
    return gallery


def bundle_gallery(photos: ValidationPhotos, bundle_dir: Path, study: str, max_pairs: int = MAX_PAIRS,
                   per_pair: int = PER_PAIR) -> Gallery:
    """The wrong validation photos of the exported ensemble in ``bundle_dir`` (run on them now)."""
    from search.deploy.bundle import Bundle
    from search.deploy.graph import build_checkpoint

    bundle = Bundle.load(bundle_dir)
    made_from = bundle.manifest.study
    fingerprint = bundle.manifest.extra.get("source", {}).get("data_fingerprint")
    if made_from is not None and made_from != study:
        raise ValueError(f"bundle {bundle_dir} was exported from study {made_from!r}, not {study!r}; pass its "
                         f"study's --name, or another --bundle")
    if fingerprint is not None and fingerprint != photos.validation.fingerprint:
        raise ValueError(f"bundle {bundle_dir} was exported from other data than study {study!r} holds")
    probs = bundle.predict_proba(photos.paths, progress=True)
    n_wrong, pairs = group_mistakes(photos.validation.labels, probs, max_pairs, per_pair)
    heaviest = max(bundle.members, key=lambda m: m.weight)
    title = f"exported ensemble {bundle_dir} ({len(bundle.members)} member(s), {bundle.vote} vote)"
    gallery = Gallery(title, f"member {heaviest.name} ({heaviest.config.get('backbone')}, weight "
                      f"{heaviest.weight:.2f})", len(photos.paths), n_wrong, pairs)
    classifier, _, _ = build_checkpoint(heaviest.config, bundle.root / heaviest.checkpoints[0])
    _pictures(gallery, photos.paths, classifier, heaviest.preprocessing.size)
    return gallery


def gallery_html(gallery: Gallery, anchor: str | None = None) -> str:
    """One section of the report: heading (with id ``anchor``), counts, and a row of pictures per confusion pair."""
    ident = f" id='{html.escape(anchor)}'" if anchor else ""
    parts = [f"<h2{ident}>Wrong validation photos: {html.escape(gallery.title)}</h2>"]
    if gallery.note:
        parts.append(f"<p>No pictures: {html.escape(gallery.note)}.</p>")
        return "\n".join(parts)
    shown = sum(len(ms) for _, _, _, ms in gallery.pairs)
    parts.append(
        f"<p>{gallery.n_wrong} of {gallery.n_images} validation photos wrong; {shown} shown, by confusion "
        f"(most mistaken pairs first, most confident mistakes first). Each picture: the photo as the model saw "
        f"it, and the Grad-CAM of the predicted class from {html.escape(gallery.cam_of)} (red: most evidence).</p>"
    )
    for t, p, n, ms in gallery.pairs:
        parts.append(f"<h3>true {t} {html.escape(CLASS_NAMES[t])} &rarr; predicted {p} "
                     f"{html.escape(CLASS_NAMES[p])}: {n} photo{'s' if n != 1 else ''}</h3><div class='gallery'>")
        for m in ms:
            caption = (f"true {html.escape(CLASS_NAMES[m.true])}<br>predicted {html.escape(CLASS_NAMES[m.predicted])}"
                       f" ({m.confidence:.2f})")
            parts.append(f"<figure><img src='{m.picture}' alt='validation photo {m.row}'>"
                         f"<figcaption>{caption}</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)


GALLERY_CSS = (
    "<style>.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;font-size:12px}"
    ".gallery img{display:block;border:1px solid #ccc}</style>"
)
