"""Suite-wide test settings. Area fixtures live in each tests/<area>/conftest.py; helpers shared
across areas live in tests/support/ (not tests themselves)."""

from __future__ import annotations

import os

# Tests run on the CPU with tiny models; keep thread pools small and deterministic on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MASK_AUTOML_LOADER_WORKERS", "0")
# One trial process unless a test asks for more (--workers, or the default rule with a mocked core count).
os.environ.setdefault("MASK_AUTOML_WORKERS", "1")

# The refit fixtures serve tests/search/refit and tests/benchmarks/test_refit.py alike.
from tests.support.refit_study import refit_study, refit_study_template  # noqa: E402,F401
