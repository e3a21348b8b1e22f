"""The standing rule as a pure function: raters' weights, their credibility, and standings.

No I/O and no store: :class:`kernal.hub.reputation.Standings` keeps the tables and calls
:func:`judge` when they changed; the offline simulator (``kernal.learning.simulate``) calls
the same function, so the scorecard measures the rule the hub runs.

**Credibility.** A rater's verdicts can be checked against what the other raters of the same
AI measured. For each counted opinion ``v`` of rater ``r`` on AI ``X``, the *consensus* is the
weighted median ``m`` of the raters' opinions of ``X`` (weights: established weight times
credibility; a median, so that raters weighing less than half cannot move it) and its *spread*
``s`` the other raters' (``r`` left out) weighted mean absolute deviation from it. The
opinion's *contradiction* is ``max(0, |v - m| - s)``: how far ``r`` stands
outside what the others disagree about among themselves. It is checked only where the others
weigh at least :data:`MIN_CONSENSUS` together. A rater with at least :data:`MIN_CHECKED`
checked opinions has contradiction ``d``, their mean, and credibility
``clip((LIAR_CONTRADICTION - d) / (LIAR_CONTRADICTION - HONEST_CONTRADICTION), 0, 1)``;
one with fewer keeps 1 (no evidence against it). That figure of ``d`` is the rater's
*agreement*: it multiplies the rater's weight, and the consensus is recomputed with the new
weights, :data:`ROUNDS` times at most (the iterative filtering of Laureti, Moret, Zhang & Yu,
"Information filtering via iterative refinement", EPL 2006, and de Kerchove & Van Dooren,
"Iterative filtering in reputation systems", SIAM J. Matrix Anal. Appl. 2010, with a
spread-adjusted distance instead of theirs).

**Partiality.** Contradiction alone cannot tell a clique from an honest rater whose own
validation data measures every partner unlike the others do: a shard holding one class finds
almost every partner's model costly and rates it 0 (simulator, 100 trainers, dirichlet:0.1,
30 sybils, seed 2: four such honest raters with ``d`` 0.47-0.86, the sybils 0.44-0.88). What
a clique does and an honest measure does not is spare its own. A rater's *partiality* is the
weighted mean of its signed deviations ``v - m`` on the AIs the hub doubts (an opinion of
``X`` weighs ``1 - credibility(X)`` there) minus that on the AIs it credits (weight
``credibility(X)``), both times the opinion's established weight. A clique that lifts its
members and sinks the rest has partiality near 1 (the sybils there: 0.8-1.5); a rater that
measures everyone low treats the doubted as it treats the others, near 0 (those four: -0.18
to 0.22), and a victim that rates its poisoner 0 has a negative one. Where both sides weigh
at least :data:`PARTIALITY_EVIDENCE`, the contradiction charged to the rater's *credibility*
is ``min(d, max(0, partiality))``, else ``d``; credibility is the same linear function of it.
The doubted set is the previous round's credibility: the first round doubts nobody, so there
every contradiction is charged, as before partiality existed, and a harsh honest rater is
cleared in the next round, once the clique it rated as low as everyone is doubted.

**Majority.** Iterative filtering settles on a fixed point, and which one depends on where it
starts. From the usual start (every rater believed) the raters that weigh most on each AI form
its consensus. Early in a run a clique can be those on every honest AI: its members rate every
honest AI at once, while the honest raters have rated only a few of one another. The clique
then outweighs them AI by AI, the honest raters contradict "the consensus", and the hub doubts
them and believes the clique (simulator, 3 sybils among 10, seeds 0-9: on 4 runs of 20 the hub
ended doubting 6 or 7 of the 7 honest raters; every honest pair ended below the threshold and
the trainers never recovered, as they cap peers at the credibility and stopped working with one
another). The rule assumes what any rating rule does, that the honest raters are the majority;
a verdict doubting more than half of the judged raters contradicts it. Then the iteration runs
again from the other side, the doubted raters believed and the rest not, and the verdict under
which the judged raters have more credibility in total is kept. Most verdicts doubt a few
raters and never run it. Where the honest verdict itself doubts most raters (the clique and
several harsh honest raters), the other start's verdict, doubting the honest, may have more
credibility in total and be kept.

So a rater contradicting everyone loses its votes' weight whatever the reason (agreement),
but only one that also favours the doubted loses its credibility, the figure that caps its
standing and that the hub sends to trainers, who cap their trust of it.

**Standing.** ``standing(X) = min(weighted mean of X's counted opinions (weights: established
weight times agreement) with two virtual ratings of 0.5, credibility(X))``: an AI whose own
verdicts on others contradict everyone else's measurements in a clique's favour stands no
higher than its credibility, so trainers seeding trust from the standing distrust it even
where it never attacked them.

Why this is evidence a clique cannot forge: a clique that rates honest peers 0 contradicts
every honest rater of those peers, who agree with one another (honest opinions of an honest
AI are close, the spread is small). An honest victim that rates a turn-taking attacker 0 is
far less exposed: that is one contradicted opinion among the several it gave, the others
agreeing, and where the attacker poisoned others too its raters disagree among themselves
(the spread). To discredit an honest rater a clique must outweigh the other raters of most of
the AIs that rater rated, the same majority any rating system falls to.

What it does not catch: a clique that rates honest peers truthfully and only lifts itself
(nothing contradicts it; the gate and strikes still catch it where it attacks), a clique that
rates its own members as low as it rates the honest (it lifts nobody, and its votes weigh
nothing, but nothing tells it from an honest rater with one-class data, so its members are
not capped: they are caught only where they attack), and a clique whose 0s lie within the
honest raters' own spread (very non-IID data, where honest partners'
measured usefulness of one another is low and scattered). The thresholds were set from the
simulator's contradictions (10 trainers, 3 sybils, 20 rounds, seeds 0 1 2): at dirichlet:0.5
honest raters 0.23 at most and sybils 0.64-0.98 on both datasets; at dirichlet:0.1 honest
raters up to 0.39 (one of 42 loses credibility) and sybils 0.10-0.63, caught in 2 runs of 6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

REPUTATION_PRIOR = 0.5
REPUTATION_PRIOR_WEIGHT = 2.0
MIN_PARTNERS = 3
"""Distinct completed-collaboration partners, besides the AI it rates, that a rater needs
before its opinion of that AI weighs anything."""
FULL_PARTNERS = 6
"""Such partners at which a rater's opinion weighs fully (1)."""
MIN_CONSENSUS = 2.0
"""The weight the other raters of an AI must have together for a rater's opinion of it to be
checked against theirs (two fully established, credible raters)."""
MIN_CHECKED = 3
"""Checked opinions (of distinct AIs) a rater needs before its credibility can fall."""
HONEST_CONTRADICTION = 0.25
"""Mean contradiction up to which a rater keeps full agreement (and charged contradiction up
to which full credibility)."""
LIAR_CONTRADICTION = 0.45
"""Mean contradiction at which a rater has no agreement (its votes weigh 0), and charged
contradiction at which no credibility (standing at most 0)."""
PARTIALITY_EVIDENCE = 1.0
"""The weight a rater's checked opinions of doubted AIs, and of credited ones, must each
have (one fully established opinion of a fully doubted AI) before its partiality bounds the
contradiction charged to its credibility."""
ROUNDS = 10


