"""Decode once: a uint8 image cache on disk, memory-mapped, per (data, resolution, crop).

``image_cache(paths, height, width, crop, cache_dir, key)`` returns a read-only
``(N, height, width, 3)`` uint8 RGB array, one row per path in the given order. The file name
is a sha256 of (key, paths, height, width, crop, CACHE_VERSION): pass the data fingerprint
as ``key`` and a change in the data or in preprocessing selects a new file.

Preprocessing (:func:`load_image`, the one function train and predict both use): crop a
named box given as fractions of the photo, then resize with PIL's BILINEAR filter, which is
antialiased (its support widens with the scale factor, area-like) when shrinking. JPEGs are
first decoded at a reduced DCT scale no smaller than the crop needs (``Image.draft``).

The ``face_detect`` crop's box is found in each photo (:mod:`search.data.faces`): the cache
finds the faces of its photo list once, into ``faces-<n>-<hash>.json`` beside the image caches
(keyed on the data, the paths and the detector, shared by every size), and a photo where none
is found gets the fixed ``face`` box, counted in the log and in the cache's sidecar.

Building: decoding runs on joblib threads (measured on 2 cores, 384x512 JPEG -> 128x96:
threads ~2,400 img/s, processes ~1,000 img/s, serial ~2,000 img/s: PIL releases the GIL
while decoding and resizing, and threads pay no start-up or transfer cost). Rows go into a
temporary ``.npy`` in the cache folder, which is renamed into place only when complete, and
then a JSON sidecar is renamed beside it; the sidecar is what marks a cache as finished. An
exclusive ``flock`` on ``<name>.lock`` serialises builders: a second process waits, then
finds the finished file and maps it. An interrupted build removes its temporary file; one
killed outright (``kill -9``, the out-of-memory killer) cannot, so every build first removes
the temporary files no live builder holds the lock of (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from joblib import Parallel, delayed
from PIL import Image
from tqdm.auto import tqdm

import search.data.faces as faces
from runners.registry import Registry
from search.common.atomic import atomic_path, write_json
from search.common.locks import locked
from search.data.errors import DataError

log = logging.getLogger(__name__)

# a build's temporary files (search.common.atomic): .<name>.npy.tmp-<pid>-<hex>.tmp, and the same for .json
_TEMP = re.compile(r"^\.(?P<name>images-[^./]+)\.(?:npy|json)\..+\.tmp$")

CACHE_VERSION = 2  # bump when load_image's output changes for the same inputs

@dataclass(frozen=True)
class Crop:
    box: tuple[float, float, float, float]  # (top, left, bottom, right) as fractions of the source photo
    fallback: str | None = None  # a crop a detector finds per photo: the fixed crop where none is found


# The named crops; a new one is one CROPS.add here (the study file, the cache, the manifest and the
# ONNX graph take it from the registry).
CROPS: Registry[Crop] = Registry("crop")
CROPS.add("full", Crop((0.0, 0.0, 1.0, 1.0)))
# conservative box around where the face sits in a 384x512 portrait photo
CROPS.add("face", Crop((0.08, 0.12, 0.82, 0.88)))
# tighter, for models that should not see hair and clothes
CROPS.add("tight", Crop((0.15, 0.2, 0.75, 0.8)))
# the box is found in each photo (search.data.faces); this is the fallback, the "face" box
CROPS.add("face_detect", Crop((0.08, 0.12, 0.82, 0.88), fallback="face"))
# crops whose box a detector finds per photo -> the fixed crop of a photo where none is found
DETECTED_CROPS: dict[str, str] = {name: c.fallback for name, c in CROPS.items() if c.fallback}


def crop_box(crop: str) -> tuple[float, float, float, float]:
    """The fractional box of a named crop; an unknown name lists the valid ones."""
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; valid crops are {', '.join(sorted(CROPS))}.")
    return CROPS.get(crop).box


def crop_problem(crop: str) -> str | None:
    """Why a crop name cannot be used here (unknown, or its detector is not installed), or None."""
    if crop not in CROPS:
        return f"names no crop: {crop!r}; use one of {', '.join(sorted(CROPS))}"
    if crop in DETECTED_CROPS:
        from search.data.mtcnn import DetectorUnavailable

        try:
            faces.require()
        except DetectorUnavailable as exc:
            return str(exc).rstrip(".")
    return None


def _check_size(height: int, width: int) -> None:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 4096:
            raise ValueError(f"image {name} must be an integer from 1 to 4096 but got {v!r}.")


# what PIL raises for a file that is not a photo, or a damaged one (its bomb warning too, where a
# caller turned warnings of that kind into errors)
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
_WIDE_GREY = ("I", "I;16", "I;16L", "I;16B", "I;16N")  # 16-bit greyscale PNG/TIFF modes


def load_image(
    path: str | Path,
    height: int,
    width: int,
    crop: str = "full",
    face: faces.FaceBox | None | Literal["detect"] = "detect",
) -> npt.NDArray[np.uint8]:
    """Decode one photo to an ``(height, width, 3)`` uint8 RGB array (crop, then resize).

    For a detected crop (``face_detect``), ``face`` is the photo's face box from the image
    cache's box file, None where none was found (the fixed fallback crop is cut), or
    ``"detect"``: find it now, as predict does. Such photos are decoded at full size (no
    JPEG draft), which the detector needs, so a cached box and a fresh detection cut the
    same pixels. A file PIL cannot decode (not an image, empty, truncated, more pixels than
    ``Image.MAX_IMAGE_PIXELS``) is a :class:`DataError` naming it.
    """
    return _load(path, height, width, crop, face)[0]


def _load(
    path: str | Path, height: int, width: int, crop: str, face: faces.FaceBox | None | Literal["detect"]
) -> tuple[npt.NDArray[np.uint8], bool]:
    """The photo, and whether a detected crop fell back to its fixed box."""
    top, left, bottom, right = crop_box(crop)
    detected = crop in DETECTED_CROPS
    try:
        with Image.open(path) as im:
            _refuse_bomb(im)
            if im.format == "JPEG" and not detected:
                im.draft("RGB", (math.ceil(width / (right - left)), math.ceil(height / (bottom - top))))
            rgb = _to_rgb(im)
    except _DECODE_ERRORS as exc:
        reason = str(exc).rstrip(".")
        raise DataError(
            f"cannot decode image {path}: {reason}; replace it with a readable JPEG or PNG photo."
        ) from exc
    w, h = rgb.size
    box = (left * w, top * h, right * w, bottom * h)
    if detected and face == "detect":
        face = faces.find_face(np.asarray(rgb))
    fell_back = detected and face is None
    if detected and isinstance(face, tuple):
        box = faces.crop_pixels(face, w, h, height, width)
    out = rgb.resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
    return np.asarray(out, dtype=np.uint8), fell_back


def load_photos(
    paths: Sequence[str | Path], height: int, width: int, crop: str, n_jobs: int = 4
) -> npt.NDArray[np.uint8]:
    """:func:`load_image` of each path on joblib threads, uint8 ``(N, height, width, 3)``; for a
    detected crop the faces are found now and the photos without one are counted in the log."""
    rows = Parallel(n_jobs=max(1, min(n_jobs, len(paths))), prefer="threads")(
        delayed(_load)(p, height, width, crop, "detect") for p in paths
    )
    if crop in DETECTED_CROPS:
        faces.log_fallbacks(sum(fb for _, fb in rows), len(rows), DETECTED_CROPS[crop], "a batch", warn=False)
    if not rows:
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack([row for row, _ in rows])


def _refuse_bomb(im: Image.Image) -> None:
    # PIL only warns between MAX_IMAGE_PIXELS and twice that; decoding such a file could take
    # gigabytes, so it is refused like the larger ones (which PIL refuses in Image.open).
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and im.width * im.height > limit:
        raise Image.DecompressionBombError(
            f"{im.width}x{im.height} = {im.width * im.height} pixels exceed the limit of {limit} "
            "(a decompression bomb?)"
        )


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB of any mode; 16-bit greyscale is scaled to 8 bit (``convert`` clips it to white)."""
    if im.mode not in _WIDE_GREY:
        return im.convert("RGB")
    wide = np.asarray(im).astype(np.float32)
    grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)  # 65535 -> 255
    return Image.fromarray(grey).convert("RGB")


