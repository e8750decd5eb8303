"""The bundle manifest: one dataclass that writes ``manifest.json`` and reads it back, validated.

    <bundle>/
        manifest.json                format version, input, vote, members, class map, metrics,
                                     sha256 of every other file
        members/<k>.safetensors      member k's weights (TrialModel state dict; never pickle);
        members/<k>-<j>.safetensors  a member of several checkpoints (e.g. fold models), averaged
        ensemble.onnx                uint8 NHWC RGB batch -> the vote's class probabilities (N, 18)

The photos enter as uint8 RGB arrays at the bundle's ``input`` size and crop, made by
``search.data.load_image`` (crop, then resize): the very function the training cache uses.
Each member then takes its own crop and size from that array and normalises it inside the
graph (search/deploy/graph.py), so members of different input sizes and crops share one graph.

Reading checks the format version, every field's type and value (one BundleError naming the
file and the field), that no file entry leaves the bundle folder, and (``verify``) every file's
sha256. Only json, hashlib, the crop table and runners/config.py (plain data) are needed here.
The probe (the ensemble's output on a fixed batch at export) is checked by search/deploy/bundle.py
when a backend is first built, not here, so reading stays as cheap as a JSON parse.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.classes import NUM_CLASSES, class_table
from search.deploy.votes import VOTES
from search.common.atomic import write_text
from search.data.cache import CROPS, crop_box, crop_problem

FORMAT_VERSION = 3  # 2: per-member preprocessing, the vote, fold groups; 3: the probe
MANIFEST = "manifest.json"
ONNX_FILE = "ensemble.onnx"
MEMBERS_DIR = "members"
INPUT_NAME = "images"
OUTPUT_NAME = "probs"
WEIGHTS_FROM = ("learned", "given")  # learned on the selection people, or given with --weights
MAX_SIDE = 4096
MAX_WEIGHT = 1e6  # a member's vote weight (the same as search.ensembling.votes.MAX_WEIGHT)
MAX_OFFSET = 100.0  # |decision offset|: fitted ones are a few units (log-prior shifts); beyond this only NaN
PROBE_IMAGES = 2  # rows of the probe batch (search.deploy.graph.probe_images) recorded at export
_REQUIRED = ("format_version", "members", "preprocessing", "vote", "classes", "probe", "files")
_SHA256_HEX = frozenset("0123456789abcdef")
DECODE = "search.data.load_image: crop the named box of the photo, then PIL bilinear resize"


class BundleError(ValueError):
    """A bundle folder is missing a file, was altered, or is of a format this code cannot read."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def class_map() -> list[dict[str, Any]]:
    """The classes with their mask, gender and age text (runners/classes.py)."""
    return class_table()


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# the dataclasses


@dataclass(frozen=True)
class InputSpec:
    """What the caller hands the graph: photos decoded by load_image at this size and crop."""

    height: int
    width: int
    crop: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "crop": self.crop,
            "layout": "NHWC",
            "dtype": "uint8",
            "color": "RGB",
            "decode": DECODE,
        }


@dataclass(frozen=True)
class MemberPreprocessing:
    """What one member does inside the graph to the input: its crop box, a bilinear resize to its
    size (none when it equals the input), then ``(x / 255 - mean) / std``."""

    height: int
    width: int
    crop: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def size(self) -> tuple[int, int, str]:
        return self.height, self.width, self.crop

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class Member:
    """One voter: one or more checkpoints of one architecture (their softmax averaged), with its
    preprocessing and its weight in the vote."""

    name: str  # e.g. "age_cutoff#12"; a group of fold models gets one name
    checkpoints: tuple[str, ...]  # bundle-relative safetensors files
    weight: float
    config: dict[str, Any]  # the TrialConfig dict the checkpoints were trained with
    preprocessing: MemberPreprocessing
    study: str | None = None
    trial: int | None = None
    validation_macro_f1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "study": self.study,
            "trial": self.trial,
            "checkpoints": list(self.checkpoints),
            "weight": self.weight,
            "validation_macro_f1": self.validation_macro_f1,
            "preprocessing": self.preprocessing.to_dict(),
            "config": self.config,
        }


