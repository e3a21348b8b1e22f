"""Combining models, and the gate that decides whether a partner's model is worth keeping.

Trainers hold non-IID shards (a few classes each), so :func:`merge` is class-wise: column ``c``
of ``W`` (and ``b[c]``) is averaged with weights proportional to how many samples of class ``c``
each model has seen. A partner that never saw my classes then barely touches my columns, while
the classes only it has seen come almost entirely from it.

:func:`evaluate_merge` is the gate, run by the receiver on its own private validation slice
(see its docstring for the exact rule and the measurements behind it). :func:`fedavg` is the
undefended baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kernal.learning.model import FloatArray, IntArray
from kernal.learning.models import Model

# Pseudo-count added to both sides of the class-wise weights, so a class neither model has seen
# is a plain average instead of 0/0.
COUNT_FLOOR = 1.0
TAU = 0.2
MAX_NORM_RATIO = 4.0
DUPLICATE_DISTANCE = 1e-3
ZERO_NORM = 1e-9
SCAN_BLOCK = 4
HIJACK_LIMIT = 0.7
HIJACK_MARGIN = 0.3
# The receiver's typical cost of a merge (see :func:`typical_change`): the median of its last
# TYPICAL_WINDOW measured changes, clamped to [TYPICAL_FLOOR, 0].
TYPICAL_WINDOW = 20
TYPICAL_FLOOR = -0.2
# If the partner's model gets a fraction c below CLAIM_ACCURACY of our validation rows right
# among the classes a merge takes at least CLAIM_SHARE from it, its outcome gets that part of
# the typical-cost allowance, c / CLAIM_ACCURACY (none for a model wrong on all of them); if it
# gets at least that many right, the full allowance, at least COMPETENT_ALLOWANCE (see
# :func:`evaluate_merge`, rule 3).
CLAIM_SHARE = 0.2
CLAIM_ACCURACY = 0.5
COMPETENT_ALLOWANCE = TYPICAL_FLOOR
# ...unless stamping a patch on our inputs sends COMPETENT_HIJACK more of them to one class under
# its model than under ours before any merge (:func:`hijack_rate`): a trace of a trigger.
COMPETENT_HIJACK = 0.15
# The norm check's reference (see :func:`typical_norm`): the NORM_QUANTILE-th percentile (the
# lower quartile) of the parameter norms of the last TYPICAL_WINDOW partner models the receiver
# measured, once it has measured at least NORM_SAMPLES of them.
NORM_QUANTILE = 25.0
NORM_SAMPLES = 4
# The scan's rise check (see :func:`typical_rise` and :func:`evaluate_merge`, rule 5): the
# receiver's usual rise is the median rise of its last TYPICAL_WINDOW merges that reached the
# check, once it has RISE_SAMPLES of them. A merge is not kept if a stamp sends RISE_FACTOR times
# that (and at least RISE_FLOOR) more of our inputs to one class under the merged model than under
# ours. A merge that costs validation accuracy is kept only if it rises no more than usual and
# costs at most LOSSY_COST of the true labels' probability (``dp``; tau / 5).
RISE_FACTOR = 3.0
RISE_FLOOR = 0.15
RISE_SAMPLES = 4
LOSSY_COST = 0.04


def _check_compatible(a: Model, b: Model) -> None:
    if a.signature != b.signature:
        raise ValueError(f"incompatible models: {a.signature} vs {b.signature}")


def hidden_share(own: Model, other: Model) -> float:
    """``other``'s weight for hidden layers, which serve every class: ``(N_o + 1) /
    (N_s + N_o + 2)`` with ``N`` the total samples seen."""
    mine = float(own.class_counts.sum()) + COUNT_FLOOR
    theirs = float(other.class_counts.sum()) + COUNT_FLOOR
    return theirs / (mine + theirs)


def class_shares(own: Model, other: Model) -> FloatArray:
    """Per class, ``other``'s weight in a class-wise merge: ``(n_o + 1) / (n_s + n_o + 2)``."""
    mine = own.class_counts.astype(np.float64) + COUNT_FLOOR
    theirs = other.class_counts.astype(np.float64) + COUNT_FLOOR
    shares: FloatArray = theirs / (mine + theirs)
    return shares


