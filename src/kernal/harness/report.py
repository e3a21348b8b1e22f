"""The harness report's per-trainer entries and its summary (docs/harness.md has the shape)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kernal.hub.status import HubStatus
from kernal.trainer.report import TrainerReport

# The original report's keys, in its order.
SAMPLED = ("shared_patterns", "shared_components", "connected_ais", "active_collaborations")
LIFTED = ("behaviour", "local_only_accuracy", "final_accuracy")  # learning figures, on top


def trainer_entry(report: TrainerReport) -> dict[str, Any]:
    """A trainer's entry: its results (with ``error`` when it failed), a few learning figures
    lifted to the top, and whether it succeeded."""
    results = report.results()
    for key in LIFTED:
        if key in report.engine_summary:
            results[key] = report.engine_summary[key]
    return {"results": results, "success": report.succeeded}


def sampled(status: HubStatus) -> dict[str, int]:
    """The hub figures a ``hub_stats`` sample holds."""
    return {key: int(getattr(status, key)) for key in SAMPLED}


def summarize(reports: list[TrainerReport]) -> dict[str, Any]:
    """How many trainers succeeded, failed, never connected, and why they failed: reasons with
    their counts, most common first, so a thousand identical failures are one line."""
    failed = [r for r in reports if not r.succeeded]
    # A trainer's own id in its reason would make every reason different: it becomes <ai_id>.
    reasons = Counter(
        (r.error or "failed (no reason recorded)").replace(r.ai_id, "<ai_id>") for r in failed
    )
    return {
        "trainers": len(reports),
        "succeeded": len(reports) - len(failed),
        "failed": len(failed),
        "never_connected": sum(not r.connected for r in reports),
        "errors": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }
