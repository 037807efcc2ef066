"""The resident side: answering ``make_leave`` and ``send_leave`` for rooms this server is in.

The homeserver supplies its rooms and the remote servers' keys through two small protocols,
:class:`RoomStore` and :class:`KeyStore`. The library calls them back during
:meth:`Resident.make_leave` and :meth:`Resident.send_leave`; values cross the boundary as
JSON.

Callback errors: when a :class:`RoomStore` or :class:`KeyStore` method raises, the library
is told the host failed, answers ``500 M_UNKNOWN`` and stores nothing, and once the C call
has returned the :class:`Resident` method re-raises the original exception (with its
traceback). The logger is different: logging must never change an answer, so an
:class:`Exception` raised by the logger is reported through :func:`sys.unraisablehook` (by
default printed to stderr as "Exception ignored in ...") and the call completes normally.
Only a :class:`BaseException` that is not an :class:`Exception` (``KeyboardInterrupt``,
``SystemExit``) raised by the logger is re-raised after the call. A callback exception never
reaches the C side and never crashes the interpreter.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
    runtime_checkable,
)

from . import _native
from ._convert import check, cstr, loads, take_bytes
from ._errors import MatrixError
from ._handle import Handle
from .crypto import SigningKey

__all__ = [
    "AcceptedLeave",
    "KeyStore",
    "LOG_DEBUG",
    "LOG_ERROR",
    "LOG_INFO",
    "LOG_TRACE",
    "LOG_WARN",
    "Logger",
    "MakeLeaveResult",
    "Resident",
    "RoomStore",
    "SendLeaveResult",
    "default_logger",
]

# ---------------------------------------------------------------------------------------------
# What the host provides
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class RoomStore(Protocol):
    """The rooms of this server, as the resident side reads and extends them.

    Every method may raise: the request is then answered ``500 M_UNKNOWN`` and the exception
    is re-raised from the :class:`Resident` method once the library returns.
    """

    def room_version(self, room_id: str) -> Optional[str]:
        """The room's version string, or None for a room this server does not know."""
        ...

    def state_event(self, room_id: str, event_type: str, state_key: str) -> Optional[Dict[str, Any]]:
        """The current state event of that type and state key, or None."""
        ...

    def get_event(self, room_id: str, event_id: str) -> Optional[Dict[str, Any]]:
        """An event of the room by ID, or None if this server does not have it."""
        ...

    def forward_extremities(self, room_id: str) -> List[Tuple[str, int]]:
        """The room's forward extremities as ``(event_id, depth)`` pairs."""
        ...

    def servers_in_room(self, room_id: str) -> List[str]:
        """The servers with joined members in the room."""
        ...

    def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
        """Persists an accepted event; return only once it is stored, raise to fail.

        A `soft_failed` event passed its auth events but not the current state: keep it,
        but do not make it current state or relay it.
        """
        ...


@runtime_checkable
class KeyStore(Protocol):
    """The verify keys of remote servers, already fetched and checked by the host."""

    def get_server_keys(self, server_name: str) -> Mapping[str, Any]:
        """The server's keys: ``{key_id: {"key": base64, "valid_until_ts": ms,
        "expired_ts": ms}}`` (times optional; a bare base64 string also works).
        An empty mapping when none are known."""
        ...


#: A log sink: ``logger(level, message)`` with `level` from :data:`LOG_ERROR` (1) to
#: :data:`LOG_TRACE` (5). Exceptions it raises are reported through
#: :func:`sys.unraisablehook` and otherwise ignored: they never change an answer.
Logger = Callable[[int, str], None]

#: The methods a room store must have (see :class:`RoomStore`).
ROOM_STORE_METHODS = (
    "room_version",
    "state_event",
    "get_event",
    "forward_extremities",
    "servers_in_room",
    "store_event",
)
#: The methods a key store must have (see :class:`KeyStore`).
KEY_STORE_METHODS = ("get_server_keys",)

LOG_ERROR = 1
LOG_WARN = 2
LOG_INFO = 3
LOG_DEBUG = 4
LOG_TRACE = 5

#: The `logging` level used for the library's trace records (below DEBUG).
TRACE = 5

_LOGGING_LEVELS = {
    LOG_ERROR: logging.ERROR,
    LOG_WARN: logging.WARNING,
    LOG_INFO: logging.INFO,
    LOG_DEBUG: logging.DEBUG,
    LOG_TRACE: TRACE,
}

