"""tests/ mirrors the source tree: tests/<pkg>/test_<module>.py tests <pkg>/<module>.py.

Every test file names a module that exists, and every module has its own test file or is listed
in COVERED_BY with the test file that exercises it through another module. Helpers shared
across areas live in tests/support/; conftest.py and other non-test_ files are not tests.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "runners", "spaces", "benchmarks")
CROSS_CUTTING = {"tests/test_import_graph.py", "tests/test_readme.py", "tests/test_tree_mirror.py"}

# Modules tested through another module's tests (the command line, the loader or the builder
# that uses them), with the test file that does it.
COVERED_BY = {
    "benchmarks/harness_overhead.py": "tests/benchmarks/test_common.py",
    "benchmarks/plain_run.py": "tests/benchmarks/test_realfaces.py",
    "benchmarks/threads.py": None,  # measures thread counts next to a busy process: no CPU test
    "runners/augmentations.py": "tests/runners/test_augment.py",
    "runners/image_ops.py": "tests/runners/test_device_augment.py",
    "search/data/check.py": "tests/search/data/test_layout.py",
    "search/data/errors.py": "tests/search/data/test_layout.py",
    "search/data/mtcnn.py": "tests/search/data/test_faces.py",
    "search/deploy/votes/_geometric.py": "tests/search/ensembling/test_votes.py",
    "search/deploy/votes/_hard.py": "tests/search/ensembling/test_votes.py",
    "search/deploy/votes/_soft.py": "tests/search/deploy/test_graph.py",
    "search/deploy/writer.py": "tests/search/verbs/test_export.py",
    "search/ensembling/args.py": "tests/search/verbs/test_export.py",
    "search/ensembling/candidates.py": "tests/search/verbs/test_export.py",
    "search/verbs/ensemble.py": "tests/search/storage/test_backends.py",
    "search/ensembling/evalscore.py": "tests/search/refitting/test_train.py",
    "search/storage/forms/_journal.py": "tests/search/storage/test_urls.py",
    "search/storage/forms/_postgresql.py": "tests/search/storage/test_secretfilter.py",
    "search/storage/forms/_rdb.py": "tests/search/storage/test_backends.py",
    "search/storage/forms/_sqlite.py": "tests/search/storage/test_urls.py",
    "search/studyfile/enqueue.py": "tests/search/studyfile/test_parse.py",
    "search/engine/options.py": "tests/search/engine/test_budget.py",
    "search/verbs/predict.py": "tests/search/deploy/test_predict.py",
    "search/benches/realfaces/catalog.py": "tests/search/benches/realfaces/test_build.py",
    "search/benches/realfaces/draw.py": "tests/search/benches/realfaces/test_build.py",
    "search/benches/realfaces/plan.py": "tests/search/benches/realfaces/test_build.py",
    "search/ensembling/refits.py": "tests/search/refitting/test_train.py",
    "search/studyfile/validate.py": "tests/search/studyfile/test_parse.py",
    "search/studyfile/spec.py": "tests/search/studyfile/test_parse.py",
    "search/verbs/realfaces.py": "tests/search/benches/realfaces/test_build.py",
    "search/verbs/synth.py": "tests/search/benches/synth/test_build.py",
    "search/benches/synth/faces.py": "tests/search/benches/synth/test_people.py",
    "search/benches/synth/sheet.py": "tests/search/benches/synth/test_build.py",
    "search/common/threads.py": "tests/search/engine/test_checks.py",
    "search/engine/trialbudget.py": "tests/search/engine/test_checks.py",
    "search/engine/track/records.py": "tests/search/engine/track/test_mlflow_tracker.py",
    "spaces/_params.py": "tests/spaces/test_standard.py",
    "spaces/_spec.py": "tests/spaces/test_standard.py",
}


def _modules() -> list[str]:
    return sorted(
        p.relative_to(REPO).as_posix()
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )


def _own_test(module: str) -> str:
    path = Path(module)
    return (Path("tests") / path.parent / f"test_{path.name}").as_posix()


def test_every_test_file_names_a_module() -> None:
    tests = {p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")}
    expected = {_own_test(m) for m in _modules()} | CROSS_CUTTING
    assert sorted(tests - expected) == [], "test files that mirror no module: rename or merge them"


def test_every_module_has_its_test_file_or_says_which_covers_it() -> None:
    missing = [m for m in _modules() if not (REPO / _own_test(m)).is_file() and m not in COVERED_BY]
    assert missing == [], f"modules with no tests/<pkg>/test_<module>.py and no COVERED_BY entry: {missing}"


def test_the_covered_by_list_is_current() -> None:
    modules = set(_modules())
    stale = [m for m in COVERED_BY if m not in modules or (REPO / _own_test(m)).is_file()]
    assert stale == [], f"COVERED_BY entries for modules that are gone or now have their own test: {stale}"
    absent = [t for t in COVERED_BY.values() if t is not None and not (REPO / t).is_file()]
    assert absent == [], f"COVERED_BY names test files that do not exist: {absent}"
