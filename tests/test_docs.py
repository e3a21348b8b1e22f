"""The README and docs/ stay true: their examples run, their flags exist, their shapes match."""

from __future__ import annotations

import asyncio
import json
import re
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernal.cli import app
from kernal.config import HUB_LIMITS, HubSettings, TrainerSettings, load_capabilities_file
from kernal.engines.base import Engine, EngineContext
from kernal.harness.runner import run_scenario
from kernal.harness.scenarios import SCENARIOS
from kernal.trainer.trainer import Trainer
from tests.conftest import HubFactory

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_quickstart_is_two_commands_that_exist() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in _blocks(quickstart, "bash")[0].splitlines()]
    assert commands == ["scripts/demo", "scripts/check"]
    for command in commands:
        path = ROOT / command
        assert path.exists() and path.stat().st_mode & 0o111, command
    assert "exec scripts/check" in (ROOT / ".ci" / "run").read_text()


def test_readme_capabilities_example_loads(tmp_path: Path) -> None:
    (toml,) = [block for block in _blocks(README, "toml") if "[capabilities]" in block]
    path = tmp_path / "capabilities.toml"
    path.write_text(toml)
    assert load_capabilities_file(path) == {
        "data_science": ["data_ingestion", "model_training", "analysis"]
    }


def _config_rows() -> list[tuple[str, str]]:
    table = README.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    rows, command = [], ""
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        command = cells[0].strip("`") or command
        for flag in re.findall(r"--[a-z-]+", cells[1]):
            rows.append((command, flag))
    return rows


@pytest.mark.parametrize(("command", "flag"), _config_rows())
def test_every_documented_flag_exists(command: str, flag: str) -> None:
    commands = ["hub", "trainer", "harness"] if command == "all" else [command]
    for name in commands:
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "240"})
        assert flag in result.output, f"{flag} is documented for `kernal {name}` but missing"


def test_every_limit_is_documented_with_its_default() -> None:
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"(?m)^\| `([a-z_]+)` \| ([^|]+) \|", doc.split("## Limits", 1)[1]))
    assert set(rows) == set(HUB_LIMITS)
    defaults = HubSettings()
    for name, documented in rows.items():
        assert float(documented) == getattr(defaults, name), f"{name}: the doc says {documented}"


def _engine_example() -> type[Engine]:
    docs = (ROOT / "docs" / "engines.md").read_text(encoding="utf-8")
    (source,) = [block for block in _blocks(docs, "python") if "class EchoEngine" in block]
    module = types.ModuleType("docs_engine_example")
    exec(compile(source, "docs/engines.md", "exec"), module.__dict__)
    engine: type[Engine] = module.EchoEngine
    return engine


async def test_engine_example_runs_in_a_trainer(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=100)
    echo = _engine_example()
    trainers = []
    for n, spec in ((1, "networking"), (2, "graphics")):
        settings = TrainerSettings(
            ai_id=f"AI_Node_{n}",
            specialization=spec,
            token=f"secret{n}",
            hub_host=hub.address[0],
            hub_port=hub.address[1],
            speed=100,
        )
        engine = echo(EngineContext(settings.ai_id, spec, ["pattern_recognition"]))
        trainers.append(Trainer(settings, engine=engine))
    results = await asyncio.gather(*(t.run(duration=120) for t in trainers))
    assert all(t.succeeded() for t in trainers), results
    assert results[0].engine == "echo"
    patterns = await hub.store.recent_patterns(10)
    assert any(p.pattern_data.get("seen") for p in patterns)  # it learned from its peer


async def test_harness_doc_matches_a_real_report() -> None:
    docs = (ROOT / "docs" / "harness.md").read_text(encoding="utf-8")
    example = json.loads(_blocks(docs, "json")[0])
    report = await run_scenario(SCENARIOS["basic"], speed=60)
    assert set(example) == set(report)
    documented = example["trainers"]["AI_Node_1"]
    real = report["trainers"]["AI_Node_1"]
    assert set(documented) == set(real)
    assert set(documented["results"]) == set(real["results"])
    assert set(example["final_stats"]) == set(report["final_stats"])
    assert set(example["hub_stats"]["t_30s"]) == set(report["hub_stats"]["t_30s"])
