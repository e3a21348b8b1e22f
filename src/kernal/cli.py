"""The ``kernal`` command: hub, trainer, harness, demo and token management."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from kernal import __version__
from kernal.config import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_DB,
    DEFAULT_HUB_PORT,
    HubSettings,
    TrainerSettings,
    load_capabilities_file,
    parse_hub_address,
)
from kernal.logs import setup_logging

if TYPE_CHECKING:
    from kernal.hub.server import Hub
    from kernal.storage import Store

app = typer.Typer(
    help="kernal: a hub where AI trainers meet, share what they learn and collaborate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Manage the tokens trainers authenticate with.", no_args_is_help=True)
app.add_typer(token_app, name="token")

log = logging.getLogger("kernal")
T = TypeVar("T")

DbOption = Annotated[
    str, typer.Option("--db", envvar="KERNAL_DB", help="SQLite file or database URL.")
]
SpeedOption = Annotated[
    float, typer.Option("--speed", min=0.001, help="Run time-based behaviour K times faster.")
]
LogJsonOption = Annotated[bool, typer.Option("--log-json", help="Log JSON lines instead of text.")]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")]


def run_until_interrupted(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; Ctrl+C or SIGTERM cancel it (its ``finally`` blocks clean up) and exit 130."""

    async def runner() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await main

    try:
        return asyncio.run(runner())
    except (asyncio.CancelledError, KeyboardInterrupt):
        logging.getLogger("kernal").info("Interrupted; shut down cleanly")
        raise typer.Exit(130) from None


async def _open_store(db: str) -> Store:
    """The opened store for a token command, or a clear error (no traceback)."""
    from kernal.hub.server import describe_store_error
    from kernal.serve import build_store

    store = build_store(db)
    try:
        await store.open()
    except Exception as exc:
        raise _fail(describe_store_error(store.describe(), exc)) from None
    return store


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


# ---------------------------------------------------------------------------------- hub


