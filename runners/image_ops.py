"""Batched image operations in torch, for augmentation on the training device.

Every function takes float32 NCHW RGB images with values in [0, 255] and per-image parameters as
tensors whose first dimension is the batch, and returns the same layout, clamped to [0, 255] as
the uint8 versions saturate. They follow OpenCV/albumentations definitions (pixel centres at
integer coordinates, black constant border, cv2's CLAHE tiling and clipping, cv2's 8-bit Lab), so
a named set means the same on either side; values may differ from OpenCV's by rounding, since
OpenCV keeps uint8 between steps and these keep float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)  # D65, as cv2
_LAB_EPS = 0.008856


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def brightness_contrast(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``x * alpha + beta`` per image (A.RandomBrightnessContrast with ``beta`` already in pixel units)."""
    return (x * _per_image(alpha) + _per_image(beta)).clamp_(0, 255)


def gamma(x: torch.Tensor, gamma_: torch.Tensor) -> torch.Tensor:
    return (x / 255).pow(_per_image(gamma_)).mul_(255).clamp_(0, 255)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Weighted-average grey copied to the three channels."""
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x).contiguous()


def sharpen(x: torch.Tensor, alpha: torch.Tensor, lightness: torch.Tensor) -> torch.Tensor:
    """A.Sharpen's kernel method: ``(1 - alpha) * identity + alpha * [[-1]*3, [-1, 8 + lightness, -1], [-1]*3]``,
    reflect-101 border as cv2.filter2D."""
    kernel = -torch.ones(3, 1, 3, 3, device=x.device, dtype=x.dtype)
    kernel[:, :, 1, 1] = 8.0
    edges = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=3)
    a, light = _per_image(alpha), _per_image(lightness)
    return (x + a * (edges + (light - 1) * x)).clamp_(0, 255)


def erase_boxes(x: torch.Tensor, boxes: torch.Tensor, active: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Fill rectangles: ``boxes`` (N, K, 4) as x_min, y_min, x_max, y_max (max exclusive), ``active`` (N, K)."""
    _, _, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, 1, w)
    b = boxes.view(*boxes.shape, 1, 1)
    inside = (xs >= b[:, :, 0]) & (xs < b[:, :, 2]) & (ys >= b[:, :, 1]) & (ys < b[:, :, 3])
    mask = (inside & active.view(*active.shape, 1, 1)).any(1, keepdim=True)
    return x.masked_fill(mask, fill)


def affine_matrix(
    translate: torch.Tensor, scale: torch.Tensor, rotate_deg: torch.Tensor, shear_deg: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """(N, 3, 3) source-to-output pixel matrices built as A.Affine builds them: about the image centre,
    scale, then rotate, then shear, then translate (``translate``/``scale``/``shear_deg`` are (N, 2) as x, y)."""
    n = translate.shape[0]
    dtype = torch.float64
    cx, cy = width / 2 - 0.5, height / 2 - 0.5
    rad = torch.deg2rad(rotate_deg.to(dtype) % 360)
    cos, sin = torch.cos(rad), torch.sin(rad)
    eye = torch.eye(3, dtype=dtype).repeat(n, 1, 1)

    def with_entries(**entries: torch.Tensor | float) -> torch.Tensor:
        m = eye.clone()
        for key, value in entries.items():
            m[:, int(key[1]), int(key[2])] = value
        return m

    to_origin = with_entries(m02=-cx, m12=-cy)
    scale_m = with_entries(m00=scale[:, 0].to(dtype), m11=scale[:, 1].to(dtype))
    rotate_m = with_entries(m00=cos, m01=sin, m10=-sin, m11=cos)
    shear_rad = torch.deg2rad(shear_deg.to(dtype))
    shear_m = with_entries(m01=torch.tan(shear_rad[:, 0]), m10=torch.tan(shear_rad[:, 1]))
    move = with_entries(m02=translate[:, 0].to(dtype) + cx, m12=translate[:, 1].to(dtype) + cy)
    return move @ shear_m @ rotate_m @ scale_m @ to_origin


def crop_matrix(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 3, 3) matrices that map the crop ``boxes`` (N, 4: x_min, y_min, x_max, y_max) onto the whole
    ``height`` x ``width`` output, as crop-then-cv2.resize does (pixel centres at half-integers)."""
    b = boxes.to(torch.float64)
    sx, sy = width / (b[:, 2] - b[:, 0]), height / (b[:, 3] - b[:, 1])
    m = torch.eye(3, dtype=torch.float64).repeat(len(b), 1, 1)
    m[:, 0, 0], m[:, 0, 2] = sx, (0.5 - b[:, 0]) * sx - 0.5
    m[:, 1, 1], m[:, 1, 2] = sy, (0.5 - b[:, 1]) * sy - 0.5
    return m


def sampling_theta(matrix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 2, 3) ``F.affine_grid`` thetas for source-to-output pixel matrices (N, 3, 3). Computed where
    the matrices are drawn (the CPU): an inverse on the GPU would wait for it."""
    h, w = height, width
    to_pixels = torch.tensor([[w / 2, 0, w / 2 - 0.5], [0, h / 2, h / 2 - 0.5], [0, 0, 1]], dtype=torch.float64)
    theta = torch.linalg.inv(to_pixels) @ torch.linalg.inv(matrix.cpu().to(torch.float64)) @ to_pixels
    return theta[:, :2].float()


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear warp by ``sampling_theta``'s thetas, as cv2.warpAffine; black outside the source."""
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 255)


