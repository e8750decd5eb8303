"""The training loop of one trial: fit(config, train, val, reporter) -> TrialResult.

Optuna stays outside: ``reporter(record) -> bool`` is called with each epoch's ``EpochRecord``
(validation macro-F1 and loss among it) and returns True to stop the trial (the caller's
pruner). A NaN/inf loss or a CUDA out-of-memory ends the trial as "failed" with the reason
recorded and its device memory freed; any other exception propagates.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from runners.augmentations import get_augment
from runners.batches import BatchGather, ImageSet, device_batches, make_loader
from runners.config import TrialConfig
from runners.device_augment import DeviceAugment, NoDeviceVersion, device_augment
from runners.devices import autocast_dtype, default_num_workers, requested_augment_on, resolve_device
from runners.heads import HEADS
from runners.losses import FocalLoss, class_weights, oversample_copies, oversample_weights
from runners.metrics import ClassificationMetrics, classification_metrics
from runners.models import (
    ClassifierWithPreprocess,
    TrialModel,
    build_model,
    count_parameters,
    model_data_config,
)
from runners.results import EpochRecord, TrialResult

logger = logging.getLogger(__name__)

Reporter = Callable[[EpochRecord], bool]
KEEP = ("best", "last")  # fit's choice of the epoch whose weights it returns
_CUDA_CHECK_EVERY = 16  # on CUDA, test the loss for NaN every this many steps (a host sync)


class _Diverged(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fit(
    config: TrialConfig,
    train: ImageSet,
    val: ImageSet,
    reporter: Reporter | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    num_workers: int | None = None,
    augment_on: str | None = None,
    keep: str = "best",
    validate_every_epoch: bool = True,
) -> TrialResult:
    """Train one configuration; validation each epoch on ``val`` (canonical labels, never augmented).

    ``keep``: "best" keeps the weights and probabilities of the epoch with the best validation
    macro-F1 (and stops early after ``patience`` worse epochs); "last" keeps the final epoch's,
    so that ``val`` chooses nothing and its score stays held out (search.refit).
    ``validate_every_epoch`` False (with keep="last" only): validate just the epoch kept, the last
    one or the one after which ``reporter`` stops the run, and save the other passes' time (a refit's
    fold model validates 1/K of the people; a plateau schedule, which needs each epoch's validation
    loss, validates every epoch anyway). The other epochs' records carry NaN validation figures.

    ``num_workers``: loader processes for augmentation (default: env MASK_AUTOML_LOADER_WORKERS, else
    0 without augmentation, min(4, cpus - 1) with it).
    ``augment_on``: "loader" runs the set per image in albumentations in those processes; "device"
    runs it batched in torch on the training device (runners.device_augment); "auto" (default: env
    MASK_AUTOML_AUGMENT_ON, else auto) picks the device on a GPU, where it frees the CPU, and the
    loader otherwise, where per-image OpenCV is the faster of the two.
    """
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {list(KEEP)} but got {keep!r}.")
    if not validate_every_epoch and keep != "last":
        raise ValueError('validate_every_epoch=False needs keep="last": keeping the best epoch scores every epoch.')
    dev = resolve_device(device)
    placement = requested_augment_on(augment_on)
    train.check("train", config.height, config.width)
    val.check("val", config.height, config.width)
    if HEADS.get(config.head).learns_age and train.ages is None:
        others = ", ".join(repr(name) for name, head in HEADS.items() if not head.learns_age)
        raise ValueError(
            f"head {config.head!r} learns age from the people's real ages, but the training set has none: "
            f"build its ImageSet with ages (TrainData.ages), or use head {others}."
        )
    workers = default_num_workers(config.augment) if num_workers is None else num_workers
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0 but got {workers}.")
    augmentation = _augmentation(config, dev, placement)  # an unknown set fails here, before any work
    result = TrialResult(status="complete", device=str(dev))
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    oom = False
    try:
        if dev.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        _train_trial(config, train, val, reporter, dev, progress, workers, augmentation, result, keep,
                     validate_every_epoch)
    except torch.cuda.OutOfMemoryError:
        oom = True  # handled below, once this frame no longer holds the traceback and its tensors
    except _Diverged as exc:
        result.status, result.reason = "failed", exc.reason
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    if oom:
        result.status, result.reason = "failed", "cuda_oom"
    if result.status == "failed":
        logger.warning("trial failed: %s (%s)", result.reason, config.backbone)
    if dev.type == "cuda":  # tensors in reference cycles would hold GPU memory into the next trial
        gc.collect()
        torch.cuda.empty_cache()
    return result


@dataclass
class _Run:
    """What the epochs of one trial share: the network, its data, and the optimisation state."""

    net: torch.nn.Module
    dev: torch.device
    amp: torch.dtype | None
    on_device: DeviceAugment | None
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    criterion: FocalLoss
    age_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None  # the head's age loss; None: learns none
    age_loss_weight: float
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    plateau: Plateau | None
    ema: ModelEmaV3 | None
    global_step: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The network that is validated and kept: the EMA copy when there is one."""
        return self.net if self.ema is None else self.ema.module