def rater_weight(partners: int) -> float:
    """The weight of a rater's opinion of an AI when it has ``partners`` distinct
    completed-collaboration partners besides that AI."""
    if partners < MIN_PARTNERS:
        return 0.0
    return min(1.0, partners / FULL_PARTNERS)


def hub_reputation(opinions: list[tuple[float, float]]) -> float:
    """The weighted mean of ``(weight, opinion)`` pairs, pulled toward 0.5 by two virtual
    ratings, so that a single rater does not decide and an AI nobody rated stands at 0.5."""
    total = math.fsum(weight * opinion for weight, opinion in opinions)
    weights = math.fsum(weight for weight, _ in opinions)
    return (total + REPUTATION_PRIOR * REPUTATION_PRIOR_WEIGHT) / (
        weights + REPUTATION_PRIOR_WEIGHT
    )


def credibility_of(contradiction: float) -> float:
    """Credibility from a mean contradiction (1 up to HONEST, 0 from LIAR, linear between)."""
    span = LIAR_CONTRADICTION - HONEST_CONTRADICTION
    return min(1.0, max(0.0, (LIAR_CONTRADICTION - contradiction) / span))


@dataclass(frozen=True)
class Opinion:
    """``rater``'s opinion (mean vote) of ``contributor``'s work, counted for it (they are
    partners), with the rater's established ``weight`` for it (:func:`rater_weight`)."""

    rater: str
    contributor: str
    weight: float
    value: float


