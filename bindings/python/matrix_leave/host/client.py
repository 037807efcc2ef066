"""Outgoing federation requests of the reference homeserver (aiohttp).

The reference host federates over loopback only: a server name must be ``localhost``,
``127.0.0.1``, ``localhost:PORT`` or ``127.0.0.1:PORT``, and every connection goes to
``127.0.0.1:PORT`` (port 8448 when the name has none). Any other destination is refused
before a socket is opened, so the host never sends traffic anywhere but the local machine.
A port is written without leading zeros (``localhost:08448`` is refused), so one listener
has at most two names.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import urllib.parse
from typing import Any, Optional

import aiohttp
from yarl import URL

log = logging.getLogger("matrix_leave.host.client")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
DEFAULT_FEDERATION_PORT = 8448


class Unreachable(Exception):
    """The destination could not be reached (or is not a loopback server name)."""


def resolve(server_name: str) -> tuple[str, int]:
    """The address to connect to for a server name: always ``127.0.0.1``."""
    host, sep, port_text = server_name.rpartition(":")
    if not sep:
        host, port_text = server_name, ""
    if host not in LOOPBACK_HOSTS:
        raise Unreachable(
            f"{server_name!r} is not a loopback server name; the reference host only "
            "federates with localhost:PORT / 127.0.0.1:PORT"
        )
    if not sep:
        return "127.0.0.1", DEFAULT_FEDERATION_PORT
    if (
        not port_text.isascii()
        or not port_text.isdigit()
        or port_text.startswith("0")
        or len(port_text) > 5
        or not 0 < int(port_text) < 65536
    ):
        raise Unreachable(f"{server_name!r} has an invalid port")
    return "127.0.0.1", int(port_text)


def encode_path_param(value: str) -> str:
    """Percent-encodes one path segment: everything but ``A-Z a-z 0-9 - . _ ~``."""
    return urllib.parse.quote(value, safe="")


class FederationClient:
    """Sends federation requests over HTTPS to loopback servers.

    Args:
        ssl_context: for the outgoing TLS connections.
        timeout_s: the whole request, from waiting for a pooled connection to the last
            byte of the answer.
        limit: connections open at once (the pool).
        limit_per_host: connections open at once to one address (0: no limit).
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        timeout_s: float = 15.0,
        limit: int = 32,
        limit_per_host: int = 0,
    ) -> None:
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: Optional[aiohttp.ClientSession] = None

    async def start(self) -> None:
        # trust_env=False (the default): no proxy from the environment is ever used.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=self._ssl, limit=self._limit, limit_per_host=self._limit_per_host
            ),
            timeout=self._timeout,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        destination: str,
        method: str,
        uri: str,
        authorization: Optional[str] = None,
        body: Optional[bytes] = None,
    ) -> tuple[int, bytes]:
        """Sends one request; ``uri`` (path and query) is sent exactly as given, as it was
        signed. Returns ``(status, body)``; raises :class:`Unreachable` when no answer came."""
        if self._session is None:
            raise Unreachable("the federation client is not started")
        host, port = resolve(destination)
        url = URL(f"https://{host}:{port}{uri}", encoded=True)
        headers = {"Host": destination}
        if authorization is not None:
            headers["Authorization"] = authorization
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            async with self._session.request(method, url, headers=headers, data=body) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.warning(
                "out  %s %s %s -> unreachable: %s", method, destination, uri, e or type(e).__name__
            )
            raise Unreachable(f"{destination}: {e or type(e).__name__}") from e
        log.info(
            "out  %s %s %s -> %d (%d ms)",
            method,
            destination,
            uri,
            status,
            (time.monotonic() - started) * 1000,
        )
        return status, data


def parse_json_body(body: bytes) -> Any:
    """A response body as JSON, or its text when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body.decode("utf-8", "replace")