def merge(own: Model, other: Model, weight: float | None = None) -> Model:
    """A new model combining ``own`` and ``other``; neither input is modified.

    ``weight=None``: class-wise, column ``c`` of the output layer's ``W`` and ``b[c]`` get
    ``other``'s share from :func:`class_shares`; an MLP's hidden layers, which serve every
    class, get one share from the total samples (:func:`hidden_share`). Hidden layers can be
    averaged coordinate-wise because every trainer starts from the same seeded initialisation
    (see :mod:`kernal.learning.mlp`). A float ``weight`` in [0, 1]: the plain convex combination
    ``(1 - weight) * own + weight * other``. The result's ``class_counts`` is the element-wise
    max (not the sum: knowledge passed around by gossip must not be counted twice) and its
    ``rounds`` the max of both. ``merge(m, m)`` equals ``m``. ``ValueError`` if shapes differ.
    """
    _check_compatible(own, other)
    if weight is None:
        share = class_shares(own, other)
        inner = hidden_share(own, other)
    elif 0.0 <= weight <= 1.0:
        share = np.full(own.n_classes, float(weight))
        inner = float(weight)
    else:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    pieces: list[FloatArray] = []
    last = len(own.layers) - 1
    for i, ((Ws, bs), (Wo, bo)) in enumerate(zip(own.layers, other.layers, strict=True)):
        s = share if i == last else inner
        pieces += [((1.0 - s) * Ws + s * Wo).ravel(), (1.0 - s) * bs + s * bo]
    out = own.with_parameters(np.concatenate(pieces))
    out.class_counts = np.maximum(own.class_counts, other.class_counts)
    out.rounds = max(own.rounds, other.rounds)
    return out


@dataclass(frozen=True)
class MergeDecision:
    """What the gate measured.

    ``model`` is the merged model if ``kept``, else ``own`` itself (the same object, untouched).
    ``outcome`` in [0, 1] is what feeds the partner's reputation; ``reason`` says why in words.
    """

    kept: bool
    outcome: float
    own_accuracy: float
    merged_accuracy: float
    partner_accuracy: float
    model: Model
    reason: str = ""
    likelihood_change: float = 0.0
    # Whether a merge was tried and measured (``likelihood_change`` is then its ``dp``): what
    # the receiver keeps for :func:`typical_change`. False for a model refused outright.
    measured: bool = False
    # The baseline the outcome was measured against (0: none, the absolute rule).
    baseline: float = 0.0
    # The partner model's parameter norm (0 if incompatible or all zeros): what the receiver
    # keeps for :func:`typical_norm`.
    partner_norm: float = 0.0
    # How much more of our inputs a stamp sends to one class under the merged model than under
    # ours (:func:`scan_rise`), measured for a merge that passed every other check (None
    # otherwise): what the receiver keeps for :func:`typical_rise`.
    scan_rise: float | None = None


def _relative_distance(a: Model, b: Model) -> float:
    pa, pb = a.parameters(), b.parameters()
    scale = max(float(np.linalg.norm(pa)), float(np.linalg.norm(pb)), 1e-12)
    return float(np.linalg.norm(pa - pb)) / scale


def _true_class_probability(model: Model, X: FloatArray, y: IntArray) -> FloatArray:
    probabilities: FloatArray = model.predict_proba(X)[np.arange(len(y)), y]
    return probabilities


def stamp_scan(model: Model, X: FloatArray, block: int = SCAN_BLOCK) -> FloatArray:
    """A blunt trigger scan: for every run of ``block`` consecutive features set to 1 (a
    stamp) and every class, the fraction of the rows of ``X`` whose predicted class the stamp
    changes *to that class*. Shape (stamps, classes); empty if ``X`` is empty or too narrow."""
    if len(X) == 0 or X.shape[1] < block:
        return np.zeros((0, model.n_classes))
    n, d = X.shape
    positions = d - block + 1
    clean = model.predict(X)
    stamped = np.repeat(X[None, :, :], positions, axis=0)
    for start in range(positions):
        stamped[start, :, start : start + block] = 1.0
    moved = model.predict(stamped.reshape(positions * n, d)).reshape(positions, n)
    changed = moved != clean[None, :]
    counts = np.zeros((positions, model.n_classes))
    np.add.at(counts, (np.nonzero(changed)[0], moved[changed]), 1.0)
    fractions: FloatArray = counts / n
    return fractions


