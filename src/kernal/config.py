"""Settings in one place. The CLI fills these from flags and ``KERNAL_*`` environment variables;
library users construct them directly. Every time-based value is in scenario seconds and is run
through the :class:`~kernal.timing.Clock` built from ``speed``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernal.protocol import DEFAULT_MAX_FRAME
from kernal.storage.retention import StatsRetention
from kernal.timing import Clock

DEFAULT_HUB_PORT = 6000
DEFAULT_DASHBOARD_PORT = 5001
DEFAULT_DB = "hub_data.db"


@dataclass(frozen=True)
class HubSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_HUB_PORT
    dashboard_host: str | None = None  # None: same as host
    dashboard_port: int | None = DEFAULT_DASHBOARD_PORT  # None: no dashboard
    db: str = DEFAULT_DB  # a SQLite path or a database URL
    max_frame: int = DEFAULT_MAX_FRAME
    auth_timeout: float = 10.0  # real seconds: a network limit, not scenario time
    stats_interval: float = 5.0  # scenario seconds between stats snapshots
    stats_retention: StatsRetention | None = (
        None  # None: keep every snapshot (see --stats-retention)
    )
    recent_limit: int = 10  # items of each kind in STATE
    presence_limit: int = 200  # AIs listed in STATE; past it, no AI_JOINED/AI_LEFT broadcasts
    request_fanout: int = 16  # peers a broadcast COLLABORATION_REQUEST is relayed to, at most
    send_queue_limit: int = 10_000  # frames queued for a client that does not read: dropped
    send_buffer_bytes: int = 16 * 2**20  # bytes queued for one client before it is dropped
    read_buffer_bytes: int = 4 * 2**20  # bytes of received frames waiting before reads pause
    max_connections: int = 20_000  # connections at once (0: no limit)
    max_connections_per_address: int = 2_000  # from one IP address (0: no limit)
    idle_timeout: float = 600.0  # real seconds without a frame before a connection is closed
    max_data_bytes: int = 512 * 1024  # a share's pattern_data/component_data, as JSON text
    max_collaborations_per_ai: int = 32  # active collaborations one AI may be a member of
    collaboration_timeout: float = 300.0  # real seconds of silence that fail one (0: off)
    replay_items: int = 10_000  # relayed shares kept for reconnecting clients (resume)
    replay_bytes: int = 64 * 2**20
    rate_frames: float = 2_000.0  # frames per second per connection (blank lines count; 0: off)
    rate_frame_burst: float = 20_000.0
    rate_bytes: float = 4 * 2**20  # bytes per second per connection (0: off): a few models a second
    # (not 32 MiB: 30 MB of shares in a second made every honest commit wait on the disk)
    rate_byte_burst: float = 8 * 2**20
    abuse_seconds: float = 30.0  # over the rate limits this long without a break: disconnected
    # FEEDBACK per second per AI; more wait their turn (0: off). Each costs the hub a read and a
    # commit of its own (~4 ms of CPU): at 100 a second one rater still took half the hub.
    rate_feedback: float = 20.0
    rate_feedback_burst: float = 50.0
    turn_seconds: float = 0.001  # a connection's frames hold the loop this long, then yield
    # Failed logins (hub/limits.py AddressBook): the backoff of one AI id from one address, the
    # failure rate past which a whole address waits, and how many token checks run at once.
    login_backoff_initial: float = 0.25
    login_backoff_max: float = 30.0
    login_failures_per_second: float = 1.0
    login_failure_burst: float = 10.0
    login_checks_per_address: int = 2
    login_suspect_checks: int = 1
    tls_cert: str | None = None  # PEM certificate chain: trainers and the dashboard get TLS
    tls_key: str | None = None  # its private key (PEM; may be the same file as tls_cert)
    tls_client_ca: str | None = None  # PEM CA: trainers must present a certificate it signed
    tokens_file: str | None = None  # ai_id:token lines the hub owns (see hub/tokens.py)
    token_check_interval: float = 2.0  # real seconds between checks for revoked tokens (0: off)
    speed: float = 1.0
    # The dashboard and HTTP API (web/): what a page may cost, how long a request may take to
    # arrive, and who may read and write (see docs/http-api.md).
    web_page_bytes: int = 1024 * 1024  # JSON of one page of a list, at most (one entry past)
    web_list_data_bytes: int = 16 * 1024  # an item's data longer than this is left out of lists
    # Entries of item listings one client address may ask for per second (a page counts its
    # limit); more wait their turn (0: no limit).
    web_list_entries_per_second: float = 1000.0
    web_list_entry_burst: float = 1000.0
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback and IP literals
    read_token: str | None = None  # required to read the API/page when set (or beyond loopback)
    admin_token: str | None = None  # required for anything that writes; no writes without one
    public_dashboard: bool = False  # beyond loopback without a read token: allowed, with a warning
    web_request_timeout: float = 10.0  # real seconds for a request to arrive whole
    web_keep_alive: float = 5.0  # real seconds an idle keep-alive connection stays open
    web_max_connections: int = 512  # HTTP connections at once; past it, 503
    web_max_header_bytes: int = 16 * 1024  # request line and headers, at most
    max_launched_trainers: int = 16  # trainers started from the dashboard at once (0: none)
    # Replicas (docs/cluster.md): the bus joining this hub to the others on the same database
    # (None: a single hub), the namespace of its channels and keys (one cluster per name), this
    # replica's name (empty: host name and a random suffix), heartbeat period and TTL (s).
    bus: str | None = None
    bus_namespace: str = "kernal"
    replica_id: str = ""
    bus_heartbeat: float = 1.0
    bus_ttl: float = 3.0

    @property
    def clock(self) -> Clock:
        return Clock(self.speed)

    @property
    def web_host(self) -> str:
        return self.dashboard_host or self.host

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


# Every limit a client's behaviour runs into, settable with ``kernal hub --limit NAME=VALUE``
# (or KERNAL_LIMITS); docs/security.md lists them all (tests/test_docs.py checks it).
HUB_LIMITS: dict[str, str] = {
    "max_frame": "largest frame, bytes",
    "max_data_bytes": "largest pattern_data/component_data, as JSON text, bytes",
    "auth_timeout": "seconds a new connection has to send its AUTH",
    "idle_timeout": "seconds without a frame before a connection is closed (0: never)",
    "max_connections": "connections at once (0: no limit)",
    "max_connections_per_address": "connections from one IP address (0: no limit)",
    "rate_frames": "frames per second per connection, blank lines included (0: off)",
    "rate_frame_burst": "frames a connection may send at once above its rate",
    "rate_bytes": "bytes per second per connection (0: off)",
    "rate_byte_burst": "bytes a connection may send at once above its rate",
    "abuse_seconds": "seconds over the rate limits without a break before a disconnect",
    "turn_seconds": (
        "seconds a connection's frames hold the event loop before others get a turn (up to 10 "
        "times as long when the others took that long meanwhile)"
    ),
    "rate_feedback": "FEEDBACK per second per AI; more wait their turn (0: off)",
    "rate_feedback_burst": "FEEDBACK an AI may send at once above its rate",
    "send_queue_limit": "frames queued for a client that does not read, before it is dropped",
    "send_buffer_bytes": "bytes queued for a client that does not read, before it is dropped",
    "read_buffer_bytes": "bytes of received frames waiting for the hub before reading pauses",
    "max_collaborations_per_ai": "active collaborations one AI may be a member of",
    "collaboration_timeout": "seconds of silence that fail a collaboration (0: never)",
    "presence_limit": "AIs listed in STATE; past it, arrivals and departures are not broadcast",
    "request_fanout": "peers a COLLABORATION_REQUEST to everyone reaches, at most",
    "replay_items": "relayed shares kept for reconnecting clients (resume)",
    "replay_bytes": "bytes of relayed shares kept for reconnecting clients",
    "login_backoff_initial": "seconds the next login of an AI id waits after one failure there",
    "login_backoff_max": "longest such wait (it doubles with each failure)",
    "login_failures_per_second": "failed logins per second of one address before all of its wait",
    "login_failure_burst": "failed logins one address may have at once above that rate",
    "login_checks_per_address": "logins of one address whose token is checked at once",
    "login_suspect_checks": "token checks at once shared by every address that failed lately",
    "web_page_bytes": "bytes of JSON in one page of an API list",
    "web_list_data_bytes": "item data longer than this is left out of API lists, bytes",
    "web_list_entries_per_second": "API list entries one address may ask for per second (0: off)",
    "web_list_entry_burst": "API list entries one address may ask for at once",
    "web_request_timeout": "seconds for an HTTP request to arrive whole",
    "web_keep_alive": "seconds an idle HTTP keep-alive connection stays open",
    "web_max_connections": "HTTP connections at once; past it, 503 (0: no limit)",
    "web_max_header_bytes": "bytes of an HTTP request line and headers",
    "max_launched_trainers": "trainers the dashboard may run at once (0: none)",
}


# The smallest value of the limits where 0 would not mean "off" but a hub that cannot work.
_LIMIT_FLOORS: dict[str, float] = {
    "max_frame": 1024,
    "max_data_bytes": 1,
    "auth_timeout": 0.1,
    "presence_limit": 1,
    "request_fanout": 1,
    "send_queue_limit": 1,
    "send_buffer_bytes": 65_536,
    "read_buffer_bytes": 65_536,
    "login_checks_per_address": 1,
    "login_suspect_checks": 1,
    "web_page_bytes": 1024,
    "web_max_header_bytes": 1024,
}


def parse_limits(assignments: list[str]) -> dict[str, Any]:
    """``["rate_bytes=1048576", "abuse-seconds=10"]`` to HubSettings fields, each value of the
    field's own type, 0 or more (or its floor where 0 cannot work); raises ValueError naming
    the bad one (and the known names, for a name it does not know)."""
    defaults = HubSettings()
    chosen: dict[str, Any] = {}  # Any: dataclasses.replace(settings, **chosen) takes it
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {assignment!r}")
        if name not in HUB_LIMITS:
            known = ", ".join(sorted(HUB_LIMITS))
            raise ValueError(f"no limit named {name!r}; the limits are: {known}")
        kind = type(getattr(defaults, name))
        try:
            value: int | float = int(text) if kind is int else float(text)
        except ValueError:
            wanted = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} needs {wanted}, got {text.strip()!r}") from None
        floor = _LIMIT_FLOORS.get(name, 0)
        if not value >= floor:  # also refuses nan
            raise ValueError(f"{name} must be {floor:g} or more, got {text.strip()!r}")
        chosen[name] = value
    return chosen


@dataclass(frozen=True)
class TrainerSettings:
    ai_id: str
    specialization: str
    token: str
    hub_host: str = "127.0.0.1"
    hub_port: int = DEFAULT_HUB_PORT
    # More replicas of the hub to try in turn when a connection fails or drops (the first
    # is hub_host:hub_port); see parse_hub_addresses.
    hub_addresses: tuple[tuple[str, int], ...] = ()
    trust_threshold: float = 0.5
    reputation_alpha: float = 0.3
    initial_reputation: float = 0.5
    speed: float = 1.0
    seed: int | None = None
    engine: str = "learning"
    extra_capabilities: dict[str, list[str]] = field(default_factory=dict)
    max_frame: int = DEFAULT_MAX_FRAME
    engine_options: dict[str, Any] = field(default_factory=dict)
    tls: bool = False  # connect with TLS (a tls:// hub address)
    tls_ca: str | None = None  # PEM CA to check the hub's certificate (default: the system's)
    tls_cert: str | None = None  # PEM client certificate, for a hub that requires one
    tls_key: str | None = None

    @property
    def clock(self) -> Clock:
        return Clock(self.speed)


@dataclass(frozen=True)
class HubAddress:
    host: str
    port: int
    tls: bool = False


def parse_hub_url(value: str) -> HubAddress:
    """``tls://HOST:PORT``, ``tcp://HOST:PORT`` or ``HOST:PORT`` (see
    :func:`parse_hub_address`); raises ValueError."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return HubAddress(*parse_hub_address(value))
    if scheme.lower() not in ("tls", "tcp"):
        raise ValueError(
            f"unknown scheme {scheme!r} in {value!r}: use tls://HOST:PORT or HOST:PORT"
        )
    return HubAddress(*parse_hub_address(rest.rstrip("/")), tls=scheme.lower() == "tls")