@dataclass
class Verdicts:
    """What :func:`judge` found. AIs absent from ``standing`` stand at the prior (0.5);
    absent from ``credibility`` or ``agreement``, at 1."""

    standing: dict[str, float] = field(default_factory=dict)
    raters: dict[str, int] = field(default_factory=dict)  # raters counted in each standing
    credibility: dict[str, float] = field(default_factory=dict)  # caps standing; below 1 only
    contradiction: dict[str, float] = field(default_factory=dict)  # raters judged, their d
    agreement: dict[str, float] = field(default_factory=dict)  # vote weight factor, below 1
    partiality: dict[str, float] = field(default_factory=dict)  # judged raters with evidence


def judge(opinions: Iterable[Opinion]) -> Verdicts:
    """Agreement and credibility of every rater and standing of every rated or discredited
    AI (see the module docstring). Deterministic: the result depends on the set of opinions
    only."""
    rows = sorted(opinions, key=lambda o: (o.contributor, o.rater))
    verdicts = Verdicts()
    if not rows:
        return verdicts
    ids = sorted({o.rater for o in rows} | {o.contributor for o in rows})
    index = {ai_id: i for i, ai_id in enumerate(ids)}
    c = np.array([index[o.contributor] for o in rows], dtype=np.int64)
    r = np.array([index[o.rater] for o in rows], dtype=np.int64)
    base = np.array([o.weight for o in rows], dtype=np.float64)
    v = np.array([o.value for o in rows], dtype=np.float64)
    n = len(ids)
    order = np.lexsort((v, c))  # by contributor, then value: fixed, only weights change
    table = _Table(c, r, base, v, n, order)
    found = _iterate(table, np.ones(n), np.ones(n))
    if _discredits_most(found):
        # The fixed point depends on where the iteration starts (see "Majority" in the module
        # docstring): from the other side, the doubted believed and the rest not, it may
        # settle where the raters are on the whole more credible.
        doubted = np.where(found.judged & (found.cred < 1.0), 1.0, 0.0)
        start = np.where(found.judged, doubted, 1.0)
        other = _iterate(table, start, start)
        if _total_credibility(other) > _total_credibility(found):
            found = other
    agree, cred, d, lean = found.agree, found.cred, found.d, found.lean
    judged, partial = found.judged, found.partial
    for i in np.flatnonzero(judged):
        verdicts.contradiction[ids[i]] = float(d[i])
    for i in np.flatnonzero(judged & partial):
        verdicts.partiality[ids[i]] = float(lean[i])
    for i in np.flatnonzero(agree < 1.0):
        verdicts.agreement[ids[i]] = float(agree[i])
    for i in np.flatnonzero(cred < 1.0):
        verdicts.credibility[ids[i]] = float(cred[i])
    counted: dict[str, list[tuple[float, float]]] = {}
    for o in rows:
        weight = o.weight * float(agree[index[o.rater]])
        if weight > 0:
            counted.setdefault(o.contributor, []).append((weight, o.value))
    for ai_id, pairs in counted.items():
        verdicts.standing[ai_id] = hub_reputation(pairs)
        verdicts.raters[ai_id] = len(pairs)
    for ai_id, credibility in verdicts.credibility.items():
        verdicts.standing[ai_id] = min(verdicts.standing.get(ai_id, REPUTATION_PRIOR), credibility)
    return verdicts


@dataclass(frozen=True)
class _Table:
    """The counted opinions as arrays, one entry per opinion: contributor and rater indices,
    established weight, value; ``n`` AIs; ``order`` sorts the opinions by contributor, then
    value (fixed: only weights change between rounds)."""

    c: np.ndarray
    r: np.ndarray
    base: np.ndarray
    v: np.ndarray
    n: int
    order: np.ndarray


@dataclass
class _Found:
    """Per AI, where an iteration settled: agreement, credibility, mean contradiction,
    partiality, whether it was judged (enough checked opinions) and has partiality
    evidence."""

    agree: np.ndarray
    cred: np.ndarray
    d: np.ndarray
    lean: np.ndarray
    judged: np.ndarray
    partial: np.ndarray


def _discredits_most(found: _Found) -> bool:
    """Whether more than half of the judged raters lost credibility."""
    judged = int(np.count_nonzero(found.judged))
    doubted = int(np.count_nonzero(found.judged & (found.cred < 1.0)))
    return judged > 0 and 2 * doubted > judged


def _total_credibility(found: _Found) -> float:
    return float(np.sum(found.cred[found.judged]))


