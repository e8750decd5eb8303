"""search.deploy.manifest: the dataclass writes what it reads back, and refuses what it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.deploy.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    InputSpec,
    Manifest,
    Member,
    MemberPreprocessing,
)


def a_bundle(root: Path, **changes: object) -> Manifest:
    (root / "members").mkdir(parents=True)
    (root / "members" / "0-0.safetensors").write_bytes(b"fold 0")
    (root / "members" / "0-1.safetensors").write_bytes(b"fold 1")
    (root / "members" / "1.safetensors").write_bytes(b"single")
    (root / "ensemble.onnx").write_bytes(b"graph")
    members = [
        Member(
            "s#3 folds",
            ("members/0-0.safetensors", "members/0-1.safetensors"),
            0.25,
            {"height": 32, "width": 24, "crop": "face"},
            MemberPreprocessing(32, 24, "face", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
            "s",
            3,
            0.71,
        ),
        Member(
            "s#7",
            ("members/1.safetensors",),
            0.75,
            {"height": 48, "width": 48, "crop": "full"},
            MemberPreprocessing(48, 48, "full", (0.4, 0.4, 0.4), (0.2, 0.2, 0.2)),
        ),
    ]
    fields = {"members": members, "input": InputSpec(48, 48, "full"), "vote": "hard", "weights_from": "given",
              "probe": ((1 / 18,) * 18,) * 2}
    return Manifest(**{**fields, **changes}).write(root)  # type: ignore[arg-type]


def test_a_written_manifest_reads_back_equal(tmp_path: Path) -> None:
    written = a_bundle(tmp_path, extra={"source": {"data_root": "data"}})
    read = Manifest.read(tmp_path)
    assert read == written and read.format_version == FORMAT_VERSION
    assert read.members[0].checkpoints == ("members/0-0.safetensors", "members/0-1.safetensors")
    assert read.extra == {"source": {"data_root": "data"}}
    assert set(read.files) == {
        "ensemble.onnx",
        "members/0-0.safetensors",
        "members/0-1.safetensors",
        "members/1.safetensors",
    }
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["vote"] == {"kind": "hard", "weights": "given"}
    assert raw["members"][1]["preprocessing"] == {
        "height": 48,
        "width": 48,
        "crop": "full",
        "mean": [0.4] * 3,
        "std": [0.2] * 3,
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary manifest left


def test_a_bundle_of_the_previous_format_asks_for_a_new_export(tmp_path: Path) -> None:
    a_bundle(tmp_path)
    path = tmp_path / MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 2}))
    with pytest.raises(
        BundleError, match=r"format_version 2, .*reads format 3 only; export the bundle again"
    ):
        Manifest.read(tmp_path)


def test_a_changed_checkpoint_of_a_member_group_is_caught(tmp_path: Path) -> None:
    a_bundle(tmp_path)
    (tmp_path / "members" / "0-1.safetensors").write_bytes(b"fold 9")
    with pytest.raises(BundleError, match=r"checksum mismatch for .*0-1\.safetensors"):
        Manifest.read(tmp_path)
    Manifest.read(tmp_path, verify=False)  # the structure alone is fine


def test_where_the_weights_came_from_is_validated(tmp_path: Path) -> None:
    a_bundle(tmp_path)
    path = tmp_path / MANIFEST
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "vote": {"kind": "soft", "weights": "guessed"}})
    )
    with pytest.raises(BundleError, match=r"vote\.weights must be one of \['learned', 'given'\]"):
        Manifest.read(tmp_path)


def test_the_decision_rule_keeps_its_old_band_offset_and_refuses_a_bad_one(tmp_path: Path) -> None:
    offsets = tuple([0.1, -0.2, 1.4] * 6)
    written = a_bundle(tmp_path, vote="soft", offsets=offsets, rule={"tau": 0.3, "old_band_offset": 1.25})
    read = Manifest.read(tmp_path)
    assert read == written and read.rule == {"tau": 0.3, "old_band_offset": 1.25} and read.offsets == offsets
    path = tmp_path / MANIFEST
    raw = json.loads(path.read_text())
    assert raw["decision_rule"] == {"offsets": list(offsets), "tau": 0.3, "old_band_offset": 1.25,
                                    "applied": "inside the ONNX graph"}
    raw["decision_rule"]["old_band_offset"] = "a lot"
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=r"decision_rule\.old_band_offset"):
        Manifest.read(tmp_path)
    del raw["decision_rule"]["old_band_offset"], raw["decision_rule"]["tau"]  # offsets alone still read
    path.write_text(json.dumps(raw))
    assert Manifest.read(tmp_path).rule == {}
