"""``python -m search.export --study NAME --out DIR``: ship a study's selected ensemble as a bundle.

The members are chosen on ALL validation people (the honest estimate, recorded beside, is
for this procedure: see ``python -m search.ensemble``). Candidates are restricted to the
best trial's (height, width, crop), as one graph takes one input size. The bundle is written
to a temporary folder beside DIR, its ONNX graph checked with onnx.checker and compared with
torch through onnxruntime, and only then renamed to DIR. See :mod:`search.bundle` for the
layout.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.bundle import (
    MEMBERS_DIR,
    ONNX_FILE,
    BundleError,
    build_ensemble,
    build_member,
    class_map,
    export_onnx,
    not_a_bundle,
    now_iso,
    onnx_predict,
    onnx_session,
    read_manifest,
    torch_predict,
    write_manifest,
)
from search.bundle import umask as _umask
from search.ensemble.cli import add_selection_args, outcome_from_args
from search.ensemble.honest import DECISION_RULE, SELECTED
from search.ensemble.procedure import Outcome

log = logging.getLogger("search.export")

ONNX_TOLERANCE = 1e-4  # max |torch - onnxruntime| of a probability accepted at export


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_args(p, max_members=5)
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR when it is an existing bundle (checked through its manifest); any other "
        "folder or file is refused and left alone",
    )
    p.add_argument("--decision-rule", choices=RULE_CHOICES, default="auto",
                   help="ship the macro-F1 decision offsets: auto (when the honest estimate says they help), "
                        "on, or off (the plain argmax of the vote)")
    return p


def export_bundle(
    outcome: Outcome,
    out: Path,
    opset: int = 17,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    decision_rule: str = "auto",
) -> dict[str, Any]:
    """Write the selected ensemble of ``outcome`` to ``out`` (with its decision offsets unless not
    ``decision_rule``); returns the manifest."""
    out = Path(out)
    check_out(out, overwrite)
    choice = outcome.choice(shipped_method(outcome, decision_rule))
    height, width, crop = outcome.preprocessing
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a bundle is an ordinary folder
        (tmp / MEMBERS_DIR).mkdir()
        modules, members = [], []
        for k, (index, weight) in enumerate(zip(choice.members, choice.weights, strict=True)):
            cand = outcome.candidates[index]
            files = cand.weight_files()  # a fold group (search.refit) ships its K models, sharing its weight
            if not files or not all(f.is_file() for f in files):
                raise FileNotFoundError(
                    f"weights of trial {cand.name} are missing ({files or cand.weights}); the study's retention "
                    "deleted "
                    "them or --workdir points elsewhere."
                )
            for fold, path in enumerate(files):
                module, mean, std = build_member(cand.config, path)  # proves the file loads strictly
                rel = f"{MEMBERS_DIR}/{len(members)}.safetensors"
                shutil.copyfile(path, tmp / rel)
                modules.append(module)
                members.append(
                    {
                        "study": cand.study,
                        "trial": cand.number,
                        "file": rel,
                        "weight": float(weight) / len(files),
                        "validation_macro_f1": cand.value,
                        "mean": mean,
                        "std": std,
                        "config": cand.config,
                        **({"refit": cand.refit, "fold": fold if cand.checkpoints else None} if cand.refit else {}),
                    }
                )
        offsets = list(choice.offsets) if choice.offsets else None
        net = build_ensemble(modules, [m["weight"] for m in members], offsets)
        export_onnx(net, tmp / ONNX_FILE, height, width, opset)
        check_onnx(net, tmp / ONNX_FILE, height, width)
        in_sample = outcome.in_sample[choice.method]
        manifest = {
            "created": now_iso(),
            "study": outcome.study,
            "members": members,
            "preprocessing": {
                "height": height,
                "width": width,
                "crop": crop,
                "layout": "NHWC",
                "dtype": "uint8",
                "color": "RGB",
                "decode": "search.data.load_image: crop the named box of the photo, then PIL bilinear resize",
                # the graph normalises inside each member; shown here when all members share it
                "mean": _shared([m["mean"] for m in members]),
                "std": _shared([m["std"] for m in members]),
                "normalize": "inside each member's graph: (x / 255 - mean) / std, the member's mean and std",
            },
            "classes": class_map(),
            # argmax of softmax(log(vote) + offsets): the rule that maximises macro-F1, fitted on validation
            "decision_rule": None if offsets is None else {"offsets": offsets, "applied": "inside the ONNX graph"},
            "onnx": {
                "file": ONNX_FILE,
                "opset": opset,
                "input": "images",
                "output": "probs",
                "batch": "dynamic",
            },
            "metrics": {
                "selection": {
                    "macro_f1": in_sample[0],
                    "accuracy": in_sample[1],
                    "on": "all validation people",
                },
                "alternatives_in_sample": {
                    m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in outcome.in_sample.items()
                },
                "honest": outcome.honest.to_dict(),
            },
            **(extra or {}),
        }
        manifest = write_manifest(tmp, manifest)
        read_manifest(tmp, verify=True)
        check_out(out, overwrite)  # again: something may have appeared at out during the export
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that exists, unless ``overwrite`` and it is a bundle of this project:
    --overwrite never deletes a folder or file that a user owns."""
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(
            f"{out} already exists; pass --overwrite to replace it, or choose another --out."
        )
    reason = not_a_bundle(out)
    if reason is not None:
        raise FileExistsError(
            f"--out {out} is not a bundle written by python -m search.export ({reason}); --overwrite "
            "replaces only such bundles, so nothing was deleted. Choose another --out."
        )


