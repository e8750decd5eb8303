"""Suite-wide test settings. Area fixtures live in each tests/<area>/conftest.py."""

from __future__ import annotations

import os

# Tests run on the CPU with tiny models; keep thread pools small and deterministic on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MASK_AUTOML_LOADER_WORKERS", "0")
