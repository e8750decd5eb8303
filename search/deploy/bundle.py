"""A checked bundle folder: ``Bundle.load(dir)``, then ``predict_proba(images)``.

The layout and its checks are in search/deploy/manifest.py, the torch module and the ONNX
graph in search/deploy/graph.py. ``load`` reads and checks the manifest and every file's
sha256; each backend is checked when first built (the torch ensemble, an onnxruntime session
per device): its output on the probe batch must be the probabilities recorded at export, and
the ONNX graph's input and output must be the manifest's. A graph or weight file swapped in
with its checksum updated, or weights and offsets that make NaN, is then one BundleError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from runners.classes import NUM_CLASSES
from search.data.cache import load_photos
from search.deploy.graph import (
    BACKENDS,
    build_checkpoint,
    build_ensemble,
    build_member,
    inference_device,
    member_resize,
    onnx_predict,
    onnx_session,
    probe_images,
    session_problem,
    torch_predict,
)
from search.deploy.manifest import MANIFEST, ONNX_FILE, BundleError, Manifest, Member, read_checked

PROBE_TOLERANCE = 1e-3  # max |backend - recorded| of a probe probability (devices differ by ~1e-5)


def _require_files(paths: Sequence[str | Path]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) do not exist, first {missing[0]}; nothing was predicted."
        )


@dataclass
class Bundle:
    """A checked bundle folder. ``Bundle.load(dir)``, then ``predict_proba(images)``."""

    root: Path
    manifest: Manifest
    _torch: Any = field(default=None, repr=False)
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: Path | str) -> Bundle:
        """Read the manifest and verify every file's sha256 (a mismatch is a BundleError)."""
        root = Path(root)
        return cls(root, Manifest.read(root, verify=True))

    @property
    def height(self) -> int:
        return self.manifest.input.height

    @property
    def width(self) -> int:
        return self.manifest.input.width

    @property
    def crop(self) -> str:
        return self.manifest.input.crop

    @property
    def members(self) -> list[Member]:
        return list(self.manifest.members)

    @property
    def weights(self) -> list[float]:
        return self.manifest.weights

    @property
    def vote(self) -> str:
        return self.manifest.vote

    @property
    def offsets(self) -> list[float] | None:
        """Per-class decision offsets on the vote's log-probabilities (None: plain argmax)."""
        return None if self.manifest.offsets is None else list(self.manifest.offsets)

    @property
    def old_band_offset(self) -> float | None:
        """The decision rule's offset on the six old classes, inside ``offsets`` (None: not recorded)."""
        return self.manifest.rule.get("old_band_offset")

    def _checked(self, rel: str) -> bytes:
        return read_checked(self.root, self.manifest, rel)

    def _state(self, rel: str) -> dict[str, Any]:
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(self._checked(rel))
        except SafetensorError as exc:
            raise BundleError(f"{self.root / rel} is not a safetensors file ({exc}); export again.") from exc

    def preprocess(self, paths: Sequence[str | Path], n_jobs: int = 4) -> np.ndarray:
        """Decode, crop and resize photos to the bundle's input as the training cache did: uint8 (N, H, W, 3)."""
        _require_files(paths)
        # threads: PIL releases the GIL while decoding and resizing (see search.data.cache); a
        # face_detect crop finds each photo's face here, before the network
        return load_photos(paths, self.height, self.width, self.crop, n_jobs)

    def torch_net(self) -> Any:
        """The whole ensemble as one torch module (built on first use, on the CPU, and checked
        against the probe recorded at export)."""
        if self._torch is None:
            members = []
            for member in self.manifest.members:
                models = [self._model(member, rel) for rel in member.checkpoints]
                members.append(build_member(models, member_resize(member.preprocessing, self.manifest.input)))
            net = build_ensemble(members, self.weights, self.offsets, self.vote)
            self._check_probe(torch_predict(net, probe_images(self.height, self.width)), "the torch ensemble")
            self._torch = net
        return self._torch

    def _model(self, member: Member, rel: str) -> Any:
        """One checkpoint's model; a config timm or the model code cannot build is a BundleError."""
        state = self._state(rel)
        try:
            return build_checkpoint(member.config, state, str(self.root / rel))[0]
        except BundleError:
            raise
        except (RuntimeError, ValueError, TypeError, KeyError, MemoryError) as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise BundleError(
                f"{self.root / MANIFEST}: member {member.name!r} cannot be built from its config ({reason}); "
                "export the bundle again."
            ) from exc

    def onnx(self, device: str = "cpu") -> Any:
        """The onnxruntime session of the bundle's graph on ``device`` (created on first use, its
        input and output checked against the manifest and its output against the probe)."""
        if device not in self._sessions:
            session = onnx_session(self._checked(ONNX_FILE), device, str(self.root / ONNX_FILE))
            problem = session_problem(session, self.height, self.width)
            if problem:
                raise BundleError(
                    f"{self.root / ONNX_FILE} is not this bundle's graph: {problem}; the file was replaced, "
                    "export the bundle again."
                )
            probe = onnx_predict(session, probe_images(self.height, self.width))
            self._check_probe(probe, str(self.root / ONNX_FILE))
            self._sessions[device] = session
        return self._sessions[device]

    def _check_probe(self, got: np.ndarray, what: str) -> None:
        expected = np.asarray(self.manifest.probe, dtype=np.float32)
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not diff <= PROBE_TOLERANCE:  # NaN fails too
            raise BundleError(
                f"{what} of bundle {self.root} does not give the probabilities recorded at export on the "
                f"probe batch (max difference {diff:.3g} > {PROBE_TOLERANCE}); a file or the manifest was "
                "altered (its checksum updated with it). Export the bundle again."
            )

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
        already be at the bundle's input height and width. ``tta_flip`` averages with the
        horizontally flipped images.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)} but got {backend!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 but got {batch_size!r}.")
        device = inference_device(device, backend)
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
                probs.append(onnx_predict(self.onnx(device), view, batch_size, progress))
        return (sum(probs) / len(probs)).astype(np.float32)
