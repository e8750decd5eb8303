"""The HTML report in a real headless Chromium: does it render, how big is it, and a screenshot.

By default the script runs a small study on the synthetic bench (the CPU demo's pretrained
``tf_efficientnet_lite0`` at 96x72 on the face crop, a few short trials, no pruner), exports its
ensemble, writes ``python -m search.report`` with the bundle, then opens the page in Chromium
(Debian's ``chromium``: ``apt-get install chromium``): a probe script counts the figures Plotly
drew and the inline pictures that decoded, and a screenshot of the wrong-photos panel is
saved (default ``docs/report_errors.png``). Pass ``--study`` (with ``--storage``/``--workdir``,
optionally ``--bundle``) to render an existing study instead.

    python -m benchmarks.report_render
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

log = logging.getLogger("benchmarks.report_render")
NAME = "report_render"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=20000")
# Appended to a copy of the page: after load, what the browser made of it goes into <body data-*>.
PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  const b = document.body, imgs = Array.from(document.images), e = document.getElementById('errors');
  b.dataset.images = imgs.length;
  b.dataset.imagesDecoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  b.dataset.plots = document.querySelectorAll('.js-plotly-plot').length;
  b.dataset.plotsDrawn = document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 ?
    Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p.querySelector('.main-svg')).length : 0;
  b.dataset.errorsTop = e ? Math.round(e.getBoundingClientRect().top + window.scrollY) : -1;
  b.dataset.height = document.documentElement.scrollHeight;
}, 500));</script>"""


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _run(chromium: str, args: list[str], profile: Path, timeout: float = 120) -> str:
    cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{chromium} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def probe(chromium: str, page: Path, width: int = 1200) -> dict[str, int]:
    """What Chromium made of ``page``: images, images decoded, plots, plots drawn, errors_top, height (pixels)."""
    with tempfile.TemporaryDirectory(prefix="report_probe_") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        dom = _run(chromium, [f"--window-size={width},1000", "--dump-dom", copy.as_uri()], Path(tmp) / "profile")
    body = re.search(r"<body([^>]*)>", dom)
    found = dict(re.findall(r'data-([a-z-]+)="(-?\d+)"', body.group(1) if body else ""))
    keys = ("images", "images-decoded", "plots", "plots-drawn", "errors-top", "height")
    if not all(k in found for k in keys):
        raise RuntimeError(f"the probe did not run in {page} (no data-* on <body>); is JavaScript blocked?")
    return {k.replace("-", "_"): int(found[k]) for k in keys}


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int) -> Path:
    with tempfile.TemporaryDirectory(prefix="report_shot_") as tmp:
        _run(chromium, [f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()], Path(tmp) / "profile")
    return png


def panel_screenshot(chromium: str, page: Path, png: Path, width: int = 1200, height: int = 900) -> dict[str, int]:
    """Probe ``page`` and save ``png``: ``height`` pixels from the wrong-photos panel's heading."""
    from PIL import Image

    seen = probe(chromium, page, width)
    top = max(0, seen["errors_top"] - 8) if seen["errors_top"] >= 0 else 0
    with tempfile.TemporaryDirectory(prefix="report_full_") as tmp:
        full = screenshot(chromium, page, Path(tmp) / "full.png", width, min(top + height, 16000))
        with Image.open(full) as im:
            png.parent.mkdir(parents=True, exist_ok=True)
            panel = im.convert("RGB").crop((0, top, width, min(im.height, top + height)))
            panel.quantize(colors=256).save(png, optimize=True)  # a palette keeps the docs' PNG small
    return seen


def study_doc(args: Any) -> dict[str, dict[str, Any]]:
    return {
        "study": {"description": "report render benchmark: a few short pretrained trials", "n_trials": args.trials,
                  "keep_top": args.trials},
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": args.trials},
        "pruner": {"name": "none"},
        "split": {"val_fraction": 0.25, "seed": 0},
        "fixed": {"backbone": "tf_efficientnet_lite0", "weights_dir": "packaged", "height": 96, "width": 72,
                  "crop": "face", "epochs": args.epochs, "batch_size": 32, "seed": 0},
        "params": {"lr": {"low": 1e-3, "high": 6e-3, "log": True}, "age_cutoff": [58, 59, 60],
                   "unfrozen_depth": {"low": 3, "high": "all"}},
    }


