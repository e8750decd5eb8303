"""Batched device augmentation: each op against albumentations/OpenCV on the same parameters, the
sampling against the set's settings, and the training loop's choice of where a set runs."""

from __future__ import annotations

import dataclasses

import albumentations as A
import albumentations.augmentations.geometric.functional as fgeometric
import cv2
import numpy as np
import pytest
import torch

from runners import AUGMENT_SETS, BatchGather, ImageSet, TrialConfig, fit, register_augment
from runners import image_ops as ops
from runners.device_augment import DeviceAugment, NoDeviceVersion, device_augment
from runners.devices import AUGMENT_ON_ENV, requested_augment_on

H, W = 192, 144


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A structured RGB image: gradients, a bright disc, a dark bar and noise, so every op has work."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([xx * 255 / W, yy * 255 / H, 128 + 60 * np.sin(xx / 9) * np.cos(yy / 13)], -1)
    img[(yy - 70) ** 2 + (xx - 60) ** 2 < 30**2] = (230, 200, 170)
    img[120:140, 20:120] *= 0.3
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float().unsqueeze(0)


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def diff(ours: torch.Tensor, ref: np.ndarray) -> np.ndarray:
    return np.abs(to_image(ours) - ref.astype(np.float32))


def test_pixel_ops_match_albumentations(photo: np.ndarray) -> None:
    x = to_batch(photo)
    cases = {
        "brightness_contrast": (
            ops.brightness_contrast(x, torch.tensor([1.2]), torch.tensor([0.1 * 255])),
            A.RandomBrightnessContrast(p=1).apply(photo, alpha=1.2, beta=0.1 * 255),
        ),
        "gamma": (ops.gamma(x, torch.tensor([1.15])), A.RandomGamma(p=1).apply(photo, gamma=1.15)),
        "to_gray": (ops.to_gray(x), A.ToGray(num_output_channels=3, p=1).apply(photo)),
        "auto_contrast cdf": (ops.auto_contrast(x, "cdf"), A.AutoContrast(method="cdf", p=1).apply(photo)),
        "auto_contrast pil": (ops.auto_contrast(x, "pil"), A.AutoContrast(method="pil", p=1).apply(photo)),
    }
    sharpen = A.Sharpen(p=1)
    matrix = sharpen._Sharpen__generate_sharpening_matrix(0.3, 0.9)  # the kernel albumentations would build
    cases["sharpen"] = (
        ops.sharpen(x, torch.tensor([0.3]), torch.tensor([0.9])),
        sharpen.apply(photo, alpha=0.3, sharpening_matrix=matrix),
    )
    for name, (ours, ref) in cases.items():
        d = diff(ours, ref)
        assert d.max() <= 2.0 and d.mean() < 0.6, f"{name}: max {d.max()}, mean {d.mean()}"
        assert np.abs(ref.astype(np.float32) - photo).mean() > 1.0, f"{name} changed nothing: a vacuous check"


def test_flip_and_erase_are_exact(photo: np.ndarray) -> None:
    x = to_batch(photo)
    assert np.array_equal(to_image(x.flip(-1)), photo[:, ::-1].astype(np.float32))
    boxes = torch.tensor([[[30, 10, 40, 20], [0, 0, 5, 5]]])
    ref = photo.copy()
    ref[10:20, 30:40] = 0
    assert np.array_equal(to_image(ops.erase_boxes(x, boxes, torch.tensor([[True, False]]))), ref.astype(np.float32))


def test_tile_equalisation_is_cv2_clahe(photo: np.ndarray) -> None:
    lightness = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB)[..., 0]
    for clip, crop in ((1.0, lightness), (4.0, lightness), (2.0, lightness[: H - 3, : W - 5])):  # last: padded tiles
        ref = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(np.ascontiguousarray(crop)).astype(np.float32)
        ours = ops.equalize_tiles(torch.from_numpy(crop.copy()).float().unsqueeze(0), torch.tensor([clip]))[0].numpy()
        d = np.abs(ours - ref)
        assert d.max() <= 1 and d.mean() < 0.01, (clip, crop.shape, d.max(), d.mean())
        assert np.abs(ref - crop).mean() > 1.0


