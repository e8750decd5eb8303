"""``python -m search.ensemble``: see :mod:`search.ensemble.cli`."""

from __future__ import annotations

import sys

from search.ensemble.cli import main

if __name__ == "__main__":
    sys.exit(main())