def _iterate(t: _Table, agree: np.ndarray, cred: np.ndarray) -> _Found:
    """Rounds of consensus, contradiction and partiality from the given agreement and
    credibility, until they stop changing (at most :data:`ROUNDS`)."""
    c, r, base, v, n, order = t.c, t.r, t.base, t.v, t.n, t.order
    d = np.zeros(n)
    lean = np.zeros(n)
    judged = np.zeros(n, dtype=bool)
    partial = np.zeros(n, dtype=bool)
    c_sorted, v_sorted = c[order], v[order]
    first = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])
    for _ in range(ROUNDS):
        w = base * agree[r]
        weights = np.bincount(c, w, n)
        median = _weighted_medians(c_sorted, v_sorted, w[order], first, weights, n)
        dev = np.abs(v - median[c])
        others = weights[c] - w
        checked = others >= MIN_CONSENSUS - 1e-9
        safe = np.where(checked, others, 1.0)
        spread = np.maximum(0.0, np.bincount(c, w * dev, n)[c] - w * dev) / safe
        contra = np.where(checked, np.maximum(0.0, dev - spread), 0.0)
        count = np.bincount(r, checked.astype(np.float64), n)
        judged = count >= MIN_CHECKED
        d = np.divide(np.bincount(r, contra, n), count, out=np.zeros(n), where=count > 0)
        new = np.where(judged, _credibility(d), 1.0)
        lean, partial = _partiality(r, c, np.where(checked, base, 0.0), v - median[c], cred, n)
        charged = np.where(partial, np.minimum(d, np.maximum(0.0, lean)), d)
        new_cred = np.where(judged, _credibility(charged), 1.0)
        if max(np.max(np.abs(new - agree)), np.max(np.abs(new_cred - cred))) < 1e-12:
            break
        agree, cred = new, new_cred
    return _Found(agree, cred, d, lean, judged, partial)


def _credibility(contradiction: np.ndarray) -> np.ndarray:
    """:func:`credibility_of`, elementwise."""
    span = LIAR_CONTRADICTION - HONEST_CONTRADICTION
    return np.clip((LIAR_CONTRADICTION - contradiction) / span, 0.0, 1.0)


def _partiality(
    r: np.ndarray,
    c: np.ndarray,
    weight: np.ndarray,
    deviation: np.ndarray,
    credibility: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per rater, its *partiality*: the weighted mean signed deviation (opinion minus
    consensus) of its opinions of the AIs the hub doubts, minus that of its opinions of the
    AIs it credits (an opinion of ``X`` counts ``1 - credibility(X)`` toward the first,
    ``credibility(X)`` toward the second, times ``weight``), and whether both sides weigh at
    least :data:`PARTIALITY_EVIDENCE`."""
    doubted = weight * (1.0 - credibility[c])
    credited = weight * credibility[c]
    on_doubted = np.bincount(r, doubted, n)
    on_credited = np.bincount(r, credited, n)
    lean_doubted = np.divide(
        np.bincount(r, doubted * deviation, n), on_doubted, out=np.zeros(n), where=on_doubted > 0
    )
    lean_credited = np.divide(
        np.bincount(r, credited * deviation, n),
        on_credited,
        out=np.zeros(n),
        where=on_credited > 0,
    )
    evidence = (on_doubted >= PARTIALITY_EVIDENCE - 1e-9) & (
        on_credited >= PARTIALITY_EVIDENCE - 1e-9
    )
    return lean_doubted - lean_credited, evidence


def _weighted_medians(
    c_sorted: np.ndarray,
    v_sorted: np.ndarray,
    w_sorted: np.ndarray,
    first: np.ndarray,
    weights: np.ndarray,
    n: int,
) -> np.ndarray:
    """Per contributor, the weighted median of its opinions (rows sorted by contributor, then
    value; ``first`` the index of each contributor's first row): the lowest value at which
    the cumulative weight reaches half the contributor's, the mean of the two middle values on
    an exact tie. 0 for a contributor whose raters weigh nothing."""
    cum = np.cumsum(w_sorted)
    start = np.repeat(cum[first] - w_sorted[first], np.diff(np.r_[first, len(c_sorted)]))
    within = cum - start
    half = weights[c_sorted] / 2
    reached = (within >= half - 1e-12) & (weights[c_sorted] > 0)
    # The first row of each group that reaches half: reached rows, first per contributor.
    rows = np.flatnonzero(reached)
    median = np.zeros(n)
    if rows.size == 0:
        return median
    owners, at = np.unique(c_sorted[rows], return_index=True)
    pick = rows[at]
    value = v_sorted[pick]
    # An exact tie (cumulative weight equal to half): halfway to the next value in the group.
    tie = np.abs(within[pick] - half[pick]) <= 1e-12
    nxt = np.minimum(pick + 1, len(c_sorted) - 1)
    same = c_sorted[nxt] == c_sorted[pick]
    value = np.where(tie & same, (value + v_sorted[nxt]) / 2, value)
    median[owners] = value
    return median