def own_study(args: Any) -> tuple[str, str, Path, Path, float]:
    """(name, storage, workdir, bundle, seconds) of the script's study, trained and exported (reused when done)."""
    from search.export import main as export_main
    from search.engine.options import RunOptions
    from search.engine.runstudy import run_study

    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    doc = study_doc(args)
    key = hashlib.sha256(json.dumps([doc, str(bench.resolve())], sort_keys=True).encode()).hexdigest()[:10]
    workdir = args.workdir or common.RUNS_DIR / NAME
    toml = common.write_toml(workdir / f"render_{key}.toml", doc)
    storage = f"sqlite:///{workdir / 'studies.db'}"
    start = time.perf_counter()
    study = run_study(RunOptions(study=str(toml), data=bench, workdir=workdir, storage=storage, device="cpu"))
    bundle = workdir / "exports" / study.study_name
    rc = export_main(["--name", study.study_name, "--storage", storage, "--workdir", str(workdir), "--out",
                      str(bundle), "--overwrite", "--max-members", "3"])
    if rc != 0:
        raise RuntimeError(f"search.export exited {rc}")
    return study.study_name, storage, workdir, bundle, time.perf_counter() - start


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=120, size=(96, 128))
    p.add_argument("--study", help="render this existing study (its stored name) instead of running one")
    p.add_argument("--storage", help="its Optuna storage URL (default: sqlite:///<workdir>/studies.db)")
    p.add_argument("--workdir", type=Path, help="its work folder; without --study, the script's own (runs/benchmarks/report_render)")
    p.add_argument("--bundle", type=Path, help="with --study: an exported bundle of it to show too")
    p.add_argument("--trials", type=common.positive_int, default=3)
    p.add_argument("--epochs", type=common.positive_int, default=2)
    p.add_argument("--screenshot", type=Path, default=common.REPO / "docs" / "report_errors.png",
                   help="where the wrong-photos panel's screenshot goes (default docs/report_errors.png)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from search.report import main as report_main

    args = build_parser().parse_args(argv)
    common.setup(args)
    logging.getLogger("search").setLevel(logging.WARNING)
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit(f"no Chromium found ({', '.join(CHROMIUM_NAMES)}); install Debian's: apt-get install chromium")
    study_seconds = None
    if args.study:
        name, storage, workdir, bundle = args.study, args.storage, args.workdir or common.RUNS_DIR / NAME, args.bundle
    else:
        name, storage, workdir, bundle, study_seconds = own_study(args)
    page = workdir / "reports" / f"{name}.html"
    flags = ["--name", name, "--workdir", str(workdir), "--out", str(page)]
    flags += ["--storage", storage] if storage else []
    flags += ["--bundle", str(bundle)] if bundle else []
    start = time.perf_counter()
    if report_main(flags) != 0:
        raise SystemExit("python -m search.report failed; see the line above")
    report_seconds = time.perf_counter() - start
    start = time.perf_counter()
    seen = panel_screenshot(chromium, page, args.screenshot)
    render_seconds = time.perf_counter() - start
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    pictures = re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", page.read_text())
    figures = {"report_bytes": page.stat().st_size, "picture_bytes": sum(map(len, pictures)),
               "report_seconds": round(report_seconds, 1),
               "render_and_screenshot_seconds": round(render_seconds, 1), "study_and_export_seconds":
               None if study_seconds is None else round(study_seconds, 1), **seen, "chromium": version}
    print(common.table(["what", "value"], [[k, v] for k, v in figures.items()]))
    machine = common.machine()
    print(common.describe_machine(machine))
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(study=name, page=str(page), study_file=None if args.study else study_doc(args))
    path = common.save_result(NAME, inputs=inputs, figures=figures, machine_info=machine,
                              results_dir=args.results_dir)
    print(f"\nscreenshot {args.screenshot}\nsaved {path}")
    return figures


if __name__ == "__main__":
    main()
