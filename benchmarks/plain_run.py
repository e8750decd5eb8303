"""The plain way, as the competition's common baseline trains: the yardstick for the real-face benchmark.

One pretrained ``tf_efficientnet_lite0`` (the offline ImageNet weights the CPU profile uses),
cross-entropy, Adam at a fixed learning rate, the whole photo resized to 96x128 with every
image decoded by PIL in every epoch, a fixed number of epochs, and the epoch with the best
validation macro-F1 kept. Validation people are the harness's own person split (stratified,
seeded), so both sides are judged on the same kind of split; the eval photos are predicted
with argmax.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from runners.classes import NUM_CLASSES
from runners.weights import PACKAGED, create_backbone
from search.data import load_eval, load_train, split_people
from runners.metrics import macro_f1

log = logging.getLogger("benchmarks.plain_run")


@dataclass(frozen=True)
class PlainSettings:
    backbone: str = "tf_efficientnet_lite0"
    height: int = 128
    width: int = 96
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    val_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0
    num_workers: int = 1


class PhotoSet(Dataset):
    """Decodes each photo with PIL on every access, as the baseline's dataset does."""

    def __init__(self, paths: list[str], labels: np.ndarray | None, size: tuple[int, int]) -> None:
        self.paths, self.labels = paths, labels
        self.transform = transforms.Compose([
            transforms.Resize(size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # lite0's mean/std
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            x = self.transform(im.convert("RGB"))
        return x, -1 if self.labels is None else int(self.labels[i])


def _predict(model: nn.Module, loader: DataLoader) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for x, _ in loader:
            out.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(out)


def plain_run(data_root: Path, settings: PlainSettings = PlainSettings()) -> dict[str, Any]:
    """Train, keep the best epoch, predict the eval photos; returns eval probabilities and the history."""
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    data = load_train(data_root)
    split = split_people(data, val_fraction=settings.val_fraction, seed=settings.split_seed)
    train_rows, val_rows = split.indices(data)
    paths, labels = data.paths, data.labels
    size = (settings.height, settings.width)

    def loader(rows: np.ndarray | None, shuffle: bool, eval_paths: list[str] | None = None) -> DataLoader:
        if eval_paths is not None:
            ds = PhotoSet(eval_paths, None, size)
        else:
            ds = PhotoSet([paths[i] for i in rows], labels[rows], size)
        return DataLoader(ds, batch_size=settings.batch_size, shuffle=shuffle, num_workers=settings.num_workers,
                          generator=torch.Generator().manual_seed(settings.seed) if shuffle else None)

    train_loader, val_loader = loader(train_rows, True), loader(val_rows, False)
    model = create_backbone(settings.backbone, num_classes=NUM_CLASSES, pretrained=True, weights_dir=PACKAGED)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    loss_fn = nn.CrossEntropyLoss()
    best_f1, best_state, history = -1.0, None, []
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
        f1 = macro_f1(labels[val_rows], _predict(model, val_loader))
        history.append({"epoch": epoch, "val_macro_f1": f1, "seconds": time.perf_counter() - t0})
        log.info("plain run epoch %d/%d: val macro-F1 %.4f (%.0f s)", epoch, settings.epochs, f1,
                 time.perf_counter() - t0)
        if f1 > best_f1:
            best_f1, best_state = f1, {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    eval_data = load_eval(data_root, check_images=False)
    probs = _predict(model, loader(None, False, eval_data.paths))
    return {"settings": asdict(settings), "image_ids": eval_data.info["ImageID"].tolist(), "probs": probs,
            "best_val_macro_f1": best_f1, "history": history, "seconds": time.perf_counter() - start}