@dataclass
class _Best:
    """Early stopping's state: the best validation macro-F1 so far, and the epochs since."""

    macro_f1: float = -math.inf
    bad_epochs: int = 0


def _train_trial(
    config: TrialConfig,
    train: ImageSet,
    val: ImageSet,
    reporter: Reporter | None,
    dev: torch.device,
    progress: bool,
    workers: int,
    augmentation: tuple[A.Compose | None, DeviceAugment | None],
    result: TrialResult,
    keep: str = "best",
    validate_every_epoch: bool = True,
) -> None:
    run = _setup(config, train, val, dev, workers, augmentation, result)
    best = _Best()
    validate_all = validate_every_epoch or run.plateau is not None
    epochs = tqdm(range(1, config.epochs + 1), desc=f"trial {config.backbone}", unit="epoch", disable=not progress)
    for epoch in epochs:
        start = time.perf_counter()
        train_loss, seen = _train_epoch(run, epoch, progress)
        train_seconds = time.perf_counter() - start
        scored = validate_all or epoch == config.epochs
        metrics, probs, val_loss = _validate(run, val, epoch) if scored else (None, None, math.nan)
        seconds = time.perf_counter() - start
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_macro_f1=metrics.macro_f1 if metrics is not None else math.nan,
            val_accuracy=metrics.accuracy if metrics is not None else math.nan,
            seconds=seconds,
            train_images_per_s=seen / train_seconds if train_seconds > 0 else 0.0,
            val_seconds=seconds - train_seconds,
        )
        result.history.append(record)
        logger.debug("epoch %d: %s", epoch, record)
        epochs.set_postfix(f1=f"{record.val_macro_f1:.4f}", loss=f"{record.train_loss:.4f}")
        if metrics is not None:
            _keep_best(run, best, epoch, metrics, probs, result, keep == "last")
        if reporter is not None and reporter(record):
            if metrics is None:  # stopped after an epoch it did not validate: validate the one it keeps
                scoring = time.perf_counter()
                metrics, probs, record.val_loss = _validate(run, val, epoch)
                record.val_macro_f1, record.val_accuracy = metrics.macro_f1, metrics.accuracy
                record.val_seconds = time.perf_counter() - scoring
                record.seconds += record.val_seconds
                _keep_best(run, best, epoch, metrics, probs, result, keep == "last")
            result.status, result.reason = "pruned", "stopped_by_reporter"
            return
        if best.bad_epochs > 0 and best.bad_epochs >= config.patience:
            result.reason = f"early_stopping at epoch {epoch}"
            break
    if result.history and result.best_epoch != result.history[-1].epoch:
        result.last_val_probs = probs
        kept = run.evaluated.model.state_dict()
        result.last_state_dict = {k: v.detach().to("cpu", copy=True) for k, v in kept.items()}


def _setup(
    config: TrialConfig,
    train: ImageSet,
    val: ImageSet,
    dev: torch.device,
    workers: int,
    augmentation: tuple[A.Compose | None, DeviceAugment | None],
    result: TrialResult,
) -> _Run:
    """Seed, build the network, loaders, loss, optimizer and schedule; record the model's size."""
    _seed_everything(config.seed)
    model = build_model(config)
    result.n_params, result.n_trainable = count_parameters(model)
    data_cfg = model_data_config(model)
    net = ClassifierWithPreprocess(model, data_cfg["mean"], data_cfg["std"]).to(dev)
    amp = autocast_dtype(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    transform, on_device = augmentation
    result.augment_on = "device" if on_device is not None else "loader" if transform is not None else "none"
    epoch_set, sample_weights = _epoch_set(config, train, transform)
    train_loader = make_loader(
        epoch_set,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        sample_weights=sample_weights,
        drop_last=len(epoch_set) > config.batch_size,  # a last batch of 1 would break BatchNorm
        num_workers=workers if transform is not None else 0,
        pin_memory=dev.type == "cuda",
    )
    val_loader = make_loader(
        BatchGather(val), batch_size=config.batch_size, shuffle=False, seed=config.seed, pin_memory=dev.type == "cuda"
    )
    weight = class_weights(train.labels, config.class_weighting)
    criterion = FocalLoss(config.focal_gamma, weight, config.label_smoothing).to(dev)
    optimizer = make_optimizer(model, config)
    plateau = Plateau(config.plateau_patience, config.lr_decay) if config.schedule == "plateau" else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, len(train_loader), plateau))
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    # Validated and kept instead of the raw weights when on: early epochs at a high lr then score
    # what the run is heading for, not its noise, which is what pruning compares.
    ema = ModelEmaV3(net, decay=config.ema_decay, use_warmup=True) if config.ema_decay > 0 else None
    age_loss = model.combine.age_loss if HEADS.get(config.head).learns_age else None
    return _Run(net, dev, amp, on_device, train_loader, val_loader, criterion, age_loss, config.age_loss_weight,
                optimizer, scheduler, scaler, plateau, ema)