def warp_affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Bilinear warp by source-to-output pixel matrices (N, 3, 3), as cv2.warpAffine; black outside."""
    return warp(x, sampling_theta(matrix, x.shape[2], x.shape[3]))


def _histograms(levels: torch.Tensor, bins_per_group: int, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Counts of integer ``levels`` (N, P) in 0..255, per row, split by ``groups`` (N, P) of ids when given."""
    n = levels.shape[0]
    index = levels if groups is None else groups * 256 + levels
    counts = torch.zeros(n, bins_per_group, device=levels.device, dtype=torch.float32)
    return counts.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float32))


def auto_contrast(x: torch.Tensor, method: str = "cdf") -> torch.Tensor:
    """A.AutoContrast without cutoff: per channel, stretch (``pil``) or equalise (``cdf``) the range of
    levels present; a channel of a single level is left as it is."""
    n, c, h, w = x.shape
    levels = x.round().clamp_(0, 255).long().reshape(n * c, h * w)
    hist = _histograms(levels, 256)
    hist[:, 255] = 0  # albumentations counts with cv2.calcHist over [0, 255), which leaves level 255 out
    present = hist > 0
    values = torch.arange(256, device=x.device, dtype=torch.float32).expand(n * c, 256)
    lo = torch.where(present, values, 256.0).amin(1, keepdim=True)
    hi = torch.where(present, values, -1.0).amax(1, keepdim=True)
    if method == "cdf":
        cdf = hist.cumsum(1)
        at_lo = cdf.gather(1, lo.long())
        span = cdf.gather(1, hi.long()) - at_lo
        lut = (cdf - at_lo) * 255 / span.clamp(min=1)
    elif method == "pil":
        lut = (values - lo) * 255 / (hi - lo).clamp(min=1)
    else:
        raise ValueError(f"auto_contrast method must be 'cdf' or 'pil' but got {method!r}.")
    lut = torch.where(values < lo, 0.0, torch.where(values > hi, 255.0, lut.round().clamp(0, 255)))
    lut = torch.where(hi > lo, lut, values)
    return lut.gather(1, levels).view(n, c, h, w)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 255] -> cv2's 8-bit Lab scale: L in [0, 255] (L* x 255/100), a and b offset by 128."""
    v = x / 255
    linear = torch.where(v > 0.04045, ((v + 0.055) / 1.055).pow(2.4), v / 12.92)
    m = torch.tensor(_RGB_TO_XYZ, device=x.device, dtype=x.dtype)
    white = torch.tensor(_WHITE, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,njhw->nihw", m, linear) / white
    f = torch.where(xyz > _LAB_EPS, xyz.clamp(min=_LAB_EPS).pow(1 / 3), 7.787 * xyz + 16 / 116)
    lightness = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1]) + 128
    b = 200 * (f[:, 1] - f[:, 2]) + 128
    return torch.stack([lightness * 255 / 100, a, b], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    fy = (lab[:, 0] * 100 / 255 + 16) / 116
    f = torch.stack([fy + (lab[:, 1] - 128) / 500, fy, fy - (lab[:, 2] - 128) / 200], 1)
    white = torch.tensor(_WHITE, device=lab.device, dtype=lab.dtype).view(1, 3, 1, 1)
    xyz = torch.where(f > 0.206893, f.pow(3), (f - 16 / 116) / 7.787) * white
    m_inv = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).to(device=lab.device, dtype=lab.dtype)
    linear = torch.einsum("ij,njhw->nihw", m_inv, xyz).clamp(0, 1)
    v = torch.where(linear > 0.0031308, 1.055 * linear.pow(1 / 2.4) - 0.055, 12.92 * linear)
    return (v * 255).clamp_(0, 255)


