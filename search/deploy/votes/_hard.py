"""hard: each member votes for its argmax class with its weight; a tie between the top classes is
broken by the soft vote. The result is returned as probabilities whose argmax is the decision: the
vote shares, with the tied top classes lifted to the top share plus ``TIE_SCALE`` x their soft
vote, renormalised; numpy and torch (and so the ONNX graph) compute the very same formula."""

from __future__ import annotations

from typing import Any

import numpy as np

from runners.classes import NUM_CLASSES
from search.deploy.votes import VOTES, Vote

TIE_TOLERANCE = 1e-6  # vote totals closer than this are a tie (weights are floats)
TIE_SCALE = 1e-6  # lift of a tied class per unit of its soft-vote probability


def resolve_ties(votes: np.ndarray, soft: np.ndarray) -> np.ndarray:
    top = votes.max(axis=1, keepdims=True)
    tied = votes >= top - TIE_TOLERANCE
    out = np.where(tied, top + TIE_SCALE * soft, votes)
    return out / out.sum(axis=1, keepdims=True)


def _torch_parts(p: Any) -> tuple[Any, Any]:
    # the member's argmax class as a one-hot row (a comparison, which ONNX exports plainly)
    onehot = (p >= p.max(dim=1, keepdim=True).values).to(p.dtype)
    return onehot, p


def _torch_decide(sums: tuple[Any, Any]) -> Any:
    import torch

    votes, soft = sums
    top = votes.max(dim=1, keepdim=True).values
    tied = votes >= top - TIE_TOLERANCE
    out = torch.where(tied, top + TIE_SCALE * soft, votes)
    return out / out.sum(dim=1, keepdim=True)


VOTES.add("hard", Vote(
    name="hard",
    summary="weighted majority of their classes, ties broken by the soft vote",
    label="hard vote",
    parts=lambda p: (np.eye(NUM_CLASSES)[p.argmax(1)], p),
    decide=lambda sums: resolve_ties(*sums),
    torch_parts=_torch_parts,
    torch_decide=_torch_decide,
))