def _train_epoch(run: _Run, epoch: int, progress: bool) -> tuple[float, int]:
    """One pass over the training loader; returns (mean training loss, images seen)."""
    run.net.train()
    total, seen = torch.zeros((), device=run.dev), 0
    window: list[torch.Tensor] = []
    batches = device_batches(run.train_loader, run.dev, threaded=run.train_loader.num_workers == 0)
    with contextlib.closing(batches):
        steps = tqdm(batches, total=run.steps_per_epoch, desc=f"epoch {epoch}", leave=False, disable=not progress)
        for step, batch in enumerate(steps, start=1):
            x, y = batch[0], batch[1]
            flags = next((t for t in batch[2:] if t.dtype == torch.bool), None)
            if run.on_device is not None:
                x = run.on_device(x, flags)
            with _autocast(run.dev, run.amp):
                loss = _loss(run, x, y, batch)
            window.append(loss.detach())
            if run.dev.type != "cuda" or step % _CUDA_CHECK_EVERY == 0 or step == run.steps_per_epoch:
                _check_finite(window, epoch, step)
                window.clear()
            optimizer_step(loss, run.optimizer, run.scaler)
            run.scheduler.step()
            run.global_step += 1
            if run.ema is not None:
                run.ema.update(run.net, step=run.global_step)
            total += loss.detach() * len(y)
            seen += len(y)
    _check_finite(window, epoch, run.steps_per_epoch)
    return float(total.item()) / max(seen, 1), seen


