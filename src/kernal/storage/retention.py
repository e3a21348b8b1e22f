"""How long stats snapshots are kept, and how thinly: a pure policy, applied by
:meth:`kernal.storage.Store.thin_stats`.

A policy is a list of tiers, youngest first. Each tier says up to which age its resolution
applies and how many snapshots it keeps: every one, or one per step. The text form, as given to
``kernal hub --stats-retention``, is comma-separated ``AGE=STEP`` pairs::

    1h=all,1d=1m,forever=1h

keeps every snapshot younger than an hour, one per minute of those younger than a day, and one
per hour of everything older. Ages and steps are numbers with a unit (``s``, ``m``, ``h``,
``d``; bare numbers are seconds); ``all`` keeps every snapshot; the last age may be
``forever``; without it, snapshots older than the last age are deleted. ``off`` (the default)
keeps everything.

Which snapshot of a step survives: the oldest of each step-long bucket, with buckets aligned to
the Unix epoch (not to the snapshot's age). So the survivors of a fine tier include the
survivors of every coarser one (when each step divides the next, as minutes and hours do), and
a snapshot that survives once is not deleted later by a finer tier's choice. Ages are measured
in stored (real Unix) seconds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RetentionTier", "StatsRetention", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` to seconds (> 0); raises ValueError."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h or d (e.g. 1h)")
    seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be more than zero")
    return seconds


@dataclass(frozen=True)
class RetentionTier:
    """Snapshots younger than ``max_age`` (seconds, ``math.inf`` for no limit) and at least as
    old as the previous tier's ``max_age`` keep one per ``step`` seconds (0: every one)."""

    max_age: float
    step: float = 0.0


@dataclass(frozen=True)
class StatsRetention:
    """Tiers ordered by ``max_age``, strictly increasing; snapshots older than the last one's
    ``max_age`` are dropped."""

    tiers: tuple[RetentionTier, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a retention policy needs at least one tier")
        ages = [tier.max_age for tier in self.tiers]
        if any(b <= a for a, b in itertools.pairwise(ages)) or ages[0] <= 0:
            raise ValueError("retention tiers must have increasing ages, all above zero")
        if any(tier.step < 0 or not math.isfinite(tier.step) for tier in self.tiers):
            raise ValueError("a retention step must be a finite number of seconds, or all")

    @classmethod
    def parse(cls, text: str) -> StatsRetention | None:
        """The policy written as in the module docstring; None for ``off``. Raises ValueError
        with what is wrong and an example."""
        if text.strip().lower() in ("", "off", "none"):
            return None
        tiers = []
        for part in text.split(","):
            age_text, sep, step_text = part.partition("=")
            if not sep:
                raise ValueError(
                    f"--stats-retention: {part.strip()!r} is not AGE=STEP "
                    "(e.g. 1h=all,1d=1m,forever=1h)"
                )
            age_text, step_text = age_text.strip().lower(), step_text.strip().lower()
            age = math.inf if age_text == "forever" else parse_duration(age_text)
            step = 0.0 if step_text == "all" else parse_duration(step_text)
            tiers.append(RetentionTier(age, step))
        try:
            return cls(tuple(tiers))
        except ValueError as exc:
            raise ValueError(f"--stats-retention {text!r}: {exc}") from None

    @property
    def keep_all_younger_than(self) -> float:
        """Snapshots younger than this are always kept: a store need not even read them."""
        first = self.tiers[0]
        return first.max_age if first.step == 0 else 0.0

    def to_delete(self, snapshots: Iterable[tuple[int, float]], now: float) -> list[int]:
        """Of ``(key, timestamp)`` pairs, the keys to delete at time ``now``. Pure; the order
        of the input does not matter (ties on a timestamp keep the smaller key)."""
        doomed: list[int] = []
        kept: set[tuple[int, int]] = set()  # (tier index, bucket) already holding a survivor
        for key, timestamp in sorted(snapshots, key=lambda pair: (pair[1], pair[0])):
            age = now - timestamp
            index = next((i for i, t in enumerate(self.tiers) if age < t.max_age), None)
            if index is None:  # older than the last tier
                doomed.append(key)
                continue
            step = self.tiers[index].step
            if step == 0:
                continue
            bucket = (index, math.floor(timestamp / step))
            if bucket in kept:
                doomed.append(key)
            else:
                kept.add(bucket)
        return doomed