def _crop_key(crop: str) -> str:
    # a detected crop's pixels depend on the detector too: a new one selects new cache files
    return f"{crop}:{faces.detector_key()}" if crop in DETECTED_CROPS else crop


def cache_name(paths: Sequence[str], height: int, width: int, crop: str, key: str) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, key, height, width, _crop_key(crop)]).encode())
    for p in paths:
        h.update(str(p).encode() + b"\0")
    return f"images-{crop}-{height}x{width}-n{len(paths)}-{h.hexdigest()[:24]}"


def remove_stale_temps(cache_dir: Path | str) -> list[Path]:
    """Delete the temporary files of builds that died: a build holds the flock of its
    ``<name>.lock`` as long as its temporary file exists, so a temporary file whose lock can be
    taken now has no live builder. Returns the files removed."""
    removed = []
    for tmp in sorted(Path(cache_dir).glob(".images-*.tmp")):
        match = _TEMP.match(tmp.name)
        if match is None:
            continue
        with locked(tmp.with_name(f"{match['name']}.lock"), wait=False) as mine:
            if not mine:
                continue  # a live build
            size = tmp.stat().st_size if tmp.exists() else 0
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
        log.info("removed %s (%.1f MB), left by a cache build that was killed", tmp, size / 1e6)
    return removed