_logger = logging.getLogger("matrix_leave")


def default_logger(level: int, message: str) -> None:
    """Forwards a library log record to the ``matrix_leave`` logger of :mod:`logging`."""
    _logger.log(_LOGGING_LEVELS.get(level, logging.DEBUG), "%s", message)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedLeave:
    """What a successful send_leave did.

    Attributes:
        event_id: the leave's event ID.
        event: the event as stored (the redacted copy when its content hash was wrong).
        redacted: the content hash did not match, so the redacted copy was stored.
        soft_failed: it passed its auth events but not the current state.
        duplicate: the host already had it; nothing was stored this time.
        relay_to: servers to send it on to (the room's, less the origin and this server).
    """

    event_id: str
    event: Dict[str, Any]
    redacted: bool
    soft_failed: bool
    duplicate: bool
    relay_to: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class MakeLeaveResult:
    """The answer to a make_leave request.

    Attributes:
        status: the HTTP status to answer with.
        body: the JSON body to send, exactly.
        errcode: the Matrix errcode of a refusal, None for a 200.
        error: the refusal's message, None for a 200.
    """

    status: int
    body: bytes
    errcode: Optional[str] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class SendLeaveResult:
    """The answer to a send_leave request.

    Attributes:
        status: the HTTP status to answer with.
        body: the JSON body to send, exactly (``{}`` for v2, ``[200,{}]`` for v1).
        errcode: the Matrix errcode of a refusal, None for a 200.
        error: the refusal's message, None for a 200.
        accepted: what was accepted, for a 200; None for a refusal.
    """

    status: int
    body: bytes
    errcode: Optional[str] = None
    error: Optional[str] = None
    accepted: Optional[AcceptedLeave] = None


