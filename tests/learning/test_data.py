"""Loading, the hold-out split and private shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernal.learning.data import (
    Dataset,
    Shard,
    holdout,
    load_digits,
    load_file,
    make_shard,
    parse_split,
    partition,
    trainer_shards,
)


def _with_ids(n: int = 600, k: int = 6, seed: int = 0) -> Dataset:
    """A dataset whose first feature is a unique row id, to check disjointness."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.arange(n) / n, rng.random((n, 3))])
    return Dataset(X, np.arange(n, dtype=np.int64) % k, k)


def _ids(ds: Dataset) -> set[int]:
    return {round(v * 600) for v in ds.X[:, 0]}


def test_digits_shape_and_ranges() -> None:
    ds = load_digits()
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float64
    assert ds.y.shape == (1797,) and ds.y.dtype == np.int64
    assert ds.n_classes == 10 and set(ds.y.tolist()) == set(range(10))
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0


def test_csv_round_trip_scales_and_maps_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text("a,label,b\n0,dog,10\n5,cat,20\n10,ant,30\n5,dog,10\n")
    ds = load_file(path)
    # Sorted label order: ant=0, cat=1, dog=2; the named column wins over "last column".
    assert ds.y.tolist() == [2, 1, 0, 2] and ds.n_classes == 3
    np.testing.assert_allclose(ds.X, [[0, 0], [0.5, 0.5], [1, 1], [0.5, 0]])


