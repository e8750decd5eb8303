"""``python -m search.report --study FILE`` (or ``--name NAME``): one self-contained HTML page.

Plotly figures: validation macro-F1 by trial, macro-F1 by epoch (the intermediate values Optuna shows),
the pruning signal by epoch when the study prunes on the validation loss, parameter importances,
macro-F1 and old-band F1 by age cutoff (and by head, where trials differ
in it), macro-F1 by backbone, the best trial's per-class F1 and confusion matrix. Then
the wrong validation photos of the best trial and of the exported ensemble (``--bundle DIR``,
default exports/<name> when it holds a bundle of this study), grouped by confusion (true ->
predicted, most mistaken pairs first), each with its labels, confidence and Grad-CAM map.
Pictures are inline, so the page is one file; ``--error-pairs 0`` leaves them out.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from runners.classes import CLASS_NAMES, NUM_CLASSES, OLD_BAND, decompose
from search.common.atomic import write_text
from search.common.outputs import Output, OutputExistsError, claim, marked_file
from search.cli import os_error_line, setup_logging
from search.cli.studyargs import add_study_args, open_study_arg
from search.data.errors import DataError
from search.reporting.errorgallery import (
    GALLERY_CSS,
    MAX_PAIRS,
    PER_PAIR,
    Gallery,
    ValidationPhotos,
    bundle_gallery,
    gallery_html,
    trial_gallery,
)
from search.storage.study_attrs import StudyAttrs
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore

SUMMARY = "one HTML page about a study: figures, and its wrong validation photos with Grad-CAM maps"

log = logging.getLogger(__name__)

DEFAULT_EXPORTS = Path("exports")
ERRORS_ANCHOR = "errors"  # report.html#errors opens at the wrong photos


# Panel titles: each says what its figure plots.
HISTORY = "Validation macro-F1 of each trial (best epoch), and the best so far"
F1_BY_EPOCH = "Validation macro-F1 by epoch (the intermediate values Optuna shows)"
LOSS_SIGNAL = "Pruning signal by epoch: negated validation loss (what the pruner compared)"
IMPORTANCES = "Parameter importances for validation macro-F1 (fANOVA)"
BY_CUTOFF = "Validation macro-F1 and old-band F1 by training age cutoff (complete trials)"
BY_HEAD = "Validation macro-F1 and old-band F1 by head (ordinal: age from the real ages; complete trials)"
BY_BACKBONE = "Validation macro-F1 by backbone (complete trials)"

GENERATOR = "<meta name='generator' content='python -m search.report'>"  # how a rerun knows its own page


def _not_a_report(path: Path) -> str | None:
    return marked_file(path, lambda data: GENERATOR.encode() in data[:1024])


OUTPUT = Output("a report", "python -m search.report", _not_a_report, flag=None, folder=False)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]


def by_config_value(trials: list[FrozenTrial], key: str, title: str) -> go.Figure:
    fig = go.Figure()
    groups: dict[str, list[float]] = {}
    for t in trials:
        groups.setdefault(str((TrialAttrs.read(t).config or {}).get(key)), []).append(float(t.value))
    for name in sorted(groups):
        fig.add_trace(go.Box(y=groups[name], name=name, boxpoints="all", jitter=0.3))
    fig.update_layout(title=title, yaxis_title="validation macro-F1 (best epoch)", showlegend=False)
    return fig


def old_band_scores(confusion: Sequence[Sequence[int]] | np.ndarray | None) -> tuple[float, float, float] | None:
    """The old band as one class (any old class predicted for an old person), from a trial's
    validation confusion matrix (rows = truth): (F1, recall, precision), as benchmarks/realfaces.py
    scores it; None without a matrix."""
    if confusion is None:
        return None
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.shape != (NUM_CLASSES, NUM_CLASSES):
        return None
    old = decompose(np.arange(NUM_CLASSES))[2] == OLD_BAND
    hits, truth, predicted = matrix[np.ix_(old, old)].sum(), matrix[old].sum(), matrix[:, old].sum()
    recall = hits / truth if truth else 0.0
    precision = hits / predicted if predicted else 0.0
    f1 = 2 * hits / (truth + predicted) if truth + predicted else 0.0
    return float(f1), float(recall), float(precision)


def f1_and_old_band_by(trials: list[FrozenTrial], key: str, title: str) -> go.Figure:
    """Side-by-side boxes per value of config ``key``: each trial's validation macro-F1 and its
    old-band F1 (the six old classes as one, from its confusion matrix)."""
    fig = go.Figure()
    x_f1, f1, x_old, old = [], [], [], []
    for t in trials:
        attrs = TrialAttrs.read(t)
        value = str((attrs.config or {}).get(key))
        x_f1.append(value)
        f1.append(float(t.value))
        scores = old_band_scores(attrs.confusion)
        if scores is not None:
            x_old.append(value)
            old.append(scores[0])
    order = sorted(set(x_f1))
    fig.add_trace(go.Box(x=x_f1, y=f1, name="macro-F1", boxpoints="all", jitter=0.3))
    fig.add_trace(go.Box(x=x_old, y=old, name="old-band F1", boxpoints="all", jitter=0.3))
    fig.update_layout(title=title, yaxis_title="validation F1", boxmode="group",
                      xaxis={"categoryorder": "array", "categoryarray": order})
    return fig


def per_class_figure(best: FrozenTrial) -> go.Figure:
    f1 = TrialAttrs.read(best).per_class_f1
    names = [f"{i} {CLASS_NAMES[i]}" for i in range(len(f1))]
    fig = go.Figure(go.Bar(x=names, y=f1))
    fig.update_layout(title=f"Per-class validation F1 of the best trial ({best.number}), best epoch",
                      yaxis_range=[0, 1], yaxis_title="F1")
    return fig


def confusion_figure(best: FrozenTrial) -> go.Figure | None:
    confusion = TrialAttrs.read(best).confusion
    if confusion is None:
        return None
    matrix = np.asarray(confusion)
    classes = list(range(NUM_CLASSES))
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues",
                               text=matrix, texttemplate="%{text}"))
    fig.update_layout(title=f"Validation confusion matrix of the best trial ({best.number}): photos per "
                            "(true, predicted) class",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def pruning_signals(trials: Sequence[FrozenTrial]) -> set[str]:
    """What the trials reported to the pruner (trials from before the signal was recorded reported macro-F1)."""
    return {TrialAttrs.read(t).pruning_signal for t in trials if t.intermediate_values}


def f1_by_epoch_figure(trials: Sequence[FrozenTrial]) -> go.Figure:
    """Each trial's validation macro-F1 per epoch, from its recorded history."""
    fig = go.Figure()
    for t in trials:
        history = TrialAttrs.read(t).history
        if history:
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in history], y=[h["val_macro_f1"] for h in history],
                                     mode="lines+markers", name=f"trial {t.number} ({t.state.name.lower()})"))
    fig.update_layout(title=F1_BY_EPOCH, xaxis_title="epoch", yaxis_title="validation macro-F1")
    return fig


