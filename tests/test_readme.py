"""The README stays a short manual whose commands, links and set-up match the repository.

Also checks the pages it links to (docs/*.md, benchmarks/README.md): every ``python -m`` module
they name exists, and every relative link points at a file of this repository.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 260  # a user's manual; history goes to benchmarks/README.md, rationale to docs/
MANUAL_PAGES = [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_MODULE = re.compile(r"python -m\s+([A-Za-z_][\w.]*[A-Za-z0-9_])")  # \s: a command may wrap
# [text](target): a target without a scheme is a path relative to the page (an #anchor may follow).
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_modules(text: str) -> set[str]:
    return set(_MODULE.findall(text))


def relative_links(text: str) -> set[str]:
    targets = set()
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        targets.add(target.split("#", 1)[0])
    return targets


def test_readme_is_a_short_manual() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, more than {MAX_README_LINES}: move measurements to "
        "benchmarks/README.md and design notes to docs/."
    )


@pytest.mark.parametrize("page", MANUAL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_m_module_exists(page: Path) -> None:
    modules = python_modules(page.read_text(encoding="utf-8"))
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, f"{page.relative_to(ROOT)} names modules that do not exist: {missing}"


@pytest.mark.parametrize("page", MANUAL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_exists(page: Path) -> None:
    targets = relative_links(page.read_text(encoding="utf-8"))
    missing = sorted(t for t in targets if not (page.parent / t).exists())
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_readme_has_the_ci_install_command() -> None:
    # .ci/run installs "exactly as the README says": the two must not drift apart.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = [line.strip() for line in ci.splitlines() if line.strip().startswith("python -m pip install -e")]
    assert install, ".ci/run has no 'python -m pip install -e' line"
    assert install[0] in README.read_text(encoding="utf-8"), f"README.md lacks CI's set-up command {install[0]!r}"


def test_the_checks_catch_what_they_look_for() -> None:
    text = "run `python -m search.run --study x` then `python -m search.nonexistent_verb`.\n" \
        "See [docs](docs/pruning.md#signal), [web](https://optuna.org) and [here](#top)."
    assert python_modules(text) == {"search.run", "search.nonexistent_verb"}
    assert importlib.util.find_spec("search.nonexistent_verb") is None
    assert relative_links(text) == {"docs/pruning.md"}
