"""TLS between trainers and the hub, and https for the dashboard, with certificates made on the
fly (trustme). Every test runs on asyncio's loop and on uvloop, the CLI's default (see
``conftest.py``)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

import kernal.tls as tls_module
from kernal.config import HubSettings, TrainerSettings
from kernal.hub.auth import hash_token
from kernal.hub.server import Hub, HubConfigError
from kernal.protocol.messages import PatternShare, RelayedPatternShare
from kernal.serve import start_service
from kernal.storage.sql import SqlStore
from kernal.tls import TlsConfigError, client_context
from kernal.trainer.client import HubClient, Incoming
from kernal.trainer.trainer import Trainer
from tests.conftest import HubFactory, ServiceFactory
from tests.helpers import RawClient


@dataclass(frozen=True)
class Certs:
    """PEM files: the hub's chain and key (signed by ``ca``), the CA clients trust, and a
    client certificate signed by ``client_ca`` and one signed by an unrelated CA."""

    hub_cert: str
    hub_key: str
    ca: str
    client_ca: str
    client_cert: str
    stranger_cert: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    folder = tmp_path_factory.mktemp("certs")
    ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")

    def write(name: str, blob: trustme.Blob) -> str:
        path = folder / name
        blob.write_to_path(str(path))
        return str(path)

    def write_pair(name: str, cert: trustme.LeafCert) -> str:
        path = folder / name  # chain and key in one file, as load_cert_chain accepts
        path.write_bytes(
            b"".join(b.bytes() for b in cert.cert_chain_pems) + cert.private_key_pem.bytes()
        )
        return str(path)

    yield Certs(
        hub_cert=write("hub.pem", server.cert_chain_pems[0]),
        hub_key=write("hub.key", server.private_key_pem),
        ca=write("ca.pem", ca.cert_pem),
        client_ca=write("client-ca.pem", client_ca.cert_pem),
        client_cert=write_pair("client.pem", client_ca.issue_cert("ai-node-1.trainers.example")),
        stranger_cert=write_pair("stranger.pem", other_ca.issue_cert("ai-node-1.trainers.example")),
    )


def tls_settings(certs: Certs, *, mutual: bool = False) -> dict[str, Any]:
    return {
        "tls_cert": certs.hub_cert,
        "tls_key": certs.hub_key,
        "tls_client_ca": certs.client_ca if mutual else None,
    }


def sdk_client(hub: Hub, ai_id: str, context: ssl.SSLContext | None, **kwargs: Any) -> HubClient:
    host, port = hub.address
    token = f"secret{ai_id.rsplit('_', 1)[1]}"
    return HubClient(
        host,
        port,
        ai_id,
        token,
        specialization="networking",
        capabilities=["x"],
        ssl=context,
        **kwargs,
    )


async def test_trainers_share_over_tls(make_hub: HubFactory, certs: Certs) -> None:
    hub = await make_hub(**tls_settings(certs))
    relays: asyncio.Queue[Incoming] = asyncio.Queue()

    async def on_message(message: Incoming) -> None:
        if isinstance(message, RelayedPatternShare):
            await relays.put(message)

    sender = sdk_client(hub, "AI_Node_1", client_context(certs.ca))
    receiver = sdk_client(hub, "AI_Node_2", client_context(certs.ca), on_message=on_message)
    tasks = [asyncio.create_task(c.run()) for c in (sender, receiver)]
    try:
        await asyncio.wait_for(sender.connected.wait(), 10)
        await asyncio.wait_for(receiver.connected.wait(), 10)
        ack = await sender.request(PatternShare(pattern_id="p-tls", pattern_data={"k": 1}))
        assert ack.id == "p-tls"
        relay = await asyncio.wait_for(relays.get(), 5)
        assert isinstance(relay, RelayedPatternShare)
        assert (relay.pattern_id, relay.sender) == ("p-tls", "AI_Node_1")
        assert await hub.store.get_pattern("p-tls") is not None
    finally:
        for client in (sender, receiver):
            await client.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_plain_text_client_to_a_tls_hub_fails_cleanly(
    make_hub: HubFactory, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await make_hub(**tls_settings(certs))
    caplog.set_level(logging.WARNING, logger="kernal.hub")
    plain = await RawClient.connect(hub)
    await plain.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert await asyncio.wait_for(plain.reader.read(), 5) == b""  # closed, nothing said
    await plain.close()
    # The SDK says what to try.
    client = sdk_client(hub, "AI_Node_1", None, reconnect=False)
    await asyncio.wait_for(client.run(), 10)
    assert client.last_error is not None and "tls://" in client.last_error
    failures = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.message]
    assert len(failures) == 2 and "plain text" in failures[0]
    # The hub serves TLS clients as before.
    tls = await RawClient.connect(hub, ssl=client_context(certs.ca))
    state = await tls.login("AI_Node_1", "secret1")
    assert state["type"] == "STATE"
    await tls.close()


async def test_a_client_that_does_not_trust_the_hub_certificate_is_refused(
    make_hub: HubFactory, certs: Certs
) -> None:
    hub = await make_hub(**tls_settings(certs))
    with pytest.raises(ssl.SSLCertVerificationError):
        await RawClient.connect(hub, ssl=client_context(certs.client_ca))  # the wrong CA


async def test_mutual_tls_refuses_a_client_without_an_accepted_certificate(
    make_hub: HubFactory, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await make_hub(**tls_settings(certs, mutual=True))
    caplog.set_level(logging.WARNING, logger="kernal.hub")
    for context in (client_context(certs.ca), client_context(certs.ca, certs.stranger_cert)):
        # TLS 1.3: the client's side of the handshake ends before the hub has checked its
        # certificate, so the refusal shows on the first read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client = await RawClient.connect(hub, ssl=context)
            await client.send({"ai_id": "AI_Node_1", "token": "secret1"})
            await client.recv()
    failures = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.message]
    assert len(failures) == 2 and all("client-ca" in f for f in failures)
    assert len(hub.peers) == 0
    admitted = await RawClient.connect(hub, ssl=client_context(certs.ca, certs.client_cert))
    assert (await admitted.login("AI_Node_1", "secret1"))["type"] == "STATE"
    await admitted.close()


async def test_reference_trainer_runs_against_a_tls_hub(make_hub: HubFactory, certs: Certs) -> None:
    hub = await make_hub(**tls_settings(certs, mutual=True), speed=100.0)
    host, port = hub.address
    settings = TrainerSettings(
        ai_id="AI_Node_3",
        specialization="graphics",
        token="secret3",
        hub_host=host,
        hub_port=port,
        speed=100.0,
        seed=3,
        engine="simulated",
        tls=True,
        tls_ca=certs.ca,
        tls_cert=certs.client_cert,
    )
    report = await Trainer(settings, patterns_to_share=2).run(duration=20)
    assert report.auth_error is None
    assert report.patterns_shared >= 1
    assert len(await hub.store.recent_patterns(10)) >= 1


async def test_dashboard_is_served_over_https(make_service: ServiceFactory, certs: Certs) -> None:
    service = await make_service(**tls_settings(certs), dashboard_port=0)
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    async with httpx.AsyncClient(verify=client_context(certs.ca)) as http:
        response = await http.get(f"https://{host}:{port}/status")
        assert response.status_code == 200
        assert "connected_ais" in response.json()
        with pytest.raises(httpx.HTTPError):
            await http.get(f"http://{host}:{port}/status")  # plain http gets nothing


async def test_unusable_certificates_stop_the_hub_with_a_clear_error(
    tmp_path: Path, certs: Certs
) -> None:
    base = {"port": 0, "dashboard_port": None, "db": str(tmp_path / "hub.db")}
    cases = [
        ({"tls_cert": str(tmp_path / "missing.pem")}, "does not exist"),
        ({"tls_cert": certs.ca}, "cannot use TLS certificate"),  # no private key in it
        (
            {"tls_cert": certs.hub_cert, "tls_key": certs.hub_key, "tls_client_ca": certs.hub_key},
            "cannot use client CA",
        ),
        ({"tls_client_ca": certs.client_ca}, "need --tls-cert"),
    ]
    for overrides, expected in cases:
        with pytest.raises(HubConfigError, match=expected):
            await start_service(HubSettings(**base, **overrides))


def test_client_context_errors_name_the_file(tmp_path: Path, certs: Certs) -> None:
    with pytest.raises(TlsConfigError, match="does not exist"):
        client_context(str(tmp_path / "nope.pem"))
    with pytest.raises(TlsConfigError, match="needs its certificate"):
        client_context(certs.ca, None, certs.hub_key)


async def test_beyond_loopback_without_tls_warns_and_with_tls_does_not(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "hub.db")
    async with SqlStore(db) as store:  # beyond loopback, a hub needs a token to start
        await store.set_token_hash("AI_X", hash_token("t", iterations=1), 0.0)
    caplog.set_level(logging.WARNING, logger="kernal")
    warnings: dict[bool, list[str]] = {}
    for tls in (True, False):
        caplog.clear()
        extra = tls_settings(certs) if tls else {}
        settings = HubSettings(
            host="0.0.0.0", port=0, dashboard_port=0, db=db, read_token="read", **extra
        )
        service = await start_service(settings)
        await service.stop()
        warnings[tls] = [r.getMessage() for r in caplog.records if "without TLS" in r.message]
    assert warnings[True] == []
    hub_warning, dashboard_warning = warnings[False]
    assert "plain text" in hub_warning and "--tls-cert" in hub_warning
    assert dashboard_warning.startswith("Dashboard on 0.0.0.0 without TLS")


async def test_failed_handshakes_are_logged_within_bounds(
    make_hub: HubFactory,
    certs: Certs,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of plain-text connections cannot flood the log: 3 lines, then a count."""
    monkeypatch.setattr(tls_module, "HANDSHAKE_LOG_LINES", 3)
    hub = await make_hub(**tls_settings(certs))
    caplog.set_level(logging.WARNING, logger="kernal.hub")
    for _ in range(5):
        plain = await RawClient.connect(hub)
        await plain.send({"ai_id": "AI_Node_1", "token": "secret1"})
        assert await asyncio.wait_for(plain.reader.read(), 5) == b""
        await plain.close()
    assert len([r for r in caplog.records if "TLS handshake failed:" in r.message]) == 3
    monkeypatch.setattr(tls_module, "HANDSHAKE_LOG_WINDOW", 0.0)  # the next failure opens a window
    plain = await RawClient.connect(hub)
    await plain.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert await asyncio.wait_for(plain.reader.read(), 5) == b""
    await plain.close()
    summary = [r.getMessage() for r in caplog.records if "more TLS handshakes" in r.message]
    assert summary == ["[?] 2 more TLS handshakes failed in 0 s (not logged one by one)"]
