"""Refit chosen trials on K person folds or on every person (``python -m search.refit``).

``store`` lays out what a refit keeps beside its trial, ``train`` trains and scores the
models, ``members`` turns them into ensemble candidates, ``cli`` is the command.
"""