@app.command()
def hub(
    host: Annotated[str, typer.Option(help="Address trainers connect to.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Trainer TCP port (0: any free port).")] = (
        DEFAULT_HUB_PORT
    ),
    dashboard_port: Annotated[
        int, typer.Option(help="Dashboard/API port (0: any free port, -1: no dashboard).")
    ] = DEFAULT_DASHBOARD_PORT,
    dashboard_host: Annotated[
        str | None, typer.Option(help="Dashboard address (default: same as --host).")
    ] = None,
    db: DbOption = DEFAULT_DB,
    max_frame: Annotated[int, typer.Option(help="Largest accepted frame in bytes.")] = 1024 * 1024,
    speed: SpeedOption = 1.0,
    log_json: LogJsonOption = False,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run the hub (TCP for trainers) and its dashboard until Ctrl+C."""
    setup_logging(level=log_level, json_lines=log_json)
    settings = HubSettings(
        host=host,
        port=port,
        dashboard_host=dashboard_host,
        dashboard_port=None if dashboard_port < 0 else dashboard_port,
        db=db,
        max_frame=max_frame,
        speed=speed,
    )
    run_until_interrupted(_serve_hub(settings, demo_trainers=0))


async def _serve_hub(settings: HubSettings, *, demo_trainers: int) -> None:
    from kernal import serve
    from kernal.hub.server import HubConfigError

    companions = [_demo_trainer(n) for n in range(1, demo_trainers + 1)]
    try:
        await serve.run(settings, companions)
    except HubConfigError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot listen: {exc}. Is another hub running? Try --port 0.") from None


DEMO_SPECIALIZATIONS = ["networking", "graphics", "security", "file_system", "audio"]


def _demo_trainer(n: int) -> Callable[[Hub], Coroutine[Any, Any, Any]]:
    """The ``n``-th demo trainer (``AI_Node_n`` with its demo token), run beside a hub."""

    async def run(hub_: Hub) -> Any:
        from kernal.hub.auth import DEMO_TOKENS
        from kernal.trainer.trainer import Trainer

        ai_id = f"AI_Node_{n}"
        host, port = hub_.address
        settings = TrainerSettings(
            ai_id=ai_id,
            specialization=DEMO_SPECIALIZATIONS[(n - 1) % len(DEMO_SPECIALIZATIONS)],
            token=DEMO_TOKENS[ai_id],
            hub_host=host,
            hub_port=port,
            speed=hub_.settings.speed,
            seed=n,
        )
        return await Trainer(settings).run()

    return run


@app.command()
def demo(
    trainers: Annotated[int, typer.Option(min=0, max=8, help="Demo trainers to start.")] = 3,
    port: Annotated[int, typer.Option(help="Trainer TCP port.")] = DEFAULT_HUB_PORT,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard port.")] = DEFAULT_DASHBOARD_PORT,
    db: DbOption = DEFAULT_DB,
    speed: SpeedOption = 1.0,
    log_json: LogJsonOption = False,
) -> None:
    """The hub, its dashboard and a few demo trainers in one process (loopback, demo tokens)."""
    setup_logging(json_lines=log_json)
    settings = HubSettings(port=port, dashboard_port=dashboard_port, db=db, speed=speed)
    run_until_interrupted(_serve_hub(settings, demo_trainers=trainers))


# ---------------------------------------------------------------------------------- trainer


@app.command()
def trainer(
    ai_id: Annotated[str, typer.Argument(help="This trainer's identity, e.g. AI_Node_1.")],
    specialization: Annotated[str, typer.Argument(help="networking, graphics, security, ...")],
    token: Annotated[str, typer.Argument(help="The token registered for AI_ID.")],
    hub_address: Annotated[
        str, typer.Option("--hub", envvar="KERNAL_HUB", help="Hub address HOST:PORT.")
    ] = f"127.0.0.1:{DEFAULT_HUB_PORT}",
    trust_threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Reject peers whose reputation is below this.")
    ] = 0.5,
    reputation_alpha: Annotated[
        float, typer.Option(min=0.001, max=1, help="Weight of the newest outcome (EMA).")
    ] = 0.3,
    initial_reputation: Annotated[
        float, typer.Option(min=0, max=1, help="Reputation of a peer never worked with.")
    ] = 0.5,
    speed: SpeedOption = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible runs.")] = None,
    engine: Annotated[
        str, typer.Option(help="Training engine (entry point name): learning, simulated, ...")
    ] = "learning",
    data: Annotated[
        Path | None, typer.Option(help="learning: your own data, CSV (label column) or NPZ.")
    ] = None,
    split: Annotated[
        str, typer.Option(help="learning: iid, dirichlet:ALPHA or shards:K.")
    ] = "dirichlet:0.5",
    shard_size: Annotated[
        int | None, typer.Option(help="learning: samples in this trainer's shard.")
    ] = None,
    behaviour: Annotated[
        str, typer.Option(help="learning: honest, or an adversary (label_flip, sign_flip, ...).")
    ] = "honest",
    merge: Annotated[
        str, typer.Option(help="learning: gated (measured) or fedavg (no defence, a baseline).")
    ] = "gated",
    capabilities_file: Annotated[
        Path | None, typer.Option(help="TOML file with extra [capabilities] lists.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many scenario seconds.")
    ] = None,
    log_json: LogJsonOption = False,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run a reference trainer against a hub until Ctrl+C (or --duration)."""
    from kernal.engines.base import UnknownEngineError
    from kernal.trainer.trainer import Trainer

    setup_logging(level=log_level, json_lines=log_json)
    try:
        host, port = parse_hub_address(hub_address)
        extra = load_capabilities_file(capabilities_file) if capabilities_file else {}
        settings = TrainerSettings(
            ai_id=ai_id,
            specialization=specialization,
            token=token,
            hub_host=host,
            hub_port=port,
            trust_threshold=trust_threshold,
            reputation_alpha=reputation_alpha,
            initial_reputation=initial_reputation,
            speed=speed,
            seed=seed,
            engine=engine,
            extra_capabilities=extra,
            engine_options=_learning_options(data, split, shard_size, behaviour, merge),
        )
        runner = Trainer(settings)
    except (ValueError, UnknownEngineError) as exc:
        raise _fail(str(exc)) from None
    results = run_until_interrupted(runner.run(duration))
    if results["auth_error"]:
        raise _fail(results["auth_error"])
    typer.echo(json.dumps(results, indent=2))


def _learning_options(
    data: Path | None, split: str, shard_size: int | None, behaviour: str, merge: str
) -> dict[str, Any]:
    """Engine options from the command line, checked here so mistakes fail before connecting."""
    from kernal.learning.attacks import parse_behaviour
    from kernal.learning.data import parse_split

    parse_split(split)
    parse_behaviour(behaviour)
    if merge not in ("gated", "fedavg"):
        raise ValueError(f"unknown merge {merge!r}: expected gated or fedavg")
    options: dict[str, Any] = {"split": split, "behaviour": behaviour, "merge": merge}
    if data is not None:
        options["data"] = str(data)
    if shard_size is not None:
        options["shard_size"] = shard_size
    return options


# ---------------------------------------------------------------------------------- harness


@app.command()
def harness(
    scenario: Annotated[str, typer.Argument(help="basic, multi_spec, stress_test or sequential.")],
    speed: SpeedOption = 1.0,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
    trainers: Annotated[
        int | None, typer.Option(min=1, help="Number of trainers (stress_test, sequential).")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Database to use (default: a temporary one).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for every trainer.")] = 0,
    dashboard: Annotated[
        bool, typer.Option(help="Serve the dashboard on a free port while it runs.")
    ] = False,
    engine: Annotated[str, typer.Option(help="Trainers' engine: learning or simulated.")] = (
        "learning"
    ),
    split: Annotated[str, typer.Option(help="iid, dirichlet:ALPHA or shards:K.")] = (
        "dirichlet:0.5"
    ),
    merge: Annotated[str, typer.Option(help="gated, or fedavg (no defence).")] = "gated",
    data: Annotated[Path | None, typer.Option(help="Your own CSV/NPZ instead of digits.")] = None,
    attack: Annotated[
        str, typer.Option(help="adversarial: label_flip, sign_flip, noise, scale, ...")
    ] = "label_flip",
    malicious_fraction: Annotated[
        float, typer.Option(min=0, max=1, help="adversarial: share of poisoners.")
    ] = 0.3,
    plot: Annotated[Path | None, typer.Option(help="Write PNG charts into this folder.")] = None,
    log_level: LogLevelOption = "WARNING",
    log_json: LogJsonOption = False,
) -> None:
    """Run a scenario with its own hub and trainers and print a JSON report."""
    from kernal.harness.runner import RunOptions, run_scenario
    from kernal.harness.scenarios import SCENARIOS, Adversaries

    setup_logging(level=log_level, json_lines=log_json)
    if scenario not in SCENARIOS:
        raise _fail(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    try:
        _learning_options(data, split, None, attack, merge)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    options = RunOptions(
        engine=engine,
        split=split,
        merge=merge,
        data=None if data is None else str(data),
        adversaries=Adversaries(attack, malicious_fraction),
        plot=plot,
    )
    report = run_until_interrupted(
        run_scenario(
            SCENARIOS[scenario],
            speed=speed,
            trainers=trainers,
            db=db,
            seed=seed,
            dashboard=dashboard,
            options=options,
        )
    )
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if not all(t["success"] for t in report["trainers"].values()):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------- tokens


@token_app.command("add")
def token_add(
    ai_id: Annotated[str, typer.Argument(help="The AI the token is for.")],
    token: Annotated[
        str | None, typer.Option(help="Use this token instead of a random one.")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create or replace AI_ID's token and print it (only its hash is stored)."""
    from kernal.hub.auth import (
        GENERATED_TOKEN_ITERATIONS,
        PBKDF2_ITERATIONS,
        generate_token,
        hash_token,
    )
    from kernal.protocol.messages import Auth

    try:
        Auth(ai_id=ai_id, token=token or "x")
    except ValueError:
        raise _fail(f"invalid AI id {ai_id!r}: use letters, digits and _ . : @ -") from None
    secret = token or generate_token()
    iterations = PBKDF2_ITERATIONS if token else GENERATED_TOKEN_ITERATIONS

    async def add() -> None:
        from kernal.timing import Clock

        store = await _open_store(db)
        try:
            await store.set_token_hash(
                ai_id, hash_token(secret, iterations=iterations), Clock.now()
            )
        finally:
            await store.close()

    asyncio.run(add())
    typer.secho(f"token for {ai_id} stored in {db}:", err=True)
    typer.echo(secret)


@token_app.command("list")
def token_list(db: DbOption = DEFAULT_DB) -> None:
    """List the AIs that have a token (never the tokens themselves)."""
    import datetime as dt

    async def fetch() -> list[Any]:
        store = await _open_store(db)
        try:
            return await store.list_tokens()
        finally:
            await store.close()

    tokens = asyncio.run(fetch())
    if not tokens:
        typer.echo("no tokens stored: a loopback hub on this database runs with demo tokens")
    for info in tokens:
        created = dt.datetime.fromtimestamp(info.created_at, dt.UTC).isoformat(timespec="seconds")
        typer.echo(f"{info.ai_id}\t{created}")


@token_app.command("revoke")
def token_revoke(
    ai_id: Annotated[str, typer.Argument(help="The AI whose token to delete.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete AI_ID's token; its next connection is refused."""

    async def revoke() -> bool:
        store = await _open_store(db)
        try:
            return await store.delete_token(ai_id)
        finally:
            await store.close()

    if not asyncio.run(revoke()):
        raise _fail(f"no token stored for {ai_id} in {db}")
    typer.echo(f"revoked the token of {ai_id}")


def main() -> None:
    app(prog_name="kernal")


if __name__ == "__main__":
    main()
