"""search.deploy: checks on load, and the Python API on arrays and on image paths.

Issue 15: a bundle reads only its own, listed, checksummed files, and a malformed manifest is
one BundleError line naming the file and the field. Real bundles (copies of the exported one),
real files and symlinks on disk, real onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.numpy import load_file, save_file

from search.data import load_image
from search.deploy import Bundle, BundleError
from search.predict import main as predict_main
from tests.support.tiny_study import TinyStudy


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
    with pytest.raises(BundleError, match=r"format_version 999.*reads format 3"):
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
        "banned = ('optuna', 'search.ensemble', 'search.engine.objective', 'search.run')\n"
        "bad = [m for m in banned if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


BLOCKER = """
import importlib.abc, sys
BLOCKED = ("optuna", "runners.training", "search.ensemble", "search.engine.objective", "search.run", "search.studyfile.parse",
           "search.storage.backends")
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
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=180, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("blocked"), done.stderr[-2000:]
    assert (tmp_path / "torch.csv").read_text() == (tmp_path / "onnx.csv").read_text()


def edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def constant_class_graph(path: Path, cls: int, size: int = 32, classes: int = 18) -> None:
    """A valid ONNX graph with the bundle's input and output that says class ``cls`` for every photo."""
    onehot = np.zeros((1, classes), np.float32)
    onehot[0, cls] = 1.0
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        helper.make_node("Reshape", ["s", "shape"], ["col"]),
        helper.make_node("Mul", ["col", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "onehot"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("onehot", TensorProto.FLOAT, [1, classes], onehot.ravel().tolist()),
    ]
    graph = helper.make_graph(
        nodes,
        "swapped",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


BATCH = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# nothing is read from outside the bundle folder


def test_member_file_with_dotdot_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(bundle_copy / "members" / "0.safetensors", outside)

    def point_outside(m: dict[str, Any]) -> None:
        m["files"]["../outside.safetensors"] = sha256(outside)
        m["members"][0]["checkpoints"] = ["../outside.safetensors"]

    edit_manifest(bundle_copy, point_outside)
    with pytest.raises(BundleError, match=r"manifest\.json: file entry '\.\./outside\.safetensors'.*outside"):
        Bundle.load(bundle_copy)


def test_absolute_path_in_files_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not the bundle's")
    edit_manifest(bundle_copy, lambda m: m["files"].__setitem__(str(outside), sha256(outside)))
    with pytest.raises(BundleError, match=r"manifest\.json: file entry .*secret\.txt.* not a relative path"):
        Bundle.load(bundle_copy)


def test_member_symlink_pointing_outside_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    member = bundle_copy / "members" / "0.safetensors"
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(member, outside)
    member.symlink_to(outside)  # same bytes, so the checksum alone would pass
    with pytest.raises(BundleError, match=r"'members/0\.safetensors' resolves to .*elsewhere.*outside"):
        Bundle.load(bundle_copy)


def test_manifest_symlink_pointing_outside_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    manifest = bundle_copy / "manifest.json"
    outside = tmp_path / "manifest-elsewhere.json"
    shutil.move(manifest, outside)
    manifest.symlink_to(outside)
    with pytest.raises(BundleError, match=r"'manifest\.json' resolves to .*outside the bundle"):
        Bundle.load(bundle_copy)


# ------------------------------------------------------------------------------------------------
# every file used is listed and checked, at the moment it is used


def test_onnx_without_a_listed_checksum_is_refused(bundle_copy: Path) -> None:
    constant_class_graph(bundle_copy / "ensemble.onnx", cls=17)
    edit_manifest(bundle_copy, lambda m: m["files"].pop("ensemble.onnx"))
    with pytest.raises(BundleError, match=r"manifest\.json: files lists no sha256 for ensemble\.onnx"):
        Bundle.load(bundle_copy).predict_proba(BATCH, backend="onnx", device="cpu")


def test_onnx_swapped_after_loading_is_refused(bundle_copy: Path) -> None:
    bundle = Bundle.load(bundle_copy)
    constant_class_graph(bundle_copy / "ensemble.onnx", cls=17)
    with pytest.raises(BundleError, match=r"checksum mismatch for .*ensemble\.onnx"):
        bundle.predict_proba(BATCH, backend="onnx", device="cpu")


def test_member_weights_swapped_after_loading_are_refused(bundle_copy: Path) -> None:
    bundle = Bundle.load(bundle_copy)
    member = bundle_copy / "members" / "0.safetensors"
    tensors = load_file(str(member))
    name = next(k for k, v in tensors.items() if v.dtype == np.float32 and v.size > 1)
    tensors[name] = tensors[name] * 3.0  # still loads strictly: only the values differ
    save_file(tensors, str(member))
    with pytest.raises(BundleError, match=r"checksum mismatch for .*members/0\.safetensors"):
        bundle.predict_proba(BATCH, backend="torch", device="cpu")


# ------------------------------------------------------------------------------------------------
# the manifest's structure and values are validated before use


def _set_member(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["members"][0].__setitem__(key, value)


def _set_pre(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["preprocessing"].__setitem__(key, value)


def _all_weights_zero(m: dict[str, Any]) -> None:
    for member in m["members"]:
        member["weight"] = 0.0


BAD_MANIFESTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "files a list": (lambda m: m.__setitem__("files", list(m["files"])), r"files must be a mapping"),
    "files digest not sha256": (
        lambda m: m["files"].__setitem__("ensemble.onnx", "abc"),
        r"files\['ensemble\.onnx'\] must be a sha256",
    ),
    "member without weight": (lambda m: m["members"][0].pop("weight"), r"members\[0\]\.weight must be"),
    "negative weight": (_set_member("weight", -0.5), r"members\[0\]\.weight must be a number from 0 to 1e\+06"),
    "NaN weight": (_set_member("weight", float("nan")), r"members\[0\]\.weight must be a number from 0"),
    # issue 23: weights whose sum overflows made the torch vote NaN (class 0 for every photo)
    "weight 1.7e308": (_set_member("weight", 1.7e308), r"members\[0\]\.weight must be a number from 0 to 1e\+06"),
    "weight a string": (_set_member("weight", "0.5"), r"members\[0\]\.weight must be"),
    "all weights zero": (_all_weights_zero, r"every members\[i\]\.weight is 0"),
    "members empty": (lambda m: m.__setitem__("members", []), r"members must be a non-empty list"),
    "member not a mapping": (lambda m: m["members"].__setitem__(0, 7), r"members\[0\] must be a mapping"),
    "member file unlisted": (
        _set_member("checkpoints", ["members/9.safetensors"]),
        r"members\[0\]\.checkpoints\[0\] .*not listed",
    ),
    "member without checkpoints": (_set_member("checkpoints", []), r"members\[0\]\.checkpoints must be"),
    "member config not a mapping": (
        _set_member("config", "resnet"),
        r"members\[0\]\.config must be a mapping",
    ),
    "member config of another size": (
        lambda m: m["members"][0]["config"].__setitem__("height", 64),
        r"members\[0\]\.config\.height must be members\[0\]\.preprocessing\.height 32",
    ),
    "member mean too short": (
        lambda m: m["members"][0]["preprocessing"].__setitem__("mean", [0.5, 0.5]),
        r"members\[0\]\.preprocessing\.mean must be a list of 3 finite numbers",
    ),
    "member crop outside the input's": (
        lambda m: (m["preprocessing"].__setitem__("crop", "tight"),
                   m["members"][0]["preprocessing"].__setitem__("crop", "face")),
        r"members\[0\]\.preprocessing\.crop must be a crop inside the input's crop 'tight'",
    ),
    "unknown vote": (lambda m: m.__setitem__("vote", {"kind": "plurality", "weights": "learned"}), r"vote\.kind must be one of"),
    "decision rule with a hard vote": (
        lambda m: (m.__setitem__("vote", {"kind": "hard", "weights": "learned"}), m.__setitem__("decision_rule", {"offsets": [0.0] * 18})),
        r"decision_rule is set with a hard vote",
    ),
    "huge height": (_set_pre("height", 100_000), r"preprocessing\.height must be an integer from 1 to 4096"),
    "height a string": (_set_pre("height", "32"), r"preprocessing\.height must be an integer"),
    "zero width": (_set_pre("width", 0), r"preprocessing\.width must be an integer from 1 to 4096"),
    "unknown crop": (_set_pre("crop", "nose"), r"preprocessing\.crop must be one of"),
    "preprocessing a list": (lambda m: m.__setitem__("preprocessing", [32, 32]), r"preprocessing must be"),
    "classes cut short": (lambda m: m.__setitem__("classes", m["classes"][:3]), r"classes must be a list"),
    "decision offsets too few": (
        lambda m: m.__setitem__("decision_rule", {"offsets": [0.1] * 17}),
        r"decision_rule\.offsets must be a list of 18 numbers",
    ),
    "decision offset NaN": (
        lambda m: m.__setitem__("decision_rule", {"offsets": [0.0] * 17 + [float("nan")]}),
        r"decision_rule\.offsets\[17\] must be a number from -100 to 100",
    ),
    # issue 23: offsets of +-1e300 made torch's softmax NaN while ONNX ignored them
    "decision offset 1e300": (
        lambda m: m.__setitem__("decision_rule", {"offsets": [1e300] + [0.0] * 17}),
        r"decision_rule\.offsets\[0\] must be a number from -100 to 100",
    ),
    "decision offset -1e300": (
        lambda m: m.__setitem__("decision_rule", {"offsets": [0.0] * 17 + [-1e300]}),
        r"decision_rule\.offsets\[17\] must be a number from -100 to 100",
    ),
    # issue 23: a config of the wrong type or an absurd size was a traceback when torch built it
    "config head_hidden 1e13": (
        lambda m: m["members"][0]["config"].__setitem__("head_hidden", 10**13),
        r"members\[0\]\.config is not a usable trial config \(head_hidden must be at most 65536",
    ),
    "config head_hidden a float": (
        lambda m: m["members"][0]["config"].__setitem__("head_hidden", 1e13),
        r"members\[0\]\.config\.head_hidden must be a whole number, got 10000000000000\.0",
    ),
    "config backbone a number": (
        lambda m: m["members"][0]["config"].__setitem__("backbone", 7),
        r"members\[0\]\.config\.backbone must be a quoted string",
    ),
    "config unknown key": (
        lambda m: m["members"][0]["config"].__setitem__("layers", 9),
        r"members\[0\]\.config\.layers must be absent: it is no TrialConfig field",
    ),
    # issue 23: a NUL byte in a path was a plain ValueError ("embedded null byte") naming no file
    "NUL byte in a file path": (
        lambda m: (m["files"].__setitem__("members/0\x00.safetensors", m["files"]["members/0.safetensors"]),
                   m["members"][0].__setitem__("checkpoints", ["members/0\x00.safetensors"])),
        r"file entry 'members/0\\x00\.safetensors' is not a relative path inside the bundle",
    ),
    "probe missing": (lambda m: m.pop("probe"), r"lacks the keys \['probe'\]"),
    "probe a NaN": (lambda m: m["probe"]["probs"][1].__setitem__(3, float("nan")), r"probe\.probs\[1\] must be 18"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_malformed_manifest_is_one_error_naming_file_and_field(bundle_copy: Path, case: str) -> None:
    change, field = BAD_MANIFESTS[case]
    path = edit_manifest(bundle_copy, change)
    with pytest.raises(BundleError) as caught:
        Bundle.load(bundle_copy)
    message = str(caught.value)
    assert re.search(rf"{re.escape(str(path))}: .*{field}", message), message
    assert "\n" not in message and "export the bundle again" in message


def test_predict_cli_prints_a_bad_manifest_as_one_line(
    bundle_copy: Path, tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edit_manifest(bundle_copy, lambda m: m.__setitem__("files", list(m["files"])))
    out = tmp_path / "submission.csv"
    argv = ["--bundle", str(bundle_copy), "--data", str(tiny_study.data_root / "eval"), "--out", str(out)]
    assert predict_main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "manifest.json: files must be a mapping" in error.getMessage()
    assert "\n" not in error.getMessage() and not error.exc_info  # one line, no traceback
    assert os.listdir(tmp_path) == ["bundle"]


# ------------------------------------------------------------------------------------------------
# issue 23: a bundle is validated as a whole; a file swapped in with its checksum updated is caught


def swap_file(bundle: Path, rel: str, source: Path | None = None, data: bytes | None = None) -> None:
    """Replace ``bundle/rel`` and update its sha256 in the manifest, as a careful tamperer would."""
    target = bundle / rel
    target.write_bytes(source.read_bytes() if source is not None else data or b"")
    edit_manifest(bundle, lambda m: m["files"].__setitem__(rel, sha256(target)))


def test_another_bundles_graph_of_the_same_size_is_refused(mixed_bundles: dict[str, Path], tmp_path: Path) -> None:
    soft = tmp_path / "soft"
    shutil.copytree(mixed_bundles["soft"], soft)
    swap_file(soft, "ensemble.onnx", mixed_bundles["hard"] / "ensemble.onnx")
    bundle = Bundle.load(soft)  # loading stays a checksum pass; the graph is checked when first used
    spec = bundle.manifest.input
    batch = np.zeros((2, spec.height, spec.width, 3), np.uint8)
    with pytest.raises(BundleError, match=r"ensemble\.onnx of bundle .* does not give the probabilities recorded at export"):
        bundle.predict_proba(batch, backend="onnx", device="cpu")
    assert bundle.predict_proba(batch, backend="torch", device="cpu").shape == (2, 18)  # torch is unaffected


def test_a_graph_of_another_input_size_is_refused(bundle_copy: Path, mixed_bundles: dict[str, Path]) -> None:
    swap_file(bundle_copy, "ensemble.onnx", mixed_bundles["soft"] / "ensemble.onnx")
    with pytest.raises(BundleError, match=r"ensemble\.onnx is not this bundle's graph: its input is tensor\(uint8\) "
                                          r"\['batch', \d+, \d+, 3\], not .*\[batch, 32, 32, 3\]"):
        Bundle.load(bundle_copy).predict_proba(BATCH, backend="onnx", device="cpu")


def test_a_graph_of_another_class_count_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    constant_class_graph(tmp_path / "g.onnx", cls=3, classes=19)
    swap_file(bundle_copy, "ensemble.onnx", tmp_path / "g.onnx")
    with pytest.raises(BundleError, match=r"its output has shape \['batch', 19\], not \[batch, 18\]"):
        Bundle.load(bundle_copy).predict_proba(BATCH, backend="onnx", device="cpu")


def test_a_garbage_graph_is_one_line_from_predict(
    bundle_copy: Path, tiny_study: TinyStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    swap_file(bundle_copy, "ensemble.onnx", data=b"\x08\x07garbage, not a protobuf" * 10)
    out = tmp_path / "submission.csv"
    argv = ["--bundle", str(bundle_copy), "--data", str(tiny_study.data_root / "eval"), "--out", str(out),
            "--backend", "onnx", "--device", "cpu"]
    assert predict_main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert re.search(r"onnxruntime cannot load .*bundle/ensemble\.onnx .*export the bundle again", error.getMessage())
    assert "\n" not in error.getMessage() and not error.exc_info and not out.exists()


def test_weights_swapped_with_their_checksum_are_refused_by_torch(bundle_copy: Path) -> None:
    member = bundle_copy / "members" / "0.safetensors"
    tensors = load_file(str(member))
    name = next(k for k, v in tensors.items() if k.endswith("bias") and v.shape == (18,))  # the classifier's
    tensors[name] = tensors[name] + np.linspace(-5, 5, 18, dtype=np.float32)  # loads strictly, says other things
    save_file(tensors, str(member))
    swap_file(bundle_copy, "members/0.safetensors", member)
    with pytest.raises(BundleError, match=r"the torch ensemble of bundle .* does not give the probabilities"):
        Bundle.load(bundle_copy).predict_proba(BATCH, backend="torch", device="cpu")


def test_an_unbuildable_member_config_is_one_error(bundle_copy: Path) -> None:
    edit_manifest(bundle_copy, lambda m: m["members"][0]["config"].__setitem__("backbone", "no_such_net"))
    with pytest.raises(BundleError, match=r"member .* cannot be built from its config .*export the bundle again"):
        Bundle.load(bundle_copy).predict_proba(BATCH, backend="torch", device="cpu")


def test_torch_and_onnx_agree_with_the_recorded_probe(bundle_dir: Path) -> None:
    from search.deploy.graph import probe_images

    bundle = Bundle.load(bundle_dir)
    images = probe_images(32, 32)
    recorded = np.asarray(bundle.manifest.probe, np.float32)
    for backend in ("torch", "onnx"):
        assert np.abs(bundle.predict_proba(images, backend=backend, device="cpu") - recorded).max() < 1e-4
