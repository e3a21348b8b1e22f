"""``kernal trainer`` (one reference trainer against a hub, until Ctrl+C or ``--duration``) and
``kernal harness SCENARIO`` (a hub and a scenario's trainers, and a JSON report)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kernal import runtime
from kernal.cli.common import (
    EngineOption,
    LogJsonOption,
    LogLevelOption,
    SpeedOption,
    engine_options,
    fail,
    run_until_interrupted,
)
from kernal.config import (
    DEFAULT_HUB_PORT,
    TrainerSettings,
    load_capabilities_file,
    parse_hub_urls,
)
from kernal.logs import setup_logging

T = TypeVar("T")

# The learning engine's options have flags of their own (they were the first); any engine's
# options, the learning engine's included, can also be given as --option KEY=VALUE.
DataFlag = Annotated[
    Path | None, typer.Option(help="learning: your own data, CSV (label column) or NPZ.")
]
SplitFlag = Annotated[
    str | None,
    typer.Option(help="learning: iid, dirichlet:ALPHA or shards:K (default dirichlet:0.5)."),
]
MergeFlag = Annotated[
    str | None,
    typer.Option(help="learning: gated (measured, the default) or fedavg (no defence)."),
]


def trainer(
    ai_id: Annotated[str, typer.Argument(help="This trainer's identity, e.g. AI_Node_1.")],
    specialization: Annotated[str, typer.Argument(help="networking, graphics, security, ...")],
    token: Annotated[
        str | None,
        typer.Argument(
            envvar="KERNAL_TOKEN",
            help="The token registered for AI_ID (or KERNAL_TOKEN, or --token-file: a command "
            "line is visible to every user of the machine).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(envvar="KERNAL_TOKEN_FILE", help="Read the token from this file."),
    ] = None,
    hub_address: Annotated[
        str,
        typer.Option(
            "--hub",
            envvar="KERNAL_HUB",
            help="Hub address HOST:PORT, or tls://HOST:PORT; replicas as "
            "HOST:PORT,HOST:PORT,... tried in turn.",
        ),
    ] = f"127.0.0.1:{DEFAULT_HUB_PORT}",
    tls: Annotated[
        bool, typer.Option("--tls", help="Connect with TLS (as a tls:// address does).")
    ] = False,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca", envvar="KERNAL_CA", help="PEM CA to check the hub's certificate with."
        ),
    ] = None,
    client_cert: Annotated[
        Path | None,
        typer.Option(envvar="KERNAL_CLIENT_CERT", help="PEM client certificate (mutual TLS)."),
    ] = None,
    client_key: Annotated[
        Path | None,
        typer.Option(envvar="KERNAL_CLIENT_KEY", help="PEM private key of --client-cert."),
    ] = None,
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
    option: EngineOption = None,
    data: DataFlag = None,
    split: SplitFlag = None,
    shard_size: Annotated[
        int | None, typer.Option(help="learning: samples in this trainer's shard.")
    ] = None,
    behaviour: Annotated[
        str | None,
        typer.Option(help="learning: honest (default), or an adversary (label_flip, ...)."),
    ] = None,
    merge: MergeFlag = None,
    model: Annotated[str | None, typer.Option(help="learning: mlp (default) or softmax.")] = None,
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
        urls = parse_hub_urls(hub_address)
        addresses = [(url.host, url.port) for url in urls]
        secret = read_token(token, token_file, ai_id)
        use_tls = tls or any(url.tls for url in urls) or ca is not None or client_cert is not None
        extra = load_capabilities_file(capabilities_file) if capabilities_file else {}
        flags = {
            "data": data,
            "split": split,
            "shard_size": shard_size,
            "behaviour": behaviour,
            "merge": merge,
            "model": model,
        }
        settings = TrainerSettings(
            ai_id=ai_id,
            specialization=specialization,
            token=secret,
            hub_host=urls[0].host,
            hub_port=urls[0].port,
            hub_addresses=tuple(addresses),
            tls=use_tls,
            tls_ca=None if ca is None else str(ca),
            tls_cert=None if client_cert is None else str(client_cert),
            tls_key=None if client_key is None else str(client_key),
            trust_threshold=trust_threshold,
            reputation_alpha=reputation_alpha,
            initial_reputation=initial_reputation,
            speed=speed,
            seed=seed,
            engine=engine,
            extra_capabilities=extra,
            engine_options=engine_options(engine, flags, option),
        )
        runner = Trainer(settings)  # it warns at start if the trust threshold is a trap
    except (ValueError, UnknownEngineError) as exc:
        raise fail(str(exc)) from None
    report = run_until_interrupted(runner.run(duration))
    if report.auth_error:
        raise fail(report.auth_error)
    typer.echo(json.dumps(report.results(), indent=2))


def read_token(token: str | None, token_file: Path | None, ai_id: str) -> str:
    """The token from the argument (or KERNAL_TOKEN) or from ``token_file`` (its first line,
    stripped); raises ValueError naming what to do when there is none or there are two."""
    if token is not None and token_file is not None:
        raise ValueError("give the token once: as an argument (or KERNAL_TOKEN) or --token-file")
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {token_file}: {exc}") from None
        if not lines or not lines[0].strip():
            raise ValueError(f"the token file {token_file} is empty")
        return lines[0].strip()
    if not token:
        raise ValueError(
            f"no token for {ai_id}: give it as the third argument, in KERNAL_TOKEN, or with "
            f"--token-file F (the hub's operator makes one with `kernal token add {ai_id}`)"
        )
    return token


def harness(
    scenario: Annotated[str, typer.Argument(help="basic, multi_spec, stress_test or sequential.")],
    speed: SpeedOption = 1.0,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
    trainers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Number of trainers (stress_test, sequential, learning, adversarial)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Trainer processes (default: one per core); 0 runs hub and trainers in this one.",
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Database to use (default: a temporary one).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for every trainer.")] = 0,
    dashboard: Annotated[
        bool, typer.Option(help="Print the address of the run's dashboard (a free port).")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: if stderr is a terminal and the run is long).",
        ),
    ] = None,
    engine: Annotated[str, typer.Option(help="Trainers' engine: learning or simulated.")] = (
        "learning"
    ),
    option: EngineOption = None,
    split: SplitFlag = None,
    merge: MergeFlag = None,
    data: DataFlag = None,
    attack: Annotated[
        str, typer.Option(help="adversarial: label_flip, sign_flip, noise, scale, ...")
    ] = "label_flip",
    malicious_fraction: Annotated[
        float, typer.Option(min=0, max=1, help="adversarial: share of poisoners.")
    ] = 0.3,
    plot: Annotated[Path | None, typer.Option(help="Write PNG charts into this folder.")] = None,
    trust_threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Trainers reject peers below this reputation.")
    ] = 0.5,
    model: Annotated[str | None, typer.Option(help="learning: mlp (default) or softmax.")] = None,
    log_level: LogLevelOption = "WARNING",
    log_json: LogJsonOption = False,
) -> None:
    """Run a scenario with its own hub and trainers and print a JSON report. Ctrl+C stops it
    and prints the report so far (a second Ctrl+C gives up at once)."""
    from kernal.engines.base import UnknownEngineError
    from kernal.harness.hubs import HarnessError
    from kernal.harness.progress import ProgressDisplay
    from kernal.harness.runner import RunOptions, run_scenario
    from kernal.harness.scenarios import SCENARIOS, Adversaries

    setup_logging(level=log_level, json_lines=log_json)
    if scenario not in SCENARIOS:
        raise fail(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    chosen = SCENARIOS[scenario]
    try:
        options = RunOptions(
            engine=engine,
            engine_options=engine_options(
                engine, {"split": split, "merge": merge, "data": data, "model": model}, option
            ),
            adversaries=Adversaries(attack, malicious_fraction),
            plot=plot,
            trust_threshold=trust_threshold,
        )
        for warning in options.warnings():
            typer.echo(f"warning: {warning}", err=True)
        if chosen.has_adversaries:  # every poisoner's options must pass the engine too
            engine_options(engine, {**options.engine_options, "behaviour": attack}, None)
    except (ValueError, UnknownEngineError) as exc:
        raise fail(str(exc)) from None

    async def main(stop: asyncio.Event) -> dict[str, Any]:
        return await run_scenario(
            chosen,
            speed=speed,
            trainers=trainers,
            db=db,
            seed=seed,
            dashboard=dashboard,
            options=options,
            workers=workers,
            watcher=ProgressDisplay(bar=progress, dashboard=dashboard),
            stop=stop,
        )

    try:
        report = _run_stoppable(main)
    except HarnessError as exc:
        raise fail(str(exc)) from None
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if report["interrupted"]:
        raise typer.Exit(130)
    if report["summary"]["failed"]:
        raise typer.Exit(1)


def _run_stoppable(main: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(stop)``: the first Ctrl+C or SIGTERM sets ``stop`` (the run winds down and
    returns what it has), a second one cancels it (exit 130, no report)."""

    async def runner() -> T:
        task = asyncio.current_task()
        assert task is not None
        stop = asyncio.Event()

        def interrupt() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt)
        return await main(stop)

    try:
        with runtime.one_blas_thread():  # trainers may run in this process (--workers 0)
            return asyncio.run(runner())
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise typer.Exit(130) from None
