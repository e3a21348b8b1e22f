"""``waves``: a 10-class, 40-feature signal dataset generated in code, deterministic by seed.

Modelled on MNIST-1D (Greydanus 2020, "Scaling down deep learning", github.com/greydanus/mnist1d):
each class is a hand-drawn 12-point template (the same ten templates as MNIST-1D), and each
sample is that template stretched onto 24 points, given a random amplitude, a random shear
(a linear trend), placed at a random offset in a 40-point window, and overlaid with smooth
(correlated) and white noise. The random offset is what a linear model cannot handle (a class
is the same shape anywhere in the window), so a softmax model stays far below a small MLP, as
on the original: this is the "data nobody tuned on" of the learning bench.

The parameters were fixed once, before any model here was run on it, and are not tuned.
"""

from __future__ import annotations

import numpy as np

from kernal.learning.data import Dataset

TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)
LENGTH = 40
SPAN = 24
SAMPLES = 4000
SEED = 0


def load_waves(n: int = SAMPLES, seed: int = SEED) -> Dataset:
    """``n`` samples (class ``i % 10`` for sample ``i``, shuffled), features in [0, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, TEMPLATES.shape[1] - 1, SPAN)
    shapes = np.stack([np.interp(grid, np.arange(TEMPLATES.shape[1]), t) for t in TEMPLATES])
    shapes -= 5.0  # the templates rest at 5: their baseline is 0
    y = rng.permutation(np.arange(n) % 10).astype(np.int64)
    X = np.zeros((n, LENGTH))
    positions = np.arange(LENGTH)
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    kernel /= kernel.sum()
    for i, c in enumerate(y):
        offset = int(rng.integers(0, LENGTH - SPAN + 1))
        amplitude = rng.uniform(0.6, 1.4)
        X[i, offset : offset + SPAN] = amplitude * shapes[c]
        X[i] += rng.normal(0.0, 0.5) * (positions - LENGTH / 2) / LENGTH  # shear
        smooth = np.convolve(rng.normal(0.0, 1.0, LENGTH + 12), kernel, mode="valid")[:LENGTH]
        X[i] += 0.6 * smooth + rng.normal(0.0, 0.25, LENGTH)
    # A fixed affine map (not fitted to the sample) into [0, 1], clipped.
    X = np.clip((X + 3.5) / 7.0, 0.0, 1.0)
    return Dataset(X, y, 10)
