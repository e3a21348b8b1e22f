"""The machine-learning core of kernal trainers: pure, I/O-free (numpy only at run time).

* :mod:`~kernal.learning.data`: datasets, the shared hold-out test set, private shards.
* :mod:`~kernal.learning.model`: softmax regression and its strict JSON wire format.
* :mod:`~kernal.learning.merge`: class-wise merging, the validation gate, plain FedAvg.
* :mod:`~kernal.learning.attacks`: honest and malicious sharing behaviours.
* :mod:`~kernal.learning.simulate`: an offline simulator of the protocol, for tuning.
"""

from kernal.learning.attacks import BEHAVIOURS, Behaviour, parse_behaviour
from kernal.learning.data import (
    Dataset,
    Shard,
    holdout,
    load_digits,
    load_file,
    make_shard,
    parse_split,
)
from kernal.learning.merge import MergeDecision, evaluate_merge, fedavg, merge
from kernal.learning.model import SoftmaxModel

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "Dataset",
    "MergeDecision",
    "Shard",
    "SoftmaxModel",
    "evaluate_merge",
    "fedavg",
    "holdout",
    "load_digits",
    "load_file",
    "make_shard",
    "merge",
    "parse_behaviour",
    "parse_split",
]