def parse_hub_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``, or bare ``HOST``) to a pair; raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, DEFAULT_HUB_PORT
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def parse_hub_addresses(value: str) -> list[tuple[str, int]]:
    """``a:6000,b:6000`` (replicas of one hub) to pairs, each as :func:`parse_hub_address`
    reads it; raises ValueError."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise ValueError(f"expected HOST:PORT[,HOST:PORT...], got {value!r}")
    return [parse_hub_address(part) for part in parts]


def parse_hub_urls(value: str) -> list[HubAddress]:
    """``tls://a:6000,tls://b:6000`` (replicas of one hub, each as :func:`parse_hub_url` reads
    it) to addresses; raises ValueError. One address with TLS means TLS for all."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise ValueError(f"expected HOST:PORT[,HOST:PORT...], got {value!r}")
    return [parse_hub_url(part) for part in parts]


def load_capabilities_file(path: str | Path) -> dict[str, list[str]]:
    """Read extra specializations from a TOML file::

        [capabilities]
        data_science = ["data_ingestion", "model_training", "analysis"]

    Raises ValueError with a message that names the file and the problem.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read capabilities file {path}: {exc}") from exc
    table = data.get("capabilities", {})
    if not isinstance(table, dict) or not all(
        isinstance(caps, list) and all(isinstance(c, str) for c in caps) for caps in table.values()
    ):
        raise ValueError(f"{path}: [capabilities] must map specializations to lists of strings")
    return {str(spec): list(caps) for spec, caps in table.items()}
