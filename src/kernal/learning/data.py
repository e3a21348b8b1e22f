"""Datasets, the shared hold-out test set and each trainer's private shard.

Everything here is pure and deterministic: the same inputs and seed give the same arrays, so a
trainer can rebuild its shard on any machine without coordinating with anyone.

Contract of :class:`Dataset`: ``X`` is float64 ``n x d`` with every feature in [0, 1], ``y`` is
int64 of length ``n`` with labels in ``0 .. n_classes - 1``.
"""

from __future__ import annotations

import csv
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kernal.learning.tabular import encode, is_missing, scale_numeric

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

SPLIT_FORMS = '"iid", "dirichlet:ALPHA" (ALPHA > 0) or "shards:K" (K >= 1 classes)'


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (float64, n x d, in [0, 1]), labels ``y`` (int64, n) and the class count."""

    X: FloatArray
    y: IntArray
    n_classes: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: NDArray[np.int64]) -> Dataset:
        """The rows at ``index`` (same ``n_classes``, so models stay compatible)."""
        return Dataset(self.X[index], self.y[index], self.n_classes)

    def counts(self) -> IntArray:
        """Samples per class, length ``n_classes``."""
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)


@dataclass(frozen=True)
class Shard:
    """One trainer's private data: ``train`` to fit on, ``val`` to judge merges (never fitted)."""

    train: Dataset
    val: Dataset


def load_digits() -> Dataset:
    """The 1,797 bundled 8x8 scikit-learn digits, pixel intensities divided by 16 (offline)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(X, y, 10)


def _encode_labels(raw: list[str], path: Path) -> tuple[IntArray, int]:
    """Map labels to 0..k-1 in sorted order: numerically when all are numbers, else as text."""
    texts = [v.strip() for v in raw]
    if not texts:
        raise ValueError(f"{path}: no samples")
    # Numbers sort numerically ("10" after "9", "1" and "1.0" are one class); as soon as one
    # label is not a finite number, all are compared as text.
    try:
        keys = [(float(t), "") for t in texts]
        if not all(math.isfinite(number) for number, _ in keys):
            raise ValueError("non-finite label")
    except ValueError:
        keys = [(0.0, t) for t in texts]
    classes = sorted(set(keys))
    if len(classes) < 2:
        raise ValueError(f"{path}: need at least 2 distinct labels, found {len(classes)}")
    position = {key: i for i, key in enumerate(classes)}
    y = np.array([position[key] for key in keys], dtype=np.int64)
    return y, len(classes)


def _load_csv(path: Path, label: str) -> Dataset:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read CSV: {exc}") from exc
    if not rows:
        raise ValueError(f"{path}: empty file (expected a header row and samples)")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise ValueError(f"{path}: need a label column and at least one feature column")
    # The named label column wins; otherwise the convention is "label last".
    label_at = header.index(label) if label in header else len(header) - 1
    body = rows[1:]
    if not body:
        raise ValueError(f"{path}: no samples after the header row")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, header has {len(header)}")
        if is_missing(row[label_at]):
            raise ValueError(f"{path}: line {line}: no label in column {header[label_at]!r}")
    labels = [row[label_at] for row in body]
    feature_at = [j for j in range(len(header)) if j != label_at]
    features = encode(
        [[row[j] for row in body] for j in feature_at], [header[j] for j in feature_at], str(path)
    )
    for note in features.notes():
        logger.info("%s: %s", path, note)
    y, k = _encode_labels(labels, path)
    return Dataset(features.X, y, k)


def _load_npz(path: Path) -> Dataset:
    # np.load would try to unpickle anything that is not a zip; refuse that up front.
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an NPZ archive (expected arrays 'X' and 'y')")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive or "y" not in archive:
                raise ValueError(f"{path}: NPZ must hold arrays 'X' and 'y'")
            X_raw, y_raw = archive["X"], archive["y"]
    except ValueError as exc:
        raise ValueError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot read NPZ: {exc}") from exc
    if X_raw.ndim != 2 or y_raw.ndim != 1 or X_raw.shape[0] != y_raw.shape[0]:
        raise ValueError(f"{path}: need X (n x d) and y (n), got {X_raw.shape} and {y_raw.shape}")
    if X_raw.shape[0] == 0 or X_raw.shape[1] == 0:
        raise ValueError(f"{path}: empty X {X_raw.shape}")
    if not np.issubdtype(X_raw.dtype, np.number) or np.issubdtype(X_raw.dtype, np.complexfloating):
        raise ValueError(f"{path}: X must be real numbers, got dtype {X_raw.dtype}")
    X = X_raw.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: X holds NaN or infinite values")
    y, k = _encode_labels([str(v) for v in y_raw.tolist()], path)
    # Data already in [0, 1] is kept as is (e.g. digits / 16); anything else is scaled as a
    # CSV's numeric columns are (skewed ones power-transformed, then min-max).
    if X.min() < 0.0 or X.max() > 1.0:
        X = np.column_stack([scale_numeric(column)[0] for column in X.T])
    return Dataset(X, y, k)


def load_file(path: str | Path, label: str = "label") -> Dataset:
    """Load a CSV (header row; ``label`` column or else the last one) or an NPZ (``X``, ``y``).

    CSV features are encoded over the whole file (:mod:`kernal.learning.tabular`: missing cells
    filled, text columns one-hot, skewed columns power-transformed, all min-max scaled to
    [0, 1]); NPZ features are kept when already within [0, 1] and scaled as a CSV's numeric
    columns otherwise. Labels (ints or strings) map to ``0..k-1`` in sorted order. Raises
    ``ValueError`` naming the file on any bad input.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    return _load_csv(path, label)