def signal_by_epoch_figure(trials: Sequence[FrozenTrial]) -> go.Figure:
    """Each loss-pruned trial's pruning signal (the negated validation loss) per epoch."""
    fig = go.Figure()
    for t in trials:
        attrs = TrialAttrs.read(t)
        if attrs.pruning_signal != "val_loss":
            continue
        curve = attrs.pruning_curve
        if curve is None:  # recorded before the curve attribute: its intermediate values were the signal
            points = sorted(t.intermediate_values.items())
        else:
            points = list(enumerate(curve, start=1))
        if points:
            fig.add_trace(go.Scatter(x=[e for e, _ in points], y=[v for _, v in points], mode="lines+markers",
                                     name=f"trial {t.number} ({t.state.name.lower()})"))
    fig.update_layout(title=LOSS_SIGNAL, xaxis_title="epoch", yaxis_title="negated validation loss (higher is better)")
    return fig


def intermediate_values_are_f1(trials: Sequence[FrozenTrial]) -> bool:
    """Whether every trial's intermediate values are macro-F1 (trials that prune on the loss but have no
    pruning curve date from when the intermediate values were the negated loss)."""
    attrs = [TrialAttrs.read(t) for t in trials if t.intermediate_values]
    return all(a.pruning_signal == "macro_f1" or a.pruning_curve is not None for a in attrs)


def build_figures(study: optuna.Study) -> list[tuple[str, go.Figure]]:
    from optuna import visualization as vis

    history = vis.plot_optimization_history(study)
    history.update_layout(title=HISTORY, yaxis_title="validation macro-F1 (best epoch)")
    figures: list[tuple[str, go.Figure]] = [(HISTORY, history)]
    trials = study.get_trials(deepcopy=False)
    signals = pruning_signals(trials)
    if signals:
        if intermediate_values_are_f1(trials):
            by_epoch = vis.plot_intermediate_values(study)
            by_epoch.update_layout(title=F1_BY_EPOCH, xaxis_title="epoch", yaxis_title="validation macro-F1")
        else:
            by_epoch = f1_by_epoch_figure(trials)
        figures.append((F1_BY_EPOCH, by_epoch))
    if "val_loss" in signals:
        figures.append((LOSS_SIGNAL, signal_by_epoch_figure(trials)))
    complete = _complete(study)
    if len(complete) >= 2 and any(len({str(t.params.get(p)) for t in complete}) > 1 for p in complete[0].params):
        try:
            importances = vis.plot_param_importances(study)
            importances.update_layout(title=IMPORTANCES)
            figures.append((IMPORTANCES, importances))
        except (RuntimeError, ValueError) as exc:  # too few distinct trials for fANOVA
            log.warning("parameter importances skipped: %s", exc)
    if complete:
        figures.append((BY_CUTOFF, f1_and_old_band_by(complete, "age_cutoff", BY_CUTOFF)))
        if len({str((TrialAttrs.read(t).config or {}).get("head")) for t in complete}) > 1:
            figures.append((BY_HEAD, f1_and_old_band_by(complete, "head", BY_HEAD)))
        figures.append((BY_BACKBONE, by_config_value(complete, "backbone", BY_BACKBONE)))
        best = max(complete, key=lambda t: t.value)
        figures.append(("Per-class validation F1 of the best trial", per_class_figure(best)))
        confusion = confusion_figure(best)
        if confusion is not None:
            figures.append(("Validation confusion matrix of the best trial", confusion))
    return figures