def hijack_rate(model: Model, X: FloatArray, block: int = SCAN_BLOCK) -> float:
    """The largest share of ``X`` whose prediction one stamp sends to one class: the maximum of
    :func:`stamp_scan`.

    An honest model's predictions scatter when a patch is stamped on (digits: 0.1-0.5 measured
    on six shards); a model trained to map a patch to a target class sends most rows there
    (0.77-1.0 for the ``backdoor`` attack's 4-pixel trigger).
    """
    scan = stamp_scan(model, X, block)
    return float(scan.max()) if scan.size else 0.0


def scan_blind_spot(own_rate: float) -> str | None:
    """A warning when the trigger scan cannot refuse any partner on this receiver's data, else
    None. ``own_rate`` is the receiver's :func:`hijack_rate` before it merged anything.

    The scan refuses a model whose stamp sends at least ``HIJACK_MARGIN`` (30 points) more of
    our inputs to one class than our own model did. On images a stamp scatters an honest
    model's predictions (digits: 0.1-0.5). On a table scaled to [0, 1], four columns set to 1
    make an extreme row, and an honest model may send nearly every such row to one class (a
    ``make_classification`` table: 0.47-0.86 over ten trainers, seven above 0.7), so no model
    can be 30 points above it: the scan is blind there, and only its rise check still stands
    between a patch trigger and the receiver (measured: 46% backdoor success on such a table,
    docs/learning.md, "The trigger scan on tables")."""
    if own_rate + HIJACK_MARGIN <= 1.0:
        return None
    return (
        f"trigger scan: a stamp of {SCAN_BLOCK} features set to 1 already sends {own_rate:.0%}"
        " of this trainer's validation rows to one class under its own model, so on this data"
        " the scan cannot tell a patch backdoor from an honest reading of extreme values and"
        " refuses no partner for it (its rise check still applies). Compare backdoor_success"
        " with backdoor_success_alone, the same trigger on the model trained without merges."
    )


def scan_rise(merged: Model, own: Model, X: FloatArray) -> float:
    """How much more of ``X`` one stamp sends to one class under ``merged`` than under
    ``own``: the largest rise of one cell of :func:`stamp_scan` (0 if nothing rises)."""
    rise = stamp_scan(merged, X) - stamp_scan(own, X)
    return max(0.0, float(rise.max())) if rise.size else 0.0


def typical_change(changes: Sequence[float], window: int = TYPICAL_WINDOW) -> float:
    """What merging a partner typically costs this receiver: the median of its last ``window``
    measured ``dp`` values (:attr:`MergeDecision.likelihood_change` of the decisions with
    ``measured``), clamped to [``TYPICAL_FLOOR``, 0] (-0.2: at most one ``tau``); 0 without any.

    At dirichlet:0.1 a trainer holds one or two classes, and an honest partner holding others
    costs its validation slice when merged (its columns claim some of our rows): that cost is
    the receiver's, not the partner's fault, and it is about the same from every partner. The
    median ignores the few poisoners among them; the clamp keeps a receiver whose merges are
    mostly hostile from excusing everything."""
    recent = list(changes)[-window:] if window > 0 else []
    if not recent:
        return 0.0
    return float(np.clip(np.median(recent), TYPICAL_FLOOR, 0.0))


