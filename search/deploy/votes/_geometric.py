"""geometric: the weighted geometric mean of the members' probabilities, renormalised
(``softmax(sum_i w_i log p_i)``); a member sure a class is wrong vetoes it more than in the mean."""

from __future__ import annotations

from typing import Any

import numpy as np

from search.deploy.votes import VOTES, Vote

EPS = 1e-7  # floor of a probability before its log, in numpy and torch alike


def _decide(sums: tuple[np.ndarray]) -> np.ndarray:
    logits = sums[0] - sums[0].max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def _torch_parts(p: Any) -> tuple[Any]:
    return (p.clamp_min(EPS).log(),)


def _torch_decide(sums: tuple[Any]) -> Any:
    return sums[0].softmax(dim=1)


VOTES.add("geometric", Vote(
    name="geometric",
    summary="weighted geometric mean of their probabilities, renormalised",
    label="geometric-mean vote",
    parts=lambda p: (np.log(np.maximum(p, EPS)),),
    decide=_decide,
    torch_parts=_torch_parts,
    torch_decide=_torch_decide,
))
