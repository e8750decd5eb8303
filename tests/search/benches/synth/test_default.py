"""The synthetic data is the default data, generated once into data/synthetic and reused."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import pytest

from search.benches.synth.default import ENV_VAR, default_data_root, ensure_synthetic_data
from search.data import DataError, load_eval, load_train
from tests.search.data.conftest import Layout, build_layout


@pytest.fixture
def layout_builder():
    return build_layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return build_layout(tmp_path / "data0")


def real_or_tiny_generator(layout_builder):
    """search.benches.synth.generate when the synth package is present, else a tiny stand-in."""
    try:
        from search.benches.synth import generate

        return lambda out_dir, people=24, seed=0: generate(out_dir, people=people, size=(32, 48), seed=seed)
    except ImportError:
        return lambda out_dir, people=24, seed=0: layout_builder(Path(out_dir), eval_images=3).root


@pytest.fixture
def counted(monkeypatch, layout_builder):
    """Install a counting generator as search.benches.synth.generate; returns the call list."""
    calls: list[Path] = []
    inner = real_or_tiny_generator(layout_builder)

    def generate(out_dir: Path, people: int = 24, seed: int = 0) -> Path:
        calls.append(Path(out_dir))
        time.sleep(0.2)  # long enough for a concurrent caller to find the lock taken
        return inner(out_dir, people=people, seed=seed)

    monkeypatch.setitem(sys.modules, "search.benches.synth", types.SimpleNamespace(generate=generate))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return calls


def test_generates_on_first_use_then_reuses(counted, tmp_path: Path) -> None:
    root = default_data_root(tmp_path / "data", people=24)
    assert root == (tmp_path / "data" / "synthetic").resolve()
    assert len(counted) == 1 and counted[0].parent == root.parent and counted[0].name.startswith(".synthetic.tmp")
    data = load_train(root)
    assert len(data.people) > 0 and len(load_eval(root).info) > 0
    assert default_data_root(tmp_path / "data") == root and len(counted) == 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["synthetic", "synthetic.lock"]


def test_concurrent_first_use_generates_once(counted, tmp_path: Path) -> None:
    got: list[Path] = []
    threads = [
        threading.Thread(target=lambda: got.append(default_data_root(tmp_path / "d", people=24)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 2 and got[0] == got[1] and len(counted) == 1


def test_interrupted_generation_is_never_reused(monkeypatch, tmp_path: Path, counted) -> None:
    good = sys.modules["search.benches.synth"].generate

    def dies_half_way(out_dir: Path, people: int = 24, seed: int = 0) -> Path:
        (Path(out_dir) / "train").mkdir(parents=True)
        (Path(out_dir) / "train" / "train.csv").write_text("id,gender,race,age,path\n")
        raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "search.benches.synth", types.SimpleNamespace(generate=dies_half_way))
    with pytest.raises(KeyboardInterrupt):
        default_data_root(tmp_path / "data", people=24)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["synthetic.lock"]
    monkeypatch.setitem(sys.modules, "search.benches.synth", types.SimpleNamespace(generate=good))
    root = default_data_root(tmp_path / "data", people=24)
    assert len(load_train(root).images) > 0


def test_env_var_points_at_the_users_data(monkeypatch, tmp_path: Path, layout) -> None:
    monkeypatch.setenv(ENV_VAR, str(layout.root))
    assert default_data_root(tmp_path / "data") == layout.root.resolve()
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DataError, match=f"{ENV_VAR}=.*is not a folder"):
        default_data_root(tmp_path / "data")


def test_foreign_folder_in_the_way_is_not_overwritten(counted, tmp_path: Path) -> None:
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "data" / "synthetic" / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="delete it so the synthetic data can be generated again"):
        default_data_root(tmp_path / "data")
    assert (tmp_path / "data" / "synthetic" / "mine.txt").read_text() == "keep me" and counted == []


def test_data_from_before_the_rename_is_used_in_place_and_named(counted, tmp_path: Path, caplog) -> None:
    legacy = ensure_synthetic_data(tmp_path / "old", people=24)
    (tmp_path / "data").mkdir()
    legacy.rename(tmp_path / "data" / "bench")  # where earlier versions generated it
    with caplog.at_level("INFO", logger="search.benches.synth.default"):
        root = default_data_root(tmp_path / "data")
    assert root == (tmp_path / "data" / "bench").resolve() and len(counted) == 1, "used, not drawn again"
    assert str(root) in caplog.text and "synthetic" in caplog.text
    assert not (tmp_path / "data" / "synthetic").exists()


def test_incomplete_folder_from_before_the_rename_is_not_used(counted, tmp_path: Path) -> None:
    (tmp_path / "data" / "bench" / "train").mkdir(parents=True)
    root = default_data_root(tmp_path / "data", people=24)
    assert root == (tmp_path / "data" / "synthetic").resolve() and len(counted) == 1


def test_the_main_command_s_data_is_drawn_at_the_demo_size(monkeypatch, tmp_path: Path, layout_builder) -> None:
    from search.benches.synth.default import DEMO_PEOPLE

    asked: list[int] = []

    def generate(out_dir: Path, people: int = 300, seed: int = 0) -> Path:
        asked.append(people)
        return layout_builder(Path(out_dir), eval_images=3).root

    monkeypatch.setitem(sys.modules, "search.benches.synth", types.SimpleNamespace(generate=generate))
    monkeypatch.delenv(ENV_VAR, raising=False)
    default_data_root(tmp_path / "data")
    assert asked == [DEMO_PEOPLE] and DEMO_PEOPLE < 300
