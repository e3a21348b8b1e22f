"""``kernal hub`` and ``kernal demo``: a hub and its dashboard (and demo trainers) until Ctrl+C."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kernal.cli.common import (
    DbOption,
    LogJsonOption,
    LogLevelOption,
    LoopOption,
    SpeedOption,
    fail,
    run_until_interrupted,
)
from kernal.config import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_DB,
    DEFAULT_HUB_PORT,
    HubSettings,
    TrainerSettings,
    parse_limits,
)
from kernal.logs import logging_in_background, setup_logging
from kernal.protocol import DEFAULT_MAX_FRAME

if TYPE_CHECKING:
    from kernal.hub.server import Hub

DEMO_SPECIALIZATIONS = ["networking", "graphics", "security", "file_system", "audio"]


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
    max_frame: Annotated[int, typer.Option(help="Largest accepted frame in bytes.")] = (
        DEFAULT_MAX_FRAME
    ),
    speed: SpeedOption = 1.0,
    presence_limit: Annotated[
        int, typer.Option(min=1, help="AIs listed in STATE; past it, arrivals are not broadcast.")
    ] = HubSettings.presence_limit,
    request_fanout: Annotated[
        int, typer.Option(min=1, help="Peers a request sent to everyone reaches, at most.")
    ] = HubSettings.request_fanout,
    max_connections: Annotated[
        int, typer.Option(min=0, help="Connections at once (0: no limit).")
    ] = HubSettings.max_connections,
    max_connections_per_address: Annotated[
        int, typer.Option(min=0, help="Connections from one IP address (0: no limit).")
    ] = HubSettings.max_connections_per_address,
    rate_limit: Annotated[
        float,
        typer.Option(min=0, help="Frames per second per connection, blank lines too (0: off)."),
    ] = HubSettings.rate_frames,
    idle_timeout: Annotated[
        float, typer.Option(min=0, help="Close connections silent this many seconds (0: never).")
    ] = HubSettings.idle_timeout,
    max_data_bytes: Annotated[
        int, typer.Option(min=1, help="Largest pattern_data/component_data, as JSON text.")
    ] = HubSettings.max_data_bytes,
    collaboration_timeout: Annotated[
        float,
        typer.Option(
            min=0, help="Fail a collaboration nobody spoke on for this many seconds (0: never)."
        ),
    ] = HubSettings.collaboration_timeout,
    tls_cert: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_TLS_CERT",
            help="PEM certificate chain: trainers and the dashboard then need TLS (https).",
        ),
    ] = None,
    tls_key: Annotated[
        str | None,
        typer.Option(envvar="KERNAL_TLS_KEY", help="PEM private key of --tls-cert."),
    ] = None,
    client_ca: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_CLIENT_CA",
            help="PEM CA: trainers must present a certificate it signed (mutual TLS).",
        ),
    ] = None,
    tokens_file: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_TOKENS_FILE",
            help="AI_ID:TOKEN lines the hub loads (hashed) and watches; see docs/security.md.",
        ),
    ] = None,
    stats_retention: Annotated[
        str,
        typer.Option(
            help="Thin old stats snapshots: AGE=STEP tiers, e.g. 1h=all,1d=1m,forever=1h "
            "(off: keep all; see docs/retention.md)."
        ),
    ] = "off",
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A Host name the dashboard answers to besides loopback names and IP addresses "
            "(repeat it; *.example.com for subdomains, * for any).",
        ),
    ] = None,
    read_token: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_READ_TOKEN",
            help="Token to read the dashboard and API (Bearer, cookie, or ?token= once). "
            "Required when the dashboard listens beyond loopback.",
        ),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_ADMIN_TOKEN",
            help="Bearer token for the API's writes (tokens, launched trainers); none: no writes.",
        ),
    ] = None,
    public_dashboard: Annotated[
        bool,
        typer.Option(help="Serve the dashboard beyond loopback without a read token (warned)."),
    ] = False,
    api_page_bytes: Annotated[
        int, typer.Option(min=1024, help="Bytes of entries in one page of an API list.")
    ] = HubSettings.web_page_bytes,
    api_list_data_bytes: Annotated[
        int, typer.Option(min=0, help="Item data longer than this is left out of API lists.")
    ] = HubSettings.web_list_data_bytes,
    web_request_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds for an HTTP request to arrive whole (0: none).")
    ] = HubSettings.web_request_timeout,
    web_max_connections: Annotated[
        int, typer.Option(min=0, help="HTTP connections at once; past it, 503 (0: no limit).")
    ] = HubSettings.web_max_connections,
    max_launched_trainers: Annotated[
        int,
        typer.Option(
            min=0, help="Trainers the dashboard may launch at once (needs --admin-token; 0: none)."
        ),
    ] = HubSettings.max_launched_trainers,
    bus: Annotated[
        str | None,
        typer.Option(
            envvar="KERNAL_BUS",
            help="Join the replicas on this bus into one hub: redis://HOST:6379 "
            "(with a shared --db postgresql://...; see docs/cluster.md).",
        ),
    ] = None,
    replica_id: Annotated[
        str,
        typer.Option(
            envvar="KERNAL_REPLICA_ID",
            help="This replica's name in the cluster (default: host name and a random suffix).",
        ),
    ] = "",
    bus_namespace: Annotated[
        str, typer.Option(envvar="KERNAL_BUS_NAMESPACE", help="One cluster per name on a bus.")
    ] = HubSettings.bus_namespace,
    bus_heartbeat: Annotated[
        float,
        typer.Option(
            min=0.05,
            envvar="KERNAL_BUS_HEARTBEAT",
            help="Seconds between this replica's heartbeats on the bus.",
        ),
    ] = HubSettings.bus_heartbeat,
    bus_ttl: Annotated[
        float,
        typer.Option(
            min=0.2,
            envvar="KERNAL_BUS_TTL",
            help="Seconds after its last heartbeat before the others count this replica "
            "dead (a few heartbeats).",
        ),
    ] = HubSettings.bus_ttl,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            envvar="KERNAL_LIMITS",
            help="Set any limit, NAME=VALUE (repeatable), e.g. rate_bytes=1048576; applied "
            "after the flags above. KERNAL_LIMITS gives them space-separated when no --limit is "
            "given. docs/security.md lists every limit.",
        ),
    ] = None,
    loop: LoopOption = "auto",
    log_json: LogJsonOption = False,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run the hub (TCP for trainers) and its dashboard until Ctrl+C."""
    from kernal.runtime import loop_factory, raise_open_file_limit
    from kernal.storage.retention import StatsRetention

    setup_logging(level=log_level, json_lines=log_json)
    try:
        retention = StatsRetention.parse(stats_retention)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        loop_factory(loop)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        limits = parse_limits(limit or [])
    except ValueError as exc:
        raise fail(f"--limit: {exc}") from None
    raise_open_file_limit()
    settings = HubSettings(
        host=host,
        port=port,
        dashboard_host=dashboard_host,
        dashboard_port=None if dashboard_port < 0 else dashboard_port,
        db=db,
        max_frame=max_frame,
        speed=speed,
        presence_limit=presence_limit,
        request_fanout=request_fanout,
        max_connections=max_connections,
        max_connections_per_address=max_connections_per_address,
        rate_frames=rate_limit,
        idle_timeout=idle_timeout,
        max_data_bytes=max_data_bytes,
        collaboration_timeout=collaboration_timeout,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=client_ca,
        tokens_file=tokens_file,
        stats_retention=retention,
        allowed_hosts=tuple(allowed_host or ()),
        read_token=read_token or None,
        admin_token=admin_token or None,
        public_dashboard=public_dashboard,
        web_page_bytes=api_page_bytes,
        web_list_data_bytes=api_list_data_bytes,
        web_request_timeout=web_request_timeout,
        web_max_connections=web_max_connections,
        max_launched_trainers=max_launched_trainers,
        bus=bus,
        replica_id=replica_id,
        bus_namespace=bus_namespace,
        bus_heartbeat=bus_heartbeat,
        bus_ttl=bus_ttl,
    )
    settings = dataclasses.replace(settings, **limits)
    if bus and bus_ttl <= bus_heartbeat:
        raise fail(
            f"--bus-ttl {bus_ttl:g} must be longer than --bus-heartbeat {bus_heartbeat:g}, "
            "or the others count this replica dead between two heartbeats: use a few heartbeats"
        )
    if bus and not db.startswith(("postgresql:", "postgres:", "postgresql+")):
        raise fail(
            f"--bus joins replicas that share one database, and {db!r} is a SQLite file: "
            "give them --db postgresql://HOST/DBNAME (move the data with `kernal db copy`)"
        )
    with logging_in_background():
        run_until_interrupted(serve_hub(settings, demo_trainers=0), loop=loop)


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
    run_until_interrupted(serve_hub(settings, demo_trainers=trainers))


async def serve_hub(settings: HubSettings, *, demo_trainers: int) -> None:
    from kernal import serve
    from kernal.hub.server import HubConfigError

    companions = [_demo_trainer(n) for n in range(1, demo_trainers + 1)]
    try:
        await serve.run(settings, companions)
    except HubConfigError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot listen: {exc}. Is another hub running? Try --port 0.") from None


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
