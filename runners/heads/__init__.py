"""How the classifier's logits become the 18 classes: the registry ``HEADS`` of named heads.

A head is written once, as the number of logits the backbone's classifier gives, the step from
those logits to the 18 class scores (whose softmax is the class probabilities: what validation,
the votes, the bundle and its ONNX graph read), and, for a head that learns the people's real
ages, its age logits and their loss. ``runners.models`` builds the head's step as a module
(``ClassScores``) with the head's constants as buffers; ``runners.training`` adds the age loss;
``TrialConfig`` and the spaces read the names and ``learns_age``.

A new head is one module of this package registering one ``Head`` (its modules are imported
here), plus its test and a line in docs/studies.md. Like the votes, a head's module imports no
torch: its torch functions take tensors, so that ``TrialConfig`` (and through it the study-file
parser and the bundle's loader) stays free of torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runners.registry import Registry


def no_constants(age_cutoff: int) -> dict[str, np.ndarray | int]:
    return {}


@dataclass(frozen=True)
class Head:
    """One head; the torch functions get the logits and the module holding ``constants`` as buffers."""

    name: str
    outputs: int  # logits the backbone's classifier gives
    class_scores: Callable[[Any, Any], Any]  # (logits, constants) -> (N, 18) scores; their softmax: the probabilities
    # from the trial's age_cutoff: arrays become buffers (they follow the model's device), ints attributes
    constants: Callable[[int], dict[str, np.ndarray | int]] = no_constants
    age_logits: Callable[[Any, Any], Any] | None = None  # (logits, constants) -> what age_loss trains
    age_loss: Callable[[Any, Any, Any], Any] | None = None  # (age_logits, ages, constants) -> mean loss

    def __post_init__(self) -> None:
        if (self.age_logits is None) != (self.age_loss is None):
            raise ValueError(f"head {self.name!r} must give both age_logits and age_loss, or neither.")

    @property
    def learns_age(self) -> bool:
        """Trains on the people's real ages: batches carry them and ``age_loss_weight`` means something."""
        return self.age_loss is not None


HEADS: Registry[Head] = Registry("head")

# Every module of this package registers its head: single (the default), multi and ordinal first,
# so that listings and messages name them in that order, then any others by name.
_FIRST = ["single", "multi", "ordinal"]
for _module in dict.fromkeys([*_FIRST, *sorted(m.name for m in pkgutil.iter_modules(__path__))]):
    importlib.import_module(f"{__name__}.{_module}")
