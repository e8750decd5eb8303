"""Small pieces every layer may use: atomic writes and folder swaps, the one place that touches
Optuna's private API, and the torch thread count. Nothing here imports another part of search."""