def _open_finished(npy: Path, meta: Path, shape: tuple[int, ...]) -> np.memmap | None:
    """The finished cache, or None when absent or not matching (it is then rebuilt)."""
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        arr = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("cache %s is unreadable (%s); rebuilding it", npy, exc)
        return None
    if tuple(info.get("shape", ())) != shape or arr.shape != shape or arr.dtype != np.uint8:
        log.warning("cache %s has shape %s, expected %s; rebuilding it", npy, arr.shape, shape)
        return None
    return arr


def _decode(
    index: int, path: str, height: int, width: int, crop: str, face: faces.FaceBox | None | Literal["detect"]
) -> npt.NDArray[np.uint8]:
    try:
        return load_image(path, height, width, crop, face)
    except DataError as exc:
        raise DataError(f"image {index} of the cache: {exc}") from exc


def _write_json(path: Path, payload: dict[str, object]) -> None:
    write_json(path, payload, indent=1)


def _build(
    npy: Path,
    meta: Path,
    paths: Sequence[str],
    height: int,
    width: int,
    crop: str,
    key: str,
    n_jobs: int,
    boxes: Sequence[faces.FaceBox | None] | None = None,
) -> None:
    shape = (len(paths), height, width, 3)
    t0 = time.monotonic()
    with atomic_path(npy) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        jobs = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator", batch_size=16)
        rows = jobs(
            delayed(_decode)(i, p, height, width, crop, "detect" if boxes is None else boxes[i])
            for i, p in enumerate(paths)
        )
        try:
            bar = tqdm(rows, total=len(paths), desc=f"caching {height}x{width} {crop}", unit="img")
            for i, row in enumerate(bar):
                out[i] = row
        finally:
            # an interrupt (Ctrl-C, SIGTERM) lands here: stop joblib's thread pool now, not in a
            # garbage collection at interpreter exit, where it raised from a closed pipe
            rows.close()
        out.flush()
        del out
    _write_json(
        meta,
        {
            "shape": list(shape),
            "dtype": "uint8",
            "paths": len(paths),
            "height": height,
            "width": width,
            "crop": crop,
            "key": key,
            "cache_version": CACHE_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_id": uuid.uuid4().hex,
            "build_seconds": round(time.monotonic() - t0, 3),
            **({} if boxes is None else {"faces_missing": sum(b is None for b in boxes)}),
        },
    )
    log.info(
        "cached %d images at %dx%d (%s) in %.1f s: %s",
        len(paths),
        height,
        width,
        crop,
        time.monotonic() - t0,
        npy,
    )


def cache_files(
    paths: Sequence[str], height: int, width: int, crop: str, cache_dir: Path | str, key: str
) -> tuple[Path, Path]:
    """The ``(.npy, .json)`` pair that :func:`image_cache` uses for these arguments."""
    base = Path(cache_dir) / cache_name(paths, height, width, crop, key)
    return base.with_suffix(".npy"), base.with_suffix(".json")


