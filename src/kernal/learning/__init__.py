"""The machine-learning core of kernal trainers: pure, I/O-free (numpy only at run time).

* :mod:`~kernal.learning.data`: datasets, the shared hold-out test set, private shards.
* :mod:`~kernal.learning.model`: softmax regression and its strict JSON wire format.
* :mod:`~kernal.learning.mlp`: a small MLP with the same contract (shared seeded start).
* :mod:`~kernal.learning.models`: either model by name; one strict decoder for peers' models.
* :mod:`~kernal.learning.waves`, :mod:`~kernal.learning.datasets`: the generated ``waves``
  dataset, and a run's data by name or path.
* :mod:`~kernal.learning.adaptive`: adaptive attacks (ALIE, IPM, Min-Max, gate-aware,
  backdoor) and the backdoor's success rate.
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
from kernal.learning.datasets import load_source
from kernal.learning.merge import MergeDecision, evaluate_merge, fedavg, merge
from kernal.learning.mlp import MLPModel
from kernal.learning.model import SoftmaxModel
from kernal.learning.models import Model, model_from_json, new_model
from kernal.learning.waves import load_waves

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "Dataset",
    "MLPModel",
    "MergeDecision",
    "Model",
    "Shard",
    "SoftmaxModel",
    "evaluate_merge",
    "fedavg",
    "holdout",
    "load_digits",
    "load_file",
    "load_source",
    "load_waves",
    "make_shard",
    "merge",
    "model_from_json",
    "new_model",
    "parse_behaviour",
    "parse_split",
]
