"""PNG copies of the report's charts, when matplotlib is installed (``pip install
'kernal[charts]'``); without it, none are written and the HTML stays complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernal.reports.data import RunData
from kernal.reports.html import time_unit

__all__ = ["write_pngs"]


def write_pngs(
    data: RunData, series: dict[str, dict[str, list[tuple[float, float]]]], where: Path, stem: str
) -> list[Path]:
    """``<stem>-stats.png``, ``-collaborations.png``, ``-top-patterns.png`` and
    ``-top-components.png`` in ``where``; [] when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for name, title in (("stats", "Hub figures over time"), ("collaborations", "Collaborations")):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for label, points in series[name].items():
            ax.plot(
                [x for x, _ in points], [y for _, y in points], label=label, drawstyle="steps-post"
            )
        ax.set(title=title, xlabel=time_unit(data)[0], ylim=(0, None))
        ax.legend(loc="upper left", fontsize="small")
        written.append(_save(plt, fig, where / f"{stem}-{name}.png"))
    for name, items in (
        ("top-patterns", [(p.pattern_id, p.usage_count) for p in data.top_patterns]),
        ("top-components", [(c.component_id, c.usage_count) for c in data.top_components]),
    ):
        fig, ax = plt.subplots(figsize=(8, 0.4 * max(len(items), 1) + 1))
        ax.barh([label[:32] for label, _ in items][::-1], [v for _, v in items][::-1])
        ax.set(title=name.replace("-", " ").capitalize(), xlabel="uses")
        written.append(_save(plt, fig, where / f"{stem}-{name}.png"))
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
