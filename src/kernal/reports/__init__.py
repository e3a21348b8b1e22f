"""Reports of a past run, read from its database through the :class:`~kernal.storage.Store`
interface: ``kernal report hub_data.db --out report.html`` (see ``docs/reports.md``)."""

from kernal.reports.data import RunData, collaboration_timeline, load_run
from kernal.reports.html import render_report, write_report

__all__ = ["RunData", "collaboration_timeline", "load_run", "render_report", "write_report"]
