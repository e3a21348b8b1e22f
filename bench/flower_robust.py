"""Flower's own aggregation strategies on the scorecard's shards and attacks.

Runs in Flower's virtualenv (``bench/.venv-flower``, see ``bench/learning.py``); only
:mod:`kernal.learning` is imported from kernal. For each job, a server-FL federation as in
``bench/robust_fl.py`` (same shards, same poisoners, same local training, omniscient adaptive
attackers), but the aggregation is the real ``flwr`` strategy's ``aggregate_fit`` over
``FitRes`` objects: ``FedAvg``, ``Krum`` (``num_malicious_clients`` = the true count,
``num_clients_to_keep=0``), Multi-Krum (``Krum`` keeping ``n - f``), ``FedTrimmedAvg``
(``beta`` = f / n) and ``FedMedian``. Clients are called in process, in order (no Ray), and
the poisoners answer after seeing the honest clients' models of the round.

    bench/.venv-flower/bin/python bench/flower_robust.py JOBS_JSON

``JOBS_JSON``: a list of ``{"name", "data", "strategy", "attack", "seed", "rounds", "epochs",
"trainers", "malicious": [int]}``; the last line of stdout is ``{"flwr_version", "results":
[{"name", "accuracy", "backdoor"}]}``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import flwr
import numpy as np
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg, FedMedian, FedTrimmedAvg, Krum, Strategy

from kernal.learning.adaptive import Knowledge, attack_success_rate
from kernal.learning.attacks import Behaviour, parse_behaviour
from kernal.learning.data import holdout, trainer_shards
from kernal.learning.datasets import load_source
from kernal.learning.models import Model, new_model


class _Proxy(ClientProxy):  # type: ignore[misc]
    """Only a cid: the strategies' aggregation does not call clients."""

    def get_properties(self, *args: Any) -> Any:
        raise NotImplementedError

    def get_parameters(self, *args: Any) -> Any:
        raise NotImplementedError

    def fit(self, *args: Any) -> Any:
        raise NotImplementedError

    def evaluate(self, *args: Any) -> Any:
        raise NotImplementedError

    def reconnect(self, *args: Any) -> Any:
        raise NotImplementedError


def strategy_for(name: str, n: int, f: int, initial: Model) -> Strategy:
    common: dict[str, Any] = {
        "fraction_fit": 1.0,
        "fraction_evaluate": 0.0,
        "min_fit_clients": n,
        "min_available_clients": n,
        "initial_parameters": ndarrays_to_parameters([initial.parameters()]),
        "fit_metrics_aggregation_fn": lambda metrics: {},
    }
    if name == "flwr_fedavg":
        return FedAvg(**common)
    if name == "flwr_krum":
        return Krum(num_malicious_clients=f, num_clients_to_keep=0, **common)
    if name == "flwr_multikrum":
        return Krum(num_malicious_clients=f, num_clients_to_keep=n - f, **common)
    if name == "flwr_trimmed_mean":
        return FedTrimmedAvg(beta=f / n, **common)
    if name == "flwr_median":
        return FedMedian(**common)
    raise ValueError(f"unknown strategy {name!r}")


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    data = load_source(str(job["data"]))
    seed, rounds, epochs = int(job["seed"]), int(job["rounds"]), int(job["epochs"])
    n = int(job["trainers"])
    bad: list[int] = list(job["malicious"])
    pool, test = holdout(data, seed=seed)
    d, k = pool.X.shape[1], pool.n_classes
    base = parse_behaviour(str(job["attack"]))
    behaviours = [
        (Behaviour(base.name, bad.index(i), len(bad)) if base.name == "sybil" else base)
        if i in bad
        else Behaviour("honest")
        for i in range(n)
    ]
    shards = trainer_shards(pool, "dirichlet:0.5", n, seed, str(job.get("layout", "draw")))
    train_sets = [
        b.training_set(s.train.X, b.training_labels(s.train.y, k))
        for b, s in zip(behaviours, shards, strict=True)
    ]
    rng = np.random.default_rng(seed)
    global_model = new_model(str(job.get("model", "softmax")), d, k)
    strategy = strategy_for(str(job["strategy"]), n, len(bad), global_model)
    proxies = [_Proxy(str(i)) for i in range(n)]
    for r in range(rounds):
        trained: list[Model] = []
        for i, b in enumerate(behaviours):
            local = global_model.copy()
            if b.trains():
                X, y = train_sets[i]
                local.fit(X, y, epochs, seed=seed * 7919 + (r + 1) * 101 + i)
            trained.append(local)
        honest = [m for m, b in zip(trained, behaviours, strict=True) if not b.malicious]
        results = []
        for i, (m, b) in enumerate(zip(trained, behaviours, strict=True)):
            shared = m
            if b.malicious:
                knowledge = Knowledge(
                    reference=global_model,
                    observed=honest,
                    val_X=shards[i].val.X,
                    val_y=shards[i].val.y,
                    trainers=n,
                    malicious=len(bad),
                )
                shared = b.outgoing(m, r, global_model, rng, knowledge)
            fit = FitRes(
                status=Status(code=Code.OK, message=""),
                parameters=ndarrays_to_parameters([shared.parameters()]),
                num_examples=len(shards[i].train),
                metrics={},
            )
            results.append((proxies[i], fit))
        aggregated, _ = strategy.aggregate_fit(r + 1, results, [])
        if aggregated is not None:
            (vector,) = parameters_to_ndarrays(aggregated)
            global_model = global_model.with_parameters(np.asarray(vector, dtype=np.float64))
    return {
        "name": job["name"],
        "accuracy": global_model.accuracy(test.X, test.y),
        "backdoor": attack_success_rate(global_model, test.X, test.y),
    }


def main(argv: list[str]) -> None:
    logging.getLogger("flwr").setLevel(logging.ERROR)
    jobs: list[dict[str, Any]] = json.loads(argv[0])
    results = [run_job(job) for job in jobs]
    print(json.dumps({"flwr_version": flwr.__version__, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
