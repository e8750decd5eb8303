"""The whole ensemble procedure on a candidate pool: the honest estimate and the final choice.

Both ``python -m search.ensemble`` (which reports) and ``python -m search.export`` (which
ships the final choice) run it, so the estimate printed is the estimate of what is exported.
Candidates of every input size and crop compete: an exported graph gives each member its own
preprocessing (search/deploy/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.ensemble.candidates import CandidatePool
from search.ensemble.honest import (
    Choice,
    HonestReport,
    choice_probs,
    choose,
    format_table,
    honest_estimate,
    methods,
)
from search.ensemble.selection import Candidate, SelectionSettings, accuracy, macro_f1
from search.ensemble.votes import VoteSpec


@dataclass
class Outcome:
    study: str
    candidates: list[Candidate]
    honest: HonestReport  # chosen on one half of the validation people, scored on the other
    final: list[Choice]  # each method chosen on all validation people
    in_sample: dict[str, tuple[float, float]]  # final choices scored on all validation (optimistic)
    notes: list[str] = field(default_factory=list)
    eval_scores: dict[str, tuple[float, float]] | None = None  # bench eval labels, when known
    vote: VoteSpec = field(default_factory=VoteSpec)

    @property
    def methods(self) -> tuple[str, ...]:
        return methods(self.vote)

    def choice(self, method: str | None = None) -> Choice:
        """The final choice of ``method`` (default: the ensemble with the chosen vote)."""
        method = method or self.vote.method
        for c in self.final:
            if c.method == method:
                return c
        raise KeyError(f"no method {method!r}; methods are {list(self.methods)}.")

    def sizes_text(self) -> str:
        """The candidates' input sizes and crops, e.g. "32x32 full (3), 48x48 face (1)"."""
        counts: dict[tuple[int, int, str], int] = {}
        for c in self.candidates:
            counts[c.preprocessing] = counts.get(c.preprocessing, 0) + 1
        return ", ".join(f"{h}x{w} {crop} ({n})" for (h, w, crop), n in sorted(counts.items()))

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
                c.name: {
                    "height": c.preprocessing[0],
                    "width": c.preprocessing[1],
                    "crop": c.preprocessing[2],
                }
                for c in self.candidates
            },
            "vote": self.vote.to_dict(),
            "honest": self.honest.to_dict(),
            "final": [
                {
                    "method": c.method,
                    "vote": c.vote,
                    "members": [self.candidates[m].name for m in c.members],
                    "trials": [[self.candidates[m].study, self.candidates[m].number] for m in c.members],
                    "weights": list(c.weights),
                    "validation_macro_f1": self.in_sample[c.method][0],
                    "validation_accuracy": self.in_sample[c.method][1],
                    "decision_rule": {"tau": c.tau, "old_band_offset": c.old_band_offset} if c.offsets else None,
                }
                for c in self.final
            ],
            "eval_labels": None
            if self.eval_scores is None
            else {m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in self.eval_scores.items()},
            "notes": list(self.notes),
        }


def run_procedure(
    pool: CandidatePool,
    settings: SelectionSettings | None = None,
    mode: str = "cv",
    seed: int = 0,
    vote: VoteSpec | None = None,
) -> Outcome:
    settings = settings or SelectionSettings()
    vote = vote or VoteSpec()
    labels = np.asarray(pool.validation.labels, dtype=np.int64)
    candidates = list(pool.candidates)
    honest = honest_estimate(candidates, labels, pool.validation.people, settings, mode, seed, vote)
    final = choose(candidates, labels, settings, None, vote)
    in_sample = {}
    for c in final:
        probs = choice_probs(candidates, c)
        in_sample[c.method] = (macro_f1(labels, probs), accuracy(labels, probs))
    return Outcome(pool.study, candidates, honest, final, in_sample, list(pool.notes), vote=vote)
