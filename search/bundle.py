"""An exported ensemble: load it, check it, and predict class probabilities.

    <bundle>/
        manifest.json            format version, members (trial, config, vote weight, mean/std),
                                 preprocessing, class map, metrics, sha256 of every other file
        members/<k>.safetensors  member k's weights (TrialModel state dict; never pickle)
        ensemble.onnx            uint8 NHWC RGB batch -> weighted mean of the members' softmax (N, 18)

Images enter as uint8 RGB arrays of the bundle's height and width, made from a photo by
``search.data.load_image`` (crop, then resize): the very function the training cache uses.
Normalisation happens inside each member, so the input is the same for torch and ONNX.

No optuna and no training code here: this module needs torch, timm, safetensors and, for the
ONNX backend, onnxruntime.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from search.data.cache import CROPS, crop_problem, load_photos
from search.data.labels import AGE_BAND_NAMES, GENDER_NAMES, MASK_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "ensemble.onnx"
MEMBERS_DIR = "members"
INPUT_NAME = "images"
OUTPUT_NAME = "probs"
BACKENDS = ("torch", "onnx")
DECISION_EPS = 1e-7  # floor of a vote probability before its log, in torch and in the ONNX graph alike
_REQUIRED = ("format_version", "members", "preprocessing", "classes", "files")


class BundleError(ValueError):
    """A bundle folder is missing a file, was altered, or is of a format this code cannot read."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def class_map() -> list[dict[str, Any]]:
    """The 18 classes with their mask, gender and age text (class = mask*6 + gender*3 + age)."""
    return [
        {
            "index": c,
            "mask": MASK_NAMES[c // 6],
            "gender": GENDER_NAMES[(c // 3) % 2],
            "age": AGE_BAND_NAMES[c % 3],
        }
        for c in range(NUM_CLASSES)
    ]


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def write_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add ``format_version`` and the sha256 of every file under ``root`` (but the manifest) and write it."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    full = {"format_version": FORMAT_VERSION, **manifest}
    full["files"] = {p.relative_to(root).as_posix(): sha256_file(p) for p in files}
    (root / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    return full


def read_manifest(root: Path | str, verify: bool = True) -> dict[str, Any]:
    """The manifest of a bundle, after checking its format version, its structure and values,
    and (``verify``) every file's sha256."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(
            f"bundle folder {root} does not exist; pass the folder written by python -m search.export."
        )
    if not path.is_file():
        raise BundleError(
            f"{path} is missing: {root} is not a bundle (export one with python -m search.export)."
        )
    bundle_file(root, MANIFEST, path)  # a manifest symlinked from elsewhere is not this bundle's
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not readable JSON ({exc}); export the bundle again.") from exc
    if not isinstance(manifest, dict):
        raise BundleError(
            f"{path} must hold a JSON object but holds {type(manifest).__name__}; export again."
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {version!r}, but this version of search reads format "
            f"{FORMAT_VERSION} "
            "only; export the bundle again with this version, or use the version of search that wrote it."
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(
            f"{path} lacks the keys {missing}; the file was altered or truncated, export again."
        )
    validate_manifest(manifest, path)
    if not verify:
        return manifest
    for rel in manifest["files"]:
        read_checked(root, manifest, rel)
    return manifest


def not_a_bundle(folder: Path) -> str | None:
    """Why ``folder`` is not a bundle this code wrote and may replace, or None when it is one.

    Checked through its manifest (format version, structure) and its contents: every file
    must be the manifest or listed in it, so a folder holding anything else is never a bundle.
    """
    if folder.is_symlink() or not folder.is_dir():
        return "it is a symbolic link" if folder.is_symlink() else "it is not a folder"
    if not (folder / MANIFEST).is_file():
        return f"it has no {MANIFEST}"
    try:
        manifest = read_manifest(folder, verify=False)
    except (BundleError, ValueError) as exc:
        return str(exc)
    listed = {MANIFEST, *manifest["files"]}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_dir() or path.is_symlink():
            if rel not in listed:
                return f"it holds {rel}, which its manifest does not list"
    return None


def bundle_file(root: Path, rel: str, manifest_path: Path) -> Path:
    """``root / rel`` after refusing a path that leaves the bundle folder (``..``, absolute, a
    symlink pointing elsewhere): a bundle reads nothing outside its own folder."""
    inside = Path(os.path.realpath(root))
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise BundleError(
            f"{manifest_path}: file entry {rel!r} is not a relative path inside the bundle; "
            "export the bundle again."
        )
    target = Path(os.path.realpath(inside / rel))
    if not target.is_relative_to(inside):
        raise BundleError(
            f"{manifest_path}: file entry {rel!r} resolves to {target}, outside the bundle folder "
            f"{inside}; a bundle reads only its own files, export it again."
        )
    return root / rel


def read_checked(root: Path, manifest: dict[str, Any], rel: str) -> bytes:
    """The bytes of bundle file ``rel`` after checking them against the manifest's sha256.

    The very bytes that were hashed are the ones used, so a file swapped after loading is
    caught too.
    """
    path = root / MANIFEST
    expected = manifest["files"].get(rel)
    if expected is None:
        raise BundleError(
            f"{path}: files lists no sha256 for {rel!r}, which the bundle uses; an unlisted file is "
            "never loaded. Export the bundle again."
        )
    file = bundle_file(root, rel, path)
    if not file.is_file():
        raise BundleError(f"bundle file {file} listed in {path} is missing; copy the whole bundle folder.")
    data = file.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise BundleError(
            f"checksum mismatch for {file}: sha256 {actual[:16]}... but the manifest says "
            f"{expected[:16]}...; "
            "the file was altered or copied incompletely. Copy the bundle again or re-export it."
        )
    return data


# ------------------------------------------------------------------------------------------------
# manifest validation: structure and values, before anything is loaded

MAX_SIDE = 4096
_SHA256_HEX = frozenset("0123456789abcdef")


def validate_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Raise a BundleError naming ``path`` and the field for the first wrong type or value."""
    _validate_files(manifest["files"], path)
    _validate_preprocessing(manifest["preprocessing"], path)
    _validate_members(manifest["members"], manifest["files"], manifest["preprocessing"], path)
    classes = manifest["classes"]
    if not isinstance(classes, list) or len(classes) != NUM_CLASSES:
        raise _field_error(path, "classes", classes, f"a list of the {NUM_CLASSES} classes")
    _validate_decision_rule(manifest.get("decision_rule"), path)


def _field_error(path: Path, field_name: str, value: Any, expected: str) -> BundleError:
    shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
    return BundleError(
        f"{path}: {field_name} must be {expected} but is {shown}; the manifest was altered, "
        "export the bundle again."
    )


def _validate_files(files: Any, path: Path) -> None:
    if not isinstance(files, dict):
        raise _field_error(path, "files", files, "a mapping of relative path -> sha256")
    for rel, digest in files.items():
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA256_HEX):
            raise _field_error(path, f"files[{rel!r}]", digest, "a sha256 (64 lowercase hex digits)")
    if ONNX_FILE not in files:
        raise BundleError(
            f"{path}: files lists no sha256 for {ONNX_FILE}; an unchecked graph is never loaded, "
            "export the bundle again."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_preprocessing(pre: Any, path: Path) -> None:
    if not isinstance(pre, dict):
        raise _field_error(path, "preprocessing", pre, "a mapping")
    for key in ("height", "width"):
        value = pre.get(key)
        if not _is_int(value) or not 1 <= value <= MAX_SIDE:
            raise _field_error(path, f"preprocessing.{key}", value, f"an integer from 1 to {MAX_SIDE}")
    if pre.get("crop") not in CROPS:
        raise _field_error(path, "preprocessing.crop", pre.get("crop"), f"one of {sorted(CROPS)}")
    problem = crop_problem(pre["crop"])  # a detected crop whose detector is not installed here
    if problem:
        raise BundleError(f"{path}: preprocessing.crop {pre['crop']!r}: {problem}.")


def _validate_decision_rule(rule: Any, path: Path) -> None:
    if rule is None:  # a plain argmax of the vote
        return
    if not isinstance(rule, dict):
        raise _field_error(path, "decision_rule", rule, "a mapping with the offsets, or null")
    offsets = rule.get("offsets")
    if not isinstance(offsets, list) or len(offsets) != NUM_CLASSES:
        raise _field_error(path, "decision_rule.offsets", offsets, f"a list of {NUM_CLASSES} numbers")
    for c, value in enumerate(offsets):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _field_error(path, f"decision_rule.offsets[{c}]", value, "a finite number")


def _validate_members(members: Any, files: dict[str, Any], pre: dict[str, Any], path: Path) -> None:
    if not isinstance(members, list) or not members:
        raise _field_error(path, "members", members, "a non-empty list")
    for i, member in enumerate(members):
        where = f"members[{i}]"
        if not isinstance(member, dict):
            raise _field_error(path, where, member, "a mapping")
        if member.get("file") not in files:
            raise BundleError(
                f"{path}: {where}.file {member.get('file')!r} is not listed in files with its sha256; "
                "export the bundle again."
            )
        weight = member.get("weight")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 <= weight < math.inf:
            raise _field_error(path, f"{where}.weight", weight, "a finite number >= 0")
        config = member.get("config")
        if not isinstance(config, dict):
            raise _field_error(path, f"{where}.config", config, "a mapping (the trial's config)")
        for key in ("height", "width", "crop"):
            # the ONNX graph was traced at the bundle's size: torch must build the same members
            if config.get(key) != pre[key]:
                raise _field_error(
                    path, f"{where}.config.{key}", config.get(key), f"preprocessing.{key} {pre[key]!r}"
                )
    if sum(m["weight"] for m in members) <= 0:
        raise BundleError(
            f"{path}: every members[i].weight is 0, so the vote is undefined; export the bundle again."
        )


# ------------------------------------------------------------------------------------------------
# torch side


def _torch_classes() -> tuple[Any, Any]:
    """EnsembleNet and the member builder; torch, timm and runners.models are imported on first use."""
    import torch
    from torch import nn

    class EnsembleNet(nn.Module):
        """uint8 NHWC RGB batch -> weighted mean of the members' softmax, (N, 18) float32."""

        def __init__(
            self, members: Sequence[nn.Module], weights: Sequence[float], offsets: Sequence[float] | None = None
        ) -> None:
            super().__init__()
            if len(members) != len(weights) or not members:
                raise ValueError(
                    f"an ensemble needs as many weights as members (>= 1) but got {len(members)} "
                    f"and {len(weights)}."
                )
            w = torch.tensor(list(weights), dtype=torch.float32)
            self.members = nn.ModuleList(members)
            self.register_buffer("weights", w / w.sum(), persistent=False)
            # The macro-F1 decision rule (search.ensemble.decision): softmax(log(vote) + offsets).
            rule = offsets is not None and any(float(o) != 0.0 for o in offsets)
            if rule and len(offsets) != NUM_CLASSES:  # type: ignore[arg-type]
                raise ValueError(f"offsets must hold {NUM_CLASSES} numbers but got {len(offsets)}.")  # type: ignore[arg-type]
            self.register_buffer(
                "offsets", torch.tensor(list(offsets), dtype=torch.float32) if rule else None, persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = None
            for i, member in enumerate(self.members):
                p = torch.softmax(member(x).float(), dim=1) * self.weights[i]
                out = p if out is None else out + p
            if self.offsets is not None:
                out = torch.softmax(torch.log(out.clamp_min(DECISION_EPS)) + self.offsets, dim=1)
            return out

    return EnsembleNet, torch


def build_member(
    config: dict[str, Any], state: dict[str, Any] | Path | str, source: str | None = None
) -> tuple[Any, list[float], list[float]]:
    """(ClassifierWithPreprocess, mean, std) of one trial from its config dict and weights.

    The backbone is built with ``pretrained=False`` (the weights come from ``state``), so
    loading never reaches for a hub or a weights folder.
    """
    from safetensors.torch import load_file

    from runners.config import TrialConfig
    from runners.models import ClassifierWithPreprocess, build_model, model_data_config

    cfg = TrialConfig.from_dict(dict(config)).replace(pretrained=False, weights_dir=None)
    model = build_model(cfg)
    tensors = load_file(str(state)) if isinstance(state, (str, Path)) else state
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        where = state if isinstance(state, (str, Path)) else source or "the given state dict"
        raise BundleError(f"weights in {where} do not fit backbone {cfg.backbone!r} ({exc}).") from exc
    data_cfg = model_data_config(model)
    mean, std = [float(v) for v in data_cfg["mean"]], [float(v) for v in data_cfg["std"]]
    return ClassifierWithPreprocess(model, mean, std).eval(), mean, std


def build_ensemble(members: Sequence[Any], weights: Sequence[float], offsets: Sequence[float] | None = None) -> Any:
    """One module: the members' weighted soft vote, then the decision offsets when given."""
    EnsembleNet, _ = _torch_classes()
    return EnsembleNet(members, weights, offsets).eval()


def torch_predict(
    net: Any, images: np.ndarray, batch_size: int = 64, device: str = "cpu", progress: bool = False
) -> np.ndarray:
    """Run a uint8 NHWC array through ``net`` (EnsembleNet) in batches; float32 (N, 18)."""
    import torch

    net = net.to(device).eval()
    out = []
    starts = range(0, len(images), batch_size)
    with torch.inference_mode():
        for s in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
            x = torch.from_numpy(np.array(images[s : s + batch_size], copy=True)).to(
                device
            )  # memmaps are read-only
            out.append(net(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def export_onnx(net: Any, path: Path, height: int, width: int, opset: int = 17) -> None:
    """Write ``net`` (uint8 NHWC -> probabilities) as ONNX with a dynamic batch axis."""
    import torch

    example = torch.zeros((2, height, width, 3), dtype=torch.uint8)
    # The TorchScript exporter: < 1 s and exact for these graphs, where torch.export's takes ~5 s
    # per tiny model and fails its opset-17 down-conversion; its deprecation notice is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net.cpu().eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def onnx_session(path: Path | bytes, device: str = "cpu") -> Any:
    """An onnxruntime session of a graph file, or of its checked bytes."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):  # resolve_device checked the provider exists
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, sess_options=options, providers=providers)


def onnx_predict(
    session: Any, images: np.ndarray, batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    out = []
    starts = range(0, len(images), batch_size)
    for s in tqdm(starts, desc="predicting (onnx)", unit="batch", disable=not progress):
        x = np.ascontiguousarray(images[s : s + batch_size])
        out.append(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])
    return np.concatenate(out).astype(np.float32)


def resolve_device(device: str, backend: str = "torch") -> str:
    """'auto' -> 'cuda' when the backend can use it, else 'cpu'; 'cuda' without CUDA is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' but got {device!r}.")
    if backend == "onnx":
        import onnxruntime as ort

        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device == "auto":
            return "cuda" if has_cuda else "cpu"
        if device.startswith("cuda") and not has_cuda:
            raise ValueError(
                f"device {device!r} was asked for with the onnx backend but this onnxruntime has no CUDA "
                "provider; install onnxruntime-gpu, or use --backend torch or --device cpu."
            )
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use 'cpu' or 'auto'.")
    return device


def _require_files(paths: Sequence[str | Path]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) do not exist, first {missing[0]}; nothing was predicted."
        )


# ------------------------------------------------------------------------------------------------
# the public API


@dataclass
class Bundle:
    """A checked bundle folder. ``Bundle.load(dir)``, then ``predict_proba(images)``."""

    root: Path
    manifest: dict[str, Any]
    _torch: Any = field(default=None, repr=False)
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: Path | str) -> Bundle:
        """Read the manifest and verify every file's sha256 (a mismatch is a BundleError)."""
        root = Path(root)
        return cls(root, read_manifest(root, verify=True))

    @property
    def height(self) -> int:
        return int(self.manifest["preprocessing"]["height"])

    @property
    def width(self) -> int:
        return int(self.manifest["preprocessing"]["width"])

    @property
    def crop(self) -> str:
        return str(self.manifest["preprocessing"]["crop"])

    @property
    def members(self) -> list[dict[str, Any]]:
        return list(self.manifest["members"])

    @property
    def weights(self) -> list[float]:
        return [float(m["weight"]) for m in self.manifest["members"]]

    @property
    def offsets(self) -> list[float] | None:
        """Per-class decision offsets on the vote's log-probabilities (None: plain argmax)."""
        rule = self.manifest.get("decision_rule")
        return None if not rule else [float(o) for o in rule["offsets"]]

    def _checked(self, rel: str) -> bytes:
        return read_checked(self.root, self.manifest, rel)

    def _member_state(self, rel: str) -> dict[str, Any]:
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(self._checked(rel))
        except SafetensorError as exc:
            raise BundleError(f"{self.root / rel} is not a safetensors file ({exc}); export again.") from exc

    def preprocess(self, paths: Sequence[str | Path], n_jobs: int = 4) -> np.ndarray:
        """Decode, crop and resize photos exactly as the training cache did: uint8 (N, H, W, 3)."""
        _require_files(paths)
        # threads: PIL releases the GIL while decoding and resizing (see search.data.cache); a
        # face_detect crop finds each photo's face here, before the network
        return load_photos(paths, self.height, self.width, self.crop, n_jobs)

    def torch_net(self) -> Any:
        """The whole ensemble as one torch module (built on first use, on the CPU)."""
        if self._torch is None:
            modules = []
            for member in self.manifest["members"]:
                module, _, _ = build_member(
                    member["config"], self._member_state(member["file"]), str(self.root / member["file"])
                )
                modules.append(module)
            self._torch = build_ensemble(modules, self.weights, self.offsets)
        return self._torch

    def predict_proba(
        self,
        images: Sequence[str | Path] | np.ndarray,
        backend: str = "torch",
        batch_size: int = 64,
        tta_flip: bool = False,
        device: str = "auto",
        progress: bool = False,
    ) -> np.ndarray:
        """Class probabilities (N, 18) float32 for photo paths or a uint8 (N, H, W, 3) RGB batch.

        Paths are decoded batch by batch with the training preprocessing; an array must
        already be at the bundle's height and width. ``tta_flip`` averages with the
        horizontally flipped images.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)} but got {backend!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 but got {batch_size!r}.")
        device = resolve_device(device, backend)
        if isinstance(images, np.ndarray):
            self._check_array(images)
            return self._predict_array(images, backend, batch_size, tta_flip, device, progress)
        paths = [str(p) for p in images]
        _require_files(paths)  # all of them before any work
        out = np.zeros((len(paths), NUM_CLASSES), dtype=np.float32)
        starts = range(0, len(paths), batch_size)
        for s in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
            batch = self.preprocess(paths[s : s + batch_size])
            out[s : s + len(batch)] = self._predict_array(batch, backend, batch_size, tta_flip, device, False)
        return out

    def _check_array(self, images: np.ndarray) -> None:
        expected = (self.height, self.width, 3)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"images must be a uint8 (N, {self.height}, {self.width}, 3) RGB array (the bundle's "
                f"preprocessing) but got {images.dtype} {images.shape}; pass photo paths instead to have "
                "them decoded and resized."
            )

    def _predict_array(
        self, images: np.ndarray, backend: str, batch_size: int, tta_flip: bool, device: str, progress: bool
    ) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        views = [images, images[:, :, ::-1]] if tta_flip else [images]
        probs = []
        for view in views:
            if backend == "torch":
                probs.append(torch_predict(self.torch_net(), view, batch_size, device, progress))
            else:
                if device not in self._sessions:
                    self._sessions[device] = onnx_session(self._checked(ONNX_FILE), device)
                probs.append(onnx_predict(self._sessions[device], view, batch_size, progress))
        return (sum(probs) / len(probs)).astype(np.float32)