RULE_CHOICES = ("auto", "on", "off")


def shipped_method(outcome: Outcome, decision_rule: str = "auto") -> str:
    """The method a bundle ships: the selected ensemble, with the decision rule when ``decision_rule``
    is "on", or "auto" and its held-out score is at least the plain vote's."""
    if decision_rule not in RULE_CHOICES:
        raise ValueError(f"decision_rule must be one of {list(RULE_CHOICES)} but got {decision_rule!r}.")
    if decision_rule == "auto":
        helps = outcome.honest.score(DECISION_RULE).macro_f1 >= outcome.honest.score(SELECTED).macro_f1
        return DECISION_RULE if helps else SELECTED
    return DECISION_RULE if decision_rule == "on" else SELECTED


def check_onnx(net: Any, path: Path, height: int, width: int) -> None:
    """onnx.checker on the file, then onnxruntime against torch on a batch of another size."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    images = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    expected = torch_predict(net, images)
    got = onnx_predict(onnx_session(path), images)
    diff = float(np.abs(expected - got).max())
    if got.shape != expected.shape or diff > ONNX_TOLERANCE:
        raise BundleError(
            f"the exported {path.name} disagrees with torch by {diff:.2e} (> {ONNX_TOLERANCE}) "
            "on a test batch; "
            "try another --opset."
        )
    log.info("ONNX check passed: max |torch - onnxruntime| = %.2e", diff)


def _shared(values: list[list[float]]) -> list[float] | str:
    return values[0] if all(v == values[0] for v in values) else "per member (see members[i].mean/std)"


def _replace_dir(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        check_out(args.out, args.overwrite)  # before the selection: a refusal costs nothing
        outcome, _, attrs = outcome_from_args(args)
        extra = {
            "source": {"data_fingerprint": attrs.data_fingerprint, "data_root": attrs.data_root}
        }
        manifest = export_bundle(outcome, args.out, args.opset, args.overwrite, extra, args.decision_rule)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        log.error("%s", exc, exc_info=args.verbose)
        return 2
    sel = manifest["metrics"]["selection"]
    honest = outcome.honest.score(shipped_method(outcome, args.decision_rule))
    print(outcome.table())
    print(
        f"\nexported {len(manifest['members'])} member(s) to {args.out}: "
        f"validation macro-F1 {sel['macro_f1']:.4f} "
        f"(in-sample), honest estimate {honest.macro_f1:.4f} ({outcome.honest.mode})"
    )
    print(f"predict with: python -m search.predict --bundle {args.out} --data EVAL_DIR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