def default_bundle(name: str) -> Path | None:
    """exports/<name>, where search.run's "Next:" lines export to, when it holds a bundle of study ``name``."""
    folder = DEFAULT_EXPORTS / name
    manifest = folder / "manifest.json"
    try:
        made_from = json.loads(manifest.read_text()).get("study") if manifest.is_file() else None
    except (OSError, ValueError):
        return None
    return folder if made_from == name else None


def error_galleries(study: optuna.Study, workdir: Path, bundle: Path | None,
                    max_pairs: int = MAX_PAIRS, per_pair: int = PER_PAIR, strict: bool = True) -> list[Gallery]:
    """The best trial's wrong validation photos, and ``bundle``'s; a gallery that cannot be drawn
    says why in its note. ``strict``: a ``bundle`` of another study or other data is a ValueError
    (the user named it), else a note (the default exports/<name> was found)."""
    complete = _complete(study)
    if not complete or max_pairs < 1:
        return []
    best = max(complete, key=lambda t: t.value)
    titles = [f"best trial #{best.number}"] + ([f"exported ensemble {bundle}"] if bundle is not None else [])
    attrs = StudyAttrs.find(study)
    if attrs is None:
        return [Gallery(t, "", 0, 0, note="the study records no data: search.run did not create it") for t in titles]
    root = Path(attrs.workdir) if attrs.workdir and Path(attrs.workdir).is_dir() else workdir
    store = TrialStore(root, study.study_name)
    try:
        photos = ValidationPhotos.load(store, attrs.data_root, attrs.relabel, root)
    except (FileNotFoundError, DataError, ValueError) as exc:
        return [Gallery(t, "", 0, 0, note=str(exc)) for t in titles]
    if best.number in store.trial_numbers():
        galleries = [trial_gallery(photos, store, best.number, max_pairs, per_pair)]
    else:
        galleries = [Gallery(titles[0], "", 0, 0, note=f"its checkpoint is not kept under {store.root}")]
    if bundle is not None:
        try:
            galleries.append(bundle_gallery(photos, bundle, study.study_name, max_pairs, per_pair))
        except ValueError as exc:
            if strict:
                raise
            galleries.append(Gallery(titles[1], "", 0, 0, note=str(exc)))
    return galleries


def write_report(study: optuna.Study, out: Path, galleries: Sequence[Gallery] = ()) -> Path:
    """The page for ``study`` at ``out``, which may be missing or an earlier report (else OutputExistsError)."""
    claim(out, OUTPUT)
    figures = build_figures(study)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'>{GENERATOR}{GALLERY_CSS}",
        f"<title>{html.escape(study.study_name)}</title></head><body style='font-family:sans-serif'>",
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + html.escape(", ".join(f"{v} {k}" for k, v in counts.items() if v)) + "</p>",
    ]
    for i, (title, fig) in enumerate(figures):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    parts += [gallery_html(g, ERRORS_ANCHOR if i == 0 else None) for i, g in enumerate(galleries)]
    parts.append("</body></html>")
    return write_text(out, "\n".join(parts))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.report", description=__doc__)
    add_study_args(p)
    p.add_argument("--out", type=Path, help="HTML file (default: <workdir>/reports/<name>.html)")
    p.add_argument("--bundle", type=Path,
                   help="exported ensemble whose wrong validation photos to show (default: exports/<name> "
                        "when it holds a bundle of this study)")
    p.add_argument("--error-pairs", type=int, default=MAX_PAIRS, metavar="N",
                   help=f"confusion pairs with pictures per gallery, most mistaken first (default {MAX_PAIRS}; "
                        "0: no pictures)")
    p.add_argument("--per-pair", type=int, default=PER_PAIR, metavar="N",
                   help=f"wrong photos shown per pair, most confident first (default {PER_PAIR})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(quiet_level=logging.INFO)
    if args.error_pairs < 0 or args.per_pair < 1:
        print(f"error: --error-pairs must be >= 0 and --per-pair >= 1 but got {args.error_pairs} and "
              f"{args.per_pair}.", file=sys.stderr)
        return 2
    opened = open_study_arg(args)
    if opened is None:
        return 2
    ref, study = opened
    try:
        bundle = args.bundle if args.bundle is not None else default_bundle(ref.name)
        galleries = error_galleries(study, args.workdir, bundle, args.error_pairs, args.per_pair,
                                    strict=args.bundle is not None)
    except (ValueError, FileNotFoundError) as exc:  # a --bundle of another study or other data
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.workdir / "reports" / f"{ref.name}.html"
    if out.is_dir():
        print(f"error: --out {out} is a folder; name an HTML file, e.g. --out {out / (ref.name + '.html')}",
              file=sys.stderr)
        return 2
    try:
        out = write_report(study, out, galleries)
    except OutputExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the atomic write left no partial file
        print(f"error: {os_error_line(exc, f'writing the report {out}')}", file=sys.stderr)
        return 1
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
