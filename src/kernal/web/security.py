"""Who may talk to the web app: the Host check, the read token, the admin token.

:class:`Guard` is plain ASGI middleware around the whole app, so every route, including ones
other modules add later (server-sent events, MCP), is covered without opting in:

1. **Host.** A request whose ``Host`` is not accepted gets 421 before anything is read: a
   DNS-rebinding page (``evil.example`` resolved to 127.0.0.1) sends its own name as Host and
   is refused. Accepted: loopback names (``localhost``, ``127.0.0.1``, ``[::1]``), any IP
   literal (rebinding needs a *name*, and a person typing an address gets the page), the
   dashboard's bind host, and every ``allowed_hosts`` entry (``*.example.com`` takes its
   subdomains, ``*`` disables the check, for a proxy that rewrites Host).
2. **Read token.** With one set, every request but ``GET /healthz`` must carry it, as
   ``Authorization: Bearer <token>``, the ``kernal_token`` cookie, or a ``token`` query
   parameter (for opening the page in a browser; the answer then sets the cookie, HttpOnly and
   SameSite=Strict, so the page's own requests carry it). Otherwise 401.
3. **Admin token.** Any method but GET, HEAD and OPTIONS writes, and needs
   ``Authorization: Bearer <admin token>`` (never a cookie: a cross-site form cannot send it);
   so does anything under ``/api/tokens``, reads included. With no admin token configured
   nothing of that is served (403). The admin token reads everything too.

Whether a read token is *required* is decided at start (:func:`check_exposure`): beyond
loopback, a hub refuses to start its dashboard without one unless told ``public_dashboard``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernal.config import HubSettings
from kernal.hub.auth import is_loopback
from kernal.hub.server import HubConfigError

log = logging.getLogger("kernal.web")

COOKIE = "kernal_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz"})  # liveness probes carry no token
ADMIN_PATHS = ("/api/tokens",)  # reading them too needs the admin token: they say who may log in
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class ExposureError(HubConfigError):
    """The dashboard would be reachable beyond loopback by anyone; the message says what to do."""


def check_exposure(settings: HubSettings) -> None:
    """Refuse (raise :class:`ExposureError`) a dashboard bound beyond loopback without a read
    token, unless ``public_dashboard``: then only warn. Every model shared on the hub would be
    readable by anyone who can reach the port. Also refuses a token that an HTTP header
    cannot carry as is (anything but printable ASCII without spaces)."""
    for flag, token in (
        ("--read-token", settings.read_token),
        ("--admin-token", settings.admin_token),
    ):
        if token and not (token.isascii() and token.isprintable() and " " not in token):
            raise ExposureError(
                f"{flag}: use printable ASCII without spaces (it travels in an HTTP header); "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` makes a good one"
            )
    if settings.dashboard_port is None or is_loopback(settings.web_host):
        return
    if settings.read_token:
        return
    if settings.public_dashboard:
        log.warning(
            "Dashboard on %s without a read token: anyone who reaches it reads every pattern "
            "and component (--public-dashboard)",
            settings.web_host,
        )
        return
    raise ExposureError(
        f"refusing to serve the dashboard on {settings.web_host} without a read token: anyone "
        "could read every shared model. Set --read-token (or KERNAL_READ_TOKEN), bind it to "
        "127.0.0.1 with --dashboard-host, or pass --public-dashboard to serve it open anyway."
    )


@dataclass(frozen=True)
class Policy:
    """What :class:`Guard` enforces; built from settings by :meth:`from_settings`."""

    allowed_hosts: frozenset[str] = LOOPBACK_NAMES
    wildcard_hosts: tuple[str, ...] = ()  # ".example.com" for "*.example.com"
    any_host: bool = False
    read_token: str | None = None
    admin_token: str | None = None
    read_only_posts: frozenset[str] = field(default_factory=frozenset)
    """Paths whose POSTs only read (an RPC endpoint such as MCP): the read token suffices."""

    @classmethod
    def from_settings(cls, settings: HubSettings, *, read_only_posts: Iterable[str] = ()) -> Policy:
        names = {name.strip().lower().strip("[]") for name in settings.allowed_hosts}
        names.discard("")
        bind = settings.web_host.lower().strip("[]")
        if bind not in ("0.0.0.0", "::", ""):
            names.add(bind)
        return cls(
            allowed_hosts=frozenset(LOOPBACK_NAMES | {n for n in names if not n.startswith("*")}),
            wildcard_hosts=tuple(n[1:] for n in names if n.startswith("*.")),
            any_host="*" in names,
            read_token=settings.read_token or None,
            admin_token=settings.admin_token or None,
            read_only_posts=frozenset(read_only_posts),
        )

    def host_allowed(self, host_header: str) -> bool:
        """Whether a ``Host`` header value (with or without port) is accepted."""
        if self.any_host:
            return True
        host = _host_name(host_header)
        if not host:
            return False
        if host in self.allowed_hosts or any(host.endswith(w) for w in self.wildcard_hosts):
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True


def _host_name(header: str) -> str:
    """``"[::1]:5001"`` -> ``"::1"``, ``"Example.COM:80"`` -> ``"example.com"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return ""
    return name.rstrip(".")


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class _Credentials:
    bearer: str | None
    cookie: str | None
    query: str | None


def _credentials(scope: Scope) -> _Credentials:
    bearer = cookie = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                bearer = token.strip()
        elif name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header is no credential at all
                continue
            if COOKIE in jar:
                cookie = unquote(jar[COOKIE].value)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return _Credentials(bearer, cookie, query[-1] if query else None)


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


class Guard:
    """ASGI middleware enforcing a :class:`Policy` (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        if not policy.host_allowed(_header(scope, b"host")):
            await _refuse(
                send,
                421,
                "this hub does not answer to that Host name; open it by an address it serves "
                "(its operator adds names with --allowed-host)",
            )
            return
        method = scope["method"]
        path = scope["path"]
        given = _credentials(scope)
        admin = _same(given.bearer, policy.admin_token)
        writes = method not in SAFE_METHODS and path not in policy.read_only_posts
        if writes or path.startswith(ADMIN_PATHS):
            if policy.admin_token is None:
                await _refuse(
                    send,
                    403,
                    "this hub has no admin token, so nothing that writes or administers is "
                    "served over HTTP; its operator starts it with --admin-token (or "
                    "KERNAL_ADMIN_TOKEN) to allow it",
                )
            elif not admin:
                await _refuse(
                    send,
                    401,
                    "this needs the admin token as 'Authorization: Bearer <token>'",
                    challenge=True,
                )
            else:
                await self.app(scope, receive, send)
            return
        if policy.read_token is None or admin or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        by_query = _same(given.query, policy.read_token)
        if not (
            by_query
            or _same(given.bearer, policy.read_token)
            or _same(given.cookie, policy.read_token)
        ):
            await _refuse(
                send,
                401,
                "this hub needs its read token: send 'Authorization: Bearer <token>', or "
                "open the page once as /?token=<token> (a cookie keeps it)",
                challenge=True,
            )
            return
        if by_query:
            await self.app(scope, receive, _setting_cookie(send, policy.read_token))
        else:
            await self.app(scope, receive, send)


def _setting_cookie(send: Send, token: str) -> Send:
    """``send`` that adds the read-token cookie to the response start."""
    value = quote(token, safe="")
    cookie = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"set-cookie", cookie)]
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def _refuse(send: Send, status: int, error: str, *, challenge: bool = False) -> None:
    """A JSON error shaped as every other of the app (``error`` and ``detail``)."""
    body = json.dumps({"error": error, "detail": error}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="kernal"'))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
