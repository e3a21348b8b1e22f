"""PNG charts of a learning run (``kernal harness ... --plot DIR``). Needs matplotlib."""

from __future__ import annotations

from pathlib import Path

from kernal.engines.learning import LearningEngine
from kernal.trainer.report import TrainerReport


def write_charts(
    reports: dict[str, TrainerReport],
    *,
    started: float,
    speed: float,
    threshold: float,
    out: Path,
) -> list[Path]:
    """Accuracy over time per trainer, and reputation over time as honest trainers see their
    peers. Times are scenario seconds since ``started`` (a wall-clock Unix time)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'kernal[charts]'") from exc

    out.mkdir(parents=True, exist_ok=True)
    summaries = {
        ai: r.engine_summary for ai, r in reports.items() if r.engine == LearningEngine.name
    }
    behaviours = {ai: str(s.get("behaviour", "honest")) for ai, s in summaries.items()}
    malicious = {ai for ai, behaviour in behaviours.items() if behaviour != "honest"}

    def when(wall: float) -> float:
        return (wall - started) * speed

    fig, ax = plt.subplots(figsize=(9, 5))
    for ai, summary in sorted(summaries.items()):
        points = summary.get("accuracy_history", [])
        style = "--" if ai in malicious else "-"
        label = f"{ai} ({behaviours[ai]})" if ai in malicious else ai
        ax.plot([when(t) for t, _ in points], [a for _, a in points], style, label=label)
    ax.set(xlabel="scenario time (s)", ylabel="test accuracy", title="Accuracy over time")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    accuracy_png = out / "accuracy.png"
    fig.savefig(accuracy_png, dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5))
    for viewer, report in sorted(reports.items()):
        if viewer in malicious:
            continue
        by_peer: dict[str, list[tuple[float, float]]] = {}
        for t, peer, score in report.trust.history:
            by_peer.setdefault(peer, []).append((when(t), score))
        for peer, points in by_peer.items():
            bad = peer in malicious
            ax.plot(
                [t for t, _ in points],
                [s for _, s in points],
                color="tab:red" if bad else "tab:blue",
                alpha=0.6 if bad else 0.25,
                linewidth=1.2 if bad else 0.8,
            )
    ax.axhline(threshold, color="black", linestyle=":", label=f"trust threshold {threshold}")
    ax.plot([], [], color="tab:red", label="honest → poisoner")
    ax.plot([], [], color="tab:blue", label="honest → honest")
    ax.set(xlabel="scenario time (s)", ylabel="reputation", title="Reputation over time")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    reputation_png = out / "reputation.png"
    fig.savefig(reputation_png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [accuracy_png, reputation_png]