@dataclass
class Manifest:
    """Everything a bundle says about itself; ``write`` adds the files' sha256, ``read`` checks them."""

    members: list[Member]
    input: InputSpec
    vote: str = "soft"
    weights_from: str = "learned"  # "learned" (on the selection people) or "given" (--weights)
    offsets: tuple[float, ...] | None = None  # the macro-F1 decision rule; None: the vote's argmax
    rule: dict[str, float] = field(default_factory=dict)  # the rule's tau and old_band_offset, when known
    study: str | None = None
    created: str = field(default_factory=now_iso)
    opset: int = 17
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the data the study was run on
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256; filled by write
    # the ensemble's probabilities on graph.probe_images at export; each backend is checked against
    # them on first use, so a swapped graph or weight file with its checksum updated is caught
    probe: tuple[tuple[float, ...], ...] = ()
    format_version: int = FORMAT_VERSION

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.members]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created": self.created,
            "study": self.study,
            "preprocessing": self.input.to_dict(),
            "vote": {"kind": self.vote, "weights": self.weights_from},
            "members": [m.to_dict() for m in self.members],
            "classes": class_map(),
            # argmax of softmax(log(vote) + offsets): the rule that maximises macro-F1, fitted on validation
            "decision_rule": None
            if self.offsets is None
            else {"offsets": list(self.offsets), **self.rule, "applied": "inside the ONNX graph"},
            "onnx": {
                "file": ONNX_FILE,
                "opset": self.opset,
                "input": INPUT_NAME,
                "output": OUTPUT_NAME,
                "batch": "dynamic",
            },
            "probe": {"images": "search.deploy.graph.probe_images", "probs": [list(r) for r in self.probe]},
            "metrics": self.metrics,
            **self.extra,
            "files": self.files,
        }

    def write(self, root: Path) -> Manifest:
        """Record the sha256 of every file under ``root`` (but the manifest) and write manifest.json."""
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
        self.files = {p.relative_to(root).as_posix(): sha256_file(p) for p in found}
        write_text(root / MANIFEST, json.dumps(self.to_dict(), indent=2) + "\n")
        return self

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> Manifest:
        """A validated Manifest, or a BundleError naming ``path`` and the first wrong field."""
        if not isinstance(raw, dict):
            raise BundleError(f"{path} must hold a JSON object but holds {type(raw).__name__}; export again.")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{path} has format_version {version!r}, but this version of search reads format "
                f"{FORMAT_VERSION} only; export the bundle again with this version, or use the version "
                "of search that wrote it."
            )
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise BundleError(
                f"{path}: lacks the keys {missing}; the file was altered or truncated, export the bundle again."
            )
        files = _files(raw["files"], path)
        spec = _input(raw["preprocessing"], path)
        vote = raw["vote"]
        if not isinstance(vote, dict) or vote.get("kind") not in VOTES:
            kind = vote.get("kind") if isinstance(vote, dict) else vote
            raise _field_error(path, "vote.kind", kind, f"one of {VOTES.names()}")
        if vote.get("weights") not in WEIGHTS_FROM:
            raise _field_error(path, "vote.weights", vote.get("weights"), f"one of {list(WEIGHTS_FROM)}")
        members = _members(raw["members"], files, spec, path)
        classes = raw["classes"]
        if not isinstance(classes, list) or len(classes) != NUM_CLASSES:
            raise _field_error(path, "classes", classes, f"a list of the {NUM_CLASSES} classes")
        offsets = _decision_rule(raw.get("decision_rule"), path)
        rule = _rule_parts(raw.get("decision_rule"), path) if offsets is not None else {}
        if offsets is not None and not VOTES.get(vote["kind"]).takes_decision_rule:
            raise BundleError(
                f"{path}: decision_rule is set with a {vote['kind']} vote; the rule shifts a soft vote's "
                "probabilities only. The manifest was altered, export the bundle again."
            )
        probe = _probe(raw["probe"], path)
        known = {*_REQUIRED, "created", "study", "decision_rule", "onnx", "metrics"}
        onnx = raw.get("onnx") if isinstance(raw.get("onnx"), dict) else {}
        return cls(
            members=members,
            input=spec,
            vote=vote["kind"],
            weights_from=vote["weights"],
            offsets=offsets,
            rule=rule,
            study=raw.get("study"),
            created=str(raw.get("created", "")),
            opset=int(onnx.get("opset", 17)) if _is_int(onnx.get("opset", 17)) else 17,
            metrics=raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {},
            extra={k: v for k, v in raw.items() if k not in known},
            files=files,
            probe=probe,
            format_version=version,
        )

    @classmethod
    def read(cls, root: Path | str, verify: bool = True) -> Manifest:
        """The manifest of a bundle folder, validated; with ``verify`` every listed file's sha256
        is checked too."""
        root = Path(root)
        path = root / MANIFEST
        if not root.is_dir():
            raise BundleError(
                f"bundle folder {root} does not exist; pass the folder written by python -m search.export."
            )
        if not path.is_file():
            raise BundleError(
                f"{path} is missing: {root} is not a bundle (export one with python -m search.export)."
            )
        bundle_file(root, MANIFEST, path)  # a manifest symlinked from elsewhere is not this bundle's
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path} is not readable JSON ({exc}); export the bundle again.") from exc
        manifest = cls.from_dict(raw, path)
        if verify:
            for rel in manifest.files:
                read_checked(root, manifest, rel)
        return manifest


