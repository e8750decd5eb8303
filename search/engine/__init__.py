"""The run engine behind ``search.run`` and ``search.worker``: options, the study's data and
split, the objective, time and trial budgets, local workers, signals and progress."""
