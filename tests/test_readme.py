"""The README stays a short manual whose commands, links and set-up match the repository.

Also checks the pages it links to (docs/*.md, benchmarks/README.md): every ``python -m`` module
they name exists, every relative link points at a file of this repository, and every link to a
heading (``page.md#anchor``) finds that heading.
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


def anchored_links(text: str) -> set[tuple[str, str]]:
    """(path, anchor) of every link to a heading; path "" is the page itself."""
    pairs = set()
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        pairs.add((path, anchor))
    return pairs


def heading_anchors(text: str) -> set[str]:
    # GitHub's rule: lower case, punctuation other than - and _ dropped, spaces to hyphens.
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


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


@pytest.mark.parametrize("page", MANUAL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_to_a_heading_finds_it(page: Path) -> None:
    broken = []
    for path, anchor in sorted(anchored_links(page.read_text(encoding="utf-8"))):
        target = page.parent / path if path else page
        if target.suffix != ".md" or not target.exists():
            continue  # a missing file is test_every_relative_link_exists's to report
        if anchor not in heading_anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{path}#{anchor}")
    assert not broken, f"{page.relative_to(ROOT)} links to headings that do not exist: {broken}"


def test_readme_has_the_ci_install_command() -> None:
    # .ci/run installs "exactly as the README says": the two must not drift apart.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines()]
    install = [line for line in lines if line.startswith("python -m pip install -e")]
    assert install, ".ci/run has no 'python -m pip install -e' line"
    readme = README.read_text(encoding="utf-8")
    assert install[0] in readme, f"README.md lacks CI's set-up command {install[0]!r}; keep the two equal"


def test_the_checks_catch_what_they_look_for() -> None:
    text = (
        "run `python -m search.run --study x` then `python -m search.nonexistent_verb`.\n"
        "See [docs](docs/pruning.md#signal), [web](https://optuna.org) and [here](#top)."
    )
    assert python_modules(text) == {"search.run", "search.nonexistent_verb"}
    assert importlib.util.find_spec("search.nonexistent_verb") is None
    assert relative_links(text) == {"docs/pruning.md"}
    assert anchored_links(text) == {("docs/pruning.md", "signal"), ("", "top")}
    assert heading_anchors("## Harness overhead: one trial through `search.run` vs `runners.fit`\n") == {
        "harness-overhead-one-trial-through-searchrun-vs-runnersfit"
    }
