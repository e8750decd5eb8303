"""Hyperparameter-search harness for 18-class mask-wearing status classification.

One package per concept (see docs/architecture.md); the verbs' fronts live in ``verbs/``, which
is on this package's path, so ``search/verbs/run.py`` is the module ``search.run`` and
``python -m search.run`` runs it.
"""

from pathlib import Path

__path__.append(str(Path(__file__).with_name("verbs")))  # noqa: F821 - set by the import system
