"""The ``face_detect`` crop: where the face is in each photo, and the box cut around it.

Detection (:func:`find_face`) runs the MTCNN cascade of :mod:`search.data.mtcnn` on the full
decoded photo and keeps the face with the best score. The image cache finds the faces of a
photo list once and keeps them in a JSON file beside the image cache (see
``search.data.cache``); predict finds them again in each test photo with the same function
before the photos enter the network (a detector is not part of the ONNX graph).

The crop (:func:`crop_pixels`): MTCNN's box runs from about the eyebrows to the chin, and a
mask classifier needs more than that: an incorrectly worn mask sits on the chin or below it,
and hair and forehead carry gender and age. So the crop is 1.6 times the box's side high,
its centre a tenth of the side below the box's centre (more chin and neck than hair), and as
wide as the model input's aspect ratio asks, so that the resize to (height, width) does not
stretch the face. A crop larger than the photo is shrunk to fit with the same aspect ratio,
and one that crosses an edge is shifted inside.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from search.data.mtcnn import MtcnnConfig

log = logging.getLogger(__name__)

FaceBox = tuple[float, float, float, float]  # x1, y1, x2, y2 in photo pixels

FACES_VERSION = 1  # bump when find_face's output changes for the same photo and detector
HEIGHT_PER_SIDE = 1.6  # crop height / face box side
CENTRE_SHIFT = 0.1  # crop centre below the box centre, in box sides


def config() -> MtcnnConfig:
    """The detector settings of the face_detect crop.

    Thresholds of 0.5 at every stage: on the real-face bench (masked portraits) they found a
    face in 81% of 150 masked photos against 69% with facenet-pytorch's (0.6, 0.7, 0.7), and
    the boxes drawn on a contact sheet sat on the faces. The smallest face is a fifth of the
    photo's short side (the subject of a portrait is larger), which halves detection time.
    """
    from search.data.mtcnn import MtcnnConfig

    return MtcnnConfig(min_face_fraction=0.2, thresholds=(0.5, 0.5, 0.5))


def require() -> None:
    """Raise :class:`search.data.mtcnn.DetectorUnavailable`, naming the pip command, when the
    face extra is missing."""
    from search.data.mtcnn import weights_dir

    weights_dir()


def detector_key() -> str:
    """Names the detector, its weights and settings, and this module's crop rule."""
    from search.data.mtcnn import detector_id

    return f"{detector_id(config())}-v{FACES_VERSION}"


def find_face(rgb: npt.NDArray[np.uint8]) -> FaceBox | None:
    """The best-scoring face of an RGB photo, rounded to 1/100 pixel (so that float noise of
    a different thread count cannot move a crop), or None when no face is found."""
    from search.data.mtcnn import detect

    boxes = detect(rgb, config())
    if not len(boxes):
        return None
    x1, y1, x2, y2 = (round(float(v), 2) for v in boxes[0, :4])
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return (x1, y1, x2, y2)


def crop_pixels(face: FaceBox, photo_w: int, photo_h: int, out_h: int, out_w: int) -> FaceBox:
    """The (left, top, right, bottom) pixel box cut from the photo around ``face``."""
    x1, y1, x2, y2 = face
    side = max(x2 - x1, y2 - y1)
    height = HEIGHT_PER_SIDE * side
    width = height * out_w / out_h
    fit = min(1.0, photo_w / width, photo_h / height)
    width, height = width * fit, height * fit
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2 + CENTRE_SHIFT * side
    left = min(max(cx - width / 2, 0.0), photo_w - width)
    top = min(max(cy - height / 2, 0.0), photo_h - height)
    return (left, top, left + width, top + height)


def box_to_json(face: FaceBox | None) -> list[float] | None:
    return None if face is None else [float(v) for v in face]


def box_from_json(value: object, where: str) -> FaceBox | None:
    """One cached box (a list of 4 numbers, or null); anything else names the file."""
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[2] > value[0]
        and value[3] > value[1]
    ):
        x1, y1, x2, y2 = (float(v) for v in value)
        return (x1, y1, x2, y2)
    raise ValueError(
        f"{where}: a face box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1 or null, got {value!r}"
    )


def log_fallbacks(missing: int, total: int, fallback: str, where: str, warn: bool = True) -> None:
    """One line with the count of photos where no face was found, which use the fixed crop: a
    warning when there are any and ``warn`` (once per image cache), else info (predict logs one
    line per batch, shown with ``-v``)."""
    if total:
        log.log(
            logging.WARNING if missing and warn else logging.INFO,
            "face_detect: a face was found in %d of %d photos (%.1f%%) of %s; %d use the fixed %r crop",
            total - missing,
            total,
            100.0 * (total - missing) / total,
            where,
            missing,
            fallback,
        )