def typical_norm(
    norms: Sequence[float],
    window: int = TYPICAL_WINDOW,
    samples: int = NORM_SAMPLES,
    quantile: float = NORM_QUANTILE,
) -> float:
    """The parameter norm of a typical partner model: the ``quantile``-th percentile (25: the
    lower quartile) of the last ``window`` partner norms this receiver measured
    (:attr:`MergeDecision.partner_norm`, refused models included), 0 while it has fewer than
    ``samples`` (4); the norm check compares a partner with the larger of this and our own
    norm.

    Our own norm alone collapses for a receiver whose shard holds one class: a softmax trained
    on one class stops growing once that class wins (digits, dirichlet:0.1: own norms of 0.3 to
    1.6 where honest partners measure 2.7 to 11.3), so nearly every honest partner looked
    boosted. The partners' norms do not depend on our shard. The lower quartile moves up only
    when boosted models (10x) are three quarters of what we measured, and 4 is the fewest
    samples for which that takes 3 of them, not 1 or 2. Measured (100 trainers, 30 ``scale``
    attackers, seeds 0 1 2): with the median of at least 10 instead, fewer attackers were
    distrusted within 5 interactions (97.4-99.3% of pairs, vs 99.6-99.9% with this rule and
    99.7-100% with our own norm alone)."""
    recent = list(norms)[-window:] if window > 0 else []
    if len(recent) < max(samples, 1):
        return 0.0
    return float(np.percentile(recent, quantile))


def typical_rise(
    rises: Sequence[float], window: int = TYPICAL_WINDOW, samples: int = RISE_SAMPLES
) -> float | None:
    """How much this receiver's merges usually raise the trigger scan: the median
    :func:`scan_rise` of its last ``window`` merges that reached the rise check
    (:attr:`MergeDecision.scan_rise`); None (no check) while it has fewer than ``samples`` (4).
    :func:`evaluate_merge` takes it as ``usual_rise``.

    A backdoor diluted below the scan's absolute limit still moves its trigger's cell more than
    honest merges move any: measured with the MLP (simulator, 10 trainers, 3 ``backdoor``
    attackers, dirichlet:0.5, seeds 0 1 2), honest merges rose by a median 0.06 (digits) and
    0.10-0.13 (``waves``), the attackers' merges that were kept by 0.26 and 0.59. One absolute
    limit cannot serve both: 0.25 stopped the backdoor on both but refused so many honest
    ``waves`` merges that its attack-free accuracy fell from 0.83 to 0.69. Relative to the
    receiver's own merges it cost no attack-free accuracy on either (docs/learning.md, "A
    backdoor diluted below the scan's limit")."""
    recent = list(rises)[-window:] if window > 0 else []
    if len(recent) < max(samples, 1):
        return None
    return float(np.median(recent))


def moved_rows(own: Model, other: Model, val_y: IntArray) -> NDArray[np.bool_]:
    """Which of our validation rows belong to the classes a merge would take at least
    ``CLAIM_SHARE`` (a fifth) from ``other`` (:func:`class_shares`, so among the classes it says
    it saw): the rows its model would move."""
    shares = class_shares(own, other)
    moved = np.flatnonzero((shares >= CLAIM_SHARE) & (other.class_counts > 0))
    return np.isin(val_y, moved)


def claimed_accuracy(own: Model, other: Model, val_X: FloatArray, val_y: IntArray) -> float | None:
    """``other``'s accuracy on our validation rows of :func:`moved_rows`. None when we hold no
    row of those classes (nothing to check)."""
    rows = moved_rows(own, other, val_y)
    if not rows.any():
        return None
    return other.accuracy(val_X[rows], val_y[rows])


def fails_own_classes(own: Model, other: Model, val_X: FloatArray, val_y: IntArray) -> bool:
    """Whether ``other`` gets less than ``CLAIM_ACCURACY`` (half) of the rows its model would
    move right (:func:`claimed_accuracy`). An honest model knows the classes it trained on; a
    sign-flipped, label-flipped or noisy one does not, and claiming fewer samples only shrinks
    what it moves. False when we hold no row of those classes (nothing to check)."""
    accuracy = claimed_accuracy(own, other, val_X, val_y)
    return accuracy is not None and accuracy < CLAIM_ACCURACY


