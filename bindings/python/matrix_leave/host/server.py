"""The reference homeserver: federation over HTTPS, a plain-HTTP control API on loopback.

Run ``python -m matrix_leave.host --help`` for the options; the help ends with the control
API below.

Federation API
--------------

HTTPS on 127.0.0.1, port ``--port``. Every request but the key document is authenticated
with X-Matrix.

* ``GET  /_matrix/key/v2/server`` -- this server's key document, valid for a day
* ``PUT  /_matrix/federation/v2/invite/{roomId}/{eventId}`` -- an invite for a local user:
  checked, countersigned, kept
* ``GET  /_matrix/federation/v1/make_leave/{roomId}/{userId}`` -- answered by the library
* ``PUT  /_matrix/federation/v1|v2/send_leave/{roomId}/{eventId}`` -- answered by the
  library; every authenticated attempt is recorded, accepted leaves are relayed to the
  other servers in the room

Anything else is ``404 M_UNRECOGNIZED``. Every error is a JSON ``{"errcode", "error"}``
body with the right status, including the HTTP layer's own: a request line or target that
does not parse is ``400 M_UNRECOGNIZED``, a body over the size limit ``413 M_TOO_LARGE``.
``500 M_UNKNOWN`` means a bug (or a failing database) and is logged once.

Order of checks. The library checks a send_leave cheapest first and never fetches a key
(its key callback reads only what this host has cached). But a federation request must be
authenticated before the library sees it, and that needs the origin's keys, which may mean
fetching them. So everything that needs no key comes before that fetch:

1. a body over 65536 bytes: ``413 M_TOO_LARGE`` (from Content-Length, without reading it);
2. no ``Authorization`` header: ``401 M_UNAUTHORIZED``; one that does not parse or names an
   invalid origin: ``400 M_UNAUTHORIZED``; one naming another destination: ``401``; a body
   the library cannot read as JSON (a lone surrogate escape included): ``400 M_BAD_JSON``;
3. the origin's keys, cached or fetched: ``401 M_UNAUTHORIZED`` when they cannot be had,
   ``429 M_LIMIT_EXCEEDED`` when too many requests wait for key fetches;
4. the X-Matrix signature: ``401 M_UNAUTHORIZED``;
5. the library's checks (see the send_leave table of the top-level README). Only a
   request that got this far is recorded in ``leaves_received``.

Key fetches contact loopback server names only (``localhost:PORT`` or ``127.0.0.1:PORT``,
the port without leading zeros), take at most 5 s, and run on their own connection pool (at
most 64 at once; beyond that ``429``), so they never hold up the connections that invites,
leaves and relays use. A failed fetch is not retried for 30 s: requests naming that server
are refused at once meanwhile. Fetches from one address run one at a time, with at most 8
requests waiting for one (more get ``429``).

Control API
-----------

Plain HTTP on 127.0.0.1, port ``--control-port``, no authentication (loopback only). JSON
in and out: 200 with the result, otherwise ``{"errcode", "error"}`` with a 4xx/5xx status
(a body that is not JSON: ``400 M_NOT_JSON``; an unknown path: ``404 M_UNRECOGNIZED``; a
wrong method: ``405 M_UNRECOGNIZED``). Users may be given as a localpart (``alice``) or a
full ID; ``?`` marks an optional field.

GET  /control/info
    -> {"server_name", "key_id", "public_key", "federation": URL,
        "v1_send_leave": bool, "v2_send_leave": bool}
POST /control/create_room  {"creator": user, "room_version"?: "10"}
    Creates a room of this server.
    -> {"room_id", "room_version", "event_ids": [...]}
POST /control/invite  {"room_id", "sender": user, "target": user}
    Invites over federation (PUT /v2/invite) and stores the countersigned invite on a 200.
    -> {"status": HTTP status of the invitee's server, "event_id", "response": its body}
       ({"status": 200, "event_id", "local": true} for a local target)
POST /control/leave  {"room_id", "user_id": user, "via"?: [server, ...],
                      "reason"?: str, "room_version"?: str}
    Rejects the local user's invite with the library's leave driver (make_leave, then
    send_leave v2, v1 where v2 does not exist, server after server, out of band when none
    accepts); "via" adds servers to try (and allows a leave without a known invite). In a
    room this server hosts, leaves through its own resident.
    -> {"ok": true, "event_id", "accepted_remotely", "server", "api_version",
        "steps": [{"server", "action", "status", "errcode", "detail"}], "event"}
GET  /control/room?room_id=ROOM
    -> {"room_id", "resident": bool, "room_version", "members": {user: membership},
        "state": {"type|state_key": event_id}, "forward_extremities": [[event_id, depth]]}
GET  /control/invites_received
    -> [{"room_id", "accepted", "event_id", "user_id", "sender", "origin", "room_version",
         "rejected_because"}]
GET  /control/leaves_received
    Authenticated send_leave requests, oldest first.
    -> [{"room_id", "api": "v1"|"v2", "origin", "status", "accepted", "event_id_in_url",
         "event_id", "soft_failed", "duplicate", "redacted", "rejected_because": "ERRCODE: why",
         "event": the accepted event (for a refusal: its body, if that is a JSON object),
         "body": a refusal's raw body as text (at most 65536 bytes)}]
POST /control/sign_event  {"event": {...}, "room_version"}
    Hashes and signs an event as this server.
    -> {"event", "event_id"}
POST /control/send_raw_leave  {"destination": server, "room_id", "event": {...},
                               "event_id"?, "room_version"?, "api_version"?: 2}
    PUTs the event, unchanged, to the destination's send_leave with this server's X-Matrix
    signature ("event_id" defaults to the event's own, or is computed with "room_version").
    -> {"status", "body", "event_id", "uri"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import signal
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Optional

from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

import matrix_leave as mxl

from . import events as ev
from .client import (
    FederationClient,
    Unreachable,
    encode_path_param,
    parse_json_body,
    resolve,
)
from .store import Store, body_text, now_ms, server_of
from .tls import client_context, ensure_certificate, server_context

log = logging.getLogger("matrix_leave.host")
fed_log = logging.getLogger("matrix_leave.host.federation")

KEY_VALIDITY_MS = 24 * 3600 * 1000
#: A server whose current keys are cached but lack a key ID a request names is asked again
#: at most this often.
KEY_REFETCH_INTERVAL_S = 5.0
#: The whole of one key fetch, connection and TLS included.
KEY_FETCH_TIMEOUT_S = 5.0
#: A server whose key fetch failed is not asked again for this long.
KEY_FETCH_FAILURE_TTL_S = 30.0
#: Key fetches running at once (their own connection pool; beyond it: 429). With the 5 s
#: timeout and the 30 s failure cache, keeping it full takes some 200 silent addresses.
KEY_FETCH_MAX_CONCURRENT = 64
#: Requests that may wait for the key fetch of one address; more are answered 429.
KEY_FETCH_MAX_WAITING_PER_ORIGIN = 8
#: Failed fetches remembered at most (older ones are forgotten first).
KEY_FETCH_FAILURES_KEPT = 4096
#: The largest send_leave body (the library's limit; 65536 itself is allowed).
MAX_BODY = 65536
#: What aiohttp reads of any federation request body at most: a little more than
#: MAX_BODY, so that the limit itself is judged by the host and the library.
CLIENT_MAX_SIZE = MAX_BODY + 1024
JSON = "application/json"


_lib_log = logging.getLogger("matrix_leave.library")
_LIB_LEVELS = {
    1: logging.ERROR,
    2: logging.WARNING,
    3: logging.INFO,
    4: logging.DEBUG,
    5: logging.DEBUG,
}


def library_logger(level: int, message: str) -> None:
    """The Resident's log sink: the library's records go to the ``matrix_leave.library``
    logger."""
    _lib_log.log(_LIB_LEVELS.get(level, logging.DEBUG), "%s", message)


class KeyFetchBusy(Unreachable):
    """Too many requests wait for key fetches: answered 429, and not remembered as a
    failure of the server."""


class HttpError(Exception):
    """An error answer: status, errcode and message."""

    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra

    def response(self) -> web.Response:
        return json_response(
            {"errcode": self.errcode, "error": self.error, **self.extra}, self.status
        )

    @classmethod
    def from_matrix(cls, e: Exception) -> "HttpError":
        return cls(
            int(getattr(e, "http_status", 500) or 500),
            str(getattr(e, "errcode", "M_UNKNOWN") or "M_UNKNOWN"),
            str(getattr(e, "message", None) or e),
        )


def json_response(value: Any, status: int = 200) -> web.Response:
    text = json.dumps(value, ensure_ascii=False)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from parsed input: escape it
        body = json.dumps(value, ensure_ascii=True).encode("ascii")
    return web.Response(status=status, body=body, content_type=JSON)


def errcode_for_status(status: int, unparsed: bool = False) -> str:
    """The Matrix errcode for an HTTP-layer error status. `unparsed`: the request itself
    could not be parsed (a bad request line or target), which is not a JSON problem."""
    if status == 400:
        return "M_UNRECOGNIZED" if unparsed else "M_BAD_JSON"
    return {
        401: "M_UNAUTHORIZED",
        403: "M_FORBIDDEN",
        404: "M_UNRECOGNIZED",
        405: "M_UNRECOGNIZED",
        413: "M_TOO_LARGE",
        429: "M_LIMIT_EXCEEDED",
        431: "M_TOO_LARGE",
    }.get(status, "M_UNKNOWN" if status >= 500 else "M_UNRECOGNIZED")


def http_exception_response(e: web.HTTPException) -> web.Response:
    """aiohttp's own error (413 for a body over client_max_size, 404, 405, ...) as a JSON
    Matrix error with the same status."""
    reason = e.reason or HTTPStatus(e.status).phrase
    if e.status == 413:
        error = f"the request body is over the limit of {MAX_BODY} bytes"
    else:
        error = reason
    resp = json_response({"errcode": errcode_for_status(e.status), "error": error}, e.status)
    allow = e.headers.get("Allow")
    if allow:
        resp.headers["Allow"] = allow
    return resp


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse (a bad request
    line, target or header) with a JSON Matrix error instead of text."""

    __slots__ = ()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response was partly sent; no error response can follow")
        if status >= 500:
            log.error("HTTP %d handling a request from %s", status, request.remote, exc_info=exc)
            error = "internal error"
        else:
            reason = (message or (str(exc) if exc else "") or HTTPStatus(status).phrase).strip()
            reason = reason.splitlines()[0][:200].rstrip(": ") if reason else ""
            reason = reason or HTTPStatus(status).phrase
            log.info("unparsable request from %s -> %d: %s", request.remote, status, reason)
            error = f"the request could not be parsed: {reason}"
        resp = json_response({"errcode": errcode_for_status(status, unparsed=True), "error": error}, status)
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    """aiohttp's server, making :class:`_JsonErrorRequestHandler` connection handlers."""

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        try:
            handler.__class__ = _JsonErrorRequestHandler
        except TypeError:  # an aiohttp whose handler layout differs: keep its text errors
            pass
        return handler