def test_clahe_on_rgb_is_close_to_albumentations(photo: np.ndarray) -> None:
    # cv2 rounds Lab to uint8 on the way, these ops keep float: close, not equal
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    assert np.abs(to_image(ops.rgb_to_lab(to_batch(photo))) - lab).mean() < 0.5
    for clip in (1.0, 3.0):
        ref = A.CLAHE(p=1).apply(photo, clip_limit=clip)
        change = np.abs(ref.astype(np.float32) - photo).mean()
        assert diff(ops.clahe(to_batch(photo), torch.tensor([clip])), ref).mean() < 0.3 * change


def test_geometry_matches_cv2(photo: np.ndarray) -> None:
    ref_matrix = fgeometric.create_affine_transformation_matrix(
        {"x": 5, "y": -3}, {"x": 0, "y": 0}, {"x": 1.1, "y": 0.95}, 12.0, fgeometric.center((H, W))
    )
    ours = ops.affine_matrix(
        torch.tensor([[5.0, -3.0]]), torch.tensor([[1.1, 0.95]]), torch.tensor([12.0]), torch.zeros(1, 2), H, W
    )
    np.testing.assert_allclose(ours[0].numpy(), ref_matrix, atol=1e-6)
    warped = cv2.warpAffine(photo, ref_matrix[:2], (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    d = diff(ops.warp_affine(to_batch(photo), ours), warped)
    assert d.max() <= 1.0 and (warped == 0).all(-1).sum() > 100  # black corners were filled in both
    crop = cv2.resize(photo[5:5 + 150, 7:7 + 110], (W, H), interpolation=cv2.INTER_LINEAR)
    zoomed = ops.warp_affine(to_batch(photo), ops.crop_matrix(torch.tensor([[7, 5, 117, 155]]), H, W))
    assert diff(zoomed, crop)[2:-2, 2:-2].max() <= 1.0  # cv2.resize replicates the border, grid_sample fades it


@pytest.mark.parametrize("name", sorted(AUGMENT_SETS))
def test_every_builtin_set_runs_on_the_device(name: str, photo: np.ndarray) -> None:
    batch = torch.from_numpy(np.stack([photo] * 6))
    before = batch.clone()
    out = device_augment(name, H, W, seed=3)(batch)
    assert out.dtype == torch.float32 and out.shape == (6, 3, H, W)
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert torch.equal(batch, before), "the input batch must not be written to"
    again = device_augment(name, H, W, seed=3)(batch)
    assert torch.equal(out, again), "the same seed draws the same augmentations"
    if name != "none":
        other = device_augment(name, H, W, seed=4)(torch.from_numpy(np.stack([photo] * 6)))
        assert not torch.equal(out, other)


def test_each_image_draws_its_own_parameters_with_the_sets_probability(photo: np.ndarray) -> None:
    register_augment("_test_flip_third")(lambda h, w: A.Compose([A.HorizontalFlip(p=1 / 3)]))
    try:
        batch = torch.from_numpy(np.stack([photo] * 600))
        out = device_augment("_test_flip_third", H, W, seed=0)(batch)
    finally:
        AUGMENT_SETS.pop("_test_flip_third")
    flipped = (out == to_batch(photo).flip(-1)).flatten(1).all(1)
    unchanged = (out == to_batch(photo)).flatten(1).all(1)
    assert bool((flipped | unchanged).all())
    assert 0.27 < float(flipped.float().mean()) < 0.40


def test_sampled_affine_stays_in_the_sets_ranges() -> None:
    augment = device_augment("bccs", H, W, seed=0)
    step = next(s for s in augment.steps if s.name == "Affine")
    matrix = step.sample(2000, torch.Generator().manual_seed(0))["matrix"]
    angle = torch.rad2deg(torch.atan2(-matrix[:, 1, 0], matrix[:, 0, 0]))  # first column: R @ S scales it by sx
    assert float(angle.abs().max()) <= 15.0 + 1e-6 and float(angle.abs().max()) > 14.0
    centre = torch.tensor([W / 2 - 0.5, H / 2 - 0.5, 1.0], dtype=torch.float64)
    moved = (matrix @ centre)[:, :2] - centre[:2]  # the centre moves by the translation only
    assert float(moved[:, 0].abs().max()) <= 0.0625 * W and float(moved[:, 1].abs().max()) <= 0.0625 * H
    assert float(moved[:, 0].abs().max()) > 0.05 * W


def test_sampled_crops_keep_the_aspect_and_the_area_range() -> None:
    step = next(s for s in device_augment("strong", H, W, seed=0).steps if s.name == "RandomResizedCrop")
    theta = step.sample(2000, torch.Generator().manual_seed(0))["theta"]
    zoom_x, zoom_y = theta[:, 0, 0], theta[:, 1, 1]  # crop size over image size, per axis
    torch.testing.assert_close(zoom_x, zoom_y, atol=0.02, rtol=0)  # rounding to whole pixels only
    area = zoom_x * zoom_y
    assert float(area.min()) >= 0.7 - 0.02 and float(area.max()) <= 1.0 and float(area.min()) < 0.72
    shift = theta[:, :, 2].abs()  # crop centre offset, in half-sizes: never past the border
    assert bool((shift <= 1 - torch.stack([zoom_x, zoom_y], 1) + 0.02).all())


def test_transform_without_device_version_is_named() -> None:
    register_augment("_test_blur")(lambda h, w: A.Compose([A.HorizontalFlip(p=0.5), A.Blur(p=0.5)]))
    try:
        with pytest.raises(NoDeviceVersion, match="Blur"):
            device_augment("_test_blur", H, W)
    finally:
        AUGMENT_SETS.pop("_test_blur")
    with pytest.raises(NoDeviceVersion, match="fit_output"):
        register_augment("_test_fit")(lambda h, w: A.Compose([A.Affine(fit_output=True)]))
        try:
            device_augment("_test_fit", H, W)
        finally:
            AUGMENT_SETS.pop("_test_fit")


def test_device_augment_is_deterministic_under_a_seeded_generator() -> None:
    augment = DeviceAugment([], seed=0)
    x = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(augment(x), x.permute(0, 3, 1, 2).float())


def test_requested_place_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUGMENT_ON_ENV, raising=False)
    assert requested_augment_on() == "auto"
    monkeypatch.setenv(AUGMENT_ON_ENV, "device")
    assert requested_augment_on() == "device"
    assert requested_augment_on("loader") == "loader"
    monkeypatch.setenv(AUGMENT_ON_ENV, "gpu")
    with pytest.raises(ValueError, match=f"{AUGMENT_ON_ENV} must be one of auto, loader, device but got 'gpu'"):
        requested_augment_on()


def test_fit_runs_the_set_where_asked(image_sets: tuple[ImageSet, ImageSet], tiny_config: TrialConfig) -> None:
    train, val = image_sets
    config = dataclasses.replace(tiny_config, augment="strong", epochs=1)
    on_device = fit(config, train, val, augment_on="device", num_workers=0)
    assert on_device.status == "complete" and on_device.augment_on == "device"
    again = fit(config, train, val, augment_on="device", num_workers=0)
    assert again.history[0].train_loss == on_device.history[0].train_loss  # seeded on the CPU generator
    in_loader = fit(config, train, val, augment_on="auto", num_workers=0)  # CPU: auto means the loader
    assert in_loader.augment_on == "loader"
    assert in_loader.to_summary()["augment_on"] == "loader"
    plain = fit(dataclasses.replace(config, augment="none"), train, val, augment_on="device", num_workers=0)
    assert plain.augment_on == "none"


def test_fit_refuses_a_device_set_it_cannot_build(
    image_sets: tuple[ImageSet, ImageSet], tiny_config: TrialConfig
) -> None:
    train, val = image_sets
    register_augment("_test_blur_fit")(lambda h, w: A.Compose([A.Blur(p=0.5)]))
    try:
        config = dataclasses.replace(tiny_config, augment="_test_blur_fit", epochs=1)
        with pytest.raises(NoDeviceVersion, match="Blur"):
            fit(config, train, val, augment_on="device", num_workers=0)
        assert fit(config, train, val, augment_on="auto", num_workers=0).augment_on == "loader"
    finally:
        AUGMENT_SETS.pop("_test_blur_fit")



def test_device_set_leaves_unflagged_images_alone(photo: np.ndarray) -> None:
    batch = torch.from_numpy(np.stack([photo] * 8))
    only = torch.tensor([True, False] * 4)
    out = device_augment("strong", H, W, seed=0)(batch, only)
    plain = batch.permute(0, 3, 1, 2).float()
    assert torch.equal(out[~only], plain[~only])
    assert not torch.equal(out[only], plain[only])
    with pytest.raises(ValueError, match="one flag per image"):
        device_augment("flip", H, W)(batch, only[:3])


def _black(img: np.ndarray, **_: object) -> np.ndarray:
    return np.zeros_like(img)


def _imbalanced(train: ImageSet) -> ImageSet:
    """The fixture's training rows with one image left of each old class (4 of the others)."""
    keep = np.concatenate([np.flatnonzero(train.labels == c)[: 1 if c % 3 == 2 else 4] for c in range(18)])
    return ImageSet(train.images, train.rows[keep], train.labels[keep])


@pytest.mark.parametrize("place", ["loader", "device"])
def test_fit_augments_only_the_oversampled_copies(
    image_sets: tuple[ImageSet, ImageSet], tiny_config: TrialConfig, place: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = image_sets
    train = _imbalanced(train)  # median class size 4: each old class gets 3 copies, 18 in all
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (labels, augmented flags) of each training batch
    if place == "loader":
        register_augment("_test_black_copies")(lambda h, w: A.Compose([A.Lambda(image=_black)]))
        real_gather = BatchGather.__getitem__

        def gather(self: BatchGather, positions: list[int]) -> tuple[torch.Tensor, ...]:
            batch = real_gather(self, positions)
            if len(batch) == 3:
                x, y, flags = batch
                assert bool((x[flags] == 0).all()) and bool((x[~flags].flatten(1).amax(1) > 0).all())
                seen.append((y, flags))
            return batch

        monkeypatch.setattr(BatchGather, "__getitem__", gather)
    else:
        real_call = DeviceAugment.__call__

        def call(self: DeviceAugment, batch: torch.Tensor, only: torch.Tensor | None = None) -> torch.Tensor:
            assert only is not None
            seen.append((torch.zeros(0), only.clone()))
            return real_call(self, batch, only)

        monkeypatch.setattr(DeviceAugment, "__call__", call)
    name = "_test_black_copies" if place == "loader" else "flip"
    config = dataclasses.replace(tiny_config, augment=name, oversample="old", augment_scope="oversampled", epochs=1)
    try:
        result = fit(config, train, val, augment_on=place, num_workers=0)
    finally:
        AUGMENT_SETS.pop("_test_black_copies", None)
    assert result.status == "complete" and result.augment_on == place
    flags = torch.cat([f for _, f in seen])
    assert len(flags) == 64  # 48 + 6 originals + 18 copies, in batches of 16 with the last 8 dropped
    assert 18 - 8 <= int(flags.sum()) <= 18
    if place == "loader":
        labels = torch.cat([y for y, _ in seen])
        assert bool((labels[flags] % 3 == 2).all())  # copies are old rows only
