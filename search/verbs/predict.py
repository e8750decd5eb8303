"""``python -m search.predict --bundle DIR --data EVAL_DIR``: the command-line front of
:mod:`search.deploy.predict` (see there), which needs neither optuna nor the training code."""

from __future__ import annotations

from search.deploy.predict import DEFAULT_OUT, build_parser, main, predict_eval, write_submission

SUMMARY = "predict an eval folder with a bundle -> submission.csv"

__all__ = ["DEFAULT_OUT", "build_parser", "main", "predict_eval", "write_submission"]

if __name__ == "__main__":
    raise SystemExit(main())