def holdout(ds: Dataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into ``(train_pool, test)``, stratified per class and deterministic in ``seed``.

    Every class with at least 2 samples puts at least one in each part. The test part is for
    reporting only: nothing may tune itself on it.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in range(ds.n_classes):
        members = rng.permutation(np.flatnonzero(ds.y == c))
        if len(members) >= 2:
            n_test = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
            test.extend(members[:n_test].tolist())
    mask = np.zeros(len(ds), dtype=bool)
    mask[test] = True
    return ds.subset(np.flatnonzero(~mask)), ds.subset(np.flatnonzero(mask))


def parse_split(text: str) -> tuple[str, float]:
    """``"iid"`` -> ("iid", 0), ``"dirichlet:0.5"`` -> ("dirichlet", 0.5), ``"shards:2"`` -> ..."""
    kind, _, param = text.strip().lower().partition(":")
    if kind == "iid" and not param:
        return "iid", 0.0
    try:
        value = float(param)
    except ValueError:
        value = math.nan
    if kind == "dirichlet" and math.isfinite(value) and value > 0:
        return "dirichlet", value
    if kind == "shards" and value.is_integer() and value >= 1:
        return "shards", value
    raise ValueError(f"bad split {text!r}: expected {SPLIT_FORMS}")


def _pick_rows(
    pool: Dataset, kind: str, param: float, size: int, rng: np.random.Generator
) -> IntArray:
    """Row indices of the shard (without replacement; a class that runs out gives what it has)."""
    k = pool.n_classes
    if kind == "iid":
        return rng.choice(len(pool), size=min(size, len(pool)), replace=False).astype(np.int64)
    if kind == "shards":
        chosen = rng.choice(k, size=min(int(param), k), replace=False)
        allowed = np.flatnonzero(np.isin(pool.y, chosen))
        return rng.choice(allowed, size=min(size, len(allowed)), replace=False).astype(np.int64)
    proportions = rng.dirichlet(np.full(k, param))
    wanted = rng.multinomial(size, proportions)
    rows: list[int] = []
    for c in range(k):
        members = np.flatnonzero(pool.y == c)
        take = min(int(wanted[c]), len(members))
        rows.extend(rng.choice(members, size=take, replace=False).tolist())
    return np.array(rows, dtype=np.int64)


def make_shard(
    pool: Dataset, split: str, seed: int, size: int | None = None, val_fraction: float = 0.25
) -> Shard:
    """Draw one trainer's private shard from ``pool``, independently of every other trainer.

    ``split`` is ``"iid"``, ``"dirichlet:ALPHA"`` (class mix ~ Dirichlet(ALPHA)) or ``"shards:K"``
    (K classes chosen with the seed); ``size`` defaults to ``len(pool) // 10``. Shards of
    different trainers may overlap. The validation slice is stratified: each class with at least
    2 samples gives ``round(n * val_fraction)`` of them (at least 1, never all) to ``val``.
    """
    kind, param = parse_split(split)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    size = len(pool) // 10 if size is None else size
    if size < 2:
        raise ValueError(f"shard size must be at least 2, got {size}")
    rng = np.random.default_rng(seed)
    return _shard_of(pool, _pick_rows(pool, kind, param, size, rng), val_fraction, rng)


def _shard_of(
    pool: Dataset, rows: IntArray, val_fraction: float, rng: np.random.Generator
) -> Shard:
    """``rows`` of ``pool`` as a shard, its validation slice stratified as :func:`make_shard`
    says; the training rows shuffled with ``rng``."""
    val_rows: list[int] = []
    train_rows: list[int] = []
    for c in range(pool.n_classes):
        members = rows[pool.y[rows] == c]
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        n_val = max(n_val, 0)
        val_rows.extend(members[:n_val].tolist())
        train_rows.extend(members[n_val:].tolist())
    train_index = rng.permutation(np.array(train_rows, dtype=np.int64))
    val_index = np.array(val_rows, dtype=np.int64)
    return Shard(pool.subset(train_index), pool.subset(val_index))


# How the shards of a run where one process draws them all (the simulator, the scorecard's
# server baselines) relate: "draw", each trainer its own independent draw, as a trainer on its
# own machine does (shards overlap, and rows nobody holds stay in the pool, which the
# centralized reference still trains on); "partition", every row of the pool to exactly one
# trainer, the usual federated benchmark (see :func:`partition`).
SHARD_LAYOUTS = ("draw", "partition")


def partition(
    pool: Dataset, split: str, n: int, seed: int, val_fraction: float = 0.25
) -> list[Shard]:
    """``n`` disjoint shards holding every row of ``pool`` between them.

    ``dirichlet:ALPHA``: as :func:`make_shard`, each trainer's class mix is drawn from
    Dirichlet(ALPHA) and its size is a ``1/n`` of the pool, but its rows are taken from those no
    trainer has yet, in a seeded order of trainers; a class that has run out is made up from the
    trainer's other classes, then from whatever is left (the balanced Dirichlet partition of
    federated benchmarks such as FedLab's, after Hsu, Qi & Brown, 2019). ``iid``: a
    shuffled pool cut into ``n`` near-equal parts. ``shards:K``: the pool sorted by class, cut
    into ``n * K`` runs and ``K`` runs dealt to each trainer (McMahan et al., 2017). Each part
    gets its validation slice as in :func:`make_shard`. Deterministic in ``seed``.
    """
    kind, param = parse_split(split)
    if n < 1:
        raise ValueError(f"a partition needs at least one part, got {n}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(pool) < 2 * n:
        raise ValueError(f"a pool of {len(pool)} rows cannot give {n} trainers 2 rows each")
    rng = np.random.default_rng(seed)
    parts = _partition_rows(pool, kind, param, n, rng)
    return [_shard_of(pool, rows, val_fraction, rng) for rows in parts]


def _partition_rows(
    pool: Dataset, kind: str, param: float, n: int, rng: np.random.Generator
) -> list[IntArray]:
    if kind == "iid":
        return list(np.array_split(rng.permutation(len(pool)).astype(np.int64), n))
    by_class = [rng.permutation(np.flatnonzero(pool.y == c)) for c in range(pool.n_classes)]
    if kind == "shards":
        runs = np.array_split(np.concatenate(by_class).astype(np.int64), n * int(param))
        order = rng.permutation(len(runs))
        return [np.concatenate([runs[j] for j in order[i::n]]) for i in range(n)]
    remaining = [list(members) for members in by_class]
    sizes = [len(part) for part in np.array_split(np.arange(len(pool)), n)]
    parts: list[IntArray] = [np.zeros(0, dtype=np.int64)] * n
    for i in rng.permutation(n):  # in a seeded order: no index is always served last
        mix = rng.dirichlet(np.full(pool.n_classes, param))
        taken: list[int] = []
        while len(taken) < sizes[i]:
            left = np.array([len(r) for r in remaining], dtype=np.float64)
            weights = mix * (left > 0)
            if weights.sum() <= 0:  # its classes ran out: the rest from what the pool has
                weights = left
            wanted = rng.multinomial(sizes[i] - len(taken), weights / weights.sum())
            for c in np.flatnonzero(wanted):
                take = min(int(wanted[c]), len(remaining[c]))
                taken.extend(remaining[c][:take])
                del remaining[c][:take]
        parts[i] = np.array(taken, dtype=np.int64)
    return parts


def trainer_shards(
    pool: Dataset, split: str, n: int, seed: int, layout: str = "draw"
) -> list[Shard]:
    """The ``n`` shards of a run with ``seed``: :func:`make_shard` seeded ``seed * 1000 + i``
    for trainer ``i`` (``layout="draw"``) or :func:`partition` (``"partition"``)."""
    if layout == "draw":
        return [make_shard(pool, split, seed=seed * 1000 + i) for i in range(n)]
    if layout == "partition":
        return partition(pool, split, n, seed)
    raise ValueError(f"unknown shard layout {layout!r}: expected one of {', '.join(SHARD_LAYOUTS)}")
