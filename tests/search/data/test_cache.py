"""Point 8: decode once into a memory-mapped uint8 cache, safely."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.data import DataError, cache, crop_box, image_cache, load_image, load_train


@pytest.fixture
def photos(tmp_path: Path, draw_image) -> list[str]:
    paths = []
    for i in range(40):
        p = tmp_path / "src" / f"{i:03d}{('.jpg', '.png', '.jpeg')[i % 3]}"
        p.parent.mkdir(exist_ok=True)
        draw_image(p, seed=i, size=(48, 64))
        paths.append(str(p))
    return paths


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock"))


def test_builds_once_and_maps_read_only(photos: list[str], tmp_path: Path, monkeypatch) -> None:
    arr = image_cache(photos, 32, 24, "face", tmp_path / "c", key="k1")
    assert isinstance(arr, np.memmap) and arr.shape == (40, 32, 24, 3) and arr.dtype == np.uint8
    assert not arr.flags.writeable
    for i in (0, 1, 2, 39):  # one row per path, in order
        assert np.array_equal(arr[i], load_image(photos[i], 32, 24, "face"))
    npy, meta = cache.cache_files(photos, 32, 24, "face", tmp_path / "c", "k1")
    info = json.loads(meta.read_text())
    assert info["shape"] == [40, 32, 24, 3] and info["paths"] == 40 and info["dtype"] == "uint8"
    calls = []
    monkeypatch.setattr(cache, "load_image", lambda *a, **k: calls.append(a))
    again = image_cache(photos, 32, 24, "face", tmp_path / "c", key="k1")
    assert calls == [] and np.array_equal(again, arr)
    assert json.loads(meta.read_text())["build_id"] == info["build_id"]


def test_new_file_when_data_or_preprocessing_changes(photos: list[str], monkeypatch) -> None:
    base = cache.cache_files(photos, 32, 24, "face", Path("c"), "k1")
    others = [
        cache.cache_files(photos, 32, 24, "face", Path("c"), "k2"),  # data fingerprint
        cache.cache_files(photos, 32, 24, "full", Path("c"), "k1"),  # crop
        cache.cache_files(photos, 24, 32, "face", Path("c"), "k1"),  # size (H, W swapped)
        cache.cache_files(photos[::-1], 32, 24, "face", Path("c"), "k1"),  # order
    ]
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)  # preprocessing code changed
    others.append(cache.cache_files(photos, 32, 24, "face", Path("c"), "k1"))
    assert len({base[0], *(o[0] for o in others)}) == 6


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_build_leaves_nothing_then_rebuilds_cleanly(
    photos: list[str], tmp_path: Path, monkeypatch, error: type[BaseException]
) -> None:
    reference = np.array(image_cache(photos, 16, 12, "full", tmp_path / "ref", key="k"))
    real = cache.load_image

    def fails_on_k(path: str, *args, **kwargs):
        if path == photos[25]:
            raise error("decode interrupted")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache, "load_image", fails_on_k)
    with pytest.raises(error):
        image_cache(photos, 16, 12, "full", tmp_path / "c", key="k")
    assert leftovers(tmp_path / "c") == []  # no final file, no temp file
    monkeypatch.setattr(cache, "load_image", real)
    rebuilt = image_cache(photos, 16, 12, "full", tmp_path / "c", key="k")
    assert np.array_equal(rebuilt, reference)
    assert len(leftovers(tmp_path / "c")) == 2  # .npy and .json


def test_undecodable_file_names_the_path(photos: list[str], tmp_path: Path) -> None:
    Path(photos[7]).write_bytes(b"broken")
    with pytest.raises(DataError, match=rf"{photos[7]}"):
        image_cache(photos, 16, 12, "full", tmp_path / "c", key="k")
    assert leftovers(tmp_path / "c") == []


def test_half_finished_cache_is_rebuilt(photos: list[str], tmp_path: Path) -> None:
    arr = np.array(image_cache(photos, 16, 12, "full", tmp_path / "c", key="k"))
    npy, meta = cache.cache_files(photos, 16, 12, "full", tmp_path / "c", "k")
    meta.unlink()  # as if the process died between the two renames
    npy.write_bytes(b"garbage")
    assert np.array_equal(image_cache(photos, 16, 12, "full", tmp_path / "c", key="k"), arr)


def test_crop_and_resize_match_pil(tmp_path: Path, draw_image) -> None:
    src = tmp_path / "p.png"  # PNG: no JPEG draft scaling, so the result is exactly PIL's
    draw_image(src, seed=3, size=(384, 512))
    top, left, bottom, right = crop_box("face")
    with Image.open(src) as im:
        expected = im.convert("RGB").resize(
            (48, 64),
            Image.Resampling.BILINEAR,
            box=(left * 384, top * 512, right * 384, bottom * 512),
            reducing_gap=None,
        )
    got = load_image(src, 64, 48, "face")
    assert got.shape == (64, 48, 3) and np.array_equal(got, np.asarray(expected))
    assert not np.array_equal(got, load_image(src, 64, 48, "full"))
    jpg = tmp_path / "p.jpg"
    Image.open(src).convert("RGB").save(jpg, quality=95)
    diff = np.abs(load_image(jpg, 64, 48, "face").astype(int) - got.astype(int)).mean()
    assert diff < 12  # reduced-scale JPEG decode stays close to the full-resolution result


def test_bad_arguments(photos: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown crop 'head'; valid crops are face, face_detect, full, tight"):
        image_cache(photos, 16, 12, "head", tmp_path, key="k")
    with pytest.raises(ValueError, match="height must be an integer"):
        image_cache(photos, 0, 12, "full", tmp_path, key="k")
    with pytest.raises(ValueError, match="at least one path"):
        image_cache([], 16, 12, "full", tmp_path, key="k")


def test_train_data_caches_through_its_fingerprint(layout, tmp_path: Path) -> None:
    data = load_train(layout.root)
    arr = image_cache(data.paths, 16, 12, "face", tmp_path / "c", key=data.fingerprint)
    assert arr.shape == (len(data.images), 16, 12, 3)


def test_two_processes_build_once_and_share(photos: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("cache_workers", None)
    import cache_workers

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    counter = tmp_path / "decodes"
    procs = [
        ctx.Process(
            target=cache_workers.build_in_child,
            args=(photos, str(tmp_path / "c"), str(counter), start, results),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got[0]["pid"] != got[1]["pid"]
    assert got[0]["digest"] == got[1]["digest"]
    assert got[0]["build_id"] == got[1]["build_id"]  # one build, reused by the other process
    assert len(counter.read_bytes()) == len(photos)  # every image decoded exactly once
    here = np.asarray(image_cache(photos, 16, 12, "face", tmp_path / "c", key="same-data"))
    assert hashlib.sha256(here.tobytes()).hexdigest() == got[0]["digest"]


_SLOW_BUILD = """
import json, sys, time
from search.data import cache
real = cache.load_image
def slow(*args, **kwargs):
    time.sleep(0.2)
    return real(*args, **kwargs)
