"""The commands users type: `kernal token ...`, `python3 kernal.py ...`, harness exit status."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kernal import __version__
from kernal.cli import app
from kernal.config import HubSettings
from kernal.hub.server import Hub
from kernal.storage.sql import SqlStore, database_url
from tests.helpers import RawClient

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


def test_token_add_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    listed = runner.invoke(app, ["token", "list", "--db", db])
    assert "no tokens stored" in listed.stdout

    added = runner.invoke(app, ["token", "add", "AI_Custom", "--db", db])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    chosen = runner.invoke(app, ["token", "add", "AI_Other", "--token", "secretX", "--db", db])
    assert chosen.stdout.strip().splitlines()[-1] == "secretX"

    listed = runner.invoke(app, ["token", "list", "--db", db])
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["AI_Custom", "AI_Other"]
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump and "secretX" not in dump

    revoked = runner.invoke(app, ["token", "revoke", "AI_Other", "--db", db])
    assert revoked.exit_code == 0
    again = runner.invoke(app, ["token", "revoke", "AI_Other", "--db", db])
    assert again.exit_code == 2 and "no token stored for AI_Other" in again.output


def test_token_add_rejects_bad_ids(tmp_path: Path) -> None:
    result = runner.invoke(app, ["token", "add", "bad id", "--db", str(tmp_path / "hub.db")])
    assert result.exit_code == 2 and "invalid AI id" in result.output


async def test_token_added_by_cli_works_on_a_running_hub(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    hub = Hub(HubSettings(port=0, dashboard_port=None, db=db), SqlStore(database_url(db)))
    await hub.start()
    try:
        assert await hub.auth.demo_mode()
        # The CLI runs its own event loop, as it does when a user types it in another terminal.
        result = await asyncio.to_thread(
            runner.invoke, app, ["token", "add", "AI_Custom", "--db", db]
        )
        token = result.stdout.strip().splitlines()[-1]
        client = await RawClient.connect(hub)
        await client.send({"ai_id": "AI_Custom", "token": token})
        assert (await client.recv())["type"] == "AUTH_OK"
        await client.close()
        demo = await RawClient.connect(hub)
        await demo.send({"ai_id": "AI_Node_1", "token": "secret1"})
        assert (await demo.recv())["type"] == "AUTH_FAILED"  # demo tokens ended
        await demo.close()
    finally:
        await hub.stop()


def test_hub_refuses_public_address_without_tokens(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["hub", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "h.db")]
    )
    assert result.exit_code == 2
    assert "kernal token add" in result.output


def test_hub_refuses_an_open_dashboard_beyond_loopback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "hub",
            "--port",
            "0",
            "--dashboard-port",
            "0",
            "--dashboard-host",
            "0.0.0.0",
            "--db",
            str(tmp_path / "h.db"),
        ],
    )
    assert result.exit_code == 2
    assert "--read-token" in result.output and "--public-dashboard" in result.output


def test_trainer_reports_unknown_engine(tmp_path: Path) -> None:
    result = runner.invoke(app, ["trainer", "AI_Node_1", "networking", "secret1", "--engine", "x"])
    assert result.exit_code == 2 and "no engine named 'x'" in result.output


def test_unknown_scenario_lists_the_known_ones() -> None:
    result = runner.invoke(app, ["harness", "nope"])
    assert result.exit_code == 2 and "basic" in result.output


def _launcher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "kernal.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_launcher_runs_harness_and_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = _launcher("harness", "basic", "--speed", "60", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads(out.read_text())
    assert report["scenario"] == "Basic Collaboration"
    assert "Traceback" not in result.stderr


def test_harness_exit_status_is_nonzero_when_a_trainer_fails(tmp_path: Path) -> None:
    # At this speed the 3-minute scenario is over long before a trainer has shared all it planned.
    result = _launcher("harness", "basic", "--speed", "1000000", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not any(t["success"] for t in report["trainers"].values())


def test_python_dash_m_kernal_runs_the_harness_from_the_checkout_root(tmp_path: Path) -> None:
    """From the checkout root ``python -m kernal`` names ``kernal.py``; the harness's spawned
    children import the main module again by name, which there is the package: each one ran
    the whole command again and the run failed (or hung) with "bootstrapping phase"."""
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "kernal", "harness", "basic", "--speed", "60", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bootstrapping phase" not in result.stderr
    assert json.loads(out.read_text())["scenario"] == "Basic Collaboration"


def test_import_from_checkout_root_finds_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import kernal, kernal.cli; print(kernal.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().endswith(str(Path("src", "kernal", "__init__.py")))


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    for command in (["token", "list"], ["hub", "--port", "0"]):
        result = runner.invoke(app, [*command, "--db", "postgresql://127.0.0.1:1/nowhere"])
        assert result.exit_code == 2, result.output
        assert "cannot open the database" in result.output
        assert "Traceback" not in result.output


def test_engine_options_fail_before_connecting() -> None:
    wrong = runner.invoke(
        app,
        [
            "trainer",
            "A",
            "networking",
            "t",
            "--engine",
            "simulated",
            "--split",
            "iid",
            "--hub",
            "127.0.0.1:1",
        ],
    )
    assert wrong.exit_code == 2 and "split: unknown option" in wrong.output
    bad = runner.invoke(
        app, ["trainer", "A", "networking", "t", "-o", "shard_size=lots", "--hub", "127.0.0.1:1"]
    )
    assert bad.exit_code == 2 and "shard_size" in bad.output
    malformed = runner.invoke(app, ["harness", "basic", "-o", "nokey"])
    assert malformed.exit_code == 2 and "expected KEY=VALUE" in malformed.output


def test_help_has_no_stray_markers() -> None:
    for command in ([], ["hub"], ["trainer"], ["harness"], ["token"], ["new-trainer"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output


def test_new_trainer_writes_a_file_that_joins_a_hub(tmp_path: Path) -> None:
    target = tmp_path / "me" / "my_trainer.py"
    written = runner.invoke(app, ["new-trainer", str(target)])
    assert written.exit_code == 0, written.output
    text = target.read_text()
    assert "def _generate_feature_for_request" in text and "Replace this stub" in text
    again = runner.invoke(app, ["new-trainer", str(target)])
    assert again.exit_code == 2 and "exists" in again.output

    async def run_against_hub() -> tuple[dict[str, object], list[str]]:
        db = str(tmp_path / "hub.db")
        async with Hub(
            HubSettings(port=0, dashboard_port=None, db=db, speed=100), SqlStore(db)
        ) as hub:
            host, port = hub.address
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(target),
                "AI_Node_1",
                "networking",
                "secret1",
                "--hub",
                f"{host}:{port}",
                "--speed",
                "100",
                "--duration",
                "60",
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            shared = [p.pattern_id for p in await hub.store.recent_patterns(10)]
            return json.loads(out), shared

    results, shared = asyncio.run(run_against_hub())
    assert results["engine"] == "my_engine" and results["patterns_shared"] == 3
    assert len(shared) == 3


def test_a_copied_launcher_without_kernal_says_how_to_install(tmp_path: Path) -> None:
    copy = tmp_path / "my_kernel.py"
    copy.write_text((ROOT / "kernal.py").read_text())
    # -S: no site-packages, so this Python has none of kernal's dependencies.
    result = subprocess.run(
        [sys.executable, "-S", str(copy), "hub"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "kernal is not installed for this Python" in result.stderr
    assert "pip install" in result.stderr and "scripts/setup" not in result.stderr
