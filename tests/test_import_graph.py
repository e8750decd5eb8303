"""The layering of search/, runners/ and spaces/: no import cycle, imports only point down the
layers of LAYERS, and runners/ knows nothing of search/.

The graph is read from the source (AST), so it sees every import: module-level ones, those
inside functions (lazy imports) and those under ``if TYPE_CHECKING``. A lazy import does not
break a cycle; it only hides it from the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "runners", "spaces")

# Bottom to top; a module may import from its own layer and the layers below it, never above.
# A module belongs to the layer of the longest prefix that names it: search.run (the verbs in
# search/verbs/) and search.__main__ are the top layer "search". docs/architecture.md draws it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("runners", "spaces"),   # one trial and the search spaces: no search, no Optuna in runners
    ("search.common",),      # atomic writes, Optuna's private API, threads
    ("search.data",),        # the data path
    ("search.benches",),     # synthetic and real-face benches (the default data)
    ("search.storage",),     # storage URLs and backends, study and trial records, trial files
    ("search.studyfile",),   # the study file, its registries
    ("search.cli",),         # the verbs' shared arguments and logging
    ("search.deploy",),      # the bundle: manifest, ONNX graph, writer, predict (no Optuna)
    ("search.engine",),      # the run: options, objective, budgets, workers, progress
    ("search.refitting",),   # chosen trials retrained on person folds
    ("search.ensembling",),  # candidates, selection, votes, honest estimate
    ("search.reporting",),   # the report's pictures: wrong validation photos, Grad-CAM
    ("search",),             # the verbs
)


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[1:2] == ("verbs",):  # search/verbs/ is on search's __path__: verbs/run.py is search.run
                parts = parts[:1] + parts[2:]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name an import statement anywhere in ``path`` names (``from a import b`` gives a and a.b)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (a name resolves to its longest module prefix)."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int:
    """Index in ``layers`` of the longest prefix naming ``module``; ValueError when none does."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise ValueError(f"{module} is in no layer of LAYERS: add its package there")
    return best[0]


def upward_imports(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Every import that points at a higher layer, as ``"a -> b"``."""
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if layer_of(t, layers) > layer_of(m, layers))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None when the graph has none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_search_runners_and_spaces_have_no_import_cycle() -> None:
    cycle = find_cycle(import_graph(REPO))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_only_point_down_the_layers() -> None:
    assert upward_imports(import_graph(REPO)) == [], "imports from a layer above (see LAYERS)"


def test_every_package_of_search_is_in_a_layer() -> None:
    top = {".".join(p.relative_to(REPO).parts[:2]) for p in (REPO / "search").glob("*/__init__.py")}
    named = {prefix for layer in LAYERS for prefix in layer}
    assert sorted(top - named) == [], "packages of search/ missing from LAYERS"


def test_the_layer_check_finds_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for sub in ("low", "high"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "high" / "a.py").write_text("from pkg.low import b\n")
    (pkg / "low" / "b.py").write_text("")
    layers = (("pkg.low",), ("pkg.high",), ("pkg",))
    assert upward_imports(import_graph(tmp_path, ("pkg",)), layers) == []
    (pkg / "low" / "b.py").write_text("def f():\n    from pkg.high.a import x\n")
    assert upward_imports(import_graph(tmp_path, ("pkg",)), layers) == ["pkg.low.b -> pkg.high.a"]


def test_runners_import_nothing_from_search_nor_optuna() -> None:
    for module, path in module_files(REPO, ("runners",)).items():
        bad = sorted(n for n in imported_names(module, path) if n.split(".")[0] in ("search", "optuna"))
        assert not bad, f"{path.relative_to(REPO)} imports {bad}: runners/ must stay below search/ and Optuna-free"


def test_the_walk_finds_cycles_through_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from pkg import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.c"] == {"pkg.a"}, "a relative import resolves to its module"
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph(tmp_path, ("pkg",))) is None
