"""search.deploy: checks on load, and the Python API on arrays and on image paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search.data import load_image
from search.deploy import Bundle, BundleError

from .conftest import TinyStudy


@pytest.fixture
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dst)
    return dst


def test_tampered_file_is_a_checksum_error(bundle_copy: Path) -> None:
    target = bundle_copy / "members" / "0.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"checksum mismatch for .*members/0\.safetensors"):
        Bundle.load(bundle_copy)


def test_tampered_onnx_is_a_checksum_error(bundle_copy: Path) -> None:
    with open(bundle_copy / "ensemble.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"ensemble\.onnx"):
        Bundle.load(bundle_copy)


def test_unknown_format_version_is_a_clear_error(bundle_copy: Path) -> None:
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 999
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"format_version 999.*reads format 2"):
        Bundle.load(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "ensemble.onnx").unlink()
    with pytest.raises(BundleError, match=r"ensemble\.onnx .*missing"):
        Bundle.load(bundle_copy)
    shutil.rmtree(bundle_copy)
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(bundle_copy)


def test_missing_manifest_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        Bundle.load(bundle_copy)


def test_predict_on_an_array_batch_torch_and_onnx_agree(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    batch = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    torch_probs = bundle.predict_proba(batch, backend="torch", batch_size=2)
    onnx_probs = bundle.predict_proba(batch, backend="onnx", batch_size=3)
    assert torch_probs.shape == (5, 18) and torch_probs.dtype == np.float32
    np.testing.assert_allclose(torch_probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(torch_probs, onnx_probs, atol=1e-4)
    assert np.array_equal(torch_probs.argmax(1), onnx_probs.argmax(1))


def test_predict_on_a_list_of_paths_matches_the_training_preprocessing(
    bundle_dir: Path, tiny_study: TinyStudy
) -> None:
    bundle = Bundle.load(bundle_dir)
    paths = tiny_study.val_paths()[:6]
    from_paths = bundle.predict_proba(paths, batch_size=4)
    arrays = np.stack([load_image(p, 32, 32, "full") for p in paths])
    np.testing.assert_allclose(from_paths, bundle.predict_proba(arrays), atol=1e-6)
    assert bundle.predict_proba([Path(p) for p in paths], backend="onnx").shape == (6, 18)


def test_tta_flip_averages_with_the_mirrored_images(bundle_dir: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    batch = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    expected = (
        bundle.predict_proba(batch) + bundle.predict_proba(np.ascontiguousarray(batch[:, :, ::-1]))
    ) / 2
    for backend in ("torch", "onnx"):
        np.testing.assert_allclose(
            bundle.predict_proba(batch, backend=backend, tta_flip=True), expected, atol=1e-4
        )


def test_bad_inputs_are_clear_errors(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(bundle_dir)
    with pytest.raises(ValueError, match=r"uint8 \(N, 32, 32, 3\)"):
        bundle.predict_proba(np.zeros((2, 64, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"uint8 \(N, 32, 32, 3\)"):
        bundle.predict_proba(np.zeros((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="backend"):
        bundle.predict_proba(np.zeros((1, 32, 32, 3), dtype=np.uint8), backend="tf")
    with pytest.raises(ValueError, match="device must be"):
        bundle.predict_proba(np.zeros((1, 32, 32, 3), dtype=np.uint8), device="gpu")
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        bundle.predict_proba([tmp_path / "gone.jpg"])


def test_loading_and_predicting_imports_neither_optuna_nor_the_search(bundle_dir: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from search.deploy import Bundle\n"
        f"b = Bundle.load({str(bundle_dir)!r})\n"
        "x = np.zeros((2, 32, 32, 3), dtype=np.uint8)\n"
        "assert b.predict_proba(x, backend='onnx').shape == (2, 18)\n"
        # onnx needs no model code (the class scheme, runners.classes, is all it takes from runners)
        "assert 'runners.models' not in sys.modules and 'timm' not in sys.modules\n"
        "assert b.predict_proba(x).shape == (2, 18)\n"
        "banned = ('optuna', 'search.ensemble', 'search.objective', 'search.run')\n"
        "bad = [m for m in banned if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


BLOCKER = """
import importlib.abc, sys
BLOCKED = ("optuna", "runners.training", "search.ensemble", "search.objective", "search.run", "search.study",
           "search.storage")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("which", ["selected", "mixed sizes, hard vote"])
def test_the_deploy_package_predicts_with_optuna_and_the_training_loop_blocked(
    bundle_dir: Path, mixed_bundles: dict[str, Path], tiny_study: TinyStudy, tmp_path: Path, which: str
) -> None:
    bundle = bundle_dir if which == "selected" else mixed_bundles["hard"]
    eval_dir = tiny_study.data_root / "eval"
    code = BLOCKER + (
        "import search.deploy, search.deploy.writer\n"
        "from search.predict import main\n"  # the command-line front of search.deploy.predict
        "for backend in ('torch', 'onnx'):\n"
        f"    out = {str(tmp_path)!r} + f'/{{backend}}.csv'\n"
        f"    assert main(['--bundle', {str(bundle)!r}, '--data', {str(eval_dir)!r}, '--out', out,\n"
        "                 '--backend', backend, '--device', 'cpu']) == 0\n"
        "try:\n"
        "    import optuna\n"
        "except ImportError:\n"
        "    print('blocked')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=180, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("blocked"), done.stderr[-2000:]
    assert (tmp_path / "torch.csv").read_text() == (tmp_path / "onnx.csv").read_text()
