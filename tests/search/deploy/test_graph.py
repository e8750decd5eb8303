"""search.deploy.graph: PIL's bilinear resize as matrices, each member's crop inside the graph,
and the hard vote in torch and ONNX as search.ensembling.votes computes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search.data.cache import crop_box
from search.deploy.graph import (
    build_ensemble,
    build_member,
    export_onnx,
    input_for,
    member_resize,
    onnx_predict,
    onnx_session,
    resize_matrix,
    torch_predict,
)
from search.deploy.manifest import InputSpec, MemberPreprocessing
from search.deploy.votes import VOTES, combine
from search.ensembling.votes import hard_vote, soft_vote


def pil_resize(
    image: np.ndarray, height: int, width: int, box: tuple[float, float, float, float]
) -> np.ndarray:
    """PIL's BILINEAR resize of a float image (mode F), as load_image resizes a photo."""
    out = Image.fromarray(image.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=None
    )
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize(
    "shape,out,box",
    [
        ((64, 48), (32, 24), (0, 0, 48, 64)),  # halve
        ((55, 32), (40, 24), (0.12 * 32, 0.08 * 55, 0.88 * 32, 0.82 * 55)),  # the face crop, shrunk
        ((20, 16), (33, 29), (0, 0, 16, 20)),  # enlarge
        ((50, 40), (50, 40), (0, 0, 40, 50)),  # same size: the identity
    ],
)
def test_resize_matrices_are_pils_bilinear_resize(
    shape: tuple[int, int], out: tuple[int, int], box: tuple[float, float, float, float]
) -> None:
    image = np.random.default_rng(0).uniform(0, 255, shape)
    rows = resize_matrix(shape[0], out[0], box[1], box[3])
    cols = resize_matrix(shape[1], out[1], box[0], box[2])
    np.testing.assert_allclose(rows @ image @ cols.T, pil_resize(image, *out, box), atol=1e-3)


def test_member_resize_takes_the_members_crop_of_the_input() -> None:
    spec = InputSpec(55, 32, "full")
    pre = MemberPreprocessing(40, 24, "face", (0.5,) * 3, (0.5,) * 3)
    rows, cols = member_resize(pre, spec)
    image = np.random.default_rng(1).uniform(0, 255, (55, 32))
    top, left, bottom, right = crop_box("face")
    expected = pil_resize(image, 40, 24, (left * 32, top * 55, right * 32, bottom * 55))
    np.testing.assert_allclose(rows @ image @ cols.T, expected, atol=1e-3)
    assert member_resize(MemberPreprocessing(55, 32, "full", (0.5,) * 3, (0.5,) * 3), spec) is None


def test_the_input_covers_every_member_without_upsampling() -> None:
    assert input_for([(32, 32, "face"), (32, 32, "face")]) == InputSpec(32, 32, "face")
    assert input_for([(32, 32, "full"), (40, 24, "face")]) == InputSpec(
        55, 32, "full"
    )  # 40 / 0.74, 24 / 0.76
    assert input_for([(16, 16, "tight"), (32, 24, "tight")]) == InputSpec(32, 24, "tight")


