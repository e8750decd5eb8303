"""Ensemble selection over a study's trials (numpy + scikit-learn) and its honest estimate.

``python -m search.ensemble --study FILE`` (or ``--name NAME``) prints the comparison table; see
:mod:`search.ensemble`. Votes (soft or hard, learned or given weights) are in
:mod:`search.ensembling.votes`.
"""

from __future__ import annotations

from search.ensembling.honest import (
    METHODS,
    Choice,
    HonestReport,
    choose,
    honest_estimate,
    methods,
    person_halves,
)
from runners.metrics import accuracy, macro_f1
from search.ensembling.selection import (
    Candidate,
    Selection,
    SelectionSettings,
    rank_singles,
    select,
    top_k,
)
from search.ensembling.votes import VOTES, VoteSpec, combine, hard_vote, soft_vote

__all__ = [
    "METHODS",
    "VOTES",
    "Candidate",
    "Choice",
    "HonestReport",
    "Selection",
    "SelectionSettings",
    "VoteSpec",
    "accuracy",
    "choose",
    "combine",
    "hard_vote",
    "honest_estimate",
    "macro_f1",
    "methods",
    "person_halves",
    "rank_singles",
    "select",
    "soft_vote",
    "top_k",
]
