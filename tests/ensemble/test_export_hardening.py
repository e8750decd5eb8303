"""Issue 15: ``search.export --overwrite`` never deletes what a user owns: it replaces only a
bundle, checked through its manifest. Real exports of the tiny study, real folders on disk."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from search.export import main as export_main

from .conftest import TinyStudy


def snapshot(path: Path) -> dict[str, bytes | str]:
    """Every entry under ``path`` (or the file itself) with its bytes, or its link target."""
    if path.is_symlink():
        return {".": f"-> {path.readlink()}"}
    if path.is_file():
        return {".": path.read_bytes()}
    return {
        p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else "dir")
        for p in sorted(path.rglob("*"))
    }


def work_folder(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.mkdir()
    shutil.copyfile(tiny.workdir / "studies.db", out / "studies.db")
    (out / "cache").mkdir()
    (out / "cache" / "images.npy").write_bytes(b"\x93NUMPY cache")
    (out / "trials" / "tiny" / "trial_0000").mkdir(parents=True)
    (out / "trials" / "tiny" / "trial_0000" / "weights.safetensors").write_bytes(b"weights")


def folder_with_foreign_manifest(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "my web app", "version": "1.0"}))
    (out / "index.html").write_text("<h1>mine</h1>")


def bundle_holding_a_user_file(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    shutil.copytree(bundle, out)
    (out / "notes.txt").write_text("my notes on this ensemble")


def plain_file(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    out.write_text("a file the user owns")


def symlink_to_a_bundle(tiny: TinyStudy, bundle: Path, out: Path) -> None:
    target = out.with_name("real-bundle")
    shutil.copytree(bundle, target)
    out.symlink_to(target, target_is_directory=True)


NOT_BUNDLES: dict[str, Callable[[TinyStudy, Path, Path], None]] = {
    "work folder with studies.db": work_folder,
    "folder with another program's manifest.json": folder_with_foreign_manifest,
    "bundle holding a file the manifest does not list": bundle_holding_a_user_file,
    "a file": plain_file,
    "a symlink to a bundle": symlink_to_a_bundle,
}


@pytest.mark.parametrize("case", list(NOT_BUNDLES))
def test_overwrite_refuses_what_is_not_a_bundle_and_deletes_nothing(
    tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    out = tmp_path / "target"
    NOT_BUNDLES[case](tiny_study, bundle_dir, out)
    before = {p.name: snapshot(p) for p in tmp_path.iterdir()}
    argv = ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out), "--overwrite"]
    assert export_main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert f"--out {out} is not a bundle" in message and "nothing was deleted" in message
    assert "Choose another --out" in message and "\n" not in message and not error.exc_info
    assert {p.name: snapshot(p) for p in tmp_path.iterdir()} == before  # nothing deleted, nothing left
