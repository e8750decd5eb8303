"""Measured figures, not assertions: one script per measure, each printing a table and saving JSON
to ``benchmarks/results/<name>.json``. Run from the repository root, e.g.
``python -m benchmarks.data_path``; see benchmarks/README.md for every script and its command.
"""
