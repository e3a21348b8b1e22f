"""The credibility rule as a pure function (``kernal.hub.credibility.judge``): a clique's
verdicts are partial, a harsh measure is not."""

from __future__ import annotations

import pytest

from kernal.hub import credibility
from kernal.hub.credibility import REPUTATION_PRIOR, Opinion, judge

HONEST = [f"h{i}" for i in range(6)]
CLIQUE = ["s0", "s1", "s2"]
HARSH = "harsh"  # an honest AI whose own validation data finds every partner's model costly


def _opinions(harsh: dict[str, float], clique_on_clique: float = 1.0) -> list[Opinion]:
    """Everyone rated everyone (full weight). The honest rate every AI's work 0.9 (the
    clique's too: its members share honest models between their turns); the clique rates its
    own ``clique_on_clique`` and every other AI 0; ``harsh`` gives the opinions in ``harsh``."""
    everyone = [*HONEST, *CLIQUE, HARSH]
    rows = []
    for rater in everyone:
        for contributor in everyone:
            if rater == contributor:
                continue
            if rater in CLIQUE:
                value = clique_on_clique if contributor in CLIQUE else 0.0
            elif rater == HARSH:
                value = harsh[contributor]
            else:
                value = 0.9
            rows.append(Opinion(rater, contributor, 1.0, value))
    return rows


def test_a_harsh_but_impartial_rater_keeps_its_credibility_and_standing() -> None:
    """The harsh AI rates everyone 0, the clique as low as the honest: it contradicts the
    consensus as much as the clique does, so its votes weigh nothing, but it favours nobody
    the hub doubts, so it is not taken for a clique member: full credibility, and a standing
    from its partners' opinions of its work. The clique, which spares its own, loses both."""
    verdicts = judge(_opinions({ai: 0.0 for ai in [*HONEST, *CLIQUE]}))
    assert verdicts.contradiction[HARSH] > 0.45  # as far from the consensus as a liar
    assert verdicts.agreement[HARSH] == 0.0  # so its votes weigh nothing
    assert HARSH not in verdicts.credibility  # but it is not doubted
    assert verdicts.partiality[HARSH] < 0.1
    assert verdicts.standing[HARSH] > REPUTATION_PRIOR
    for member in CLIQUE:
        assert verdicts.partiality[member] > 0.8
        assert verdicts.credibility[member] == 0.0
        assert verdicts.standing[member] == 0.0
    for ai in HONEST:
        assert ai not in verdicts.credibility
        assert verdicts.standing[ai] > REPUTATION_PRIOR


def test_a_rater_that_lifts_the_doubted_over_the_rest_is_doubted() -> None:
    """The same harsh measure, but 1 for the clique and 0 for the honest: that is the clique's
    own pattern, and it loses its credibility with it."""
    harsh = {**{ai: 0.0 for ai in HONEST}, **{ai: 1.0 for ai in CLIQUE}}
    verdicts = judge(_opinions(harsh))
    assert verdicts.partiality[HARSH] > 0.8
    assert verdicts.credibility[HARSH] == 0.0
    assert verdicts.standing[HARSH] == 0.0


def test_a_token_low_vote_for_one_member_does_not_clear_a_clique() -> None:
    """Partiality is a mean: a clique rating one of its members 0.5 instead of 1 still treats
    the doubted far better than the credited, and stays doubted."""
    verdicts = judge(_opinions({ai: 0.9 for ai in [*HONEST, *CLIQUE]}, clique_on_clique=0.5))
    for member in CLIQUE:
        assert verdicts.partiality[member] > 0.4
        assert verdicts.credibility[member] < 0.5
        assert verdicts.standing[member] < 0.5


def test_without_evidence_on_both_sides_the_contradiction_counts_whole() -> None:
    """A rater whose opinions are all of AIs the hub credits shows no partiality either way:
    its contradiction is charged in full, as before partiality existed."""
    rows = [
        Opinion(rater, contributor, 1.0, 0.0 if rater == HARSH else 0.9)
        for rater in [*HONEST, HARSH]
        for contributor in [*HONEST, HARSH]
        if rater != contributor
    ]
    verdicts = judge(rows)
    assert HARSH not in verdicts.partiality
    assert verdicts.credibility[HARSH] == 0.0


