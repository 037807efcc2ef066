"""The leaving side: completing a make_leave template, and the whole handshake over a
transport the host provides."""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _native
from ._convert import JsonObject, call_json, cstr, dumps, json_object, optional_cstr
from .crypto import SigningKey, _require_signing_key

__all__ = [
    "CompletedLeave",
    "LeaveResult",
    "Transport",
    "complete_leave_template",
    "leave_room",
]

#: Performs one federation request:
#: ``transport(destination, method, uri, authorization, body) -> (status, body)``.
#: `uri` is the exact request target to send; `authorization` the ``Authorization`` header
#: value; `body` the JSON body or None. Raising an :class:`Exception` means the server
#: could not be reached.
Transport = Callable[[str, str, str, str, Optional[bytes]], Tuple[int, bytes]]


@dataclass(frozen=True)
class CompletedLeave:
    """A make_leave template turned into a hashed and signed leave.

    Attributes:
        event_id: the leave's event ID.
        event: the signed leave, the send_leave body.
        room_version: the room version the template named.
        uri_v1: the ``PUT /_matrix/federation/v1/send_leave/...`` request target.
        uri_v2: the ``PUT /_matrix/federation/v2/send_leave/...`` request target.
    """

    event_id: str
    event: Dict[str, Any]
    room_version: str
    uri_v1: str
    uri_v2: str


def complete_leave_template(
    make_leave_response: Union[JsonObject, str],
    room_id: str,
    user_id: str,
    server_name: str,
    key: SigningKey,
    now_ms: Optional[int] = None,
    reason: Optional[str] = None,
    event_id: Optional[str] = None,
) -> CompletedLeave:
    """Checks a make_leave response against what was asked for, then fills in, hashes and
    signs the leave.

    Args:
        make_leave_response: the response body (``{"room_version", "event"}``), as a
            mapping or the raw bytes / text received.
        room_id, user_id: what the make_leave request asked for.
        server_name: this server's name.
        key: this server's signing key.
        now_ms: stamped as ``origin_server_ts``; None keeps the template's.
        reason: an optional reason for the leave.
        event_id: room versions 1 and 2 only: the event ID to use (None for a random one).

    Raises:
        MatrixError: M_INVALID_PARAM for a template that does not match the request (the
            message names the field), M_UNSUPPORTED_ROOM_VERSION, M_BAD_JSON. Nothing is
            signed then.
        TypeError: `key` is not a :class:`SigningKey`, or another argument has the wrong
            type.
    """
    _require_signing_key(key)
    if isinstance(make_leave_response, str):
        response = make_leave_response.encode("utf-8")
    else:
        response = json_object(make_leave_response, "make_leave_response")
    strings = (
        cstr(room_id, "room_id"),
        cstr(user_id, "user_id"),
        cstr(server_name, "server_name"),
        optional_cstr(reason, "reason"),
        optional_cstr(event_id, "event_id"),
    )
    with key._borrow() as ptr:
        params = _native.mxl_template_params(
            response=response,
            response_len=len(response),
            room_id=strings[0],
            user_id=strings[1],
            server_name=strings[2],
            key=ptr,
            has_now=now_ms is not None,
            now_ms=0 if now_ms is None else int(now_ms),
            reason=strings[3],
            event_id=strings[4],
        )
        done = call_json(_native.lib().mxl_complete_leave_template, ctypes.byref(params))
    return CompletedLeave(
        event_id=str(done["event_id"]),
        event=done["event"],
        room_version=str(done["room_version"]),
        uri_v1=str(done["uri_v1"]),
        uri_v2=str(done["uri_v2"]),
    )


@dataclass(frozen=True)
class LeaveResult:
    """How a leave ended.

    Attributes:
        accepted_remotely: a resident server accepted the leave. When False, the leave is
            an out-of-band one: store it locally and never send it.
        server: the server that accepted it, or None.
        api_version: 2 or 1, the send_leave API that succeeded, or None.
        event_id: the leave's event ID.
        event: the leave event (sent, or to store locally).
        steps: every step, server by server: ``{"server", "action", "status", "errcode",
            "detail"}``, with `action` one of ``make_leave``, ``send_leave_v2``,
            ``send_leave_v1``, ``out_of_band`` and `status` 0 when the server was
            unreachable.
    """

    accepted_remotely: bool
    server: Optional[str]
    api_version: Optional[int]
    event_id: str
    event: Dict[str, Any]
    steps: List[Dict[str, Any]] = field(default_factory=list)


