"""Write a bundle folder from chosen members: weights, one ONNX graph, the manifest.

The bundle is built in a hidden folder beside ``out``; its graph is checked with onnx.checker
and against torch through onnxruntime, its manifest read back, and only then is it renamed to
``out`` (replacing a bundle there only with ``overwrite``; any other folder or file is refused
and left alone). Choosing the members is not done here: search/verbs/export.py reads the study and
selects them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.common.atomic import swap_dir, temp_dir
from search.deploy.graph import (
    build_checkpoint,
    build_ensemble,
    build_member,
    export_onnx,
    input_for,
    member_resize,
    onnx_predict,
    onnx_session,
    probe_images,
    torch_predict,
)
from search.deploy.manifest import (
    MEMBERS_DIR,
    ONNX_FILE,
    BundleError,
    Manifest,
    Member,
    MemberPreprocessing,
    not_a_bundle,
)
from search.common.outputs import Output, claim

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4  # max |torch - onnxruntime| of a probability accepted at export


@dataclass(frozen=True)
class MemberSource:
    """A member to ship: its checkpoints on disk (one, or several averaged) and its vote weight."""

    name: str
    config: dict[str, Any]
    checkpoints: tuple[Path, ...]
    weight: float
    study: str | None = None
    trial: int | None = None
    validation_macro_f1: float | None = None

    @property
    def size(self) -> tuple[int, int, str]:
        return int(self.config["height"]), int(self.config["width"]), str(self.config["crop"])


@dataclass
class BundleSpec:
    """Everything but the members that goes into a bundle's manifest."""

    vote: str = "soft"
    weights_from: str = "learned"
    offsets: tuple[float, ...] | None = None
    rule: dict[str, float] = field(default_factory=dict)  # the decision rule's tau and old_band_offset
    study: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    opset: int = 17


OUTPUT = Output("a bundle", "python -m search.export", not_a_bundle)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that exists, unless ``overwrite`` and it is a bundle of this project:
    --overwrite never deletes a folder or file that a user owns (search/common/outputs.py)."""
    claim(out, OUTPUT, overwrite)


def write_bundle(
    sources: Sequence[MemberSource], out: Path, spec: BundleSpec | None = None, overwrite: bool = False
) -> Manifest:
    """Write ``sources`` as a bundle at ``out``; returns its manifest."""
    spec = spec or BundleSpec()
    out = Path(out)
    check_out(out, overwrite)
    if not sources:
        raise ValueError("a bundle needs at least one member but got none.")
    for source in sources:
        for path in source.checkpoints:
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"weights of trial {source.name} are missing ({path}); the study's retention deleted "
                    "them or --workdir points elsewhere."
                )
    spec_input = input_for([s.size for s in sources])
    with temp_dir(out) as tmp:  # also removes what a killed export left beside out
        (tmp / MEMBERS_DIR).mkdir()
        nets, members = [], []
        for k, source in enumerate(sources):
            models, rels = [], []
            mean: list[float] = []
            std: list[float] = []
            for j, path in enumerate(source.checkpoints):
                model, mean, std = build_checkpoint(source.config, path)  # proves the file loads strictly
                rel = (
                    f"{MEMBERS_DIR}/{k}.safetensors"
                    if len(source.checkpoints) == 1
                    else f"{MEMBERS_DIR}/{k}-{j}.safetensors"
                )
                shutil.copyfile(path, tmp / rel)
                models.append(model)
                rels.append(rel)
            h, w, crop = source.size
            pre = MemberPreprocessing(h, w, crop, tuple(mean), tuple(std))
            nets.append(build_member(models, member_resize(pre, spec_input)))
            members.append(
                Member(
                    source.name,
                    tuple(rels),
                    float(source.weight),
                    dict(source.config),
                    pre,
                    source.study,
                    source.trial,
                    source.validation_macro_f1,
                )
            )
        net = build_ensemble(nets, [m.weight for m in members], spec.offsets, spec.vote)
        export_onnx(net, tmp / ONNX_FILE, spec_input.height, spec_input.width, spec.opset)
        probe = check_onnx(net, tmp / ONNX_FILE, spec_input.height, spec_input.width)
        manifest = Manifest(
            members=members,
            input=spec_input,
            vote=spec.vote,
            weights_from=spec.weights_from,
            offsets=spec.offsets,
            rule=dict(spec.rule) if spec.offsets is not None else {},
            study=spec.study,
            opset=spec.opset,
            metrics=spec.metrics,
            extra=spec.extra,
            probe=tuple(tuple(float(v) for v in row) for row in probe),
        ).write(tmp)
        Manifest.read(tmp, verify=True)
        check_out(out, overwrite)  # again: something may have appeared at out during the export
        swap_dir(tmp, out)
    return manifest


def check_onnx(net: Any, path: Path, height: int, width: int) -> np.ndarray:
    """onnx.checker on the file, then onnxruntime against torch on a random batch of another size
    and on the probe batch; returns torch's probabilities on the probe (recorded in the manifest)."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    random = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    images = np.concatenate([random, probe_images(height, width)])
    expected = torch_predict(net, images)
    got = onnx_predict(onnx_session(path), images)
    diff = float(np.abs(expected - got).max())
    if not np.isfinite(expected).all():
        raise BundleError(
            f"the ensemble gives non-finite probabilities on a test batch (weights {net.weights.tolist()}); "
            "choose finite, moderate --weights."
        )
    if got.shape != expected.shape or diff > ONNX_TOLERANCE:
        raise BundleError(
            f"the exported {path.name} disagrees with torch by {diff:.2e} (> {ONNX_TOLERANCE}) on a test "
            "batch; try another --opset."
        )
    log.info("ONNX check passed: max |torch - onnxruntime| = %.2e", diff)
    return expected[len(random):]
