"""MTCNN face detection in torch, with the weights that ship inside the ``mtcnn`` wheel.

The ``mtcnn`` package (PyPI, MIT licence, the ``face`` extra) ships the three trained networks
as ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``: joblib pickles, lz4-compressed, of Keras weight
lists. Its own code runs them with TensorFlow; here the same three small networks are defined
in torch and the arrays are loaded into them, so nothing is downloaded at run time and
TensorFlow is never needed. The ``mtcnn`` package is located with ``importlib.util.find_spec``
and never imported (its ``__init__`` imports TensorFlow).

The cascade is the usual one (Zhang et al. 2016), as that package runs it: an image pyramid
through PNet (12x12 proposals, stride 2), then RNet on 24x24 patches, then ONet on 48x48
patches, each stage refining the boxes and dropping those under its threshold, with
non-maximum suppression in between. :func:`detect` returns boxes in photo pixels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

INSTALL_HINT = 'pip install -e ".[face]"  (installs mtcnn, whose wheel ships the MTCNN weights, and lz4)'


class DetectorUnavailable(RuntimeError):
    """The ``face`` extra (mtcnn + lz4) is not installed."""


@dataclass(frozen=True)
class MtcnnConfig:
    """Detection settings; all of them are part of the box cache's key.

    The thresholds are those facenet-pytorch uses (0.6, 0.7, 0.7), lower at ONet than the
    ``mtcnn`` package's 0.8: a mask hides the mouth and nose, which lowers ONet's face score.
    The smallest face searched is a fraction of the photo's short side: the competition's
    photos are portraits, so a face smaller than a tenth of the width is not the subject, and
    skipping those scales makes the pyramid short.
    """

    min_face_fraction: float = 0.1
    scale_factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_face_fraction <= 1.0:
            raise ValueError(f"min_face_fraction must be in (0, 1] but got {self.min_face_fraction}.")
        if not 0.1 <= self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in [0.1, 1) but got {self.scale_factor}.")
        if len(self.thresholds) != 3 or not all(0.0 <= t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three scores in [0, 1) but got {self.thresholds}.")


def weights_dir() -> Path:
    """The folder of the installed ``mtcnn`` package's weight files."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(f"the face_detect crop needs the face extra: {INSTALL_HINT}.")
    if importlib.util.find_spec("lz4") is None:
        raise DetectorUnavailable(
            f"the face_detect crop needs lz4 to read the MTCNN weights: {INSTALL_HINT}."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"
    missing = [n for n in ("pnet.lz4", "rnet.lz4", "onet.lz4") if not (folder / n).is_file()]
    if missing:
        raise DetectorUnavailable(
            f"the installed mtcnn package has no {', '.join(missing)} in {folder}; "
            f"reinstall it: {INSTALL_HINT}."
        )
    return folder


def available() -> bool:
    try:
        weights_dir()
    except DetectorUnavailable:
        return False
    return True


@lru_cache(maxsize=1)
def weights_sha256() -> str:
    h = hashlib.sha256()
    for name in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        h.update((weights_dir() / name).read_bytes())
    return h.hexdigest()


def detector_id(config: MtcnnConfig) -> str:
    """What decides the boxes: the weights and the settings (a change selects new cache files)."""
    settings = json.dumps(asdict(config), sort_keys=True)
    return f"mtcnn-{weights_sha256()[:16]}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


class _PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        # Keras "same" max-pooling of 2 with stride 2 pads one row/column at the end of an odd
        # side, which is what ceil_mode does
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.reg, self.cls = nn.Conv2d(32, 4, 1), nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.reg(x), F.softmax(self.cls(x), dim=1)


class _RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # "same" on the even 22x22
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.reg, self.cls = nn.Linear(128, 4), nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the Keras model permutes NHWC to NWHC before flattening: (N, C, H, W) -> (N, W, H, C)
        x = self.prelu4(self.fc4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.reg(x), F.softmax(self.cls(x), dim=1)


class _ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # "same" on the even 46x46
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.reg, self.landmarks, self.cls = nn.Linear(256, 4), nn.Linear(256, 10), nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.fc5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.reg(x), F.softmax(self.cls(x), dim=1)


def _load_keras(net: nn.Module, path: Path) -> nn.Module:
    """Keras weight lists are in layer order, as torch registers the parameters here: conv
    kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in), PReLU alphas flattened."""
    import joblib

    arrays = joblib.load(path)
    params = list(net.parameters())
    if len(arrays) != len(params):
        raise DetectorUnavailable(
            f"{path} holds {len(arrays)} arrays, expected {len(params)}: {INSTALL_HINT}."
        )
    with torch.no_grad():
        for param, array in zip(params, arrays, strict=True):
            t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            if t.ndim == 4:
                t = t.permute(3, 2, 0, 1)
            elif t.ndim == 2:
                t = t.T
            t = t.reshape(param.shape) if t.ndim == 3 else t
            if t.shape != param.shape:
                raise DetectorUnavailable(
                    f"{path}: an array of shape {tuple(array.shape)} does not fit "
                    f"{tuple(param.shape)}: {INSTALL_HINT}."
                )
            param.copy_(t)
    return net.eval()


@lru_cache(maxsize=1)
def _nets() -> tuple[nn.Module, nn.Module, nn.Module]:
    folder = weights_dir()
    return (
        _load_keras(_PNet(), folder / "pnet.lz4"),
        _load_keras(_RNet(), folder / "rnet.lz4"),
        _load_keras(_ONet(), folder / "onet.lz4"),
    )


def _nms(boxes: npt.NDArray[np.float64], threshold: float, method: str = "union") -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression over rows (x1, y1, x2, y2, score); the kept indices."""
    x1, y1, x2, y2, score = boxes[:, :5].T
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-12) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _patches(image: torch.Tensor, boxes: npt.NDArray[np.float64], size: int) -> torch.Tensor:
    """Bilinear crops of ``image`` (1, 3, H, W) at the boxes, resized to size x size; outside
    the photo reads 0 (mid-grey after normalisation), as TensorFlow's crop_and_resize does."""
    _, _, h, w = image.shape
    steps = torch.linspace(0.0, 1.0, size, dtype=torch.float64)
    b = torch.from_numpy(boxes[:, :4])
    xs = b[:, 0:1] + steps * (b[:, 2:3] - b[:, 0:1])
    ys = b[:, 1:2] + steps * (b[:, 3:4] - b[:, 1:2])
    gx = (2.0 * xs / max(w - 1, 1) - 1.0)[:, None, :].expand(-1, size, -1)
    gy = (2.0 * ys / max(h - 1, 1) - 1.0)[:, :, None].expand(-1, -1, size)
    grid = torch.stack([gx, gy], dim=-1).float()
    return F.grid_sample(image.expand(len(boxes), -1, -1, -1), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=True)


def _refine(boxes: npt.NDArray[np.float64], reg: torch.Tensor) -> npt.NDArray[np.float64]:
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += reg.double().numpy() * np.stack([w, h, w, h], axis=1)
    return boxes


@torch.no_grad()
def detect(rgb: npt.NDArray[np.uint8], config: MtcnnConfig = MtcnnConfig()) -> npt.NDArray[np.float64]:
    """Faces in an ``(H, W, 3)`` uint8 RGB photo: rows (x1, y1, x2, y2, score) in pixels,
    best score first; ``(0, 5)`` when none is found."""
    pnet, rnet, onet = _nets()
    t1, t2, t3 = config.thresholds
    h, w = rgb.shape[:2]
    image = (torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() - 127.5) / 128.0
    min_face = max(12.0, config.min_face_fraction * min(h, w))
    scale = 12.0 / min_face
    proposals = []
    while min(h, w) * scale >= 12:
        sh, sw = int(h * scale), int(w * scale)
        reg, prob = pnet(F.interpolate(image, size=(sh, sw), mode="area"))
        rows, cols = np.nonzero(prob[0, 1].numpy() > t1)
        if rows.size:
            r = reg[0, :, rows, cols].double().numpy()  # (4, k): dx1, dy1, dx2, dy2 in cells
            x1, y1 = cols * 2 + 1.0, rows * 2 + 1.0
            x2, y2 = cols * 2 + 12.0, rows * 2 + 12.0
            score = prob[0, 1].numpy()[rows, cols]
            found = np.stack([x1 + r[0] * 11, y1 + r[1] * 11, x2 + r[2] * 11, y2 + r[3] * 11, score], axis=1)
            found[:, :4] /= scale
            proposals.append(found[_nms(found, 0.5)])
        scale *= config.scale_factor
    if not proposals:
        return np.empty((0, 5))
    boxes = np.concatenate(proposals)
    boxes = _square(boxes[_nms(boxes, 0.7)])

    reg, prob = rnet(_patches(image, boxes, 24))
    boxes[:, 4] = prob[:, 1].double().numpy()
    boxes = _refine(boxes, reg)
    boxes = boxes[boxes[:, 4] > t2]
    if not len(boxes):
        return np.empty((0, 5))
    boxes = _square(boxes[_nms(boxes, 0.7)])

    reg, prob = onet(_patches(image, boxes, 48))
    boxes[:, 4] = prob[:, 1].double().numpy()
    boxes = _refine(boxes, reg)
    boxes = boxes[boxes[:, 4] > t3]
    if not len(boxes):
        return np.empty((0, 5))
    boxes = boxes[_nms(boxes, 0.7, method="min")]
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    return boxes

