"""``python -m search.report --study FILE`` (or ``--name NAME``): one self-contained HTML page of plotly figures.

Optimisation history, intermediate values (what the pruner saw: macro-F1, or the negated
validation loss in a study whose ``[pruner] signal = "val_loss"``, then with each trial's
macro-F1 per epoch beside it), parameter importances, macro-F1 and old-band F1 by age cutoff
(and by head, where trials differ in it), macro-F1 by backbone, and the best trial's per-class F1
and confusion matrix.
"""

from __future__ import annotations

import argparse
import html
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from runners.classes import CLASS_NAMES, NUM_CLASSES, OLD_BAND, decompose
from search.atomic import write_text
from search.cli import setup_logging
from search.cli.studyargs import add_study_args, storage_url, study_ref
from search.ensemble.candidates import open_stored_study

log = logging.getLogger(__name__)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]


def by_config_value(trials: list[FrozenTrial], key: str, title: str) -> go.Figure:
    fig = go.Figure()
    groups: dict[str, list[float]] = {}
    for t in trials:
        groups.setdefault(str(t.user_attrs.get("config", {}).get(key)), []).append(float(t.value))
    for name in sorted(groups):
        fig.add_trace(go.Box(y=groups[name], name=name, boxpoints="all", jitter=0.3))
    fig.update_layout(title=title, yaxis_title="validation macro-F1", showlegend=False)
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
        value = str(t.user_attrs.get("config", {}).get(key))
        x_f1.append(value)
        f1.append(float(t.value))
        scores = old_band_scores(t.user_attrs.get("confusion"))
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
    f1 = best.user_attrs.get("per_class_f1", [])
    names = [f"{i} {CLASS_NAMES[i]}" for i in range(len(f1))]
    fig = go.Figure(go.Bar(x=names, y=f1))
    fig.update_layout(title=f"Per-class F1 of the best trial ({best.number})", yaxis_range=[0, 1])
    return fig


def confusion_figure(best: FrozenTrial) -> go.Figure | None:
    confusion = best.user_attrs.get("confusion")
    if confusion is None:
        return None
    matrix = np.asarray(confusion)
    classes = list(range(NUM_CLASSES))
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues",
                               text=matrix, texttemplate="%{text}"))
    fig.update_layout(title=f"Confusion matrix of the best trial ({best.number}); rows = truth",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def pruning_signals(trials: Sequence[FrozenTrial]) -> set[str]:
    """What the trials reported to the pruner (trials from before the signal was recorded reported macro-F1)."""
    return {str(t.user_attrs.get("pruning_signal", "macro_f1")) for t in trials if t.intermediate_values}


def f1_by_epoch_figure(trials: Sequence[FrozenTrial]) -> go.Figure:
    """Each trial's validation macro-F1 per epoch, from its recorded history."""
    fig = go.Figure()
    for t in trials:
        history = t.user_attrs.get("history") or []
        if history:
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in history], y=[h["val_macro_f1"] for h in history],
                                     mode="lines+markers", name=f"trial {t.number} ({t.state.name.lower()})"))
    fig.update_layout(title="Validation macro-F1 by epoch", xaxis_title="epoch", yaxis_title="validation macro-F1")
    return fig


def build_figures(study: optuna.Study) -> list[tuple[str, go.Figure]]:
    from optuna import visualization as vis

    figures: list[tuple[str, go.Figure]] = [("Optimisation history", vis.plot_optimization_history(study))]
    trials = study.get_trials(deepcopy=False)
    signals = pruning_signals(trials)
    if signals == {"macro_f1"}:
        figures.append(("Intermediate values (pruning)", vis.plot_intermediate_values(study)))
    elif signals:
        shown = "negated validation loss" if signals == {"val_loss"} else "mixed: " + ", ".join(sorted(signals))
        figures.append((f"Intermediate values (pruning, {shown})", vis.plot_intermediate_values(study)))
        figures.append(("Validation macro-F1 by epoch", f1_by_epoch_figure(trials)))
    complete = _complete(study)
    if len(complete) >= 2 and any(len({str(t.params.get(p)) for t in complete}) > 1 for p in complete[0].params):
        try:
            figures.append(("Parameter importances", vis.plot_param_importances(study)))
        except (RuntimeError, ValueError) as exc:  # too few distinct trials for fANOVA
            log.warning("parameter importances skipped: %s", exc)
    if complete:
        figures.append(("By age cutoff", f1_and_old_band_by(
            complete, "age_cutoff", "Macro-F1 and old-band F1 by training age cutoff")))
        if len({str(t.user_attrs.get("config", {}).get("head")) for t in complete}) > 1:
            figures.append(("By head", f1_and_old_band_by(
                complete, "head", "Macro-F1 and old-band F1 by head (ordinal: age from the real ages)")))
        figures.append(("By backbone", by_config_value(complete, "backbone", "Macro-F1 by backbone")))
        best = max(complete, key=lambda t: t.value)
        figures.append(("Per-class F1", per_class_figure(best)))
        confusion = confusion_figure(best)
        if confusion is not None:
            figures.append(("Confusion matrix", confusion))
    return figures


def write_report(study: optuna.Study, out: Path) -> Path:
    figures = build_figures(study)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(study.study_name)}</title></head><body style='font-family:sans-serif'>",
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + html.escape(", ".join(f"{v} {k}" for k, v in counts.items() if v)) + "</p>",
    ]
    for i, (title, fig) in enumerate(figures):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    parts.append("</body></html>")
    return write_text(out, "\n".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.report", description=__doc__)
    add_study_args(p)
    p.add_argument("--out", type=Path, help="HTML file (default: <workdir>/reports/<name>.html)")
    args = p.parse_args(argv)
    setup_logging(quiet_level=logging.INFO)
    try:
        ref = study_ref(args)
        study = open_stored_study(ref.name, storage_url(args))
    except ValueError as exc:  # no study named, no such study, or a storage that cannot be reached
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = write_report(study, args.out or args.workdir / "reports" / f"{ref.name}.html")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
