"""Where a run's data comes from: a built-in dataset by name, or the user's file.

``digits`` (scikit-learn's bundled 8x8 digits, the default) and ``waves`` (the generated
MNIST-1D-style signals of :mod:`kernal.learning.waves`) are built in; anything else is a path
to a CSV or NPZ file (:func:`~kernal.learning.data.load_file`). An existing file wins over a
built-in name, so a file called ``waves`` in the working directory is still yours.
"""

from __future__ import annotations

from pathlib import Path

from kernal.learning.data import Dataset, load_digits, load_file
from kernal.learning.waves import load_waves

BUILTIN = ("digits", "waves")


def load_source(source: str | None) -> Dataset:
    """``None`` or ``"digits"``: digits; ``"waves"``: waves; else the file (``ValueError``
    naming it if it is missing or malformed)."""
    if source is not None and Path(source).is_file():
        return load_file(source)
    if source is None or source == "digits":
        return load_digits()
    if source == "waves":
        return load_waves()
    return load_file(source)
