"""benchmarks/attacks.py on a few of its cases: the issue-23 findings hold, the script saves JSON.

The world is cheap here: the benchmark tests' tiny bench and a one-member bundle of an untrained
timm test model (no study is trained); the cases chosen need no finished study.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import attacks

# the findings of issue 23 that this branch fixes, and the study-file group whole (it is fast)
CHOSEN = (
    "study files",
    "member weight 1.7e308",
    "decision offset +1e300",
    "decision offset -1e300",
    "config head_hidden 1e13",
    "config backbone a number",
    "NUL byte in a file path",
    "member weights swapped, checksum updated",
    "onnx: garbage graph, checksum updated",
    "onnx: another bundle's graph of the same size, checksum updated",
    "predict: info.csv in Latin-1",
    "repeated person ids are named in a warning",
)


@pytest.fixture(scope="module")
def world(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> attacks.World:
    root = tmp_path_factory.mktemp("attacks")
    shutil.copytree(tiny_bench, root / "bench")
    bundle = attacks._other_bundle(None, root, height=32, width=32, seed=0)  # the cases' other bundle has seed 1
    shutil.move(bundle, root / "bundle")
    world = attacks.build_world(root)  # reuses the bench and the bundle; writes the study file
    assert world.bundle == root / "bundle"
    return world


def test_there_are_at_least_150_cases_in_every_group() -> None:
    groups = {c.group for c in attacks.CASES}
    assert len(attacks.CASES) >= 150
    assert groups == {"study files", "data", "storage URLs", "bundles", "outputs", "signals", "disk full", "flags"}
    assert len({(c.group, c.name) for c in attacks.CASES}) == len(attacks.CASES), "names are unique"


def test_the_fixed_findings_hold(world: attacks.World, tmp_path: Path) -> None:
    cases = attacks.select(attacks.CASES, CHOSEN)
    assert len(cases) >= 50
    rows = attacks.run_cases(world, cases, tmp_path)
    failed = [f"{r['case']}: {r['detail']}" for r in rows if r["outcome"] != "held"]
    assert not failed, failed


def test_a_case_that_does_not_hold_is_reported_with_what_happened(world: attacks.World, tmp_path: Path) -> None:
    def lenient(w: attacks.World, tmp: Path) -> None:  # exit 0 where a refusal was expected
        attacks.refused(attacks.Result(0, "", "", []), "x")

    (row,) = attacks.run_cases(world, [attacks.Case("flags", "demo", lenient)], tmp_path)
    assert row["outcome"] == "failed" and row["detail"] == "exit 0 (expected a refusal)"


def test_the_script_prints_the_table_and_saves_json(world: attacks.World, tmp_path: Path, capsys) -> None:
    code = attacks.main(["--only", "binary file", "empty file", "--work-root", str(world.root),
                         "--results-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| binary file" in out and "2 of 2 cases held" in out
    saved = json.loads((tmp_path / "attacks.json").read_text())
    assert saved["figures"]["held"] == 2 and saved["figures"]["failed"] == 0
    assert {r["case"] for r in saved["figures"]["cases"]} == {"binary file", "empty file"}