def json_errors_for_unparsable_requests(runner: web.AppRunner) -> None:
    """Makes the runner's server answer unparsable requests with JSON (call after setup)."""
    server = runner.server
    if server is None or type(server) is not web.Server:
        return
    try:
        server.__class__ = _JsonErrorServer
    except TypeError:
        log.warning("this aiohttp does not allow JSON errors for unparsable requests")


def raw_response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)


def unquote(segment: str) -> str:
    return urllib.parse.unquote(segment, errors="replace")


def _as_dict(value: Any) -> dict[str, Any]:
    """A binding result object (dataclass, named tuple or dict) as a dict."""
    if isinstance(value, dict):
        return value
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return dict(vars(value))


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------


def control_api_help() -> str:
    """The control API section of this module's documentation, for ``--help``."""
    doc = __doc__ or ""
    start = doc.find("Control API\n")
    return doc[start:].strip() + "\n" if start >= 0 else ""


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m matrix_leave.host",
        description="Reference homeserver for the matrix-leave library: federation over HTTPS "
        "(make_leave, send_leave, invites, server keys) and a plain-HTTP control API, both "
        "on 127.0.0.1. It federates only with loopback server names (localhost:PORT).",
        epilog=control_api_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port", type=int, default=18448, help="federation (HTTPS) port (default 18448)"
    )
    p.add_argument(
        "--server-name",
        default=None,
        help="this server's name (default localhost:<port>)",
    )
    p.add_argument(
        "--control-port", type=int, default=18080, help="control API (HTTP) port (default 18080)"
    )
    p.add_argument(
        "--data-dir",
        default="./mxl-data",
        help="database, signing key and TLS certificate (default ./mxl-data)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="logging level (default INFO)",
    )
    p.add_argument(
        "--disable-v2-send-leave",
        action="store_true",
        help="answer PUT /v2/send_leave with 404 M_UNRECOGNIZED, so peers fall back to v1",
    )
    p.add_argument("--no-v1", action="store_true", help="switch off the legacy PUT /v1/send_leave")
    p.add_argument(
        "--acl-allows-leave",
        action="store_true",
        help="let servers the room's m.room.server_acl denies still leave",
    )
    p.add_argument(
        "--verify-tls",
        action="store_true",
        help="verify the certificates of other servers (default: off, as the loopback test "
        "federation uses self-signed certificates)",
    )
    p.add_argument("--ca-file", default=None, help="CA bundle for --verify-tls")
    args = p.parse_args(argv)
    if args.server_name is None:
        args.server_name = f"localhost:{args.port}"
    return args


