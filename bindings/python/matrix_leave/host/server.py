"""The reference homeserver: federation over HTTPS, a plain-HTTP control API on loopback.

Federation endpoints (every request but the key document is authenticated with X-Matrix):

* ``GET  /_matrix/key/v2/server`` -- this server's key document, valid for a day
* ``PUT  /_matrix/federation/v2/invite/{roomId}/{eventId}`` -- an invite for a local user:
  checked, countersigned, kept
* ``GET  /_matrix/federation/v1/make_leave/{roomId}/{userId}`` -- answered by the library
* ``PUT  /_matrix/federation/v1|v2/send_leave/{roomId}/{eventId}`` -- answered by the
  library; every attempt is recorded, accepted leaves are relayed to the other servers

Anything else is ``404 M_UNRECOGNIZED``.

The control API (plain HTTP on 127.0.0.1, JSON in and out; 200 on success, otherwise
``{"errcode", "error"}`` with a 4xx/5xx status) drives the server. Users may be given as a
localpart (``alice``) or a full ID.

* ``GET  /control/info`` -- ``{server_name, key_id, public_key, federation, ...}``
* ``POST /control/create_room {room_version, creator}`` -- ``{room_id, ...}``
* ``POST /control/invite {room_id, sender, target}`` -- ``{status, event_id, response}``:
  what the invitee's server answered (the countersigned invite is stored on a 200)
* ``POST /control/leave {room_id, user_id, via?, reason?}`` -- rejects the user's invite
  with the library's leave driver (or, in a room this server hosts, leaves through its
  own resident): ``{ok, event_id, accepted_remotely, server, api_version, steps, event}``
* ``GET  /control/room?room_id=`` -- ``{members: {user_id: membership}, state,
  forward_extremities, resident, room_version}``
* ``GET  /control/invites_received`` -- ``[{room_id, accepted, event_id, user_id, ...}]``
* ``GET  /control/leaves_received`` -- ``[{room_id, api, accepted, event,
  event_id_in_url, rejected_because, status, origin, ...}]``
* ``POST /control/sign_event {event, room_version}`` -- ``{event, event_id}``, signed by
  this server
* ``POST /control/send_raw_leave {destination, room_id, event, event_id?, room_version?,
  api_version}`` -- PUTs the event, unchanged, to the destination's send_leave with this
  server's X-Matrix signature: ``{status, body, event_id, uri}``
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

from aiohttp import web

import matrix_leave as mxl

from . import events as ev
from .client import (
    FederationClient,
    Unreachable,
    encode_path_param,
    parse_json_body,
    resolve,
)
from .store import Store, now_ms, server_of
from .tls import client_context, ensure_certificate, server_context

log = logging.getLogger("matrix_leave.host")
fed_log = logging.getLogger("matrix_leave.host.federation")

KEY_VALIDITY_MS = 24 * 3600 * 1000
#: A server whose current keys are cached but lack a key ID a request names is asked again
#: at most this often.
KEY_REFETCH_INTERVAL_S = 5.0
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
    return web.Response(
        status=status,
        body=json.dumps(value, ensure_ascii=False).encode("utf-8"),
        content_type=JSON,
    )


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


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m matrix_leave.host",
        description="Reference homeserver for the matrix-leave library: federation over HTTPS "
        "(make_leave, send_leave, invites, server keys) and a plain-HTTP control API, both "
        "on 127.0.0.1. It federates only with loopback server names (localhost:PORT).",
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
        self.client = FederationClient(client_context(args.verify_tls, args.ca_file))
        self._key_locks: dict[str, asyncio.Lock] = {}
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

    async def keys_for(self, server_name: str, key_id: Optional[str] = None) -> dict[str, dict]:
        """The verify keys of a server, fetched from its key document when none is cached
        that is still valid (or when ``key_id`` is not among them), verified and kept."""
        if server_name == self.server_name:
            return self.store.get_server_keys(server_name)

        def fresh(keys: dict[str, dict]) -> bool:
            now = now_ms()
            current = {k: e for k, e in keys.items() if e.get("valid_until_ts", 0) > now}
            return bool(current) and (key_id is None or key_id in current)

        cached = self.store.get_server_keys(server_name)
        if fresh(cached):
            return cached
        lock = self._key_locks.setdefault(server_name, asyncio.Lock())
        async with lock:
            cached = self.store.get_server_keys(server_name)
            if fresh(cached):
                return cached
            # An unknown key ID does not make us fetch again and again: once per few seconds.
            has_current = any(e.get("valid_until_ts", 0) > now_ms() for e in cached.values())
            last = self._last_key_fetch.get(server_name, float("-inf"))
            if has_current and time.monotonic() - last < KEY_REFETCH_INTERVAL_S:
                return cached
            self._last_key_fetch[server_name] = time.monotonic()
            status, body = await self.client.request(server_name, "GET", "/_matrix/key/v2/server")
            if status != 200:
                raise Unreachable(f"key document of {server_name}: HTTP {status}")
            try:
                keys = mxl.verify_server_key_document(body, server_name)
            except mxl.MatrixError as e:
                raise Unreachable(f"key document of {server_name} is not acceptable: {e}") from e
            self.store.save_server_keys(server_name, keys)
            log.info("keys of %s: %s", server_name, ", ".join(sorted(keys)))
            return self.store.get_server_keys(server_name)

    # ---- federation: request authentication ------------------------------------------

    async def authenticate(self, request: web.Request, body: bytes) -> str:
        """Checks the X-Matrix ``Authorization`` of a request; returns the origin."""
        header = request.headers.get("Authorization")
        if not header:
            raise HttpError(401, "M_UNAUTHORIZED", "missing Authorization header")
        try:
            parsed = mxl.parse_xmatrix(header)
        except mxl.MatrixError as e:
            raise HttpError.from_matrix(e) from e
        origin = parsed["origin"]
        request["claimed_origin"] = origin
        # The raw body goes to the library as received: it judges exactly those bytes.
        content = body if body else None
        try:
            keys = await self.keys_for(origin, parsed.get("key"))
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

    async def on_send_leave(
        self, request: web.Request, room_raw: str, event_raw: str, api: int
    ) -> web.Response:
        body = await request.read()
        room_id, event_id_in_url = unquote(room_raw), unquote(event_raw)
        parsed_event: Any = parse_json_body(body) if body else None
        record = dict(
            room_id=room_id, api=f"v{api}", event_id_in_url=event_id_in_url, event=parsed_event
        )
        try:
            origin = await self.authenticate(request, body)
        except HttpError as e:
            self.store.record_leave(
                **record,
                origin=request.get("claimed_origin") or "-",
                status=e.status,
                accepted=False,
                rejected_because=f"{e.errcode}: {e.error}",
            )
            raise
        if api == 2 and self.args.disable_v2_send_leave:
            e = HttpError(
                404, "M_UNRECOGNIZED", "PUT /v2/send_leave is switched off on this server"
            )
            self.store.record_leave(
                **record,
                origin=origin,
                status=404,
                accepted=False,
                rejected_because=f"{e.errcode}: {e.error}",
            )
            raise e
        # Versions 1 and 2 events also need the signature of the server named in their
        # event ID; fetch its keys ahead, as the library's key callback cannot wait.
        if isinstance(parsed_event, dict) and isinstance(parsed_event.get("event_id"), str):
            other = server_of(parsed_event["event_id"])
            if other and other != origin:
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
                origin=origin,
                status=500,
                accepted=False,
                rejected_because=f"M_UNKNOWN: host failure: {type(e).__name__}: {e}",
            )
            raise HttpError(500, "M_UNKNOWN", "internal error") from e
        accepted = result.accepted
        self.store.record_leave(
            **record,
            origin=origin,
            status=result.status,
            accepted=accepted is not None,
            event_id=accepted.event_id if accepted else None,
            soft_failed=accepted.soft_failed if accepted else None,
            duplicate=accepted.duplicate if accepted else None,
            redacted=accepted.redacted if accepted else None,
            rejected_because=None if accepted else f"{result.errcode}: {result.error}",
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
        body = await request.read()
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
        except (ValueError, UnicodeDecodeError) as e:
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
        except web.HTTPException:
            raise
        except Exception as e:
            log.exception("control %s %s failed", request.method, request.path)
            return json_response({"errcode": "M_UNKNOWN", "error": f"{type(e).__name__}: {e}"}, 500)

    @staticmethod
    async def body(request: web.Request) -> dict:
        try:
            value = await request.json()
        except (ValueError, UnicodeDecodeError) as e:
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
        app = web.Application(middlewares=[self.federation_log])
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
        fed_runner = web.AppRunner(self.federation_app(), access_log=None)
        ctl_runner = web.AppRunner(self.control_app(), access_log=None)
        await fed_runner.setup()
        await ctl_runner.setup()
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
