"""A small multi-layer perceptron (ReLU hidden layers, softmax output) in plain numpy.

Same contract as :class:`~kernal.learning.model.SoftmaxModel` (``fit``, ``predict_proba``,
``accuracy``, ``parameters``/``with_parameters``, ``class_counts``, ``rounds``, a strict JSON
wire format), so merging, the gate and the attacks work on either.

**Shared initialisation.** Every trainer starts from the same weights, drawn from a fixed seed
and the layer sizes (:meth:`MLPModel.initial`). Hidden units of two networks trained from
different random starts are permuted relative to each other, so averaging them destroys both;
from a common start, and with merges every few epochs, the trainers stay in one basin and the
coordinate-wise average is meaningful (McMahan et al. 2017, "Communication-efficient learning
of deep networks from decentralized data", Fig. 1: shared vs independent initialisation).
``tests/learning/test_mlp.py`` measures it on digits.
"""

from __future__ import annotations

import itertools
import math
import zlib
from typing import Any

import numpy as np

from kernal.learning.model import (
    BALANCE,
    MAX_ABS_PARAMETER,
    Classifier,
    FloatArray,
    IntArray,
    _is_int,
    _numbers,
    checked_counts,
    json_counts,
    json_shape,
    minibatches,
    rounded,
    softmax,
)

KIND = "mlp"
MAX_HIDDEN_LAYERS = 2
MAX_HIDDEN_UNITS = 512
# About 60 KB of JSON per 6,000 parameters: this keeps a shared model well under the hub's
# 1 MiB frame (and a hostile one from costing us much to decode).
MAX_PARAMETERS = 60_000
INIT_SEED = 20_240_901  # the shared initialisation's seed (any constant; all trainers agree)
DEFAULT_HIDDEN = (64,)
# FedProx weight for training between merges (see MLPModel.fit). Measured in the simulator
# (10 trainers, dirichlet:0.5, 3 local epochs per round): honest accuracy on digits 0.88 -> 0.92
# with it; the first, local-only training runs without it.
COLLABORATIVE_PROX = 0.1
# Adam's step size for that training between merges (0.003, ``fit``'s default, for the first,
# local-only training and for a model trained alone). Each round is 3 short epochs on a
# shard of about a hundred rows, so 40 rounds are few steps: harder data was still climbing at
# the end. Measured with the scorecard (gated, 3 seeds, docs/learning.md, "A faster step
# between merges"): waves attack-free 0.8519 -> 0.8732, honest pairs below under sybils 7.9
# -> 4.8%, backdoor 9 -> 7%; digits 0.9501 -> 0.9459, backdoor 5 -> 3%; on generated tables
# nobody tuned on, +1 to +6 points.
COLLABORATIVE_LR = 0.01
# Every dataset reaches a model with features in [0, 1] (digits / 16, a CSV or NPZ encoded and
# min-max scaled, waves by a fixed map). The first layer sees ``(x - 0.5) * sqrt(12)``: a fixed
# map, the same for every trainer and every dataset, that gives a feature spread uniformly over
# [0, 1] zero mean and unit variance, the inputs He initialisation assumes. Without it every
# hidden unit's input carries a large common offset (waves: feature means 0.49, spreads
# 0.06-0.14) and Adam spends most of a short collaboration learning to cancel it. Measured in the
# simulator (10 trainers, dirichlet:0.5, 40 rounds x 3 epochs, seeds 0 1 2, mean honest
# accuracy): waves 0.57 -> 0.83, digits 0.91 -> 0.95; server FedAvg on waves' shards, 40 rounds,
# seed 0: 0.60 -> 0.87-0.88 (z-scored, or scaled by 4 instead of sqrt(12)).
INPUT_CENTRE = 0.5
INPUT_SCALE = math.sqrt(12.0)
Layers = list[tuple[FloatArray, FloatArray]]


def parse_hidden(text: str | int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """``"64"`` -> (64,), ``"64,32"`` -> (64, 32); ``ValueError`` unless 1-2 sizes in 1..512."""
    if isinstance(text, int):
        sizes: tuple[int, ...] = (text,)
    elif isinstance(text, tuple | list):
        sizes = tuple(int(v) for v in text)
    else:
        try:
            sizes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
        except ValueError:
            sizes = ()
    if not 1 <= len(sizes) <= MAX_HIDDEN_LAYERS or any(
        not 1 <= s <= MAX_HIDDEN_UNITS for s in sizes
    ):
        raise ValueError(
            f"bad hidden layers {text!r}: expected 1 or 2 sizes in 1..{MAX_HIDDEN_UNITS},"
            " e.g. 64 or 64,32"
        )
    return sizes


def parameter_count(d: int, k: int, hidden: tuple[int, ...]) -> int:
    """Weights and biases of an MLP with these layer sizes."""
    sizes = [d, *hidden, k]
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _views(flat: FloatArray, shapes: list[tuple[int, ...]]) -> list[FloatArray]:
    """Consecutive pieces of ``flat`` with these shapes (views: writing one writes ``flat``)."""
    out: list[FloatArray] = []
    at = 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[at : at + size].reshape(shape))
        at += size
    return out


