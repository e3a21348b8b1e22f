"""TLS contexts for the hub (server side) and trainers (client side), from PEM files.

Both sides require TLS 1.2 or newer. :func:`server_context` makes a context whose handshake
failures are logged (``kernal.hub``), one line each up to 20 a minute: asyncio and uvloop drop
them silently outside debug mode, and an operator needs to see the plain-text client or the
unknown client certificate that could not connect.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kernal.hub")


class TlsConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it and says why."""


HANDSHAKE_LOG_LINES = 20  # failed handshakes logged per HANDSHAKE_LOG_WINDOW, at most
HANDSHAKE_LOG_WINDOW = 60.0  # seconds


class _HandshakeLog:
    """Logs failed handshakes, a bounded number per window: failures cost a client nothing
    before it is admitted, so a flood of them must not flood the log too."""

    def __init__(self) -> None:
        self._window_start = 0.0
        self._lines = 0
        self._suppressed = 0

    def failed(self, exc: ssl.SSLError) -> None:
        now = time.monotonic()
        if now - self._window_start >= HANDSHAKE_LOG_WINDOW:
            if self._suppressed:
                log.warning(
                    "[?] %d more TLS handshakes failed in %g s (not logged one by one)",
                    self._suppressed,
                    HANDSHAKE_LOG_WINDOW,
                )
            self._window_start, self._lines, self._suppressed = now, 0, 0
        if self._lines >= HANDSHAKE_LOG_LINES:
            self._suppressed += 1
            return
        self._lines += 1
        log.warning("[?] TLS handshake failed: %s (%s)", exc.reason or exc, _hint(exc))


class _HubContext(ssl.SSLContext):
    """The hub's context, carrying the log of its failed handshakes."""

    handshakes: _HandshakeLog


class _LoggedHandshake(ssl.SSLObject):
    """An SSLObject that logs why a handshake failed (the event loops keep quiet about it)."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # not a failure: the handshake is waiting for the network
        except ssl.SSLError as exc:
            context = self.context
            if isinstance(context, _HubContext):
                context.handshakes.failed(exc)
            raise


def _hint(exc: ssl.SSLError) -> str:
    reason = (exc.reason or "").upper()
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST"):
        return "a client speaking plain text to a TLS port? It must connect with TLS"
    if "CERTIFICATE" in reason:
        return "the client's certificate is missing or not signed by --client-ca"
    return "the client and the hub could not agree on TLS"


def _load(what: str, path: str, load: Callable[[], object]) -> None:
    if not Path(path).is_file():
        raise TlsConfigError(f"{what} {path!r} does not exist or is not a file")
    try:
        load()
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsConfigError(f"cannot use {what} {path!r}: {exc}") from exc


def server_context(
    cert: str, key: str | None = None, client_ca: str | None = None
) -> ssl.SSLContext:
    """The hub's context: its certificate chain ``cert`` and private ``key`` (PEM; ``key``
    may be omitted when ``cert`` holds both). With ``client_ca``, clients must present a
    certificate signed by it (mutual TLS). Raises :class:`TlsConfigError`."""
    context = _HubContext(ssl.PROTOCOL_TLS_SERVER)
    context.handshakes = _HandshakeLog()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load("TLS certificate", cert, lambda: context.load_cert_chain(cert, key))
    if client_ca is not None:
        _load("client CA", client_ca, lambda: context.load_verify_locations(cafile=client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    context.sslobject_class = _LoggedHandshake
    return context


def client_context(
    ca: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A trainer's context: checks the hub's certificate and name against ``ca`` (PEM; by
    default the system's trusted CAs), and presents ``cert``/``key`` when given (for a hub
    with ``--client-ca``). Raises :class:`TlsConfigError`."""
    if ca is not None and not Path(ca).is_file():
        raise TlsConfigError(f"CA file {ca!r} does not exist or is not a file")
    try:
        context = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"cannot use CA file {ca!r}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if key is not None and cert is None:
        raise TlsConfigError("a client key needs its certificate: give --client-cert too")
    if cert is not None:
        _load("client certificate", cert, lambda: context.load_cert_chain(cert, key))
    return context