class _TransportCalls:
    """The Python side of one leave_room call: runs the transport for the library and
    remembers what happened, so exceptions can be reported afterwards."""

    def __init__(self, transport: Transport) -> None:
        """Wraps `transport`."""
        self.transport = transport
        #: Per request, in order: (destination, message of the exception or None).
        self.calls: List[Tuple[str, Optional[str]]] = []
        #: An exception to re-raise after the call: a BaseException that is not an
        #: Exception (KeyboardInterrupt, SystemExit), or a transport that returned nonsense.
        self.fatal: Optional[BaseException] = None

    def send(self, _userdata: Optional[int], request: Any, response: Optional[int]) -> int:
        """The C `send` callback. Never raises."""
        if self.fatal is not None:
            # Stop as fast as possible: every further server is "unreachable".
            return 1
        destination = ""
        try:
            r = request.contents
            destination = (r.destination or b"").decode("utf-8")
            body = ctypes.string_at(r.body, r.body_len) if r.body else None
            args = (
                destination,
                (r.method or b"").decode("utf-8"),
                (r.uri or b"").decode("utf-8"),
                (r.authorization or b"").decode("utf-8"),
                body,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised after the call
            self.fatal = exc
            self.calls.append((destination, None))
            return 1
        try:
            answer = self.transport(*args)
        except Exception as exc:  # noqa: BLE001 - an unreachable server, by the contract
            message = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            _native.lib().mxl_http_response_fail(response, message, len(message))
            self.calls.append((destination, message.decode("utf-8")))
            return 1
        except BaseException as exc:  # noqa: BLE001 - re-raised after the call
            self.fatal = exc
            self.calls.append((destination, f"{type(exc).__name__}"))
            return 1
        try:
            status, data = answer
            if not isinstance(status, int) or not 0 <= status <= 0xFFFF:
                raise ValueError(f"the transport returned the status {status!r}")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"the transport returned a {type(data).__name__} body, not bytes")
            payload = bytes(data)
            _native.lib().mxl_http_response_set(response, status, payload, len(payload))
        except BaseException as exc:  # noqa: BLE001 - a host bug: re-raised after the call
            self.fatal = exc
            self.calls.append((destination, None))
            return 1
        self.calls.append((destination, None))
        return 0


def leave_room(
    room_id: str,
    user_id: str,
    server_name: str,
    key: SigningKey,
    transport: Transport,
    *,
    membership_event: Optional[Mapping[str, Any]] = None,
    room_version: Optional[str] = None,
    extra_servers: Iterable[str] = (),
    now_ms: Optional[int] = None,
    reason: Optional[str] = None,
) -> LeaveResult:
    """Leaves a room (rejects an invite, retracts a knock) through make_leave and
    send_leave.

    The candidate servers are, in order: the invite's sender server, the servers in its
    stripped state, then `extra_servers`. On each: make_leave, then send_leave v2, falling
    back to v1 only where v2 does not exist. When none accepts, the result is an
    out-of-band leave to store locally.

    Args:
        transport: performs each request (see :data:`Transport`). Raising an Exception
            marks the server unreachable: the step records the exception's type and
            message, the driver moves on, and the exception is not re-raised.
        membership_event: the invite or knock being rejected or retracted, with its
            ``unsigned`` stripped state, if known.
        room_version: the room version if known (from the invite).
        now_ms: the time to stamp, in ms since the epoch; None for the current time.

    Raises:
        KeyboardInterrupt, SystemExit: raised by the transport; no later request is made,
            and the exception propagates once the library returns.
        TypeError, ValueError: the transport returned something other than
            ``(int status, bytes body)``.
        TypeError: `key` is not a :class:`SigningKey`, `transport` is not callable,
            `membership_event` is not a mapping, `extra_servers` is a str or holds
            something other than str, or another argument has the wrong type.
        MatrixError: an argument the library refused.
    """
    _require_signing_key(key)
    if not callable(transport):
        raise TypeError(f"transport must be callable, not {type(transport).__name__}")
    if membership_event is not None and not isinstance(membership_event, Mapping):
        raise TypeError(f"membership_event must be a mapping or None, not {type(membership_event).__name__}")
    membership = None if membership_event is None else dumps(dict(membership_event), "membership_event")
    if isinstance(extra_servers, (str, bytes)):
        raise TypeError("extra_servers must be an iterable of server names, not a single str")
    servers = list(extra_servers)
    for s in servers:
        if not isinstance(s, str):
            raise TypeError(f"extra_servers must hold str, not {type(s).__name__}")
    extra = dumps(servers, "extra_servers") if servers else None
    when = int(time.time() * 1000) if now_ms is None else int(now_ms)
    strings = (
        cstr(room_id, "room_id"),
        cstr(user_id, "user_id"),
        cstr(server_name, "server_name"),
        optional_cstr(room_version, "room_version"),
        optional_cstr(reason, "reason"),
    )
    calls = _TransportCalls(transport)
    # Kept in a local for the whole call: the library holds this pointer until it returns.
    send = _native.SEND_FN(calls.send)
    c_transport = _native.mxl_transport(userdata=None, send=send)
    with key._borrow() as ptr:
        params = _native.mxl_leave_params(
            room_id=strings[0],
            user_id=strings[1],
            server_name=strings[2],
            key=ptr,
            membership_event=membership,
            membership_event_len=0 if membership is None else len(membership),
            room_version=strings[3],
            extra_servers=extra,
            extra_servers_len=0 if extra is None else len(extra),
            now_ms=when,
            reason=strings[4],
        )
        try:
            outcome = call_json(
                _native.lib().mxl_leave_room, ctypes.byref(params), ctypes.byref(c_transport)
            )
        finally:
            # A KeyboardInterrupt (or a transport bug) wins over anything the library said.
            fatal, calls.fatal = calls.fatal, None
            if fatal is not None:
                try:
                    raise fatal
                finally:
                    del fatal
    steps: List[Dict[str, Any]] = outcome["steps"]
    return LeaveResult(
        accepted_remotely=bool(outcome["accepted_remotely"]),
        server=outcome.get("server"),
        api_version=outcome.get("api_version"),
        event_id=str(outcome["event_id"]),
        event=outcome["event"],
        steps=steps,
    )
