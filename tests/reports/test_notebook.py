"""docs/collaboration_patterns.ipynb runs top to bottom (nbclient, a real kernel) on the
database of a small real run, and shows what it says it shows."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import HubFactory
from tests.reports.small_run import make_small_run

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "collaboration_patterns.ipynb"


async def test_notebook_runs_on_a_small_run(
    tmp_path: Path, make_hub: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "hub_data.db")
    await make_small_run(make_hub, db)
    monkeypatch.setenv("KERNAL_DB", db)  # the kernel inherits it
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=60, resources={"metadata": {"path": tmp_path}}
    )
    await client.async_execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert f"2 collaborations between 2 AIs in {db}" in text
    assert any("image/png" in out.get("data", {}) for out in outputs)
    tables = [out["data"]["text/plain"] for out in outputs if "text/plain" in out.get("data", {})]
    assert any("completed" in t and "failed" in t for t in tables)
    assert any("networking" in t and "graphics" in t for t in tables)
