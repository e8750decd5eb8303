"""The whole ensemble procedure on a candidate pool: the honest estimate and the final choice.

Both ``python -m search.ensemble`` (which reports) and ``python -m search.export`` (which
ships the final choice) run it, so the estimate printed is the estimate of what is exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.ensemble.candidates import CandidatePool, restrict_preprocessing
from search.ensemble.honest import (
    METHODS,
    Choice,
    HonestReport,
    choice_probs,
    choose,
    format_table,
    honest_estimate,
)
from search.ensemble.selection import Candidate, SelectionSettings, accuracy, macro_f1


@dataclass
class Outcome:
    study: str
    candidates: list[Candidate]  # after the preprocessing restriction
    preprocessing: tuple[int, int, str]  # (height, width, crop) shared by every candidate
    honest: HonestReport  # chosen on one half of the validation people, scored on the other
    final: list[Choice]  # each method chosen on all validation people
    in_sample: dict[str, tuple[float, float]]  # final choices scored on all validation (optimistic)
    notes: list[str] = field(default_factory=list)
    eval_scores: dict[str, tuple[float, float]] | None = None  # bench eval labels, when known

    def choice(self, method: str = METHODS[-1]) -> Choice:
        for c in self.final:
            if c.method == method:
                return c
        raise KeyError(f"no method {method!r}; methods are {list(METHODS)}.")

    def members_text(self, choice: Choice) -> str:
        return ", ".join(
            f"{self.candidates[m].name} ({w:.2f})"
            for m, w in zip(choice.members, choice.weights, strict=True)
        )

    def table(self) -> str:
        honest_title = f"held-out ({self.honest.mode})"
        columns = {
            honest_title: {s.method: (s.macro_f1, s.accuracy) for s in self.honest.scores},
            "all validation (in-sample)": self.in_sample,
        }
        if self.eval_scores is not None:
            columns["bench eval labels"] = self.eval_scores
        return format_table(columns, {c.method: self.members_text(c) for c in self.final})

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "candidates": [c.name for c in self.candidates],
            "preprocessing": {
                "height": self.preprocessing[0],
                "width": self.preprocessing[1],
                "crop": self.preprocessing[2],
            },
            "honest": self.honest.to_dict(),
            "final": [
                {
                    "method": c.method,
                    "members": [self.candidates[m].name for m in c.members],
                    "trials": [[self.candidates[m].study, self.candidates[m].number] for m in c.members],
                    "weights": list(c.weights),
                    "validation_macro_f1": self.in_sample[c.method][0],
                    "validation_accuracy": self.in_sample[c.method][1],
                }
                for c in self.final
            ],
            "eval_labels": None
            if self.eval_scores is None
            else {m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in self.eval_scores.items()},
            "notes": list(self.notes),
        }


def run_procedure(
    pool: CandidatePool, settings: SelectionSettings | None = None, mode: str = "cv", seed: int = 0
) -> Outcome:
    settings = settings or SelectionSettings()
    labels = np.asarray(pool.validation.labels, dtype=np.int64)
    candidates, prep, dropped = restrict_preprocessing(pool.candidates, labels)
    honest = honest_estimate(candidates, labels, pool.validation.people, settings, mode, seed)
    final = choose(candidates, labels, settings)
    in_sample = {}
    for c in final:
        probs = choice_probs(candidates, c)
        in_sample[c.method] = (macro_f1(labels, probs), accuracy(labels, probs))
    return Outcome(pool.study, candidates, prep, honest, final, in_sample, list(pool.notes) + dropped)
