"""``python -m search.report --study FILE`` (or ``--name NAME``): one self-contained HTML page of plotly figures.

Optimisation history, intermediate values (what the pruner saw: macro-F1, or the negated
validation loss in a study whose ``[pruner] signal = "val_loss"``, then with each trial's
macro-F1 per epoch beside it), parameter importances, macro-F1 by age cutoff and by backbone,
and the best trial's per-class F1 and confusion matrix.
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

from runners.classes import CLASS_NAMES, NUM_CLASSES
from search.atomic import write_text
from search.cli import os_error_line, setup_logging
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
        figures.append(("By age cutoff", by_config_value(complete, "age_cutoff", "Macro-F1 by training age cutoff")))
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
    out = args.out or args.workdir / "reports" / f"{ref.name}.html"
    if out.is_dir():
        print(f"error: --out {out} is a folder; name an HTML file, e.g. --out {out / (ref.name + '.html')}",
              file=sys.stderr)
        return 2
    try:
        out = write_report(study, out)
    except OSError as exc:  # the atomic write left no partial file
        print(f"error: {os_error_line(exc, f'writing the report {out}')}", file=sys.stderr)
        return 1
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