cache.load_image = slow  # a build slow enough to be killed midway
cache.image_cache(json.loads(sys.argv[1]), 16, 12, "full", sys.argv[2], key="k", n_jobs=1)
"""


def test_a_build_killed_outright_leaves_nothing_after_the_next_start(photos: list[str], tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    repo = Path(__file__).resolve().parents[3]
    cache_dir = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, json.dumps(photos), str(cache_dir)], cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    deadline = time.monotonic() + 60
    while not list(cache_dir.glob(".*.tmp")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name.endswith(".tmp") for p in cache_dir.glob(".*")] == [True], "kill -9 left the temporary file"
    image_cache(photos, 16, 12, "full", cache_dir, key="k")  # the next start
    assert len(leftovers(cache_dir)) == 2 and not list(cache_dir.glob(".*")), "only the .npy and .json remain"


def test_a_temporary_file_of_a_live_build_is_left_alone(photos: list[str], tmp_path: Path) -> None:
    import fcntl

    from search.data.cache import remove_stale_temps

    npy, _ = cache.cache_files(photos, 16, 12, "full", tmp_path, "k")
    live = npy.with_name(f".{npy.name}.123.abc.tmp")
    dead = tmp_path / ".images-full-8x8-n1-0123.npy.456.def.tmp"
    for tmp in (live, dead):
        tmp.write_bytes(b"rows")
    with open(npy.with_suffix(".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # a build of this cache is running
        assert remove_stale_temps(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


def test_the_crops_are_one_registry_and_the_detected_ones_name_their_fallback() -> None:
    from search.data.cache import CROPS, DETECTED_CROPS, crop_problem

    assert CROPS.names() == ["full", "face", "tight", "face_detect"]
    assert DETECTED_CROPS == {"face_detect": "face"} and crop_box("face_detect") == crop_box("face")
    with pytest.raises(ValueError, match=r"unknown crop 'chin'; valid crops are face, face_detect, full, tight"):
        crop_box("chin")
    assert "names no crop: 'chin'" in str(crop_problem("chin"))
