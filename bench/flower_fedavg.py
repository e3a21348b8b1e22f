"""Flower's FedAvg on the same shards as a kernal run: the reference for ``bench/learning.py``.

Runs in its own virtualenv (``bench/.venv-flower``, made by ``bench/learning.py``), because
``flwr`` pins dependencies that clash with kernal's CLI; only :mod:`kernal.learning` (numpy and
scikit-learn) is imported from kernal.

Each job is one federation: the clients of a kernal scenario, each with the shard that trainer
draws (``make_shard(pool, split, data_seed)``, the ``data_seed`` computed by the caller with
``kernal.engines.learning.data_seed``) and its behaviour. Every round goes through Flower's own
server-side machinery, in process and sequentially (no Ray, no gRPC):

1. ``FedAvg.configure_fit`` samples every client (``fraction_fit=1``) from a
   ``SimpleClientManager`` and hands each the current global parameters;
2. each client (a ``NumPyClient``, called through a ``ClientProxy``) starts from the global
   model, trains ``epochs`` epochs of :meth:`SoftmaxModel.fit` on its shard (flipped labels for
   ``label_flip``), and returns ``Behaviour.outgoing(...)`` of it: its honest model, or the
   attack's version of it, with ``num_examples`` = its training-shard size;
3. ``FedAvg.aggregate_fit`` averages the returned ``FitRes`` weighted by ``num_examples``.

The result is the final global model's accuracy on kernal's held-out test set, and the wall
time of the rounds (shard building and the ``flwr`` import excluded).

    bench/.venv-flower/bin/python bench/flower_fedavg.py JOBS_JSON

``JOBS_JSON`` is a JSON list of ``{"name", "split", "shard_size", "rounds", "epochs",
"clients": [{"ai_id", "data_seed", "behaviour"}]}``; the last line of stdout is one JSON object
``{"flwr_version", "results": [{"name", "accuracy", "wall_time", "rounds", "history"}]}``.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from typing import Any

import flwr
import numpy as np
from flwr.client import Client, NumPyClient
from flwr.common import (
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    GetPropertiesRes,
    NDArrays,
    ReconnectIns,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg

from kernal.learning.attacks import parse_behaviour
from kernal.learning.data import Dataset, holdout, load_digits, make_shard
from kernal.learning.model import SoftmaxModel


class ShardClient(NumPyClient):  # type: ignore[misc]
    """One kernal trainer's shard and behaviour, as a Flower NumPy client."""

    def __init__(
        self, pool: Dataset, split: str, shard_size: int | None, spec: dict[str, Any], epochs: int
    ) -> None:
        self.ai_id = str(spec["ai_id"])
        self.seed = int(spec["data_seed"])
        self.behaviour = parse_behaviour(str(spec.get("behaviour", "honest")))
        self.shard = make_shard(pool, split, self.seed, shard_size)
        self.train_y = self.behaviour.training_labels(self.shard.train.y, pool.n_classes)
        self.epochs = epochs
        self.rng = np.random.default_rng(self.seed)
        self.fits = 0

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train from the global model; return what this client's behaviour shares."""
        W, b = (np.array(p, dtype=np.float64) for p in parameters)
        received = SoftmaxModel(W, b)
        model = received.copy()
        if self.behaviour.trains():
            self.fits += 1
            model.fit(self.shard.train.X, self.train_y, self.epochs, seed=self.seed + self.fits)
        interaction = int(config.get("server_round", 1)) - 1
        shared = self.behaviour.outgoing(model, interaction, received, self.rng)
        return [shared.W, shared.b], len(self.shard.train), {}


class InProcessProxy(ClientProxy):  # type: ignore[misc]
    """A ``ClientProxy`` that calls its Flower ``Client`` directly (fit only)."""

    def __init__(self, cid: str, client: Client) -> None:
        super().__init__(cid)
        self.client = client

    def fit(self, ins: FitIns, timeout: float | None, group_id: int | None) -> FitRes:
        return self.client.fit(ins)

    def get_properties(
        self, ins: GetPropertiesIns, timeout: float | None, group_id: int | None
    ) -> GetPropertiesRes:
        raise NotImplementedError

    def get_parameters(
        self, ins: GetParametersIns, timeout: float | None, group_id: int | None
    ) -> GetParametersRes:
        raise NotImplementedError

    def evaluate(
        self, ins: EvaluateIns, timeout: float | None, group_id: int | None
    ) -> EvaluateRes:
        raise NotImplementedError

    def reconnect(
        self, ins: ReconnectIns, timeout: float | None, group_id: int | None
    ) -> DisconnectRes:
        raise NotImplementedError


def run_job(job: dict[str, Any], pool: Dataset, test: Dataset) -> dict[str, Any]:
    """One federation of ``job["rounds"]`` FedAvg rounds; the global model's test accuracy."""
    split = str(job["split"])
    shard_size = None if job.get("shard_size") is None else int(job["shard_size"])
    epochs, rounds = int(job["epochs"]), int(job["rounds"])
    random.seed(0)  # SimpleClientManager.sample shuffles with the random module
    manager = SimpleClientManager()
    for spec in job["clients"]:
        client = ShardClient(pool, split, shard_size, spec, epochs)
        manager.register(InProcessProxy(client.ai_id, client.to_client()))
    n = manager.num_available()
    d, k = pool.X.shape[1], pool.n_classes
    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_available_clients=n,
        on_fit_config_fn=lambda server_round: {"server_round": server_round},
        initial_parameters=ndarrays_to_parameters([np.zeros((d, k)), np.zeros(k)]),
        fit_metrics_aggregation_fn=lambda metrics: {},
    )
    parameters = strategy.initialize_parameters(manager)

    def accuracy() -> float:
        W, b = parameters_to_ndarrays(parameters)
        return SoftmaxModel(np.asarray(W), np.asarray(b)).accuracy(test.X, test.y)

    history: list[float] = []
    started = time.perf_counter()
    for server_round in range(1, rounds + 1):
        instructions = strategy.configure_fit(server_round, parameters, manager)
        results = [(proxy, proxy.fit(ins, None, None)) for proxy, ins in instructions]
        aggregated, _ = strategy.aggregate_fit(server_round, results, [])
        if aggregated is not None:
            parameters = aggregated
        history.append(round(accuracy(), 4))
    wall = time.perf_counter() - started
    return {
        "name": job.get("name"),
        "accuracy": round(accuracy(), 4),
        "wall_time": round(wall, 3),
        "rounds": rounds,
        "clients": n,
        "history": history,
    }


def main(argv: list[str]) -> None:
    """Run every job of ``argv[0]`` (JSON) and print the results as one JSON line."""
    logging.getLogger("flwr").setLevel(logging.ERROR)
    jobs: list[dict[str, Any]] = json.loads(argv[0])
    pool, test = holdout(load_digits(), seed=0)  # as kernal.engines.learning.dataset_for(None)
    results = [run_job(job, pool, test) for job in jobs]
    print(json.dumps({"flwr_version": flwr.__version__, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