class Fixed(torch.nn.Module):
    """A stand-in model: fixed logits from the mean of each channel (any input size)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.proj = torch.nn.Parameter(torch.randn(3, 18, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2)
        return (x.float().mean(dim=(2, 3)) / 255.0 * 8.0) @ self.proj


def test_a_hard_vote_in_torch_and_onnx_is_the_numpy_hard_vote(tmp_path: Path) -> None:
    spec = InputSpec(30, 20, "full")
    pre = MemberPreprocessing(16, 12, "face", (0.5,) * 3, (0.5,) * 3)
    members = [build_member([Fixed(s)], member_resize(pre, spec) if s == 2 else None) for s in range(3)]
    weights = [0.4, 0.3, 0.3]  # members 1 and 2 agreeing outvote member 0
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 200, (64, 1, 1, 3))  # each photo its own colour, so the classes vary
    images = (colour + rng.integers(0, 56, (64, 30, 20, 3))).astype(np.uint8)
    each = [torch_predict(build_ensemble([m], [1.0]), images) for m in members]
    hard = build_ensemble(members, weights, vote="hard")
    export_onnx(hard, tmp_path / "hard.onnx", 30, 20)
    expected = hard_vote(each, weights)
    np.testing.assert_allclose(torch_predict(hard, images), expected, atol=1e-5)
    np.testing.assert_allclose(
        onnx_predict(onnx_session(tmp_path / "hard.onnx"), images), expected, atol=1e-5
    )
    votes = np.stack([p.argmax(1) for p in each])
    assert (votes[0] != votes[1]).any() and (votes[1] != votes[2]).any()  # the members disagree somewhere
    assert (expected.argmax(1) != soft_vote(each, weights).argmax(1)).any()  # and hard is not soft
    with pytest.raises(ValueError, match="soft vote only"):
        build_ensemble(members, weights, offsets=[1.0] * 18, vote="hard")


def test_a_member_of_several_checkpoints_averages_their_probabilities() -> None:
    images = np.random.default_rng(3).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    one, two = Fixed(0), Fixed(1)
    grouped = torch_predict(build_ensemble([build_member([one, two])], [1.0]), images)
    singles = [torch_predict(build_ensemble([m], [1.0]), images) for m in (one, two)]
    np.testing.assert_allclose(grouped, (singles[0] + singles[1]) / 2, atol=1e-6)


def test_a_detected_crop_shares_a_graph_only_at_its_own_crop_and_aspect_ratio() -> None:
    # the detected box is cut per photo at the input's aspect ratio: resizing it is exact, re-cutting is not
    assert input_for([(32, 24, "face_detect"), (64, 48, "face_detect")]) == InputSpec(64, 48, "face_detect")
    for sizes in ([(32, 24, "face_detect"), (32, 24, "face")], [(32, 24, "face_detect"), (32, 32, "face_detect")]):
        with pytest.raises(ValueError, match="'face_detect' crop share a bundle only with members of the same"):
            input_for(sizes)


@pytest.mark.parametrize("vote", VOTES.names())
def test_every_vote_in_torch_and_onnx_is_its_numpy_vote(tmp_path: Path, vote: str) -> None:
    spec = InputSpec(30, 20, "full")
    members = [build_member([Fixed(s)], None) for s in range(3)]
    weights = [0.5, 0.2, 0.3]
    rng = np.random.default_rng(3)
    images = (rng.integers(0, 200, (32, 1, 1, 3)) + rng.integers(0, 56, (32, 30, 20, 3))).astype(np.uint8)
    each = [torch_predict(build_ensemble([m], [1.0]), images) for m in members]
    net = build_ensemble(members, weights, vote=vote)
    export_onnx(net, tmp_path / f"{vote}.onnx", spec.height, spec.width)
    expected = combine(each, weights, vote)
    np.testing.assert_allclose(torch_predict(net, images), expected, atol=1e-5)
    np.testing.assert_allclose(onnx_predict(onnx_session(tmp_path / f"{vote}.onnx"), images), expected, atol=1e-5)


@pytest.mark.parametrize(("env", "allowed", "cores", "threads"),
                         [(None, 1, 2, 1), (None, 3, 16, 3), (None, 8, 8, 0), ("2", 1, 2, 2), ("x", 1, 4, 1)])
def test_an_onnx_session_runs_as_many_threads_as_the_process_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, allowed: int, cores: int, threads: int
) -> None:
    # onnxruntime's default is a thread per physical core, even under taskset: on one core of two, 1.6x slower
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(allowed)))
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    export_onnx(build_ensemble([build_member([Fixed(0)], None)], [1.0]), tmp_path / "one.onnx", 8, 8)
    session = onnx_session(tmp_path / "one.onnx")
    assert session.get_session_options().intra_op_num_threads == threads
    assert onnx_predict(session, np.zeros((2, 8, 8, 3), np.uint8)).shape == (2, 18)
