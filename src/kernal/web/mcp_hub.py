"""How the MCP server reaches a hub: reads through its HTTP API, writes through its TCP protocol.

Both MCP transports use the same two classes, so an agent sees the same data and the same rules
whichever it uses:

* :class:`HubApi` reads the JSON API (``/status``, ``/api/...``) with an ``httpx`` client: over
  the network for ``kernal mcp`` (stdio), or in-process through ``httpx.ASGITransport`` for
  ``/mcp`` on the dashboard. A read token, when the hub wants one, goes as ``Bearer``.
* :class:`HubWriter` writes as an AI: it logs in over TCP with the AI id and token the agent
  gives (``AUTH``, ``HELLO``), sends one frame, waits for the hub's ``ACK`` and disconnects. The
  hub checks the token and stamps the sender from the authenticated session, exactly as for a
  trainer: identity comes only from authentication, never from a tool argument.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from kernal.protocol.messages import Ack, Message
from kernal.trainer.client import AuthenticationError, ConnectionLost, HubClient, HubError

__all__ = ["HubApi", "HubUnavailable", "HubWriter", "ToolRefused"]

LOGIN_TIMEOUT = 15.0


class ToolRefused(Exception):
    """The hub (or this server, on its behalf) refused what a tool asked; the message says why
    and what to do."""


class HubUnavailable(ToolRefused):
    """The hub could not be reached."""


class HubApi:
    """The hub's read-only HTTP API. ``client`` has the API's base URL; ``token`` is the read
    token (None when the hub has none). Every method raises :class:`ToolRefused` for a refused
    request and :class:`HubUnavailable` when the API does not answer."""

    def __init__(self, client: httpx.AsyncClient, token: str | None = None) -> None:
        self._client = client
        self._token = token

    async def get(
        self, path: str, params: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        """The JSON of ``GET path``; None for a 404. ``token`` overrides the default one."""
        bearer = token or self._token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            response = await self._client.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            raise HubUnavailable(
                f"the hub's API at {self._client.base_url} did not answer ({why}): is the hub "
                "running with its dashboard on, and is the address right?"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise ToolRefused(
                f"the hub's API refused the read ({response.status_code}): it needs a read token; "
                "give the hub's --read-token to `kernal mcp --read-token` (or as a Bearer header)"
            )
        if response.status_code >= 400:
            raise ToolRefused(
                f"the hub's API answered {response.status_code}: {_error_of(response)}"
            )
        return response.json()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def item(self, kind: str, item_id: str, *, token: str | None = None) -> Any:
        return await self.get(f"/api/{kind}s/{quote(item_id, safe='')}", token=token)


def _error_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


class HubWriter:
    """Sends one frame as an AI over the hub's TCP protocol (see the module docstring).
    ``address()`` gives the hub's TCP (host, port) at call time."""

    def __init__(self, address: Callable[[], tuple[str, int]]) -> None:
        self._address = address

    async def send_as(
        self,
        ai_id: str,
        token: str,
        message: Message,
        *,
        specialization: str,
        capabilities: list[str],
    ) -> Ack:
        """Log in as ``ai_id`` with ``token``, send ``message``, return the hub's ACK. Raises
        :class:`ToolRefused` with the hub's reason (a wrong token, an ERROR answer) or
        :class:`HubUnavailable`."""
        host, port = self._address()
        client = HubClient(
            host,
            port,
            ai_id,
            token,
            specialization=specialization,
            capabilities=capabilities,
            follow=[],  # one frame and gone: no relays wanted
            reconnect=False,
            request_timeout=LOGIN_TIMEOUT,
        )
        runner = asyncio.create_task(client.run())
        try:
            await self._logged_in(client, runner, ai_id, f"{host}:{port}")
            try:
                return await client.request(message)
            except HubError as exc:
                raise ToolRefused(f"the hub refused it: {exc.code}: {exc.reason}") from None
            except (ConnectionLost, TimeoutError) as exc:
                raise HubUnavailable(f"the hub at {host}:{port} did not answer: {exc}") from None
        finally:
            await client.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    @staticmethod
    async def _logged_in(
        client: HubClient, runner: asyncio.Task[None], ai_id: str, where: str
    ) -> None:
        connected = asyncio.create_task(client.connected.wait())
        try:
            done, _ = await asyncio.wait(
                {connected, runner}, timeout=LOGIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
        if client.connected.is_set():
            return
        error = runner.exception() if runner in done else None
        if isinstance(error, AuthenticationError):
            raise ToolRefused(
                f"the hub refused the login of {ai_id}: wrong token or unknown AI. Use the token "
                f"made with `kernal token add {ai_id}` on the hub"
            )
        reason = client.last_error or (str(error) if error else "timed out")
        raise HubUnavailable(f"cannot log in to the hub at {where}: {reason}")
