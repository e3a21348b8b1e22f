"""The report page: one self-contained HTML file (inline SVG charts, inline CSS, no script, no
network), and PNG copies of its charts beside it when matplotlib is installed."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from kernal import __version__
from kernal.reports.data import RunData, collaboration_timeline
from kernal.reports.svg import bar_chart, line_chart
from kernal.storage import CollaborationStatus

__all__ = ["chart_series", "render_report", "write_report"]

STATS_FIGURES = ("connected_ais", "shared_patterns", "shared_components", "active_collaborations")

_CSS = """
body { font-family: sans-serif; margin: 2rem auto; max-width: 760px; color: #111; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #ddd; }
.chart { width: 100%; height: auto; } .muted { color: #666; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
"""


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp)) + " UTC"


def time_unit(data: RunData) -> tuple[str, float]:
    """The unit of the time axes, as a label and its length in seconds: seconds for a run of
    under two minutes (a fast harness run), minutes under two hours, hours beyond."""
    times = [s.timestamp for s in data.stats] + [c.started_at for c in data.collaborations]
    times += [c.ended_at for c in data.collaborations if c.ended_at is not None]
    span = max(times) - min(times) if times else 0.0
    if span < 120:
        return "seconds", 1.0
    return ("minutes", 60.0) if span < 7200 else ("hours", 3600.0)


def chart_series(data: RunData) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """The line charts' series (time in :func:`time_unit` since the run's first event), for
    SVG and PNG alike."""
    starts = [s.timestamp for s in data.stats] + [c.started_at for c in data.collaborations]
    origin = min(starts) if starts else 0.0
    _, unit = time_unit(data)

    def minutes(ts: float) -> float:
        return (ts - origin) / unit

    stats = {
        figure.replace("_", " "): [
            (minutes(s.timestamp), float(getattr(s, figure))) for s in data.stats
        ]
        for figure in STATS_FIGURES
    }
    timeline = collaboration_timeline(data.collaborations)
    collaborations = {
        status.value: [(minutes(when), float(counts[status])) for when, counts in timeline]
        for status in CollaborationStatus
    }
    return {"stats": stats, "collaborations": collaborations}


def render_report(data: RunData, *, source: str) -> str:
    """The HTML of the report of ``data``; ``source`` names the database in the heading."""
    series = chart_series(data)
    unit, _ = time_unit(data)
    xs = [x for chart in series.values() for line in chart.values() for x, _ in line]
    shared = (min(xs), max(xs)) if xs else None  # both time charts on one axis
    by_status = {status: 0 for status in CollaborationStatus}
    for c in data.collaborations:
        by_status[c.status] += 1
    first = data.stats[0].timestamp if data.stats else None
    last = data.stats[-1].timestamp if data.stats else None
    summary = [
        ("Database", escape(source)),
        ("From", _when(first) if first else "no stats snapshots"),
        ("To", _when(last) if last else "-"),
        ("AIs seen", str(len(data.ais))),
        ("Patterns shared", str(data.pattern_count)),
        ("Components shared", str(data.component_count)),
        (
            "Collaborations",
            ", ".join(f"{n} {status.value}" for status, n in by_status.items()),
        ),
    ]
    ai_rows = "".join(
        f"<tr><td>{escape(ai.ai_id)}</td><td>{escape(ai.specialization)}</td>"
        f"<td>{escape(', '.join(ai.capabilities))}</td><td>{_when(ai.first_seen)}</td>"
        f"<td>{_when(ai.last_seen)}</td></tr>"
        for ai in data.ais
    )
    sections = [
        "<h2>Hub figures over time</h2>",
        line_chart(
            series["stats"], title="Stats history", x_label=unit, y_label="count", x_range=shared
        ),
        "<h2>Collaborations by status over time</h2>",
        line_chart(
            series["collaborations"],
            title="Collaborations",
            x_label=unit,
            y_label="collaborations",
            x_range=shared,
        ),
        "<h2>Top patterns and components</h2>",
        bar_chart(
            [(p.pattern_id, float(p.usage_count)) for p in data.top_patterns],
            title="Top patterns",
            value_label="uses",
        ),
        bar_chart(
            [(c.component_id, float(c.usage_count)) for c in data.top_components],
            title="Top components",
            value_label="uses",
        ),
        "<h2>AIs</h2>",
        "<table><tr><th>AI</th><th>specialization</th><th>capabilities</th>"
        f"<th>first seen</th><th>last seen</th></tr>{ai_rows}</table>"
        if data.ais
        else '<p class="muted">No AI ever said HELLO.</p>',
    ]
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in summary)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>kernal run report</title><style>{_CSS}</style></head><body>"
        f"<h1>kernal run report</h1><dl>{facts}</dl>{''.join(sections)}"
        f'<p class="muted">Made by kernal {escape(__version__)} on {_when(time.time())}.</p>'
        "</body></html>\n"
    )


def write_report(data: RunData, out: Path, *, source: str, png: bool = True) -> list[Path]:
    """Write the HTML to ``out`` and, if ``png`` and matplotlib is installed, PNG charts
    beside it (``<stem>-<chart>.png``). Returns the files written, the HTML first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data, source=source), encoding="utf-8")
    written = [out]
    if png:
        from kernal.reports.png import write_pngs

        written += write_pngs(data, chart_series(data), out.parent, out.stem)
    return written
