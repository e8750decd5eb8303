"""The verbs, read from the code: every module in search/verbs/ is one (``python -m search.<verb>``),
and so is ``runners.augment``. Each says what it does in one line, its module-level ``SUMMARY``,
which is read from the source so that listing the verbs imports none of them (nor torch)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERBS_DIR = REPO / "search" / "verbs"
OTHER_VERBS = {"runners.augment": REPO / "runners" / "augment.py"}  # runners/ cannot import search


def verb_files(verbs_dir: Path = VERBS_DIR) -> dict[str, Path]:
    """``"search.<verb>"`` -> its file, for every module of ``verbs_dir``, then the other verbs."""
    found = {f"search.{p.stem}": p for p in sorted(verbs_dir.glob("*.py")) if not p.stem.startswith("_")}
    return found | (OTHER_VERBS if verbs_dir == VERBS_DIR else {})


def summary(path: Path) -> str:
    """The ``SUMMARY = "..."`` string of ``path``; ValueError naming the file when it has none."""
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["SUMMARY"]
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise ValueError(f"{path} has no SUMMARY = \"...\" line: every verb says what it does in one line")


def verb_summaries(verbs_dir: Path = VERBS_DIR) -> dict[str, str]:
    return {module: summary(path) for module, path in verb_files(verbs_dir).items()}


def listing(verbs_dir: Path = VERBS_DIR) -> str:
    """What ``python -m search`` prints: one line per verb."""
    rows = verb_summaries(verbs_dir)
    width = max(len(m) for m in rows)
    lines = ["usage: python -m <verb> --help", ""] + [f"  {m:<{width}}  {text}" for m, text in rows.items()]
    return "\n".join(lines)