def _loss(run: _Run, x: torch.Tensor, y: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The class loss, plus the weighted age loss on the real ages for a head that learns them."""
    if run.age_loss is None:
        return run.criterion(run.net(x), y)
    ages = next(t for t in batch[2:] if t.dtype != torch.bool)
    scores, age_logits = run.net.forward_with_age(x)
    return run.criterion(scores, y) + run.age_loss_weight * run.age_loss(age_logits, ages)


def _validate(run: _Run, val: ImageSet, epoch: int) -> tuple[ClassificationMetrics, np.ndarray, float]:
    """Score the evaluated network on every validation image; a plateau schedule sees the loss."""
    val_loss, probs = _evaluate(run.evaluated, run.val_loader, run.dev, run.amp)
    if not math.isfinite(val_loss):
        raise _Diverged(f"nan_val_loss at epoch {epoch}")
    if run.plateau is not None:
        run.plateau.update(val_loss)  # LambdaLR applies the new scale from the next step on
    return classification_metrics(val.labels, probs.argmax(1)), probs, val_loss


def _keep_best(
    run: _Run,
    best: _Best,
    epoch: int,
    metrics: ClassificationMetrics,
    probs: np.ndarray,
    result: TrialResult,
    every_epoch: bool = False,
) -> None:
    """On a new best macro-F1 (on every epoch with ``every_epoch``: fit's keep="last"), keep this
    epoch's scores, probabilities and CPU weights in ``result``."""
    if not (every_epoch or metrics.macro_f1 > best.macro_f1):
        best.bad_epochs += 1
        return
    best.macro_f1, best.bad_epochs = metrics.macro_f1, 0
    result.best_epoch, result.best_macro_f1 = epoch, metrics.macro_f1
    result.per_class_f1, result.confusion, result.val_probs = metrics.per_class_f1, metrics.confusion, probs
    kept = run.evaluated.model.state_dict()
    result.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in kept.items()}


def _epoch_set(
    config: TrialConfig, train: ImageSet, transform: A.Compose | None
) -> tuple[BatchGather, np.ndarray | None]:
    """What one epoch draws from, with the sampler's weights. Scope "all": the training rows,
    weighted by ``oversample``, every drawn image augmented. Scope "oversampled": every training
    row once, plain, plus explicit copies of the oversampled rows, the only images augmented."""
    ages = train.ages if HEADS.get(config.head).learns_age else None  # batches carry ages only where they are learned
    if config.augment_scope == "all":
        plain = ImageSet(train.images, train.rows, train.labels, ages)
        return BatchGather(plain, transform), oversample_weights(train.labels, config.oversample)
    positions = np.concatenate([np.arange(len(train)), oversample_copies(train.labels, config.oversample, config.seed)])
    expanded = ImageSet(train.images, train.rows[positions], train.labels[positions],
                        None if ages is None else ages[positions])
    return BatchGather(expanded, transform, augmented=np.arange(len(positions)) >= len(train)), None


def _augmentation(
    config: TrialConfig, dev: torch.device, placement: str
) -> tuple[A.Compose | None, DeviceAugment | None]:
    """The trial's set, as a per-image pipeline for the loader or a batched one for the device."""
    if config.augment == "none":
        return None, None
    if placement == "device" or (placement == "auto" and dev.type == "cuda"):
        try:
            return None, device_augment(config.augment, config.height, config.width, config.seed)
        except NoDeviceVersion as exc:
            if placement == "device":
                raise
            logger.info("%s", exc)
    return get_augment(config.augment, config.height, config.width, config.seed), None


def make_optimizer(model: TrialModel, config: TrialConfig) -> torch.optim.Optimizer:
    """The trial's optimizer over trainable parameters only: head at ``lr``, backbone at
    ``lr * backbone_lr_scale``; no weight decay on biases, norms (1-D) and timm's no_weight_decay
    names (tokens, pos-embeds). AdamW decays decoupled, Adam and SGD as an L2 term."""
    skip = set(model.net.no_weight_decay()) if hasattr(model.net, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.net.named_parameters():
        if param.requires_grad:
            decay = param.ndim > 1 and name not in skip
            groups.setdefault((name in model.head_names, decay), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": config.lr * (1.0 if is_head else config.backbone_lr_scale),
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (is_head, decay), params in sorted(groups.items())
    ]
    if config.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(param_groups, lr=config.lr)


class Plateau:
    """ReduceLROnPlateau's rule on the validation loss (mode min, relative threshold 1e-4, no
    cooldown) as a multiplier, so that it composes with the per-step warm-up."""

    def __init__(self, patience: int, factor: float, threshold: float = 1e-4) -> None:
        self.patience, self.factor, self.threshold = patience, factor, threshold
        self.best, self.bad_epochs, self.scale = math.inf, 0, 1.0

    def update(self, val_loss: float) -> None:
        if val_loss < self.best * (1.0 - self.threshold):
            self.best, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0


def lr_lambda(
    config: TrialConfig, steps_per_epoch: int, plateau: Plateau | None = None
) -> Callable[[int], float]:
    """Multiplier of each group's peak lr at optimizer step ``s`` (0-based): linear warm-up over
    ``warmup_epochs``, then the schedule (cosine to 0 at the last step, cosine cycles of
    ``restart_epochs``, a decay every ``step_epochs``, constant, or ``plateau``'s scale)."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
    cycle = max(1, config.restart_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if config.schedule == "cosine_restarts":
            return 0.5 * (1.0 + math.cos(math.pi * ((step - warmup) % cycle) / cycle))
        if config.schedule == "step":
            return config.lr_decay ** (step // steps_per_epoch // config.step_epochs)
        if config.schedule == "plateau" and plateau is not None:
            return plateau.scale
        return 1.0

    return factor


@torch.inference_mode()
def _evaluate(
    net: torch.nn.Module, loader: torch.utils.data.DataLoader, dev: torch.device, amp: torch.dtype | None
) -> tuple[float, np.ndarray]:
    """Plain cross-entropy and float32 softmax over every validation image (no drop_last)."""
    net.eval()
    loss_sum, count, probs = torch.zeros((), device=dev, dtype=torch.float64), 0, []
    with contextlib.closing(device_batches(loader, dev, threaded=True)) as batches:
        for batch in batches:
            x, y = batch[0], batch[1]
            with _autocast(dev, amp):
                logits = net(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            count += len(y)
            probs.append(torch.softmax(logits, dim=1).cpu())
    return float(loss_sum.item()) / count, torch.cat(probs).numpy().astype(np.float32)


def _autocast(dev: torch.device, amp: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    return torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()


def _check_finite(window: list[torch.Tensor], epoch: int, last_step: int) -> None:
    if not window:
        return
    values = torch.stack(window)
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        raise _Diverged(f"nan_loss at epoch {epoch} step {last_step - len(window) + 1 + first}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Backward and step, through the fp16 loss scaler when there is one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