# ------------------------------------------------------------------------------------------------
# files: inside the bundle, listed, checksummed


def bundle_file(root: Path, rel: str, manifest_path: Path) -> Path:
    """``root / rel`` after refusing a path that leaves the bundle folder (``..``, absolute, a
    symlink pointing elsewhere): a bundle reads nothing outside its own folder."""
    inside = Path(os.path.realpath(root))
    if not isinstance(rel, str) or not rel or "\x00" in rel or Path(rel).is_absolute():
        raise BundleError(
            f"{manifest_path}: file entry {rel!r} is not a relative path inside the bundle; "
            "export the bundle again."
        )
    target = Path(os.path.realpath(inside / rel))
    if not target.is_relative_to(inside):
        raise BundleError(
            f"{manifest_path}: file entry {rel!r} resolves to {target}, outside the bundle folder "
            f"{inside}; a bundle reads only its own files, export it again."
        )
    return root / rel


def read_checked(root: Path, manifest: Manifest, rel: str) -> bytes:
    """The bytes of bundle file ``rel`` after checking them against the manifest's sha256.

    The very bytes that were hashed are the ones used, so a file swapped after loading is
    caught too.
    """
    path = root / MANIFEST
    expected = manifest.files.get(rel)
    if expected is None:
        raise BundleError(
            f"{path}: files lists no sha256 for {rel!r}, which the bundle uses; an unlisted file is "
            "never loaded. Export the bundle again."
        )
    file = bundle_file(root, rel, path)
    if not file.is_file():
        raise BundleError(f"bundle file {file} listed in {path} is missing; copy the whole bundle folder.")
    data = file.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise BundleError(
            f"checksum mismatch for {file}: sha256 {actual[:16]}... but the manifest says "
            f"{expected[:16]}...; the file was altered or copied incompletely. Copy the bundle again "
            "or re-export it."
        )
    return data


def not_a_bundle(folder: Path) -> str | None:
    """Why ``folder`` is not a bundle this code wrote and may replace, or None when it is one.

    Checked through its manifest (format version, structure) and its contents: every file
    must be the manifest or listed in it, so a folder holding anything else is never a bundle.
    """
    if folder.is_symlink() or not folder.is_dir():
        return "it is a symbolic link" if folder.is_symlink() else "it is not a folder"
    if not (folder / MANIFEST).is_file():
        return f"it has no {MANIFEST}"
    try:
        manifest = Manifest.read(folder, verify=False)
    except (BundleError, ValueError) as exc:
        return str(exc)
    listed = {MANIFEST, *manifest.files}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (not path.is_dir() or path.is_symlink()) and rel not in listed:
            return f"it holds {rel}, which its manifest does not list"
    return None


# ------------------------------------------------------------------------------------------------
# validation of each part, before anything is loaded