def clahe(x: torch.Tensor, clip_limit: torch.Tensor, tiles: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """A.CLAHE on RGB: cv2's contrast-limited adaptive equalisation of the Lab lightness, per image clip
    limit; ``tiles`` is (across, down) as cv2's tileGridSize."""
    lab = rgb_to_lab(x)
    lightness = equalize_tiles(lab[:, 0].round().clamp_(0, 255), clip_limit, tiles)
    return lab_to_rgb(torch.cat([lightness.unsqueeze(1), lab[:, 1:]], 1))


def equalize_tiles(levels: torch.Tensor, clip_limit: torch.Tensor, tiles: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """cv2.createCLAHE(clip_limit, tiles).apply on (N, H, W) integer levels in 0..255, batched."""
    n, h, w = levels.shape
    dev = levels.device
    tiles_x, tiles_y = tiles
    pad_y, pad_x = (-h) % tiles_y, (-w) % tiles_x
    padded = F.pad(levels.unsqueeze(1), (0, pad_x, 0, pad_y), mode="reflect")[:, 0] if pad_x or pad_y else levels
    tile_h, tile_w = (h + pad_y) // tiles_y, (w + pad_x) // tiles_x
    ty = torch.arange(h + pad_y, device=dev) // tile_h
    tx = torch.arange(w + pad_x, device=dev) // tile_w
    tile_of_pixel = (ty.view(-1, 1) * tiles_x + tx.view(1, -1)).view(1, -1).expand(n, -1)
    hist = _histograms(padded.long().reshape(n, -1), tiles_x * tiles_y * 256, tile_of_pixel)
    hist = hist.view(n, tiles_x * tiles_y, 256)

    # clip each tile's histogram and hand the excess back evenly, the remainder one count per bin
    # every 256 // remainder bins (cv2's order)
    limit = (clip_limit.to(dev) * tile_h * tile_w / 256).floor().clamp(min=1).view(n, 1, 1)
    excess = (hist - limit).clamp(min=0).sum(-1, keepdim=True)
    hist = hist.clamp(max=limit) + (excess / 256).floor()
    residual = excess - (excess / 256).floor() * 256
    bins = torch.arange(256, device=dev, dtype=torch.float32).view(1, 1, 256)
    step = (256 / residual.clamp(min=1)).floor().clamp(min=1)
    hist = hist + ((residual > 0) & (bins % step == 0) & (torch.div(bins, step, rounding_mode="floor") < residual)).float()
    luts = (hist.cumsum(-1) * 255 / (tile_h * tile_w)).round().clamp_(0, 255).view(n, -1)

    # each pixel blends the luts of its four nearest tile centres
    def neighbours(size: int, tile: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, device=dev, dtype=torch.float32) / tile - 0.5
        first = pos.floor()
        return first.clamp(min=0).long(), (first + 1).clamp(max=count - 1).long(), pos - first

    y1, y2, wy = neighbours(h, tile_h, tiles_y)
    x1, x2, wx = neighbours(w, tile_w, tiles_x)
    value = levels.long()

    def lookup(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        index = (ys.view(-1, 1) * tiles_x + xs.view(1, -1)) * 256 + value
        return luts.gather(1, index.view(n, -1)).view(n, h, w)

    wy, wx = wy.view(1, -1, 1), wx.view(1, 1, -1)
    top = lookup(y1, x1) * (1 - wx) + lookup(y1, x2) * wx
    bottom = lookup(y2, x1) * (1 - wx) + lookup(y2, x2) * wx
    return (top * (1 - wy) + bottom * wy).round()