# --------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------


class HomeServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server_name: str = args.server_name
        self.data_dir = Path(args.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.data_dir / "host.db", self.server_name)
        stored_name = self.store.get_meta("server_name")
        if stored_name is None:
            self.store.set_meta("server_name", self.server_name)
        elif stored_name != self.server_name:
            raise SystemExit(
                f"{self.data_dir} belongs to server {stored_name!r}, not {self.server_name!r}; "
                "use another --data-dir"
            )
        self.key = self._load_or_make_key()
        self.store.set_own_keys(
            {self.key.key_id: {"key": self.key.public_key, "valid_until_ts": 2**53 - 1}}
        )
        self.builder = ev.EventBuilder(self.server_name, self.key)
        self.resident = mxl.Resident(
            self.server_name,
            self.key,
            self.store,
            self.store,
            enable_v1=not args.no_v1,
            acl_allows_leave=args.acl_allows_leave,
            logger=library_logger,
        )
        tls = client_context(args.verify_tls, args.ca_file)
        #: Invites, leaves and relays.
        self.client = FederationClient(tls)
        #: Key document fetches only: short, few, one at a time per address.
        self.key_client = FederationClient(
            tls,
            timeout_s=KEY_FETCH_TIMEOUT_S,
            limit=KEY_FETCH_MAX_CONCURRENT,
            limit_per_host=1,
        )
        #: Per address: the lock its fetches take turns on, and how many requests hold or
        #: wait for it.
        self._key_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._key_waiting: dict[tuple[str, int], int] = {}
        self._key_fetches = 0
        #: server name -> (monotonic time until which it is not asked again, why it failed)
        self._key_failures: dict[str, tuple[float, str]] = {}
        self._last_key_fetch: dict[str, float] = {}
        self._background: set[asyncio.Task] = set()
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def _load_or_make_key(self) -> Any:
        found = self.store.signing_key_seed()
        if found:
            key_id, seed = found
            return mxl.SigningKey.from_seed(seed, key_id)
        key = mxl.SigningKey.generate(f"ed25519:{secrets.token_hex(3)}")
        self.store.save_signing_key(key.key_id, bytes(key.seed))
        log.info("made a new signing key %s", key.key_id)
        return key

    # ---- users -----------------------------------------------------------------------

    def full_user_id(self, user: str) -> str:
        """A user ID from a localpart or a full ID."""
        if not isinstance(user, str) or not user:
            raise HttpError(400, "M_INVALID_PARAM", "a user is required")
        if user.startswith("@"):
            if ":" not in user:
                raise HttpError(400, "M_INVALID_PARAM", f"{user!r} is not a user ID")
            return user
        return f"@{user}:{self.server_name}"

    def is_local(self, user_id: str) -> bool:
        return server_of(user_id) == self.server_name

    # ---- keys ------------------------------------------------------------------------

    def key_document(self) -> dict:
        return mxl.server_key_document(self.key, self.server_name, now_ms() + KEY_VALIDITY_MS)

    def _recent_key_failure(self, server_name: str) -> None:
        """Raises Unreachable when fetching the server's keys failed a short while ago."""
        failed = self._key_failures.get(server_name)
        if failed is None:
            return
        until, why = failed
        left = until - time.monotonic()
        if left <= 0:
            del self._key_failures[server_name]
            return
        raise Unreachable(f"{why} (not asked again for {left:.0f} s)")

    def _remember_key_failure(self, server_name: str, why: str) -> None:
        failures = self._key_failures
        failures.pop(server_name, None)  # re-inserted last: the dict stays oldest first
        failures[server_name] = (time.monotonic() + KEY_FETCH_FAILURE_TTL_S, why)
        if len(failures) > KEY_FETCH_FAILURES_KEPT:
            now = time.monotonic()
            for name in [n for n, (until, _) in failures.items() if until <= now]:
                del failures[name]
            while len(failures) > KEY_FETCH_FAILURES_KEPT:
                del failures[next(iter(failures))]

    async def keys_for(self, server_name: str, key_id: Optional[str] = None) -> dict[str, dict]:
        """The verify keys of a server, fetched from its key document when none is cached
        that is still valid (or when ``key_id`` is not among them), verified and kept.

        Raises:
            KeyFetchBusy: too many requests wait for key fetches (answer 429).
            Unreachable: the keys cannot be had: not a loopback name, the fetch failed
                (now or in the last 30 s), the document does not verify.
        """
        if server_name == self.server_name:
            return self.store.get_server_keys(server_name)

        def fresh(keys: dict[str, dict]) -> bool:
            now = now_ms()
            current = {k: e for k, e in keys.items() if e.get("valid_until_ts", 0) > now}
            return bool(current) and (key_id is None or key_id in current)

        cached = self.store.get_server_keys(server_name)
        if fresh(cached):
            return cached
        self._recent_key_failure(server_name)
        address = resolve(server_name)  # a name that is not loopback: refused, no socket
        waiting = self._key_waiting.get(address, 0)
        if waiting >= KEY_FETCH_MAX_WAITING_PER_ORIGIN:
            raise KeyFetchBusy(f"{waiting} requests already wait for the keys of {server_name}")
        self._key_waiting[address] = waiting + 1
        lock = self._key_locks.setdefault(address, asyncio.Lock())
        try:
            async with lock:
                cached = self.store.get_server_keys(server_name)
                if fresh(cached):
                    return cached
                self._recent_key_failure(server_name)
                # An unknown key ID does not make us fetch again and again: once per few seconds.
                has_current = any(e.get("valid_until_ts", 0) > now_ms() for e in cached.values())
                last = self._last_key_fetch.get(server_name, float("-inf"))
                if has_current and time.monotonic() - last < KEY_REFETCH_INTERVAL_S:
                    return cached
                if self._key_fetches >= KEY_FETCH_MAX_CONCURRENT:
                    raise KeyFetchBusy(f"{self._key_fetches} key fetches are under way")
                self._last_key_fetch[server_name] = time.monotonic()
                self._key_fetches += 1
                try:
                    keys = await self._fetch_keys(server_name)
                except Unreachable as e:
                    self._remember_key_failure(server_name, str(e))
                    raise
                finally:
                    self._key_fetches -= 1
                self.store.save_server_keys(server_name, keys)
                log.info("keys of %s: %s", server_name, ", ".join(sorted(keys)))
                return self.store.get_server_keys(server_name)
        finally:
            left = self._key_waiting[address] - 1
            if left:
                self._key_waiting[address] = left
            else:
                del self._key_waiting[address]
                self._key_locks.pop(address, None)

    async def _fetch_keys(self, server_name: str) -> dict[str, dict]:
        """Fetches and verifies a server's key document (on the key client)."""
        status, body = await self.key_client.request(server_name, "GET", "/_matrix/key/v2/server")
        if status != 200:
            raise Unreachable(f"key document of {server_name}: HTTP {status}")
        try:
            return mxl.verify_server_key_document(body, server_name)
        except mxl.MatrixError as e:
            raise Unreachable(f"key document of {server_name} is not acceptable: {e}") from e

    # ---- federation: request authentication ------------------------------------------

    async def authenticate(self, request: web.Request, body: bytes) -> str:
        """Checks the X-Matrix ``Authorization`` of a request; returns the origin.

        Everything that needs no key is checked before the origin's keys are fetched (see
        the module documentation).
        """
        header = request.headers.get("Authorization")
        if not header:
            raise HttpError(401, "M_UNAUTHORIZED", "missing Authorization header")
        try:
            parsed = mxl.parse_xmatrix(header)
        except mxl.MatrixError as e:
            raise HttpError.from_matrix(e) from e
        origin = parsed["origin"]
        request["claimed_origin"] = origin
        destination = parsed.get("destination")
        if destination is not None and destination != self.server_name:
            raise HttpError(
                401, "M_UNAUTHORIZED", f"the request is for {destination}, not {self.server_name}"
            )
        # The raw body goes to the library as received: it judges exactly those bytes.
        content = body if body else None
        # A dry run without any key: the library judges the header and the body (JSON,
        # lone surrogates, ...) before it looks for the key, so its 400s come out here,
        # before any fetch. Its 401 for the unknown key is expected and ignored.
        try:
            mxl.verify_xmatrix(header, request.method, request.raw_path, content, self.server_name, {})
        except mxl.MatrixError as e:
            if e.http_status == 400:
                raise HttpError.from_matrix(e) from e
        try:
            keys = await self.keys_for(origin, parsed.get("key"))
        except KeyFetchBusy as e:
            raise HttpError(
                429, "M_LIMIT_EXCEEDED", f"too busy to fetch the keys of {origin}: {e}",
                retry_after_ms=1000,
            ) from e
        except Unreachable as e:
            raise HttpError(
                401, "M_UNAUTHORIZED", f"could not get the keys of {origin}: {e}"
            ) from e
        verify_keys = {
            kid: entry["key"] for kid, entry in keys.items() if "valid_until_ts" in entry
        }
        try:
            verified = mxl.verify_xmatrix(
                header, request.method, request.raw_path, content, self.server_name, verify_keys
            )
        except mxl.MatrixError as e:
            raise HttpError.from_matrix(e) from e
        request["origin"] = verified
        return verified

    # ---- federation: dispatch ----------------------------------------------------------

    @web.middleware
    async def federation_log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.monotonic()
        try:
            resp = await handler(request)
        except HttpError as e:
            resp = e.response()
        except web.HTTPException as e:
            if e.status < 400:
                raise
            resp = http_exception_response(e)
        except Exception:
            log.exception("federation handler failed: %s %s", request.method, request.raw_path)
            resp = json_response({"errcode": "M_UNKNOWN", "error": "internal error"}, 500)
        origin = request.get("origin") or (
            f"{request['claimed_origin']}(unverified)" if request.get("claimed_origin") else "-"
        )
        fed_log.info(
            "fed  %s %s origin=%s -> %d (%d ms)",
            request.method,
            request.raw_path,
            origin,
            resp.status,
            (time.monotonic() - started) * 1000,
        )
        return resp

    async def federation(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        parts = path.split("/")
        m = request.method
        if (
            parts[:4] == ["", "_matrix", "key", "v2"]
            and len(parts) in (5, 6)
            and parts[4] == "server"
        ):
            if m != "GET":
                raise HttpError(405, "M_UNRECOGNIZED", "method not allowed")
            return json_response(self.key_document())
        if parts[:3] == ["", "_matrix", "federation"] and len(parts) == 7:
            api, action, a, b = parts[3], parts[4], parts[5], parts[6]
            if api == "v1" and action == "make_leave":
                self._method(m, "GET")
                return await self.on_make_leave(request, a, b)
            if api in ("v1", "v2") and action == "send_leave":
                self._method(m, "PUT")
                return await self.on_send_leave(request, a, b, 1 if api == "v1" else 2)
            if api == "v2" and action == "invite":
                self._method(m, "PUT")
                return await self.on_invite(request, a, b)
        raise HttpError(404, "M_UNRECOGNIZED", "unrecognized request")

    @staticmethod
    def _method(got: str, want: str) -> None:
        if got != want:
            raise HttpError(405, "M_UNRECOGNIZED", f"{got} is not allowed here; use {want}")

    # ---- federation: make_leave / send_leave (the resident side) ----------------------

    async def on_make_leave(
        self, request: web.Request, room_raw: str, user_raw: str
    ) -> web.Response:
        origin = await self.authenticate(request, b"")
        status, body = self.resident.make_leave(room_raw, user_raw, origin)
        return raw_response(status, body)

    async def read_body(self, request: web.Request, limit: int) -> bytes:
        """The request body, refused with 413 when over `limit` bytes: from Content-Length
        before reading anything, else once read (aiohttp stops at CLIENT_MAX_SIZE)."""
        declared = request.content_length
        if declared is not None and declared > limit:
            raise HttpError(413, "M_TOO_LARGE", f"the body is over the limit of {limit} bytes")
        body = await request.read()
        if len(body) > limit:
            raise HttpError(413, "M_TOO_LARGE", f"the body is over the limit of {limit} bytes")
        return body

    async def on_send_leave(
        self, request: web.Request, room_raw: str, event_raw: str, api: int
    ) -> web.Response:
        # Nothing here parses the body: the library gets the raw bytes and judges them.
        body = await self.read_body(request, MAX_BODY)
        # Unauthenticated requests are answered, never recorded.
        origin = await self.authenticate(request, body)
        room_id, event_id_in_url = unquote(room_raw), unquote(event_raw)
        record: dict[str, Any] = dict(
            room_id=room_id, api=f"v{api}", event_id_in_url=event_id_in_url, origin=origin
        )
        refused_body = body_text(body)
        if api == 2 and self.args.disable_v2_send_leave:
            e = HttpError(
                404, "M_UNRECOGNIZED", "PUT /v2/send_leave is switched off on this server"
            )
            self.store.record_leave(
                **record,
                body=refused_body,
                status=404,
                accepted=False,
                rejected_because=f"{e.errcode}: {e.error}",
            )
            raise e
        # Room versions 1 and 2: the event also needs the signature of the server named in
        # its event ID, which is the ID in the path (the library refuses any other). Fetch
        # that server's keys ahead, as the library's key callback cannot wait.
        if self.store.room_version(room_id) in ("1", "2"):
            other = server_of(event_id_in_url)
            if other and other not in (origin, self.server_name):
                try:
                    await self.keys_for(other)
                except Unreachable as e:
                    log.warning("send_leave: keys of %s unavailable: %s", other, e)
        try:
            result = self.resident.send_leave_detailed(
                room_raw, event_raw, body, origin, api_version=api
            )
        except Exception as e:
            log.exception("send_leave: the store failed")
            self.store.record_leave(
                **record,
                body=refused_body,
                status=500,
                accepted=False,
                rejected_because=f"M_UNKNOWN: host failure: {type(e).__name__}: {e}",
            )
            raise HttpError(500, "M_UNKNOWN", "internal error") from e
        accepted = result.accepted
        if accepted is not None:
            self.store.record_leave(
                **record,
                event=accepted.event,
                status=result.status,
                accepted=True,
                event_id=accepted.event_id,
                soft_failed=accepted.soft_failed,
                duplicate=accepted.duplicate,
                redacted=accepted.redacted,
            )
        else:
            self.store.record_leave(
                **record,
                body=refused_body,
                status=result.status,
                accepted=False,
                rejected_because=f"{result.errcode}: {result.error}",
            )
        if accepted is not None and accepted.relay_to:
            self.spawn(self.relay(accepted.event, list(accepted.relay_to)))
        return raw_response(result.status, result.body)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def signed_request(
        self, destination: str, method: str, uri: str, content: Any = None
    ) -> tuple[int, bytes]:
        body = mxl.canonical_json(content) if content is not None else None
        auth = mxl.xmatrix_authorization(
            self.key, self.server_name, destination, method, uri, content
        )
        return await self.client.request(destination, method, uri, auth, body)

    async def relay(self, event: dict, servers: list[str]) -> None:
        """Sends an accepted event on to the other servers in the room (best effort)."""
        for server in servers:
            txn = f"{now_ms()}-{secrets.token_hex(4)}"
            uri = f"/_matrix/federation/v1/send/{encode_path_param(txn)}"
            content = {"origin": self.server_name, "origin_server_ts": now_ms(), "pdus": [event]}
            try:
                status, body = await self.signed_request(server, "PUT", uri, content)
                log.info("relayed leave to %s: HTTP %d", server, status)
            except (Unreachable, mxl.MatrixError) as e:
                log.warning("relaying leave to %s failed: %s", server, e)

    # ---- federation: invites for local users ------------------------------------------

    async def on_invite(self, request: web.Request, room_raw: str, event_raw: str) -> web.Response:
        body = await self.read_body(request, CLIENT_MAX_SIZE)
        origin = await self.authenticate(request, body)
        room_id, path_event_id = unquote(room_raw), unquote(event_raw)
        info: dict[str, Any] = {"room_id": room_id, "origin": origin, "event_id": path_event_id}
        try:
            try:
                answer = await self._accept_invite(body, origin, room_id, path_event_id, info)
            except mxl.MatrixError as e:
                raise HttpError.from_matrix(e) from e
        except HttpError as e:
            self.store.record_invite(
                **info, accepted=False, rejected_because=f"{e.errcode}: {e.error}"
            )
            raise
        self.store.record_invite(**info, accepted=True)
        return json_response(answer)

    async def _accept_invite(
        self, body: bytes, origin: str, room_id: str, path_event_id: str, info: dict[str, Any]
    ) -> dict:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise HttpError(400, "M_NOT_JSON", "the body is not JSON") from e
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), dict):
            raise HttpError(400, "M_BAD_JSON", "event must be an object")
        room_version = payload.get("room_version")
        event = payload["event"]
        invite_room_state = payload.get("invite_room_state") or []
        if not isinstance(room_version, str):
            raise HttpError(400, "M_BAD_JSON", "room_version must be a string")
        if not isinstance(invite_room_state, list):
            raise HttpError(400, "M_BAD_JSON", "invite_room_state must be an array")
        info["room_version"] = room_version
        info["event"] = event
        target = event.get("state_key")
        sender = event.get("sender")
        info["user_id"], info["sender"] = target, sender
        try:
            event_id = mxl.event_id(event, room_version)
        except mxl.MatrixError as e:
            if e.errcode == "M_UNSUPPORTED_ROOM_VERSION":
                raise HttpError(
                    400, "M_INCOMPATIBLE_ROOM_VERSION", str(e), room_version=room_version
                ) from e
            raise HttpError.from_matrix(e) from e
        if event_id != path_event_id:
            raise HttpError(
                400, "M_INVALID_PARAM", f"the event's ID is {event_id}, not {path_event_id}"
            )
        if event.get("room_id") != room_id:
            raise HttpError(400, "M_INVALID_PARAM", "room_id of the event differs from the path")
        if (
            event.get("type") != "m.room.member"
            or not isinstance(event.get("content"), dict)
            or (event["content"].get("membership") != "invite")
        ):
            raise HttpError(400, "M_INVALID_PARAM", "not an m.room.member invite event")
        if not isinstance(target, str) or not self.is_local(target):
            raise HttpError(
                400, "M_INVALID_PARAM", f"the invitee {target!r} is not a user of this server"
            )
        if not isinstance(sender, str) or server_of(sender) != origin:
            raise HttpError(403, "M_FORBIDDEN", f"the sender {sender!r} is not from {origin}")
        # The signatures the room version requires, with the keys of each signer.
        signers = {server_of(sender)}
        if ev.ids_in_event(room_version):
            signers.add(server_of(event.get("event_id", "")))
        keys: dict[str, dict] = {}
        for server in sorted(s for s in signers if s):
            try:
                keys[server] = await self.keys_for(server)
            except Unreachable as e:
                raise HttpError(403, "M_FORBIDDEN", f"no keys of {server}: {e}") from e
        report = _as_dict(mxl.verify_event(event, room_version, keys))
        if report.get("outcome") != "accept":
            raise HttpError(
                403,
                "M_FORBIDDEN",
                f"invite event fails its checks ({report.get('outcome')}): "
                f"{report.get('error') or 'content hash mismatch'}",
            )
        countersigned = mxl.sign_event(event, room_version, self.server_name, self.key)
        kept = dict(countersigned)
        unsigned = dict(kept.get("unsigned") or {})
        unsigned["invite_room_state"] = invite_room_state
        kept["unsigned"] = unsigned
        current = self.store.local_membership(room_id, target)
        if current is None or current["membership"] != "invite" or current["event_id"] != event_id:
            self.store.set_local_membership(room_id, target, "invite", event_id, kept, room_version)
        log.info("invite of %s to %s from %s accepted (%s)", target, room_id, sender, event_id)
        return {"event": countersigned}

    # ---- control API ------------------------------------------------------------------

    @web.middleware
    async def control_errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as e:
            log.info(
                "control %s %s -> %d %s: %s",
                request.method,
                request.path,
                e.status,
                e.errcode,
                e.error,
            )
            return e.response()
        except mxl.MatrixError as e:
            err = HttpError.from_matrix(e)
            log.info(
                "control %s %s -> %d %s: %s",
                request.method,
                request.path,
                err.status,
                err.errcode,
                err.error,
            )
            return err.response()
        except web.HTTPException as e:
            if e.status < 400:
                raise
            log.info("control %s %s -> %d", request.method, request.path, e.status)
            return http_exception_response(e)
        except Exception as e:
            log.exception("control %s %s failed", request.method, request.path)
            return json_response({"errcode": "M_UNKNOWN", "error": f"{type(e).__name__}: {e}"}, 500)

    @staticmethod
    async def body(request: web.Request) -> dict:
        try:
            value = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise HttpError(400, "M_NOT_JSON", "the body is not JSON") from e
        if not isinstance(value, dict):
            raise HttpError(400, "M_BAD_JSON", "the body must be an object")
        return value

    @staticmethod
    def need(body: dict, name: str, kind: type = str) -> Any:
        value = body.get(name)
        if not isinstance(value, kind):
            raise HttpError(400, "M_MISSING_PARAM", f"{name} is required ({kind.__name__})")
        return value

    async def c_info(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "server_name": self.server_name,
                "key_id": self.key.key_id,
                "public_key": self.key.public_key,
                "federation": f"https://127.0.0.1:{self.args.port}",
                "v1_send_leave": not self.args.no_v1,
                "v2_send_leave": not self.args.disable_v2_send_leave,
            }
        )

    async def c_create_room(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        room_version = str(body.get("room_version", "10"))
        creator = self.full_user_id(self.need(body, "creator"))
        if not self.is_local(creator):
            raise HttpError(400, "M_INVALID_PARAM", f"{creator} is not a user of this server")
        room_id, built = self.builder.create_room(room_version, creator)
        self.store.add_room(room_id, room_version, creator)
        self.store.store_room_events(room_id, [(b.event_id, b.event) for b in built])
        log.info("created room %s (version %s) for %s", room_id, room_version, creator)
        return json_response(
            {
                "room_id": room_id,
                "room_version": room_version,
                "event_ids": [b.event_id for b in built],
            }
        )

    def _state_built(self, room_id: str, event_type: str, state_key: str) -> Optional[ev.Built]:
        eid = self.store.state_event_id(room_id, event_type, state_key)
        if eid is None:
            return None
        event = self.store.get_event(room_id, eid)
        return ev.Built(eid, event, int(event.get("depth", 0))) if event else None

    def _prev(self, room_id: str) -> list[ev.Built]:
        prev = []
        for eid, depth in self.store.forward_extremities(room_id)[:20]:
            event = self.store.get_event(room_id, eid)
            if event is not None:
                prev.append(ev.Built(eid, event, depth))
        return prev

    async def c_invite(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        room_id = self.need(body, "room_id")
        sender = self.full_user_id(self.need(body, "sender"))
        target = self.full_user_id(self.need(body, "target"))
        room_version = self.store.room_version(room_id)
        if room_version is None:
            raise HttpError(404, "M_NOT_FOUND", f"room {room_id} is not known here")
        members = self.store.members(room_id)
        if members.get(sender) != "join":
            raise HttpError(403, "M_FORBIDDEN", f"{sender} is not joined to {room_id}")
        if members.get(target) in ("join", "invite", "ban"):
            raise HttpError(
                400, "M_BAD_STATE", f"{target} is already {members[target]} in {room_id}"
            )
        invite = self.builder.member(
            room_id=room_id,
            room_version=room_version,
            sender=sender,
            target=target,
            membership="invite",
            prev=self._prev(room_id),
            state=lambda t, k: self._state_built(room_id, t, k),
        )
        destination = server_of(target)
        if destination == self.server_name:
            self.store.store_event(room_id, invite.event_id, invite.event, False)
            return json_response({"status": 200, "event_id": invite.event_id, "local": True})
        # Over federation the room state shown with an invite is sent as full PDUs, the
        # create event first (Matrix 1.16, MSC4311); receivers that want stripped state take
        # type, state_key, sender and content from them.
        invite_room_state = [
            b.event
            for b in (
                self._state_built(room_id, t, "")
                for t in (
                    "m.room.create",
                    "m.room.join_rules",
                    "m.room.history_visibility",
                    "m.room.name",
                )
            )
            if b is not None
        ]
        inviter = self._state_built(room_id, "m.room.member", sender)
        if inviter is not None:
            invite_room_state.append(inviter.event)
        uri = (
            f"/_matrix/federation/v2/invite/{encode_path_param(room_id)}/"
            f"{encode_path_param(invite.event_id)}"
        )
        content = {
            "room_version": room_version,
            "event": invite.event,
            "invite_room_state": invite_room_state,
        }
        try:
            status, resp_body = await self.signed_request(destination, "PUT", uri, content)
        except Unreachable as e:
            raise HttpError(502, "M_UNKNOWN", f"{destination} is unreachable: {e}") from e
        answer = parse_json_body(resp_body)
        result: dict[str, Any] = {"status": status, "event_id": invite.event_id, "response": answer}
        if status != 200:
            log.warning(
                "invite of %s to %s refused by %s: HTTP %d %s",
                target,
                room_id,
                destination,
                status,
                answer,
            )
            return json_response(result)
        returned = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(returned, dict):
            raise HttpError(502, "M_UNKNOWN", f"{destination} answered the invite without an event")
        self._check_countersigned(returned, invite, room_version, destination)
        self.store.store_event(room_id, invite.event_id, returned, False)
        log.info("invited %s to %s (%s)", target, room_id, invite.event_id)
        return json_response(result)

    def _check_countersigned(
        self, returned: dict, sent: ev.Built, room_version: str, invitee: str
    ) -> None:
        if mxl.event_id(returned, room_version) != sent.event_id:
            raise HttpError(502, "M_UNKNOWN", f"{invitee} returned a different event")
        sigs = returned.get("signatures") or {}
        if invitee not in sigs or self.server_name not in sigs:
            raise HttpError(502, "M_UNKNOWN", f"{invitee} did not countersign the invite")
        report = _as_dict(
            mxl.verify_event(
                returned,
                room_version,
                {self.server_name: self.store.get_server_keys(self.server_name)},
            )
        )
        if report.get("outcome") != "accept":
            raise HttpError(
                502, "M_UNKNOWN", f"the countersigned invite fails its checks: {report}"
            )
        verify_json = getattr(mxl, "verify_json", None)
        keys = self.store.get_server_keys(invitee)
        if verify_json is not None and keys:
            redacted = mxl.redact(returned, room_version)
            try:
                verify_json(redacted, invitee, {k: e["key"] for k, e in keys.items()})
            except mxl.MatrixError as e:
                raise HttpError(
                    502, "M_UNKNOWN", f"{invitee}'s signature on the invite is invalid: {e}"
                ) from e

    # ---- control: the leaving side ----------------------------------------------------

    def transport(
        self, destination: str, method: str, uri: str, authorization: str, body: Optional[bytes]
    ) -> tuple[int, bytes]:
        """The leave driver's synchronous transport: runs the request on the event loop
        from the driver's worker thread. Raises when the server cannot be reached."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self.client.request(destination, method, uri, authorization, body), self.loop
        )
        return future.result(timeout=60)

    async def c_leave(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        room_id = self.need(body, "room_id")
        user_id = self.full_user_id(self.need(body, "user_id"))
        if not self.is_local(user_id):
            raise HttpError(400, "M_INVALID_PARAM", f"{user_id} is not a user of this server")
        via = body.get("via") or []
        if isinstance(via, str):
            via = [via]
        if not isinstance(via, list) or not all(isinstance(s, str) for s in via):
            raise HttpError(400, "M_INVALID_PARAM", "via must be a list of server names")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise HttpError(400, "M_INVALID_PARAM", "reason must be a string")
        if self.store.is_resident(room_id):
            return json_response(await self._local_leave(room_id, user_id, reason))
        current = self.store.local_membership(room_id, user_id)
        membership_event = None
        room_version = body.get("room_version")
        if room_version is not None and not isinstance(room_version, str):
            raise HttpError(400, "M_INVALID_PARAM", "room_version must be a string")
        if current is not None:
            room_version = current["room_version"] or room_version
        if current is not None and current["membership"] == "invite":
            membership_event = current["event"]
        elif not via:
            raise HttpError(
                404,
                "M_NOT_FOUND",
                f"{user_id} has no pending invite to {room_id}; give 'via' servers to leave anyway",
            )
        log.info("leave: %s rejects %s (room version %s)", user_id, room_id, room_version)
        result = await asyncio.to_thread(
            mxl.leave_room,
            room_id,
            user_id,
            self.server_name,
            self.key,
            self.transport,
            membership_event=membership_event,
            room_version=room_version,
            extra_servers=tuple(via),
            reason=reason,
        )
        self.store.set_local_membership(
            room_id, user_id, "leave", result.event_id, result.event, room_version
        )
        steps = [_as_dict(s) for s in result.steps]
        for n, st in enumerate(steps, 1):
            log.info(
                "leave step %d: %s -> %s HTTP %s%s: %s",
                n,
                st.get("action"),
                st.get("server"),
                st.get("status"),
                f" {st['errcode']}" if st.get("errcode") else "",
                st.get("detail", ""),
            )
        log.info(
            "leave of %s from %s: %s (%s)",
            user_id,
            room_id,
            f"accepted by {result.server} over v{result.api_version}"
            if result.accepted_remotely
            else "out of band",
            result.event_id,
        )
        return json_response(
            {
                "ok": True,
                "event_id": result.event_id,
                "accepted_remotely": result.accepted_remotely,
                "server": result.server,
                "api_version": result.api_version,
                "steps": steps,
                "event": result.event,
            }
        )

    async def _local_leave(self, room_id: str, user_id: str, reason: Optional[str]) -> dict:
        """A local user leaves a room this server is resident in: the same handshake, with
        this server's own resident answering in-process."""
        steps = []
        status, body = self.resident.make_leave(
            encode_path_param(room_id), encode_path_param(user_id), self.server_name
        )
        steps.append({"server": self.server_name, "action": "make_leave", "status": status})
        if status != 200:
            err = parse_json_body(body)
            raise HttpError(
                status, err.get("errcode", "M_UNKNOWN"), err.get("error", ""), steps=steps
            )
        done = _as_dict(
            mxl.complete_leave_template(
                json.loads(body), room_id, user_id, self.server_name, self.key, reason=reason
            )
        )
        event, event_id = done["event"], done["event_id"]
        result = self.resident.send_leave_detailed(
            encode_path_param(room_id),
            encode_path_param(event_id),
            mxl.canonical_json(event),
            self.server_name,
            api_version=2,
        )
        steps.append(
            {
                "server": self.server_name,
                "action": "send_leave_v2",
                "status": result.status,
                "errcode": result.errcode,
            }
        )
        if result.accepted is None:
            raise HttpError(
                result.status, result.errcode or "M_UNKNOWN", result.error or "", steps=steps
            )
        if result.accepted.relay_to:
            self.spawn(self.relay(result.accepted.event, list(result.accepted.relay_to)))
        return {
            "ok": True,
            "event_id": event_id,
            "accepted_remotely": False,
            "local": True,
            "server": self.server_name,
            "api_version": 2,
            "steps": steps,
            "event": result.accepted.event,
        }

    async def c_room(self, request: web.Request) -> web.Response:
        room_id = request.query.get("room_id")
        if not room_id:
            raise HttpError(400, "M_MISSING_PARAM", "room_id is required")
        resident = self.store.is_resident(room_id)
        return json_response(
            {
                "room_id": room_id,
                "resident": resident,
                "room_version": self.store.room_version(room_id),
                "members": self.store.members(room_id),
                "state": self.store.room_state_ids(room_id) if resident else {},
                "forward_extremities": self.store.forward_extremities(room_id) if resident else [],
            }
        )

    async def c_invites_received(self, request: web.Request) -> web.Response:
        return json_response(self.store.invites_received())

    async def c_leaves_received(self, request: web.Request) -> web.Response:
        return json_response(self.store.leaves_received())

    async def c_sign_event(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        event = self.need(body, "event", dict)
        room_version = str(self.need(body, "room_version"))
        signed = mxl.sign_event(event, room_version, self.server_name, self.key)
        return json_response({"event": signed, "event_id": mxl.event_id(signed, room_version)})

    async def c_send_raw_leave(self, request: web.Request) -> web.Response:
        """Sends an arbitrary event to a server's send_leave, signed (X-Matrix) by us."""
        body = await self.body(request)
        destination = self.need(body, "destination")
        room_id = self.need(body, "room_id")
        event = self.need(body, "event", dict)
        api = body.get("api_version", 2)
        if api not in (1, 2):
            raise HttpError(400, "M_INVALID_PARAM", "api_version must be 1 or 2")
        event_id = body.get("event_id")
        if not isinstance(event_id, str):
            if isinstance(event.get("event_id"), str):
                event_id = event["event_id"]
            elif isinstance(body.get("room_version"), str):
                event_id = mxl.event_id(event, body["room_version"])
            else:
                raise HttpError(
                    400, "M_MISSING_PARAM", "event_id (or room_version to compute it) is required"
                )
        uri = f"/_matrix/federation/v{api}/send_leave/{encode_path_param(room_id)}/{encode_path_param(event_id)}"
        try:
            status, resp = await self.signed_request(destination, "PUT", uri, event)
        except Unreachable as e:
            raise HttpError(502, "M_UNKNOWN", f"{destination} is unreachable: {e}") from e
        return json_response(
            {"status": status, "body": parse_json_body(resp), "event_id": event_id, "uri": uri}
        )

    # ---- apps and lifecycle -----------------------------------------------------------

    def federation_app(self) -> web.Application:
        app = web.Application(middlewares=[self.federation_log], client_max_size=CLIENT_MAX_SIZE)
        app.router.add_route("*", "/{tail:.*}", self.federation)
        return app

    def control_app(self) -> web.Application:
        app = web.Application(middlewares=[self.control_errors])
        r = app.router
        r.add_get("/control/info", self.c_info)
        r.add_post("/control/create_room", self.c_create_room)
        r.add_post("/control/invite", self.c_invite)
        r.add_post("/control/leave", self.c_leave)
        r.add_get("/control/room", self.c_room)
        r.add_get("/control/invites_received", self.c_invites_received)
        r.add_get("/control/leaves_received", self.c_leaves_received)
        r.add_post("/control/sign_event", self.c_sign_event)
        r.add_post("/control/send_raw_leave", self.c_send_raw_leave)
        return app

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        cert, key = ensure_certificate(self.data_dir, self.server_name)
        await self.client.start()
        await self.key_client.start()
        fed_runner = web.AppRunner(self.federation_app(), access_log=None)
        ctl_runner = web.AppRunner(self.control_app(), access_log=None)
        await fed_runner.setup()
        await ctl_runner.setup()
        json_errors_for_unparsable_requests(fed_runner)
        json_errors_for_unparsable_requests(ctl_runner)
        try:
            await web.TCPSite(
                fed_runner, "127.0.0.1", self.args.port, ssl_context=server_context(cert, key)
            ).start()
            await web.TCPSite(ctl_runner, "127.0.0.1", self.args.control_port).start()
            tls_mode = (
                "certificates verified"
                if self.args.verify_tls
                else "certificates NOT verified (loopback test federation; --verify-tls checks them)"
            )
            print(
                f"matrix_leave.host {self.server_name} (key {self.key.key_id})\n"
                f"  federation: https://127.0.0.1:{self.args.port}\n"
                f"  control:    http://127.0.0.1:{self.args.control_port}/control/info\n"
                f"  data dir:   {self.data_dir.resolve()}\n"
                f"  outgoing TLS: {tls_mode}",
                flush=True,
            )
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            log.info("stopping")
        finally:
            for task in list(self._background):
                task.cancel()
            await ctl_runner.cleanup()
            await fed_runner.cleanup()
            await self.client.close()
            await self.key_client.close()
            self.store.close()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        resolve(args.server_name)
    except Unreachable as e:
        print(f"error: --server-name: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    server = HomeServer(args)
    try:
        asyncio.run(server.run())
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
