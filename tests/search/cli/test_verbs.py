"""``python -m search`` lists every verb, from the code: each module of search/verbs/ and runners.augment."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli.verbs import REPO, listing, verb_files, verb_summaries

VERBS = {"run", "worker", "report", "ensemble", "export", "predict", "refit", "clean", "synth", "realfaces"}
# search.worker's parser is search.run's with the worker's flags added, under its own name


def test_python_m_search_lists_every_verb_in_one_line_each() -> None:
    out = subprocess.run([sys.executable, "-m", "search"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for module, text in verb_summaries().items():
        assert sum(module in line and text in line for line in out.splitlines()) == 1, module
    assert {m.removeprefix("search.") for m in verb_files()} >= VERBS


@pytest.mark.parametrize("module", sorted(verb_files()))
def test_every_verb_runs_as_python_m_and_has_one_shape(module: str) -> None:
    verb = importlib.import_module(module)
    assert callable(verb.main) and "\n" not in verb.SUMMARY and verb.SUMMARY
    parser = verb.build_parser()
    assert isinstance(parser, argparse.ArgumentParser) and parser.prog == f"python -m {module}"
    source = verb_files()[module].read_text()
    assert 'if __name__ == "__main__":' in source, f"{module} cannot run as python -m {module}"


def test_a_verb_file_without_a_summary_is_named(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text('SUMMARY = "does a thing"\n')
    assert "search.good" in listing(tmp_path) and "does a thing" in listing(tmp_path)
    (tmp_path / "bad.py").write_text("def main():\n    return 0\n")
    with pytest.raises(ValueError, match=r"bad\.py has no SUMMARY"):
        listing(tmp_path)
