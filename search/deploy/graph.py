"""The ensemble as one torch module and one ONNX graph: uint8 photos in, the vote's probabilities out.

    uint8 (N, H, W, 3) at the bundle's input size and crop
      -> per member: its crop box and a bilinear resize to its own size (skipped when the member's
         size and crop are the input's), then (x / 255 - mean) / std and its checkpoints'
         softmax, averaged
      -> the vote: soft (weighted mean), hard (weighted argmax votes, ties broken by the soft
         vote), or any other vote of the registry search/deploy/votes/
      -> with a decision rule: softmax(log(vote) + offsets)

The resize is PIL's bilinear filter (what ``search.data.load_image`` applies) written as two
fixed matrices, so torch and onnxruntime compute it with the same matrix products.

torch, timm and the model code of ``runners.models`` load on first use; onnxruntime only for
the ONNX backend.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from runners.classes import NUM_CLASSES
from search.common.threads import inference_threads
from search.deploy.votes import VOTES
from search.data.cache import DETECTED_CROPS, crop_box
from search.deploy.manifest import (
    INPUT_NAME,
    MAX_SIDE,
    OUTPUT_NAME,
    PROBE_IMAGES,
    BundleError,
    InputSpec,
    MemberPreprocessing,
)

BACKENDS = ("torch", "onnx")
AUTO_BACKEND = "auto"  # search.predict's default: choose_backend
DECISION_EPS = 1e-7  # floor of a vote probability before its log, in torch and in the ONNX graph alike

Resize = tuple[np.ndarray, np.ndarray]  # (rows (h, H), columns (w, W)): out = rows @ x @ columns.T


def resize_matrix(in_size: int, out_size: int, lo: float, hi: float) -> np.ndarray:
    """(out_size, in_size) weights of PIL's BILINEAR resize of the span [lo, hi) of ``in_size``
    pixels to ``out_size`` (its precompute_coeffs: a triangle filter widened by the scale when
    shrinking, so it averages like PIL's, not like a plain 2-tap interpolation)."""
    scale = (hi - lo) / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the triangle's support is 1 input pixel, widened when shrinking
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for out in range(out_size):
        center = lo + (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        last = min(int(center + support + 0.5), in_size)
        xs = np.arange(first, last)
        w = np.clip(1.0 - np.abs((xs - center + 0.5) / filterscale), 0.0, None)
        if w.sum() > 0:
            matrix[out, first:last] = w / w.sum()
    return matrix


def input_for(sizes: Sequence[tuple[int, int, str]]) -> InputSpec:
    """The input that feeds every (height, width, crop): their own when they share one; else their
    common crop (or the full photo), large enough that no member's crop is upsampled."""
    if len(set(sizes)) == 1:
        return InputSpec(*sizes[0])
    crops = {crop for _, _, crop in sizes}
    detected = crops & set(DETECTED_CROPS)
    if detected:
        # a detected box is found per photo at the input's aspect ratio, so the graph cannot cut it
        # out of another crop, or re-cut it for another aspect ratio: only resizing is exact
        ratios = {round(w / h, 6) for h, w, _ in sizes}
        if len(crops) > 1 or len(ratios) > 1:
            raise ValueError(
                f"members with the {sorted(detected)[0]!r} crop share a bundle only with members of the same "
                f"crop and aspect ratio (width/height), but got {sorted(set(sizes))}; choose such members "
                "(--weights), or members of fixed crops."
            )
    crop = crops.pop() if len(crops) == 1 else "full"
    T, L, B, R = crop_box(crop)
    height = width = 1
    for h, w, c in sizes:
        t, l, b, r = crop_box(c)
        height = max(height, math.ceil(h * (B - T) / (b - t) - 1e-9))
        width = max(width, math.ceil(w * (R - L) / (r - l) - 1e-9))
    return InputSpec(min(height, MAX_SIDE), min(width, MAX_SIDE), crop)


def member_resize(pre: MemberPreprocessing, spec: InputSpec) -> Resize | None:
    """The matrices taking the input to the member's crop and size; None when they are the same."""
    if (pre.height, pre.width, pre.crop) == (spec.height, spec.width, spec.crop):
        return None
    t, l, b, r = crop_box(pre.crop)
    T, L, B, R = crop_box(spec.crop)
    rows = resize_matrix(
        spec.height, pre.height, (t - T) / (B - T) * spec.height, (b - T) / (B - T) * spec.height
    )
    cols = resize_matrix(
        spec.width, pre.width, (l - L) / (R - L) * spec.width, (r - L) / (R - L) * spec.width
    )
    return rows, cols


@functools.cache
def _torch_classes() -> tuple[Any, Any]:
    """MemberNet and EnsembleNet, defined once; torch is imported on first use."""
    import torch
    from torch import nn

    class MemberNet(nn.Module):
        """uint8 NHWC input -> the member's crop and size -> mean softmax of its checkpoints."""

        def __init__(self, models: Sequence[nn.Module], resize: Resize | None = None) -> None:
            super().__init__()
            if not models:
                raise ValueError("a member needs at least one checkpoint's model.")
            self.models = nn.ModuleList(models)
            rows, cols = (None, None) if resize is None else resize
            self.register_buffer(
                "rows", None if rows is None else torch.tensor(rows, dtype=torch.float32), persistent=False
            )
            self.register_buffer(
                "cols_t",
                None if cols is None else torch.tensor(cols.T, dtype=torch.float32),
                persistent=False,
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.rows is not None:
                # float NCHW in [0, 255], which each model normalises like a uint8 batch
                x = torch.matmul(
                    torch.matmul(self.rows, x.permute(0, 3, 1, 2).to(torch.float32)), self.cols_t
                )
            out = None
            for model in self.models:
                p = torch.softmax(model(x).float(), dim=1)
                out = p if out is None else out + p
            return out / len(self.models)

    class EnsembleNet(nn.Module):
        """uint8 NHWC RGB batch -> the members' vote, (N, 18) float32 probabilities."""

        def __init__(
            self,
            members: Sequence[nn.Module],
            weights: Sequence[float],
            offsets: Sequence[float] | None = None,
            vote: str = "soft",
        ) -> None:
            super().__init__()
            if len(members) != len(weights) or not members:
                raise ValueError(
                    f"an ensemble needs as many weights as members (>= 1) but got {len(members)} "
                    f"and {len(weights)}."
                )
            if vote not in VOTES:
                raise ValueError(f"vote must be one of {VOTES.names()} but got {vote!r}.")
            w = torch.tensor(list(weights), dtype=torch.float32)
            self.members = nn.ModuleList(m if isinstance(m, MemberNet) else MemberNet([m]) for m in members)
            self.register_buffer("weights", w / w.sum(), persistent=False)
            self.vote = VOTES.get(vote)
            # The macro-F1 decision rule (search.ensembling.decision): softmax(log(vote) + offsets).
            values = [float(o) for o in offsets or ()]
            rule = any(v != 0.0 for v in values)
            if rule and not self.vote.takes_decision_rule:
                raise ValueError(f"a decision rule applies to a soft vote only, not to a {vote} vote.")
            if rule and len(values) != NUM_CLASSES:
                raise ValueError(f"offsets must hold {NUM_CLASSES} numbers but got {len(values)}.")
            self.register_buffer(
                "offsets", torch.tensor(values, dtype=torch.float32) if rule else None, persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sums = None  # the vote's weighted part sums (search.deploy.votes)
            for i, member in enumerate(self.members):
                parts = [part * self.weights[i] for part in self.vote.torch_parts(member(x))]
                sums = parts if sums is None else [s + part for s, part in zip(sums, parts, strict=True)]
            soft = self.vote.torch_decide(tuple(sums))
            if self.offsets is not None:
                soft = torch.softmax(torch.log(soft.clamp_min(DECISION_EPS)) + self.offsets, dim=1)
            return soft

    return MemberNet, EnsembleNet


def build_checkpoint(
    config: dict[str, Any], state: dict[str, Any] | Path | str, source: str | None = None
) -> tuple[Any, list[float], list[float]]:
    """(ClassifierWithPreprocess, mean, std) of one checkpoint from its config dict and weights.

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


def build_member(models: Sequence[Any], resize: Resize | None = None) -> Any:
    """One voter: its checkpoints' models (averaged) behind its crop and resize."""
    MemberNet, _ = _torch_classes()
    return MemberNet(models, resize).eval()


def build_ensemble(
    members: Sequence[Any],
    weights: Sequence[float],
    offsets: Sequence[float] | None = None,
    vote: str = "soft",
) -> Any:
    """One module: the members' vote, then the decision offsets when given (a plain model is taken
    as a member of one checkpoint that uses the input as it is)."""
    _, EnsembleNet = _torch_classes()
    return EnsembleNet(members, weights, offsets, vote).eval()


def torch_predict(
    net: Any, images: np.ndarray, batch_size: int = 64, device: str = "cpu", progress: bool = False
) -> np.ndarray:
    """Run a uint8 NHWC array through ``net`` in batches; float32 (N, 18)."""
    import torch

    net = net.to(device).eval()
    out = []
    starts = range(0, len(images), batch_size)
    with torch.inference_mode():
        for s in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
            # a copy: memmaps are read-only
            x = torch.from_numpy(np.array(images[s : s + batch_size], copy=True)).to(device)
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
        try:
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
        except (RuntimeError, ValueError, TypeError) as exc:  # torch's text names neither the flag nor the fix
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"--opset {opset}: torch cannot export the ensemble at this opset ({first}); use the default 17."
            ) from exc


def probe_images(height: int, width: int, n: int = PROBE_IMAGES) -> np.ndarray:
    """A fixed uint8 (n, height, width, 3) batch, the same on every machine and NumPy version
    (integer arithmetic, no random generator): the probe whose outputs a bundle records."""
    index = np.arange(n * height * width * 3, dtype=np.uint64)
    return ((index * np.uint64(2654435761)) >> np.uint64(11)).astype(np.uint8).reshape(n, height, width, 3)


def onnx_session(path: Path | bytes, device: str = "cpu", name: str | None = None) -> Any:
    """An onnxruntime session of a graph file, or of its checked bytes (from the file ``name``); a
    graph onnxruntime cannot load is a BundleError."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):  # inference_device checked the provider exists
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = inference_threads()
    model = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's own exception classes (InvalidGraph, Fail, ...) are not exported
        name = name or ("the graph" if isinstance(path, bytes) else str(path))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"onnxruntime cannot load {name} ({first[:200]}); export the bundle again.") from exc


def session_problem(session: Any, height: int, width: int) -> str | None:
    """Why ``session`` is not this bundle's graph (names, dtype and shapes of its input and output),
    or None when they match: uint8 (N, height, width, 3) in, float (N, 18) out."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        return (f"its inputs {[i.name for i in inputs]} and outputs {[o.name for o in outputs]} are not "
                f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")
    shape, kind = list(inputs[0].shape), inputs[0].type
    if kind != "tensor(uint8)" or len(shape) != 4 or shape[1:] != [height, width, 3]:
        return f"its input is {kind} {shape}, not tensor(uint8) [batch, {height}, {width}, 3] as the manifest says"
    out = list(outputs[0].shape)
    if len(out) != 2 or (isinstance(out[1], int) and out[1] != NUM_CLASSES):  # a symbolic one: the probe tells
        return f"its output has shape {out}, not [batch, {NUM_CLASSES}] (one probability per class)"
    return None


def onnx_predict(
    session: Any, images: np.ndarray, batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    out = []
    starts = range(0, len(images), batch_size)
    for s in tqdm(starts, desc="predicting (onnx)", unit="batch", disable=not progress):
        x = np.ascontiguousarray(images[s : s + batch_size])
        out.append(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])
    return np.concatenate(out).astype(np.float32)


def choose_backend(backend: str, device: str = "auto") -> str:
    """``backend``, or for 'auto' onnxruntime on the CPU and torch on CUDA: on the CPU the ONNX graph
    gives the same classes 2.6x faster (7,000 photos on one core, 48 s against 125 s,
    benchmarks/README.md "Bigger offline backbones and input"), and on a GPU torch needs no
    onnxruntime-gpu."""
    if backend != AUTO_BACKEND:
        return backend
    return "torch" if inference_device(device, "torch").startswith("cuda") else "onnx"


def inference_device(device: str, backend: str = "torch") -> str:
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
