"""The one exception the data layer raises for anything wrong with the user's files."""

from __future__ import annotations


class DataError(ValueError):
    """A data set, relabel file, split or cache request that cannot be used as it is.

    The message names the file (and row, folder or photo) and says what to do about it.
    """