def _field_error(path: Path, field_name: str, value: Any, expected: str) -> BundleError:
    shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
    return BundleError(
        f"{path}: {field_name} must be {expected} but is {shown}; the manifest was altered, "
        "export the bundle again."
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _files(files: Any, path: Path) -> dict[str, str]:
    if not isinstance(files, dict):
        raise _field_error(path, "files", files, "a mapping of relative path -> sha256")
    for rel, digest in files.items():
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA256_HEX):
            raise _field_error(path, f"files[{rel!r}]", digest, "a sha256 (64 lowercase hex digits)")
    if ONNX_FILE not in files:
        raise BundleError(
            f"{path}: files lists no sha256 for {ONNX_FILE}; an unchecked graph is never loaded, "
            "export the bundle again."
        )
    return dict(files)


def _size_and_crop(pre: Any, path: Path, where: str) -> tuple[int, int, str]:
    if not isinstance(pre, dict):
        raise _field_error(path, where, pre, "a mapping")
    for key in ("height", "width"):
        value = pre.get(key)
        if not _is_int(value) or not 1 <= value <= MAX_SIDE:
            raise _field_error(path, f"{where}.{key}", value, f"an integer from 1 to {MAX_SIDE}")
    if pre.get("crop") not in CROPS:
        raise _field_error(path, f"{where}.crop", pre.get("crop"), f"one of {sorted(CROPS)}")
    problem = crop_problem(pre["crop"])  # a detected crop whose detector is not installed here
    if problem:
        raise BundleError(f"{path}: {where}.crop {pre['crop']!r}: {problem}.")
    return pre["height"], pre["width"], pre["crop"]


def _input(pre: Any, path: Path) -> InputSpec:
    return InputSpec(*_size_and_crop(pre, path, "preprocessing"))


def crop_inside(inner: str, outer: str) -> bool:
    """Whether crop box ``inner`` lies within crop box ``outer`` (both names in CROPS)."""
    t, l, b, r = crop_box(inner)
    T, L, B, R = crop_box(outer)
    return T <= t and L <= l and b <= B and r <= R


def _member_preprocessing(pre: Any, spec: InputSpec, path: Path, where: str) -> MemberPreprocessing:
    height, width, crop = _size_and_crop(pre, path, where)
    if not crop_inside(crop, spec.crop):
        raise _field_error(path, f"{where}.crop", crop, f"a crop inside the input's crop {spec.crop!r}")
    norm = {}
    for key in ("mean", "std"):
        value = pre.get(key)
        if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)):
            raise _field_error(path, f"{where}.{key}", value, "a list of 3 finite numbers")
        norm[key] = tuple(float(v) for v in value)
    if min(norm["std"]) <= 0:
        raise _field_error(path, f"{where}.std", pre["std"], "3 numbers > 0")
    return MemberPreprocessing(height, width, crop, norm["mean"], norm["std"])


def _decision_rule(rule: Any, path: Path) -> tuple[float, ...] | None:
    if rule is None:  # a plain argmax of the vote
        return None
    if not isinstance(rule, dict):
        raise _field_error(path, "decision_rule", rule, "a mapping with the offsets, or null")
    offsets = rule.get("offsets")
    if not isinstance(offsets, list) or len(offsets) != NUM_CLASSES:
        raise _field_error(path, "decision_rule.offsets", offsets, f"a list of {NUM_CLASSES} numbers")
    for c, value in enumerate(offsets):
        if not _is_number(value) or abs(value) > MAX_OFFSET:
            expected = f"a number from -{MAX_OFFSET:g} to {MAX_OFFSET:g}"
            raise _field_error(path, f"decision_rule.offsets[{c}]", value, expected)
    return tuple(float(o) for o in offsets)


# offsets = tau * (-log prior, centred) + old_band_offset on the six old classes
RULE_PARTS = ("tau", "old_band_offset")


def _rule_parts(rule: dict[str, Any], path: Path) -> dict[str, float]:
    """The decision rule's named parts; optional (a bundle may ship offsets alone), finite when given."""
    parts = {}
    for key in RULE_PARTS:
        if key in rule:
            if not _is_number(rule[key]):
                raise _field_error(path, f"decision_rule.{key}", rule[key], "a finite number")
            parts[key] = float(rule[key])
    return parts