def image_cache(
    paths: Sequence[str],
    height: int,
    width: int,
    crop: str,
    cache_dir: Path | str,
    key: str,
    n_jobs: int = -1,
) -> np.memmap:
    """The read-only ``(len(paths), height, width, 3)`` uint8 cache of ``paths``, built if needed."""
    _check_size(height, width)
    crop_box(crop)
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("image_cache needs at least one path but got none.")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(cache_dir)
    npy, meta = cache_files(paths, height, width, crop, cache_dir, key)
    shape = (len(paths), height, width, 3)
    boxes = face_boxes(paths, cache_dir, key, n_jobs) if crop in DETECTED_CROPS else None
    if boxes is not None:
        faces.log_fallbacks(sum(b is None for b in boxes), len(boxes), DETECTED_CROPS[crop], str(cache_dir))
    found = _open_finished(npy, meta, shape)
    if found is not None:
        return found
    with locked(npy.with_suffix(".lock")):
        found = _open_finished(npy, meta, shape)  # another process may have built it meanwhile
        if found is None:
            meta.unlink(missing_ok=True)
            _build(npy, meta, paths, height, width, crop, key, n_jobs, boxes)
            found = _open_finished(npy, meta, shape)
    if found is None:
        raise DataError(f"image cache {npy} was built but cannot be read back; delete {cache_dir} and retry.")
    return found



def faces_file(paths: Sequence[str], cache_dir: Path | str, key: str) -> Path:
    """The JSON file of the face boxes of ``paths`` (one per detector, shared by every size)."""
    h = hashlib.sha256(json.dumps([key, faces.detector_key()]).encode())
    for p in paths:
        h.update(str(p).encode() + b"\0")
    return Path(cache_dir) / f"faces-n{len(paths)}-{h.hexdigest()[:24]}.json"


def _read_faces(path: Path, n: int) -> list[faces.FaceBox | None] | None:
    """The cached boxes, or None when absent or not matching (they are then found again)."""
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        raw = info["boxes"]
        if not isinstance(raw, list) or len(raw) != n:
            raise ValueError(f"it holds {len(raw) if isinstance(raw, list) else 'no'} boxes for {n} photos")
        return [faces.box_from_json(b, f"box {i}") for i, b in enumerate(raw)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("face box file %s is unusable (%s); finding the faces again", path, exc)
        return None


def _find_face(index: int, path: str) -> faces.FaceBox | None:
    try:
        with Image.open(path) as im:
            _refuse_bomb(im)
            rgb = _to_rgb(im)
    except _DECODE_ERRORS as exc:
        raise DataError(
            f"image {index} of the cache: cannot decode image {path}: {str(exc).rstrip('.')}; "
            "replace it with a readable JPEG or PNG photo."
        ) from exc
    return faces.find_face(np.asarray(rgb))


def face_boxes(
    paths: Sequence[str], cache_dir: Path | str, key: str, n_jobs: int = -1
) -> list[faces.FaceBox | None]:
    """The face box of each photo (None: no face found), found once and kept in
    :func:`faces_file` beside the image caches."""
    faces.require()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    path = faces_file(paths, cache_dir, key)
    found = _read_faces(path, len(paths))
    if found is not None:
        return found
    with locked(path.with_suffix(".lock")):
        found = _read_faces(path, len(paths))
        if found is not None:
            return found
        t0 = time.monotonic()
        jobs = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator", batch_size=16)
        rows = jobs(delayed(_find_face)(i, p) for i, p in enumerate(paths))
        try:
            found = list(tqdm(rows, total=len(paths), desc="finding faces", unit="img"))
        finally:
            rows.close()
        seconds = time.monotonic() - t0
        _write_json(
            path,
            {
                "detector": faces.detector_key(),
                "key": key,
                "paths": len(paths),
                "missing": sum(b is None for b in found),
                "seconds": round(seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "boxes": [faces.box_to_json(b) for b in found],
            },
        )
    log.info("found faces in %d photos in %.1f s (%.1f ms each): %s", len(paths), seconds,
             1000 * seconds / len(paths), path)
    return found
