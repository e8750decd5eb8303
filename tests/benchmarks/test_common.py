"""The shared benchmark helpers: tables, JSON results, benches, study files."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common, ensemble, harness_overhead, pruning
from search.studyfile.parse import load_study_spec


def test_table_aligns_columns_and_formats_floats() -> None:
    text = common.table(["name", "value"], [["a", 1234.5678], ["long name", 0.000123]]).splitlines()
    assert text[0] == "| name      | value    |"
    assert text[2] == "| a         | 1235     |"
    assert text[3] == "| long name | 0.000123 |"
    assert len({len(line) for line in text}) == 1


def test_save_result_writes_every_section(tmp_path: Path) -> None:
    machine = common.machine("cpu")
    path = common.save_result("demo", inputs={"p": Path("x")}, figures={"rate": 2.5}, machine_info=machine,
                              notes=["n"], results_dir=tmp_path)
    saved = json.loads(path.read_text())
    assert path == tmp_path / "demo.json"
    assert saved["benchmark"] == "demo" and saved["inputs"] == {"p": "x"} and saved["figures"] == {"rate": 2.5}
    assert saved["machine"]["device"] == "cpu" and saved["machine"]["torch"]
    assert saved["notes"] == ["n"] and saved["command"].startswith("python")
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]  # no temporary file left


def test_ensure_bench_reuses_a_matching_bench_and_refuses_another(tiny_bench: Path) -> None:
    assert common.ensure_bench(tiny_bench, 72, (48, 64), 0) == tiny_bench
    with pytest.raises(ValueError, match=r"people=72.*people=80"):
        common.ensure_bench(tiny_bench, 80, (48, 64), 0)


def test_ensure_bench_refuses_a_half_written_folder(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ValueError, match="not a finished bench"):
        common.ensure_bench(tmp_path, 72, (48, 64), 0)


def test_bench_dir_names_the_full_bench() -> None:
    assert common.bench_dir(2700, (384, 512), 0).name == "bench_full"
    assert common.bench_dir(300, (96, 128), 1).name == "bench_96x128_p300_s1"


def test_write_toml_round_trips(tmp_path: Path) -> None:
    doc = {"a": {"s": 'q"uote', "b": True, "f": 0.5, "l": [1, "x"], "t": {"low": 1e-3, "high": 3e-2, "log": True}}}
    path = common.write_toml(tmp_path / "x.toml", doc)
    assert tomllib.loads(path.read_text()) == doc


def _args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    return parser.parse_args(argv)


@pytest.mark.parametrize("script", ["harness", "pruning_none", "pruning_hyperband", "ensemble"])
def test_study_files_written_by_the_scripts_are_valid_studies(script: str, tmp_path: Path) -> None:
    if script == "harness":
        args = _args(harness_overhead.build_parser(), [])
        config = harness_overhead.trial_config(args)
        spec = load_study_spec(harness_overhead.study_file(tmp_path / "h.toml", config))
        assert spec.base_config() == config and spec.pruner.name == "none" and spec.n_trials == 1
        return
    if script.startswith("pruning"):
        pruner = script.split("_", 1)[1]
        doc = pruning.study_doc(_args(pruning.build_parser(), []), pruner)
    else:
        doc = ensemble.study_doc(_args(ensemble.build_parser(), []))
    spec = load_study_spec(common.write_toml(tmp_path / f"{script}.toml", doc))
    assert spec.n_trials == doc["study"]["n_trials"]
    assert set(spec.params) == set(doc["params"])
    if script.startswith("pruning"):
        assert spec.pruner.name == pruner and spec.base_config().patience == spec.base_config().epochs


def test_people_sd_resamples_whole_people() -> None:
    people = np.repeat(np.arange(100), 2)  # two rows a person
    value = np.repeat(np.arange(100) % 2, 2).astype(float)  # half the people score 1

    def share(rows: np.ndarray) -> float:
        counts = np.bincount(people[rows], minlength=100)
        assert np.all(counts % 2 == 0), "a person's rows are drawn together"
        return float(value[rows].mean())

    assert common.people_sd(share, people) == pytest.approx(0.05, abs=0.01)  # sqrt(0.25 / 100)
    assert common.people_sd(lambda rows: 0.7, people) == 0.0