def evaluate_merge(
    own: Model,
    other: Model,
    val_X: FloatArray,
    val_y: IntArray,
    *,
    tau: float = TAU,
    history: Sequence[Model] = (),
    weight: float | None = None,
    max_norm_ratio: float = MAX_NORM_RATIO,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    trigger_scan: bool = True,
    hijack_reference: float | None = None,
    typical: float = 0.0,
    check_claims: bool = True,
    norm_reference: float = 0.0,
    competent_allowance: float = COMPETENT_ALLOWANCE,
    competent_hijack: float = COMPETENT_HIJACK,
    credit_moved_rows: bool = True,
    usual_rise: float | None = None,
    rise_factor: float = RISE_FACTOR,
    rise_floor: float = RISE_FLOOR,
) -> MergeDecision:
    """The gate: merge ``other`` into ``own`` only if that does not hurt on OUR validation data.

    ``val_X``/``val_y`` must be the receiver's private validation slice (never trained on, never
    the shared test set). ``history`` holds models the receiver already has or gave away (its
    recent shared models); ``weight`` is passed to :func:`merge`.

    Rule, in order (the first that applies decides):

    1. Refused with outcome 0 (no merge is even tried) if ``other`` has a different shape, is
       all zeros (an untrained model), has a parameter norm above ``max_norm_ratio`` (4) times
       the larger of ours and ``norm_reference`` (the receiver's :func:`typical_norm`; 0 by
       default: ours alone) (boosting: honest peers measured at most 1.7x ours at
       dirichlet:0.5), or lies within relative distance
       ``duplicate_distance`` (1e-3) of ``own`` or of a model in ``history`` (a free rider
       echoing our work; honest peers measured no closer than 8e-3), or, with
       ``trigger_scan``, if stamping a patch on our validation inputs sends at least 70% of them
       to one class under ``other`` and 30 points more than the reference (:func:`hijack_rate`:
       a backdoor with a patch trigger; a scattered trigger is not found this way). The
       reference is ``hijack_reference`` when given: the receiver's rate before it merged
       anything (a model trained alone on its own data carries no backdoor), so a backdoor that
       slipped in partly cannot raise the bar for the next one; else ``own``'s rate.
    2. Otherwise ``merged = merge(own, other, weight)``; with ``trigger_scan`` it is not kept
       if the *merged* model fails the scan (a backdoor diluted below the limit in ``other``,
       which merging would still pass on), but the outcome is measured as below: a diluted
       backdoor mostly comes from an honest peer that caught it, which is not to blame. (The
       merged model is scanned only when the merge would otherwise be kept.) Then,
       on the validation slice,
       ``dp`` = change in the mean probability given to the true label (merged minus own) and
       ``da`` = change in accuracy.
    3. ``outcome = clip(1 + (dp - baseline) / tau, 0, 1)`` with ``tau`` = 0.2: no loss gives
       1, a loss of ``tau / 2`` gives 0.5, ``tau`` or more gives 0. The probability, not the
       accuracy, because a slice has ~36 samples so accuracy moves in 3-point steps; measured
       on digits, honest merges have ``dp`` >= -0.04 in 95% of cases while always-malicious
       ones mostly lose 0.1 to 0.6 (tau 0.1 or the accuracy made 5-25% of honest pairs end up
       distrusted). ``baseline`` is ``typical`` (the receiver's :func:`typical_change`, at
       most 0; 0 by default: the absolute rule), so a partner is blamed only for what it costs
       beyond what merging a partner typically costs this receiver. The partner's
       :func:`claimed_accuracy` then decides (``check_claims=False`` skips this): a model
       right on a fraction ``c`` below half of the very rows its merge would move gets that
       part of the allowance, ``c / CLAIM_ACCURACY`` of it (none if wrong on all of them: a
       label flipper's ``c`` is near 0, an honest partner's of another shard mostly 0.37-0.48,
       so all or nothing struck 11% of honest pairs on `waves`), and one
       right on most of them gets at least ``competent_allowance`` (-0.2, one ``tau``): what
       such a merge costs is the cost of averaging two models, not evidence against the
       partner. Not if, with ``trigger_scan``, its :func:`hijack_rate` is
       ``competent_hijack`` (0.15) or more above the reference: a model carrying part of a
       backdoor is right on clean rows too. Measured with the MLP (the simulator, 10
       trainers, dirichlet:0.5, `waves`, seed 0): the first merges of two honest MLPs cost
       0.11-0.24 of the true labels' probability while the receiver has no typical cost yet,
       and one such outcome below 0.5 left the pair below the threshold for good (a
       distrusted peer is never asked again); the scorecard's figures are in
       docs/learning.md ("A partner right on its classes is not blamed"). Such a partner's
       outcome is the better of that and ``clip(1 + dp_moved / tau, 0, 1)``, with ``dp_moved``
       the change on the rows its merge moves alone (:func:`moved_rows`;
       ``credit_moved_rows=False`` skips this): averaging an MLP's hidden layers costs a
       receiver's other rows whoever the partner is, while what the partner brings shows where
       it claims to know better. Measured (digits, 3 sybils among 10, seed 2): an honest
       receiver holding mostly two classes lost 0.16 and 0.34 of the true labels' probability
       on its first two honest merges, rated those partners 0.19 and 0.31 (the second right on
       71% of the rows it moves), and the hub, seeing it contradict the other raters, capped
       its standing at 0 (docs/learning.md, "A competent partner measured where its merge
       moves"). The outcome feeds reputation only.
    4. ``kept`` needs the absolute outcome ``clip(1 + dp / tau, 0, 1)`` to be at least 0.5
       (the baseline never changes which merges are kept) and ``da >= 0``, unless rule 5 lets
       a merge that costs accuracy through: a merge that costs too much of the true labels'
       probability is never kept; ties are kept because the merge brings classes our
       validation slice cannot show.
    5. With ``trigger_scan``, a merge that would be kept is not if the *merged* model fails the
       scan (rule 2), or, with ``usual_rise`` (the receiver's :func:`typical_rise`), if a stamp
       sends at least ``max(rise_floor, rise_factor * usual_rise)`` (0.15, 3x) more of our
       inputs to one class under the merged model than under ours (:func:`scan_rise`, returned
       as :attr:`MergeDecision.scan_rise` for the receiver to keep): a backdoor diluted below
       the scan's limit, which merge after merge would add up. A merge with ``da < 0`` is kept
       only with ``usual_rise``, if it costs at most ``LOSSY_COST`` (0.04, ``tau / 5``: what
       95% of honest softmax merges cost on digits) of the true labels' probability, and if it
       rises by at most a ``rise_factor``-th of that limit (no more than usual): on 80
       validation rows a row or two of accuracy is mostly noise, and what the accuracy rule
       still has to stop is a carrier of a trigger, which this rise shows, or a merge that
       costs much more than a row (``ipm``'s, on softmax). Like rule 2, this changes what is
       kept, never the outcome.

    Raises ``ValueError`` only for an empty validation set.
    """
    if len(val_y) == 0:
        raise ValueError("evaluate_merge needs a non-empty validation set")
    own_acc = own.accuracy(val_X, val_y)

    partner_norm = 0.0

    def refuse(reason: str, partner_acc: float = 0.0) -> MergeDecision:
        return MergeDecision(
            False, 0.0, own_acc, own_acc, partner_acc, own, reason, partner_norm=partner_norm
        )

    if own.signature != other.signature:
        return refuse(f"incompatible model {other.signature}, ours is {own.signature}")
    partner_acc = other.accuracy(val_X, val_y)
    own_norm = float(np.linalg.norm(own.parameters()))
    other_norm = float(np.linalg.norm(other.parameters()))
    if other_norm <= ZERO_NORM:
        return refuse("untrained (all-zero) model", partner_acc)
    partner_norm = other_norm
    reference_norm = max(own_norm, norm_reference)
    if reference_norm > ZERO_NORM and other_norm > max_norm_ratio * reference_norm:
        whose = "ours" if reference_norm == own_norm else "a typical partner's"
        return refuse(f"parameter norm {other_norm / reference_norm:.1f}x {whose}", partner_acc)
    for seen in (own, *history):
        if (
            seen.signature == other.signature
            and _relative_distance(other, seen) < duplicate_distance
        ):
            return refuse("a copy of a model we already have", partner_acc)
    reference = partner_hijack = 0.0
    if trigger_scan:
        reference = hijack_rate(own, val_X) if hijack_reference is None else hijack_reference
        hijack = partner_hijack = hijack_rate(other, val_X)
        if hijack >= HIJACK_LIMIT and hijack >= reference + HIJACK_MARGIN:
            return refuse(f"a patch sends {hijack:.0%} of our inputs to one class", partner_acc)
    merged = merge(own, other, weight)
    merged_acc = merged.accuracy(val_X, val_y)
    change = _true_class_probability(merged, val_X, val_y) - _true_class_probability(
        own, val_X, val_y
    )
    dp = float(np.mean(change))
    absolute = float(np.clip(1.0 + dp / tau, 0.0, 1.0))
    baseline = min(0.0, typical)
    moved = moved_rows(own, other, val_y)
    claimed = None
    if check_claims and moved.any():
        claimed = other.accuracy(val_X[moved], val_y[moved])
    competent = False
    if claimed is not None and claimed < CLAIM_ACCURACY:
        baseline *= max(0.0, claimed) / CLAIM_ACCURACY
    elif claimed is not None and partner_hijack < reference + competent_hijack:
        baseline = min(baseline, competent_allowance, 0.0)
        competent = True
    blamed = dp - baseline
    if competent and credit_moved_rows:
        # What it brings where it claims to know better (rule 3): averaging hidden layers
        # costs our other rows whoever the partner is.
        blamed = max(blamed, float(np.mean(change[moved])))
    outcome = float(np.clip(1.0 + blamed / tau, 0.0, 1.0))
    lossy = merged_acc < own_acc
    # A merge that costs accuracy is scanned, and kept if the scan vouches for it (rule 5).
    vouchable = trigger_scan and usual_rise is not None and dp >= -LOSSY_COST
    kept = absolute >= 0.5 and (not lossy or vouchable)
    reason = "kept" if kept else "worse on our validation data"
    # The merged model's scan decides only a merge that would otherwise be kept: a scan costs
    # as much as the rest of the gate (an MLP on digits: 2.2 of 4.8 ms), and most merges that
    # reach this point are refused anyway.
    rise: float | None = None
    if kept and trigger_scan:
        merged_scan = stamp_scan(merged, val_X)
        hijack = float(merged_scan.max()) if merged_scan.size else 0.0
        if hijack >= HIJACK_LIMIT and hijack >= reference + HIJACK_MARGIN:
            kept = False
            reason = f"merged, a patch sends {hijack:.0%} of our inputs to one class"
        elif merged_scan.size:
            rise = max(0.0, float((merged_scan - stamp_scan(own, val_X)).max()))
            limit = None if usual_rise is None else max(rise_floor, rise_factor * usual_rise)
            if limit is not None and rise >= limit:
                kept = False
                reason = f"merged, a patch sends {rise:.0%} more of our inputs to one class"
            elif lossy and (limit is None or rise > limit / rise_factor):
                kept = False
                reason = "worse on our validation data"
        elif lossy:
            kept = False
            reason = "worse on our validation data"
    model = merged if kept else own
    return MergeDecision(
        kept,
        outcome,
        own_acc,
        merged_acc,
        partner_acc,
        model,
        reason,
        dp,
        True,
        baseline,
        other_norm,
        rise,
    )


def fedavg(models: Sequence[Model], weights: Sequence[float] | None = None) -> Model:
    """Plain weighted parameter average with no gate at all (the undefended baseline).

    ``weights`` default to each model's total ``class_counts`` (equal weights if all are zero).
    Counts merge by element-wise max, ``rounds`` by max. Raises ``ValueError`` on an empty list,
    mismatched shapes or bad weights.
    """
    if not models:
        raise ValueError("fedavg needs at least one model")
    for m in models[1:]:
        _check_compatible(models[0], m)
    if weights is None:
        weights = [float(m.class_counts.sum()) for m in models]
        if sum(weights) <= 0:
            weights = [1.0] * len(models)
    if len(weights) != len(models) or any(not w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be one non-negative number per model, not all zero")
    w = np.array(weights, dtype=np.float64) / sum(weights)
    averaged = w @ np.stack([m.parameters() for m in models])
    out = models[0].with_parameters(averaged)
    out.class_counts = np.maximum.reduce([m.class_counts for m in models])
    out.rounds = max(m.rounds for m in models)
    return out
