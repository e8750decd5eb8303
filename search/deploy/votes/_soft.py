"""soft: the weighted mean of the members' probabilities (the default)."""

from __future__ import annotations

from search.deploy.votes import VOTES, Vote

VOTES.add("soft", Vote(
    name="soft",
    summary="weighted mean of the members' probabilities",
    label="",
    parts=lambda p: (p,),
    decide=lambda sums: sums[0],
    torch_parts=lambda p: (p,),
    torch_decide=lambda sums: sums[0],
    takes_decision_rule=True,
))
