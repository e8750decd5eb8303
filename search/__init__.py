"""Hyperparameter-search harness for 18-class mask-wearing status classification."""