def test_csv_without_label_column_uses_the_last_and_sorts_ints_numerically(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nums.csv"
    path.write_text("x,y,target\n1,2,10\n3,4,9\n5,6,10\n")
    ds = load_file(path)
    assert ds.X.shape == (3, 2)
    assert ds.y.tolist() == [1, 0, 1]  # 9 < 10 numerically, not as text
    floats = tmp_path / "floats.csv"
    floats.write_text("\ufeffx,label\n1,2.0\n2,10\n3,2\n")  # with a byte-order mark
    assert load_file(floats).y.tolist() == [0, 1, 0]


def test_csv_text_columns_are_one_hot_and_missing_cells_filled(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("size,colour,label\n1,red,a\nNA,blue,b\n3,,a\n?,red,b\n5,green,a\n")
    ds = load_file(path)
    # size: the missing cells take the median of 1, 3, 5; colour: blue, green, red in sorted
    # order, a missing colour is none of them.
    np.testing.assert_allclose(
        ds.X,
        [[0, 0, 0, 1], [0.5, 1, 0, 0], [0.5, 0, 0, 0], [0.5, 0, 0, 1], [1, 0, 1, 0]],
    )
    assert ds.y.tolist() == [0, 1, 0, 1, 0]


def test_csv_skewed_columns_are_power_transformed_and_others_only_scaled(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    heavy = np.exp(2.0 * rng.normal(size=400))  # log-normal: skewness in the tens
    plain = rng.normal(size=400)
    path = tmp_path / "skewed.csv"
    path.write_text(
        "heavy,plain,label\n"
        + "".join(
            f"{float(h)!r},{float(p)!r},{i % 2}\n"
            for i, (h, p) in enumerate(zip(heavy, plain, strict=True))
        )
    )
    ds = load_file(path)
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    np.testing.assert_allclose(ds.X[:, 1], (plain - plain.min()) / np.ptp(plain))
    # min-max alone leaves most of a log-normal column in the bottom few percent of [0, 1]
    assert np.median((heavy - heavy.min()) / np.ptp(heavy)) < 0.02
    assert 0.3 < np.median(ds.X[:, 0]) < 0.7
    assert np.argsort(ds.X[:, 0]).tolist() == np.argsort(heavy).tolist()  # order kept


def test_an_extreme_scale_keeps_the_column_only_scaled(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    huge = np.exp(rng.normal(size=200)) * 1e300  # a power transform overflows here
    path = tmp_path / "huge.csv"
    path.write_text("x,label\n" + "".join(f"{float(v)!r},{i % 2}\n" for i, v in enumerate(huge)))
    ds = load_file(path)
    assert np.all(np.isfinite(ds.X))
    np.testing.assert_allclose(ds.X[:, 0], (huge - huge.min()) / (huge.max() - huge.min()))


def test_npz_round_trip(tmp_path: Path) -> None:
    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, X=digits.X, y=digits.y)
    ds = load_file(path)
    np.testing.assert_array_equal(ds.X, digits.X)  # already in [0, 1]: kept as is
    np.testing.assert_array_equal(ds.y, digits.y)
    raw = tmp_path / "raw.npz"
    np.savez(raw, X=digits.X * 16, y=np.array([f"d{v}" for v in digits.y]))
    scaled = load_file(raw)
    assert scaled.X.min() == 0.0 and scaled.X.max() == 1.0 and scaled.n_classes == 10


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "empty"),
        ("header.csv", "a,label\n", "no samples"),
        ("ids.csv", "a,label\n" + "".join(f"id{i},x\nid{i}b,y\n" for i in range(30)), "ids"),
        ("ragged.csv", "a,b,label\n1,2,x\n1,y\n", "fields"),
        ("one.csv", "a,label\n1,x\n2,x\n", "2 distinct labels"),
        ("inf.csv", "a,label\n1,x\ninf,y\n", "non-finite"),
        ("nolabel.csv", "a,label\n1,x\n2, \n", "no label"),
        ("bad.npz", "not a zip", "NPZ"),
    ],
)
def test_bad_files_raise_value_error_naming_the_file(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_file(path)
    assert name in str(info.value)


def test_bad_npz_arrays(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    np.savez(missing, X=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"missing\.npz"):
        load_file(missing)
    nan = tmp_path / "nan.npz"
    np.savez(nan, X=np.array([[np.nan], [1.0]]), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"nan\.npz.*NaN"):
        load_file(nan)
    with pytest.raises(ValueError, match=r"nowhere\.csv"):
        load_file(tmp_path / "nowhere.csv")


def test_holdout_is_disjoint_stratified_and_deterministic() -> None:
    ds = _with_ids()
    train, test = holdout(ds, test_fraction=0.2, seed=3)
    assert _ids(train).isdisjoint(_ids(test))
    assert len(train) + len(test) == len(ds)
    np.testing.assert_array_equal(test.counts(), np.full(6, 20))  # 20% of 100 per class
    again, _ = holdout(ds, test_fraction=0.2, seed=3)
    np.testing.assert_array_equal(train.X, again.X)
    with pytest.raises(ValueError):
        holdout(ds, test_fraction=1.0)


def test_parse_split() -> None:
    assert parse_split("iid") == ("iid", 0.0)
    assert parse_split("dirichlet:0.5") == ("dirichlet", 0.5)
    assert parse_split("shards:2") == ("shards", 2.0)
    for bad in ("dirichlet", "dirichlet:-1", "shards:1.5", "shards:0", "zipf:2", "iid:3"):
        with pytest.raises(ValueError, match="dirichlet:ALPHA"):
            parse_split(bad)


def test_make_shard_is_deterministic_per_seed(pool: Dataset) -> None:
    a = make_shard(pool, "dirichlet:0.5", seed=7)
    b = make_shard(pool, "dirichlet:0.5", seed=7)
    c = make_shard(pool, "dirichlet:0.5", seed=8)
    np.testing.assert_array_equal(a.train.X, b.train.X)
    np.testing.assert_array_equal(a.val.y, b.val.y)
    assert not np.array_equal(a.train.counts(), c.train.counts())
    assert len(a.train) + len(a.val) <= len(pool) // 10


def _skew(pool: Dataset, split: str) -> float:
    """Mean share of the largest class over 10 shards (0.1 = perfectly balanced)."""
    shares = []
    for seed in range(10):
        shard = make_shard(pool, split, seed=seed)
        counts = shard.train.counts() + shard.val.counts()
        shares.append(counts.max() / counts.sum())
    return float(np.mean(shares))


def test_dirichlet_is_far_more_skewed_than_iid(pool: Dataset) -> None:
    iid, skewed = _skew(pool, "iid"), _skew(pool, "dirichlet:0.1")
    assert iid < 0.25
    assert skewed > 2 * iid


def test_shards_split_keeps_at_most_k_classes(pool: Dataset) -> None:
    for seed in range(5):
        shard = make_shard(pool, "shards:2", seed=seed)
        present = set(shard.train.y.tolist()) | set(shard.val.y.tolist())
        assert len(present) <= 2
        assert len(shard.train) + len(shard.val) == len(pool) // 10


def test_validation_slice_is_private_and_covers_classes() -> None:
    ds = _with_ids()
    shard = make_shard(ds, "dirichlet:1.0", seed=4, size=200)
    assert _ids(shard.train).isdisjoint(_ids(shard.val))
    total = shard.train.counts() + shard.val.counts()
    for c in range(ds.n_classes):
        if total[c] >= 2:
            assert shard.val.counts()[c] >= 1 and shard.train.counts()[c] >= 1


def test_make_shard_rejects_bad_arguments(pool: Dataset) -> None:
    with pytest.raises(ValueError, match="bad split"):
        make_shard(pool, "dirichlet:x", seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        make_shard(pool, "iid", seed=0, val_fraction=0.0)


@pytest.mark.parametrize("split", ["dirichlet:0.5", "dirichlet:0.1", "iid", "shards:2"])
@pytest.mark.parametrize("n", [3, 10, 40])
def test_a_partition_gives_every_row_to_exactly_one_trainer(split: str, n: int) -> None:
    ds = _with_ids()
    shards = partition(ds, split, n, seed=5)
    assert len(shards) == n
    held = [_ids(s.train) | _ids(s.val) for s in shards]
    assert sum(len(h) for h in held) == len(ds)  # nobody shares a row ...
    assert set().union(*held) == _ids(ds)  # ... and no row is left out
    for shard in shards:
        assert _ids(shard.train).isdisjoint(_ids(shard.val))
        assert len(shard.train) >= 1 and len(shard.val) >= 1


def test_a_dirichlet_partition_is_as_skewed_as_independent_draws_and_the_same_size(
    pool: Dataset,
) -> None:
    drawn = [make_shard(pool, "dirichlet:0.1", seed=s) for s in range(10)]
    parted = partition(pool, "dirichlet:0.1", 10, seed=0)

    def top_share(shards: list[Shard]) -> float:
        counts = [s.train.counts() + s.val.counts() for s in shards]
        return float(np.mean([c.max() / c.sum() for c in counts]))

    assert {len(s.train) + len(s.val) for s in parted} <= {len(pool) // 10, len(pool) // 10 + 1}
    # Later trainers take what is left, so a partition is a little less skewed than free draws,
    # but still far from balanced (0.1 here).
    assert top_share(parted) > 0.5
    assert top_share(parted) > 0.7 * top_share(drawn)


def test_shards_by_layout_are_deterministic_and_draw_is_make_shard(pool: Dataset) -> None:
    drawn = trainer_shards(pool, "dirichlet:0.5", 4, seed=2, layout="draw")
    np.testing.assert_array_equal(drawn[3].val.X, make_shard(pool, "dirichlet:0.5", 2003).val.X)
    a = trainer_shards(pool, "dirichlet:0.5", 4, seed=2, layout="partition")
    b = partition(pool, "dirichlet:0.5", 4, seed=2)
    c = partition(pool, "dirichlet:0.5", 4, seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.train.X, y.train.X)
    assert not np.array_equal(a[0].train.counts(), c[0].train.counts())
    with pytest.raises(ValueError, match="unknown shard layout"):
        trainer_shards(pool, "iid", 4, seed=0, layout="overlap")


def test_a_partition_rejects_what_it_cannot_split() -> None:
    ds = _with_ids(n=10)
    with pytest.raises(ValueError, match="2 rows each"):
        partition(ds, "iid", 6, seed=0)
    with pytest.raises(ValueError, match="at least one part"):
        partition(ds, "iid", 0, seed=0)
    with pytest.raises(ValueError, match="bad split"):
        partition(ds, "zipf:2", 2, seed=0)