def _probe(probe: Any, path: Path) -> tuple[tuple[float, ...], ...]:
    rows = probe.get("probs") if isinstance(probe, dict) else None
    if not (isinstance(rows, list) and len(rows) == PROBE_IMAGES):
        raise _field_error(path, "probe.probs", rows, f"{PROBE_IMAGES} rows of {NUM_CLASSES} probabilities")
    for i, row in enumerate(rows):
        probabilities = isinstance(row, list) and all(_is_number(v) and 0 <= v <= 1 for v in row)
        if not (probabilities and len(row) == NUM_CLASSES):
            raise _field_error(path, f"probe.probs[{i}]", row, f"{NUM_CLASSES} probabilities in [0, 1]")
    return tuple(tuple(float(v) for v in row) for row in rows)


def _config(config: Any, path: Path, where: str) -> dict[str, Any]:
    """The member's TrialConfig dict, every value of its field's type and range: torch builds the
    member from it, so an absurd size must stop here rather than as an allocation failure."""
    from runners.config import TrialConfig
    from search.studyfile.validate import type_problem

    if not isinstance(config, dict):
        raise _field_error(path, where, config, "a mapping (the trial's config)")
    fields = {f.name: str(f.type) for f in dataclasses.fields(TrialConfig)}
    for key, value in config.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise _field_error(path, f"{where}.{key}", value, f"absent: it is no TrialConfig field ({known})")
        problem = type_problem(value, fields[key])
        if problem:
            raise BundleError(
                f"{path}: {where}.{key} {problem}; the manifest was altered, export the bundle again."
            )
    try:
        TrialConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise BundleError(
            f"{path}: {where} is not a usable trial config ({exc}); export the bundle again."
        ) from exc
    return dict(config)


def _members(members: Any, files: dict[str, str], spec: InputSpec, path: Path) -> list[Member]:
    if not isinstance(members, list) or not members:
        raise _field_error(path, "members", members, "a non-empty list")
    out = []
    for i, member in enumerate(members):
        where = f"members[{i}]"
        if not isinstance(member, dict):
            raise _field_error(path, where, member, "a mapping")
        checkpoints = member.get("checkpoints")
        if not isinstance(checkpoints, list) or not checkpoints:
            raise _field_error(path, f"{where}.checkpoints", checkpoints, "a non-empty list of files")
        for j, rel in enumerate(checkpoints):
            if not isinstance(rel, str) or rel not in files:
                raise BundleError(
                    f"{path}: {where}.checkpoints[{j}] {rel!r} is not listed in files with its sha256; "
                    "export the bundle again."
                )
        weight = member.get("weight")
        if not _is_number(weight) or not 0 <= weight <= MAX_WEIGHT:
            raise _field_error(path, f"{where}.weight", weight, f"a number from 0 to {MAX_WEIGHT:g}")
        config = _config(member.get("config"), path, f"{where}.config")
        pre = _member_preprocessing(member.get("preprocessing"), spec, path, f"{where}.preprocessing")
        for key in ("height", "width", "crop"):
            # torch builds the member from its config: it must be the size its graph was traced at
            if config.get(key) != getattr(pre, key):
                raise _field_error(
                    path,
                    f"{where}.config.{key}",
                    config.get(key),
                    f"{where}.preprocessing.{key} {getattr(pre, key)!r}",
                )
        trial = member.get("trial")
        score = member.get("validation_macro_f1")
        out.append(
            Member(
                name=str(member.get("name", f"member {i}")),
                checkpoints=tuple(checkpoints),
                weight=float(weight),
                config=dict(config),
                preprocessing=pre,
                study=member.get("study") if isinstance(member.get("study"), str) else None,
                trial=trial if _is_int(trial) else None,
                validation_macro_f1=float(score) if _is_number(score) else None,
            )
        )
    if sum(m.weight for m in out) <= 0:
        raise BundleError(
            f"{path}: every members[i].weight is 0, so the vote is undefined; export the bundle again."
        )
    return out
