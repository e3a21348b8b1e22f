"""The reference trainer's decisions, as pure functions: whether to ask for work, whether to
accept a request and why not. The trainer and the offline simulator
(:mod:`kernal.learning.simulate`) both decide through here, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

MAX_ACTIVE_FOR_REQUESTS = 2  # ask for more work only below this many collaborations
MAX_ACTIVE_FOR_ACCEPT = 3  # accept non-complementary requests only below this many
# Ticks between two LIST_AIS: the hub's standings of every joined AI, so that what it learned
# from others (kernal.hub.credibility) reaches this trainer's trust of peers it already knows,
# not only of those it meets for the first time (STATE, AI_JOINED, relayed requests).
STANDINGS_TICKS = 2
STANDINGS_PER_TICK = 100  # on a big hub, each LIST_AIS round waits a tick per this many AIs


def standings_every(known_peers: int, hub_ais: int) -> int:
    """Ticks between two LIST_AIS. Every trainer asking for every standing is quadratic, so
    the wait grows with the AIs on the hub (``hub_ais``, its count, not the peers we know: past
    the presence limit a trainer hears of only some of them, but each AIS lists them all). The
    standings every trainer fetches per tick then stay about constant per trainer."""
    return STANDINGS_TICKS * (1 + max(known_peers, hub_ais) // STANDINGS_PER_TICK)


def standings_batches(known: Iterable[str], own: str, batch: int) -> list[list[str]]:
    """The ids of one LIST_AIS round, ``batch`` to a request: the peers this trainer knows
    (never itself), sorted. Their standings are what it uses; a page of every AI on a hub of
    thousands cost a worker of 500 trainers a fifth of its CPU to decode."""
    ids = sorted(set(known) - {own})
    return [ids[start : start + batch] for start in range(0, len(ids), batch)]


@dataclass(frozen=True)
class Decision:
    """Accept a request, or reject it with the reason sent to the requester."""

    accept: bool
    reason: str | None = None
    low_trust: bool = False  # rejected because the requester's reputation is too low

    @classmethod
    def reject(cls, reason: str, *, low_trust: bool = False) -> Decision:
        return cls(False, reason, low_trust)


ACCEPT = Decision(True)


def complementary(
    own_specialization: str,
    own_capabilities: Collection[str],
    requester_specialization: str | None,
    offered: Collection[str],
) -> bool:
    """The requester is of another specialization and offers something we lack."""
    if requester_specialization == own_specialization:
        return False
    return bool(set(offered) - set(own_capabilities))


def consider_request(
    *,
    trained: bool,
    trust: float,
    threshold: float,
    is_complementary: bool,
    active: int,
) -> Decision:
    """Whether to accept a collaboration request from a peer we trust ``trust`` much, while
    busy with ``active`` collaborations. The checks run in this order; the first that fails is
    the reason."""
    if not trained:
        return Decision.reject("still training locally")
    if trust < threshold:
        return Decision.reject(
            f"reputation {trust:.2f} below trust threshold {threshold}", low_trust=True
        )
    if not is_complementary and active >= MAX_ACTIVE_FOR_ACCEPT:
        return Decision.reject(f"busy with {active} collaborations")
    return ACCEPT


def should_request(*, trained: bool, busy: int, peers: int) -> bool:
    """Ask for more work: trained, someone to ask, and fewer than two collaborations (active
    plus requests nobody answered yet: with slow answers we would otherwise ask every tick)."""
    return trained and peers > 0 and busy < MAX_ACTIVE_FOR_REQUESTS


def threshold_trap(threshold: float, initial: float) -> str | None:
    """A warning when no stranger can ever be accepted, else None.

    Reputation only moves through collaborations, and a trainer refuses to collaborate with a
    peer below ``threshold``: with ``threshold > initial`` every peer starts below it and can
    never earn its way up, so the trainer works with nobody (silently, without this).
    """
    if threshold <= initial:
        return None
    return (
        f"trust threshold {threshold:g} is above the initial reputation {initial:g}: every peer"
        " starts below the threshold and can never rise above it, so this trainer will accept"
        " no one. Lower --trust-threshold to at most the initial reputation (default 0.5), or"
        " raise --initial-reputation to at least the threshold."
    )