def _refusal(message: str) -> SendLeaveResult:
    """A 400 M_INVALID_PARAM answer for a request parameter no C string can carry."""
    body = json.dumps(
        {"errcode": "M_INVALID_PARAM", "error": message},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    return SendLeaveResult(400, body, "M_INVALID_PARAM", message)


def _param(value: str, name: str) -> Union[bytes, SendLeaveResult]:
    """A request parameter as a C string, or the refusal to answer with when it has a NUL
    character (a remote server can put ``%00`` in a path)."""
    try:
        return cstr(value, name)
    except MatrixError as exc:
        return _refusal(exc.message)


# ---------------------------------------------------------------------------------------------
# Callback plumbing
# ---------------------------------------------------------------------------------------------


class _HostState:
    """What the callbacks of one Resident reach through their `userdata`.

    Exceptions raised by callbacks are kept per thread and per call: a Resident may serve
    several threads at once, and the library calls back on the thread that made the call.
    """

    def __init__(self, rooms: RoomStore, keys: KeyStore, logger: Logger) -> None:
        """Keeps the stores and the logger."""
        self.rooms = rooms
        self.keys = keys
        self.logger = logger
        self._local = threading.local()

    def _frames(self) -> List[List[Tuple[BaseException, str]]]:
        """This thread's stack of calls in progress (calls may nest through callbacks)."""
        frames: Optional[List[List[Tuple[BaseException, str]]]] = getattr(self._local, "frames", None)
        if frames is None:
            frames = []
            self._local.frames = frames
        return frames

    def begin(self) -> List[Tuple[BaseException, str]]:
        """Starts a call on this thread; returns the list its callback errors go into."""
        errors: List[Tuple[BaseException, str]] = []
        self._frames().append(errors)
        return errors

    def end(self) -> None:
        """Ends this thread's innermost call."""
        self._frames().pop()

    def record(self, exc: BaseException, site: str) -> None:
        """Keeps the first exception of the current call, and the callback that raised it,
        for re-raising after the call returns."""
        frames = self._frames()
        if frames:
            if not frames[-1]:
                frames[-1].append((exc, site))
            return
        # A callback outside any call of ours: nobody to re-raise to.
        _report_unraisable(exc, f"Exception in the matrix_leave {site} callback outside a call")


def _report_unraisable(exc: BaseException, message: str) -> None:
    """Reports an exception nobody can catch through :func:`sys.unraisablehook`; never
    raises.

    Python's own hook only takes the interpreter's internal argument type, so when it is
    the one installed the report is printed to stderr the way it would print it.
    """
    try:
        hook = sys.unraisablehook
        if hook is not sys.__unraisablehook__:
            try:
                hook(
                    types.SimpleNamespace(
                        exc_type=type(exc),
                        exc_value=exc,
                        exc_traceback=exc.__traceback__,
                        err_msg=message,
                        object=None,
                    )
                )
                return
            except TypeError:
                pass  # a hook that insists on the internal type: print it ourselves
        stream = sys.stderr
        if stream is not None:
            stream.write(f"{message}:\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
            stream.flush()
    except BaseException:  # noqa: BLE001 - a broken hook or stream must not break the call
        pass


_states: Dict[int, _HostState] = {}
_state_ids = itertools.count(1)
_states_lock = threading.Lock()


def _register(state: _HostState) -> int:
    """Files a state under a fresh ID, which becomes the callbacks' `userdata`."""
    with _states_lock:
        key = next(_state_ids)
        _states[key] = state
    return key


def _text(value: Optional[bytes]) -> str:
    """A borrowed C string from the library as text."""
    return "" if value is None else value.decode("utf-8")


def _encode(value: Any) -> bytes:
    """A callback's answer as JSON bytes."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _answer(
    userdata: Optional[int],
    query: Any,
    out: Optional[int],
    lookup: Callable[[_HostState, Any], Optional[bytes]],
    site: str,
) -> int:
    """Runs one lookup callback: writes its answer with mxl_out_set, or reports NOT_FOUND,
    or records the exception and reports an error. Never raises."""
    state = _states.get(userdata or 0)
    if state is None:
        return _native.CB_ERROR
    try:
        data = lookup(state, query.contents)
        if data is None:
            return _native.CB_NOT_FOUND
        _native.lib().mxl_out_set(out, data, len(data))
        return _native.CB_OK
    except BaseException as exc:  # noqa: BLE001 - every exception is re-raised after the call
        state.record(exc, site)
        return _native.CB_ERROR


def _room_version(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `room_version`."""
    version = state.rooms.room_version(_text(q.room_id))
    if version is None:
        return None
    if not isinstance(version, str):
        raise TypeError(f"room_version() must return a str or None, not {type(version).__name__}")
    return version.encode("utf-8")


def _state_event(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `state_event`."""
    event = state.rooms.state_event(_text(q.room_id), _text(q.event_type), _text(q.state_key))
    return None if event is None else _encode(event)


def _get_event(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `get_event`."""
    event = state.rooms.get_event(_text(q.room_id), _text(q.event_id))
    return None if event is None else _encode(event)


def _forward_extremities(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `forward_extremities`."""
    extremities = state.rooms.forward_extremities(_text(q.room_id))
    return None if extremities is None else _encode([[e, d] for e, d in extremities])


def _servers_in_room(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `servers_in_room`."""
    servers = state.rooms.servers_in_room(_text(q.room_id))
    return None if servers is None else _encode(list(servers))


def _server_keys(state: _HostState, q: Any) -> Optional[bytes]:
    """Answers `server_keys`."""
    keys = state.keys.get_server_keys(_text(q.server_name))
    if keys is None:
        return None
    return _encode({key_id: (k if isinstance(k, str) else dict(k)) for key_id, k in keys.items()})


def _lookup_callback(lookup: Callable[[_HostState, Any], Optional[bytes]], site: str) -> Any:
    """Wraps an answer function as the C lookup callback named `site`."""

    def callback(userdata: Optional[int], query: Any, out: Optional[int]) -> int:
        """Answers one lookup of the library; never raises."""
        return _answer(userdata, query, out, lookup, site)

    return _native.LOOKUP_FN(callback)


def _store_event(userdata: Optional[int], params: Any) -> int:
    """The C `store_event` callback."""
    state = _states.get(userdata or 0)
    if state is None:
        return _native.CB_ERROR
    try:
        p = params.contents
        event = loads(ctypes.string_at(p.event_json, p.event_json_len))
        state.rooms.store_event(_text(p.room_id), _text(p.event_id), event, bool(p.soft_failed))
        return _native.CB_OK
    except BaseException as exc:  # noqa: BLE001 - re-raised after the call
        state.record(exc, "store_event")
        return _native.CB_ERROR


def _log(userdata: Optional[int], level: int, message: Optional[int], size: int) -> None:
    """The C `log` callback.

    An :class:`Exception` from the logger is reported through :func:`sys.unraisablehook`
    and swallowed: a log record must never turn a completed call into an error. Only
    ``KeyboardInterrupt`` / ``SystemExit`` (and other non-Exception BaseExceptions) are
    kept and re-raised after the call.
    """
    state = _states.get(userdata or 0)
    if state is None:
        return
    try:
        text = ctypes.string_at(message, size).decode("utf-8", "replace") if message else ""
        state.logger(int(level), text)
    except Exception as exc:  # noqa: BLE001 - logging never changes an answer
        _report_unraisable(exc, "Exception ignored in the matrix_leave logger callback")
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt etc.: re-raised after the call
        state.record(exc, "log")


def _userdata_free(userdata: Optional[int]) -> None:
    """The C `userdata_free` finalizer: forgets the Resident's callback state."""
    with _states_lock:
        _states.pop(userdata or 0, None)


# The C function pointers live as long as the module, so they outlive every context.
_ROOM_VERSION_CB = _lookup_callback(_room_version, "room_version")
_STATE_EVENT_CB = _lookup_callback(_state_event, "state_event")
_GET_EVENT_CB = _lookup_callback(_get_event, "get_event")
_FORWARD_EXTREMITIES_CB = _lookup_callback(_forward_extremities, "forward_extremities")
_SERVERS_IN_ROOM_CB = _lookup_callback(_servers_in_room, "servers_in_room")
_SERVER_KEYS_CB = _lookup_callback(_server_keys, "server_keys")
_STORE_EVENT_CB = _native.STORE_FN(_store_event)
_LOG_CB = _native.LOG_FN(_log)
_USERDATA_FREE_CB = _native.USERDATA_FREE_FN(_userdata_free)


def _reraise(errors: List[Tuple[BaseException, str]], what: str, status: int, errcode: str) -> None:
    """Raises the first recorded callback exception, if any.

    Where exceptions carry notes (Python 3.11 and later) one is added saying which
    callback raised and what the library answered instead.
    """
    if not errors:
        return
    exc, site = errors[0]
    errors.clear()
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        answer = f"{status} {errcode}".strip() if status else "no response"
        add_note(f"matrix_leave: raised by the {site} callback during {what}; the library answered {answer}")
    try:
        raise exc
    finally:
        del exc


def _check_protocol(value: Any, name: str, protocol: str, methods: Tuple[str, ...]) -> None:
    """Raises TypeError unless `value` has every method of the protocol, so a wrong store
    fails at construction instead of as a 500 on the first request."""
    if value is None:
        raise TypeError(f"{name} must be a {protocol} ({', '.join(methods)}), not None")
    missing = [m for m in methods if not callable(getattr(value, m, None))]
    if missing:
        raise TypeError(
            f"{name} must be a {protocol} ({', '.join(methods)}); "
            f"{type(value).__name__} lacks {', '.join(missing)}"
        )


def _api_version(value: Any) -> int:
    """The send_leave API version: exactly the int 1 or 2 (no bool, str, float or an int
    that only equals 1 or 2 once truncated to 32 bits)."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
        raise ValueError("api_version must be 1 or 2")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Resident
# ---------------------------------------------------------------------------------------------


class Resident(Handle):
    """Answers ``make_leave`` and ``send_leave`` for rooms this server is in.

    Args:
        server_name: this server's name.
        signing_key: this server's signing key. The library does not sign on this side;
            the key is kept as :attr:`signing_key` for the host (X-Matrix, key documents).
        rooms: the room store (see :class:`RoomStore`).
        keys: the remote servers' keys (see :class:`KeyStore`).
        enable_v1: also answer the legacy ``PUT /v1/send_leave`` (else ``404
            M_UNRECOGNIZED``).
        acl_allows_leave: let a server the room's ACL denies still leave.
        logger: ``logger(level, message)`` for the library's log records; by default the
            ``matrix_leave`` logger of :mod:`logging`. An exception it raises is reported
            through :func:`sys.unraisablehook` and does not change the answer.

    One Resident may serve many threads at once. Close it (or use ``with``) to release the
    native context; otherwise it is released when garbage collected.

    Raises:
        MatrixError: M_INVALID_PARAM for a server name that is not valid.
        TypeError: `server_name` is not a str; `signing_key` is neither a
            :class:`SigningKey` nor None; `rooms` lacks a :class:`RoomStore` method or
            `keys` lacks ``get_server_keys``; `logger` is not callable.
    """

    _kind = "Resident"

    def __init__(
        self,
        server_name: str,
        signing_key: Optional[SigningKey],
        rooms: RoomStore,
        keys: KeyStore,
        *,
        enable_v1: bool = True,
        acl_allows_leave: bool = False,
        logger: Optional[Logger] = None,
    ) -> None:
        """Creates the native context; see the class documentation."""
        name = cstr(server_name, "server_name")
        if signing_key is not None and not isinstance(signing_key, SigningKey):
            raise TypeError(f"signing_key must be a SigningKey or None, not {type(signing_key).__name__}")
        _check_protocol(rooms, "rooms", "RoomStore", ROOM_STORE_METHODS)
        _check_protocol(keys, "keys", "KeyStore", KEY_STORE_METHODS)
        if logger is not None and not callable(logger):
            raise TypeError(f"logger must be callable as logger(level, message), not {type(logger).__name__}")
        lib = _native.lib()
        self.server_name = server_name
        self.signing_key = signing_key
        self._state = _HostState(rooms, keys, logger if logger is not None else default_logger)
        state_id = _register(self._state)

        callbacks = _native.mxl_resident_callbacks(
            userdata=state_id,
            userdata_free=_USERDATA_FREE_CB,
            room_version=_ROOM_VERSION_CB,
            state_event=_STATE_EVENT_CB,
            get_event=_GET_EVENT_CB,
            forward_extremities=_FORWARD_EXTREMITIES_CB,
            servers_in_room=_SERVERS_IN_ROOM_CB,
            server_keys=_SERVER_KEYS_CB,
            store_event=_STORE_EVENT_CB,
            log=_LOG_CB,
        )
        config = _native.mxl_resident_config(
            server_name=name,
            enable_v1=bool(enable_v1),
            acl_allows_leave=bool(acl_allows_leave),
        )
        ptr = _native.ResidentPtr()
        err = _native.ErrorPtr()
        code = lib.mxl_resident_new(ctypes.byref(config), ctypes.byref(callbacks), ctypes.byref(ptr), ctypes.byref(err))
        try:
            check(code, err)
        except BaseException:
            # The library already ran userdata_free; this only guards against it not.
            _userdata_free(state_id)
            raise
        self._adopt(ptr)

    @classmethod
    def _free(cls, ptr: Any) -> None:
        """Frees the context; the library then runs userdata_free."""
        _native.lib().mxl_resident_free(ptr)

    @property
    def rooms(self) -> RoomStore:
        """The room store."""
        return self._state.rooms

    @property
    def keys(self) -> KeyStore:
        """The key store."""
        return self._state.keys

    def _call(
        self,
        what: str,
        call: Callable[[Any, Any, Any], int],
        want_json: bool,
    ) -> Tuple[int, bytes, Dict[str, Any]]:
        """Runs one make_leave / send_leave export and reads the response it made.

        `call(resident, out_response, out_error)` makes the C call. Returns the status, the
        exact body and, when `want_json`, the response as mxl_response_json describes it
        (otherwise only its errcode and error).

        Raises:
            BaseException: the first exception a callback raised during the call.
            MatrixError: the library refused an argument and made no response.
        """
        lib = _native.lib()
        response = _native.ResponsePtr()
        err = _native.ErrorPtr()
        errors = self._state.begin()
        try:
            with self._borrow() as ptr:
                code = call(ptr, ctypes.byref(response), ctypes.byref(err))
        finally:
            self._state.end()
        try:
            status = int(lib.mxl_response_status(response)) if response else 0
            if errors:
                lib.mxl_error_free(err)
                errcode = _text(lib.mxl_response_errcode(response)) if response else ""
                _reraise(errors, what, status, errcode)
            check(code, err)
            size = ctypes.c_size_t(0)
            data = lib.mxl_response_body(response, ctypes.byref(size))
            body = ctypes.string_at(data, size.value) if data and size.value else b""
            info: Dict[str, Any] = {}
            if want_json:
                out = _native.BytesPtr()
                err2 = _native.ErrorPtr()
                check(lib.mxl_response_json(response, ctypes.byref(out), ctypes.byref(err2)), err2)
                info = loads(take_bytes(out))
            else:
                errcode = _text(lib.mxl_response_errcode(response))
                if errcode:
                    info = {"errcode": errcode, "error": _text(lib.mxl_response_message(response))}
            return status, body, info
        finally:
            lib.mxl_response_free(response)

    def make_leave_detailed(self, room_id: str, user_id: str, origin: str) -> MakeLeaveResult:
        """Answers ``GET /_matrix/federation/v1/make_leave/{room_id}/{user_id}``.

        `room_id` and `user_id` are the path parameters (percent-encoded or not); `origin`
        the requesting server as authenticated by its X-Matrix header.

        Every refusal is an answer (``status`` 4xx with an errcode), not an exception.

        Raises:
            BaseException: whatever a room or key store callback raised (the library had
                answered 500).
            TypeError: an argument is not a str.
        """
        params = []
        for value, name in ((room_id, "room_id"), (user_id, "user_id"), (origin, "origin")):
            c = _param(value, name)
            if isinstance(c, SendLeaveResult):
                return MakeLeaveResult(c.status, c.body, c.errcode, c.error)
            params.append(c)
        status, body, info = self._call(
            "make_leave",
            lambda ptr, out, err: int(_native.lib().mxl_resident_make_leave(ptr, *params, out, err)),
            want_json=False,
        )
        return MakeLeaveResult(status, body, info.get("errcode"), info.get("error"))

    def make_leave(self, room_id: str, user_id: str, origin: str) -> Tuple[int, bytes]:
        """As :meth:`make_leave_detailed`, returning ``(status, body)``."""
        result = self.make_leave_detailed(room_id, user_id, origin)
        return result.status, result.body

    def send_leave_detailed(
        self,
        room_id: str,
        event_id: str,
        body: bytes,
        origin: str,
        api_version: int = 2,
    ) -> SendLeaveResult:
        """Answers ``PUT /_matrix/federation/v{api_version}/send_leave/{room_id}/{event_id}``.

        `body` is the raw request body, exactly the bytes received (the library judges
        them: size, JSON, lone surrogates); `origin` the requesting server as authenticated
        by its X-Matrix header; `api_version` 1 or 2, the API the request came in on. An
        accepted leave has been handed to ``rooms.store_event`` before this returns.

        Every refusal is an answer (``status`` 4xx with an errcode), not an exception.

        Raises:
            BaseException: whatever a room or key store callback raised. The library had
                answered ``500 M_UNKNOWN`` and stored nothing; answer 500 if you catch it.
                (An exception from the logger is only reported, see :class:`Resident`.)
            ValueError: `api_version` is not the int 1 or 2.
            TypeError: `body` is not bytes, bytearray or memoryview; a path parameter or
                `origin` is not a str.
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"body must be the raw request body as bytes (to send an event dict, pass "
                f"canonical_json(event)), not {type(body).__name__}"
            )
        version = _api_version(api_version)
        data = bytes(body)
        strings = []
        for value, name in ((room_id, "room_id"), (event_id, "event_id"), (origin, "origin")):
            c = _param(value, name)
            if isinstance(c, SendLeaveResult):
                return c
            strings.append(c)
        params = _native.mxl_send_leave_params(
            room_id=strings[0],
            event_id=strings[1],
            body=data,
            body_len=len(data),
            origin=strings[2],
            api_version=version,
        )
        status, raw, info = self._call(
            "send_leave",
            lambda ptr, out, err: int(_native.lib().mxl_resident_send_leave(ptr, ctypes.byref(params), out, err)),
            want_json=True,
        )
        accepted = None
        a = info.get("accepted")
        if a:
            accepted = AcceptedLeave(
                event_id=str(a["event_id"]),
                event=a["event"],
                redacted=bool(a["redacted"]),
                soft_failed=bool(a["soft_failed"]),
                duplicate=bool(a["duplicate"]),
                relay_to=[str(s) for s in a["relay_to"]],
            )
        return SendLeaveResult(
            status=status,
            body=raw,
            errcode=info.get("errcode") or None,
            error=info.get("error"),
            accepted=accepted,
        )

    def send_leave(
        self,
        room_id: str,
        event_id: str,
        body: bytes,
        origin: str,
        api_version: int = 2,
    ) -> Tuple[int, bytes]:
        """As :meth:`send_leave_detailed`, returning ``(status, body)``."""
        result = self.send_leave_detailed(room_id, event_id, body, origin, api_version)
        return result.status, result.body

    def __repr__(self) -> str:
        """Shows the server name and whether the context is closed."""
        return f"<Resident {self.server_name}{' (closed)' if self.closed else ''}>"

