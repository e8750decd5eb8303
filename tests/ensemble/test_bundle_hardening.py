"""Issue 15: a bundle reads only its own, listed, checksummed files, and a malformed manifest is
one BundleError line naming the file and the field. Real bundles (copies of the exported one),
real files and symlinks on disk, real onnxruntime."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.numpy import load_file, save_file

from search.deploy import Bundle, BundleError
from search.predict import main as predict_main

from .conftest import TinyStudy


@pytest.fixture
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dst)
    return dst


def edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def constant_class_graph(path: Path, cls: int, size: int = 32) -> None:
    """A valid ONNX graph with the bundle's input and output that says class ``cls`` for every photo."""
    onehot = np.zeros((1, 18), np.float32)
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
        helper.make_tensor("onehot", TensorProto.FLOAT, [1, 18], onehot.ravel().tolist()),
    ]
    graph = helper.make_graph(
        nodes,
        "swapped",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 18])],
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
    "negative weight": (_set_member("weight", -0.5), r"members\[0\]\.weight must be a finite number >= 0"),
    "NaN weight": (_set_member("weight", float("nan")), r"members\[0\]\.weight must be a finite"),
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
        r"decision_rule\.offsets\[17\] must be a finite number",
    ),
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