# Opinions the hub held at the sixth refresh of a simulated run, as (rater, contributor,
# weight, value): the scorecard's `sybil` run on digits (10 MLP trainers, 40 rounds x 3 epochs,
# trainers 7, 8 and 9 the colluders, trainers seeded from the hub) with seed 6. The sybils
# have rated every honest AI 0, while each honest AI has been rated by one or two honest
# raters so far.
EARLY_CLIQUE = [
    ("4", "0", 0.83, 1.0),
    ("5", "0", 1.0, 1.0),
    ("7", "0", 1.0, 0.0),
    ("3", "1", 0.5, 1.0),
    ("4", "1", 0.83, 1.0),
    ("5", "1", 1.0, 1.0),
    ("7", "1", 1.0, 0.0),
    ("8", "1", 1.0, 0.0),
    ("9", "1", 1.0, 0.0),
    ("3", "2", 0.5, 0.79),
    ("5", "2", 1.0, 1.0),
    ("6", "2", 0.67, 1.0),
    ("7", "2", 1.0, 0.0),
    ("8", "2", 1.0, 0.0),
    ("9", "2", 1.0, 0.0),
    ("1", "3", 0.83, 1.0),
    ("2", "3", 0.83, 1.0),
    ("5", "3", 1.0, 1.0),
    ("8", "3", 1.0, 0.0),
    ("0", "4", 0.0, 1.0),
    ("1", "4", 0.83, 1.0),
    ("5", "4", 1.0, 1.0),
    ("7", "4", 1.0, 0.0),
    ("8", "4", 1.0, 0.0),
    ("9", "4", 1.0, 0.0),
    ("0", "5", 0.0, 1.0),
    ("1", "5", 0.83, 1.0),
    ("2", "5", 0.83, 1.0),
    ("3", "5", 0.5, 1.0),
    ("4", "5", 0.83, 0.0),
    ("6", "5", 0.67, 1.0),
    ("7", "5", 1.0, 0.0),
    ("8", "5", 1.0, 0.0),
    ("9", "5", 1.0, 0.0),
    ("2", "6", 0.83, 1.0),
    ("5", "6", 1.0, 1.0),
    ("7", "6", 1.0, 0.0),
    ("8", "6", 1.0, 0.0),
    ("9", "6", 1.0, 0.0),
    ("0", "7", 0.0, 0.0),
    ("1", "7", 0.83, 1.0),
    ("2", "7", 0.83, 0.0),
    ("4", "7", 0.83, 1.0),
    ("5", "7", 1.0, 0.5),
    ("6", "7", 0.67, 0.0),
    ("8", "7", 1.0, 1.0),
    ("9", "7", 1.0, 1.0),
    ("1", "8", 0.83, 0.0),
    ("2", "8", 0.83, 1.0),
    ("3", "8", 0.5, 1.0),
    ("4", "8", 0.83, 1.0),
    ("5", "8", 1.0, 1.0),
    ("6", "8", 0.67, 0.5),
    ("7", "8", 1.0, 1.0),
    ("9", "8", 1.0, 1.0),
    ("1", "9", 0.83, 0.5),
    ("2", "9", 0.83, 1.0),
    ("4", "9", 0.83, 1.0),
    ("5", "9", 1.0, 0.5),
    ("6", "9", 0.67, 1.0),
    ("7", "9", 1.0, 1.0),
    ("8", "9", 1.0, 1.0),
]


def test_an_early_clique_does_not_turn_the_verdict_round() -> None:
    """From the usual start the clique outweighs the few honest raters of each honest AI:
    the hub would doubt six of the seven honest raters and believe the sybils. A verdict
    doubting most raters is checked from the other side, and there the honest majority
    holds: the sybils lose their credibility and the honest keep theirs."""
    verdicts = judge([Opinion(r, c, w, v) for r, c, w, v in EARLY_CLIQUE])
    for member in ("7", "8", "9"):
        assert verdicts.credibility[member] == 0.0
        assert verdicts.standing[member] == 0.0
    honest = [str(i) for i in range(7)]
    assert sum(verdicts.credibility.get(ai, 1.0) < 0.5 for ai in honest) <= 1
    assert all(verdicts.standing[ai] > 0.4 for ai in honest)


def test_the_usual_start_alone_would_believe_the_early_clique(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the test above guards against: without the second start, the same opinions
    doubt most honest raters and leave the sybils credible."""
    monkeypatch.setattr(credibility, "_discredits_most", lambda found: False)
    verdicts = judge([Opinion(r, c, w, v) for r, c, w, v in EARLY_CLIQUE])
    assert sum(verdicts.credibility.get(str(i), 1.0) == 0.0 for i in range(7)) >= 6
    assert not any(member in verdicts.credibility for member in ("7", "8", "9"))