class MLPModel(Classifier):
    """``p(y | x) = softmax(relu(... relu(z W1 + b1) ...) Wn + bn)``, ``z = (x - 0.5) * sqrt(12)``.

    ``layers`` is a list of ``(W, b)``, ``W`` of shape (inputs x outputs); the last layer's
    outputs are the classes. ``class_counts`` and ``rounds`` mean what they mean for
    :class:`~kernal.learning.model.SoftmaxModel`.
    """

    kind = KIND

    def __init__(
        self, layers: Layers, class_counts: IntArray | None = None, rounds: int = 0
    ) -> None:
        if not 2 <= len(layers) <= MAX_HIDDEN_LAYERS + 1:
            raise ValueError(f"an MLP needs 1 or 2 hidden layers, got {len(layers) - 1}")
        checked: Layers = []
        for W, b in layers:
            W, b = np.array(W, dtype=np.float64), np.array(b, dtype=np.float64)
            if W.ndim != 2 or b.shape != (W.shape[1],):
                raise ValueError(f"need W (m x n) and b (n), got {W.shape} and {b.shape}")
            if checked and checked[-1][0].shape[1] != W.shape[0]:
                raise ValueError("consecutive layers do not fit together")
            checked.append((W, b))
        self.layers: Layers = checked
        self.class_counts = checked_counts(class_counts, checked[-1][0].shape[1])
        self.rounds: int = int(rounds)

    @classmethod
    def initial(
        cls, d: int, k: int, hidden: tuple[int, ...] = DEFAULT_HIDDEN, seed: int = INIT_SEED
    ) -> MLPModel:
        """The shared starting point: He-initialised weights from ``seed`` (default
        :data:`INIT_SEED`, which every trainer uses) and the layer sizes, zero biases; the same
        on every machine for the same sizes. Another ``seed`` is only for measuring what a
        shared start is worth."""
        if parameter_count(d, k, hidden) > MAX_PARAMETERS:
            raise ValueError(
                f"an MLP {d}-{'-'.join(map(str, hidden))}-{k} has"
                f" {parameter_count(d, k, hidden):,} parameters, more than {MAX_PARAMETERS:,}"
                " (too large to share through the hub): use fewer hidden units (--option"
                " hidden=32) or the softmax model"
            )
        sizes = [d, *hidden, k]
        rng = np.random.default_rng([seed, zlib.crc32(repr(sizes).encode())])
        layers: Layers = [
            (rng.normal(0.0, math.sqrt(2.0 / a), size=(a, b)), np.zeros(b))
            for a, b in itertools.pairwise(sizes)
        ]
        return cls(layers)

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(W.shape[1]) for W, _ in self.layers[:-1])

    @property
    def n_features(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.layers[-1][0].shape[1])

    @property
    def signature(self) -> tuple[object, ...]:
        """The kind and every array's shape: two models can be merged iff these are equal."""
        return (self.kind, *(s for W, b in self.layers for s in (W.shape, b.shape)))

    def parameters(self) -> FloatArray:
        """Every weight and bias flattened into one vector (for norms, distances, attacks)."""
        return np.concatenate([a.ravel() for W, b in self.layers for a in (W, b)])

    def with_parameters(self, vector: FloatArray) -> MLPModel:
        """A new model of this shape holding ``vector`` (same counts and rounds)."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.parameters().size,):
            raise ValueError(f"need {self.parameters().size} parameters, got {vector.shape}")
        pieces = [piece.copy() for piece in _views(vector, self._shapes())]
        layers: Layers = list(zip(pieces[::2], pieces[1::2], strict=True))
        return MLPModel(layers, self.class_counts.copy(), self.rounds)

    def _shapes(self) -> list[tuple[int, ...]]:
        """The shapes of every weight and bias, in :meth:`parameters` order."""
        return [a.shape for W, b in self.layers for a in (W, b)]

    def _forward(self, X: FloatArray) -> tuple[list[FloatArray], FloatArray]:
        """The standardised inputs, then the activations of every hidden layer; and the output
        logits."""
        h = (X - INPUT_CENTRE) * INPUT_SCALE
        acts: list[FloatArray] = [h]
        for W, b in self.layers[:-1]:
            h = np.maximum(h @ W + b, 0.0)
            acts.append(h)
        W, b = self.layers[-1]
        return acts, h @ W + b

    def logits(self, X: FloatArray) -> FloatArray:
        return self._forward(X)[1]

    def fit(
        self,
        X: FloatArray,
        y: IntArray,
        epochs: int,
        lr: float = 0.003,
        l2: float = 1e-4,
        seed: int = 0,
        batch_size: int = 32,
        balance: float | None = BALANCE,
        prox: float = 0.0,
    ) -> MLPModel:
        """Mini-batch Adam on cross-entropy + ``l2/2 * sum |W|^2``, in place; returns self.

        Warm start from the current parameters; Adam's moments start afresh at each call (a
        merge in between changes the parameters under them). Deterministic given ``seed``.
        ``balance`` is the logit adjustment of :meth:`SoftmaxModel.fit` (same reason: learn
        class evidence, not this shard's class mix). ``prox`` > 0 adds ``prox/2 * |theta -
        theta_0|^2``, ``theta_0`` the parameters at the call (FedProx, Li et al. 2020: local
        training stays near what was merged). Counts and rounds as there.
        """
        seen, onehot, offset = self._fit_targets(
            X, y, epochs=epochs, lr=lr, l2=l2, batch_size=batch_size, balance=balance
        )
        # Every parameter, gradient and Adam moment lives in one flat vector (the layers become
        # views into it), so each step's update is a dozen numpy calls, not a dozen per array:
        # on these small layers the calls, not the arithmetic, were the cost. Elementwise, the
        # same operations in the same order: the result is the same to the last bit.
        shapes = self._shapes()
        theta = self.parameters()
        views = _views(theta, shapes)
        self.layers = list(zip(views[::2], views[1::2], strict=True))
        grad = np.zeros_like(theta)
        grads = _views(grad, shapes)
        anchor = theta.copy() if prox > 0 else None
        m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for step, (xb, target) in enumerate(minibatches(X, onehot, epochs, batch_size, seed), 1):
            acts, logits = self._forward(xb)
            p = softmax(logits + offset)
            delta = (p - target) / len(xb)
            inputs = acts  # the first layer's input is the standardised batch
            for li in range(len(self.layers) - 1, -1, -1):
                W, _ = self.layers[li]
                grads[2 * li + 1][...] = delta.sum(axis=0)
                grads[2 * li][...] = inputs[li].T @ delta + l2 * W
                if li:
                    delta = (delta @ W.T) * (inputs[li] > 0)
            if anchor is not None:
                grad += prox * (theta - anchor)
            c1, c2 = 1 - beta1**step, 1 - beta2**step
            m1 *= beta1
            m1 += (1 - beta1) * grad
            m2 *= beta2
            m2 += (1 - beta2) * grad * grad
            theta -= lr * (m1 / c1) / (np.sqrt(m2 / c2) + eps)
        self.class_counts = np.maximum(self.class_counts, seen)
        self.rounds += 1
        return self

    def copy(self) -> MLPModel:
        return MLPModel(
            [(W.copy(), b.copy()) for W, b in self.layers], self.class_counts.copy(), self.rounds
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict; floats rounded to 5 significant digits (64-64-10: about 45 KB)."""
        return {
            "kind": KIND,
            "features": self.n_features,
            "classes": self.n_classes,
            "hidden": list(self.hidden),
            "layers": [{"W": rounded(W), "b": rounded(b)} for W, b in self.layers],
            "class_counts": [int(c) for c in self.class_counts],
            "rounds": self.rounds,
        }

    @classmethod
    def from_json(cls, data: Any) -> MLPModel:
        """Rebuild from :meth:`to_json` output, validating everything; ``ValueError`` only.

        Checks: a dict of kind "mlp"; ``features``/``classes`` ints in range; ``hidden`` 1-2
        ints in 1..512; at most :data:`MAX_PARAMETERS` parameters in all (checked before any
        array is read); ``layers`` one ``{"W", "b"}`` per layer with exactly the sizes the
        shapes imply (``W`` flat, row-major), every value finite with ``|v| <= 1e4``;
        ``class_counts`` ``classes`` ints in [0, 1e9]; ``rounds`` an int >= 0.
        """
        d, k = json_shape(data, KIND)
        raw_hidden = data.get("hidden")
        if not isinstance(raw_hidden, list) or not all(_is_int(h) for h in raw_hidden):
            raise ValueError("hidden must be a list of 1 or 2 ints")
        hidden = parse_hidden(tuple(raw_hidden)) if raw_hidden else parse_hidden("")
        if parameter_count(d, k, hidden) > MAX_PARAMETERS:
            raise ValueError(f"model too large: {parameter_count(d, k, hidden)} parameters")
        raw_layers = data.get("layers")
        sizes = [d, *hidden, k]
        if not isinstance(raw_layers, list) or len(raw_layers) != len(sizes) - 1:
            raise ValueError(f"layers must be a list of {len(sizes) - 1} layers")
        layers: Layers = []
        for layer, a, b in zip(raw_layers, sizes[:-1], sizes[1:], strict=True):
            if not isinstance(layer, dict):
                raise ValueError("each layer must be an object with W and b")
            W = np.array(_numbers(layer.get("W"), a * b, "W"), dtype=np.float64).reshape(a, b)
            bias = np.array(_numbers(layer.get("b"), b, "b"), dtype=np.float64)
            layers.append((W, bias))
        return cls(layers, *json_counts(data, k))


__all__ = ["MAX_ABS_PARAMETER", "MLPModel", "parameter_count", "parse_hidden"]
