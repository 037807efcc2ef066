"""Misuse of the API: wrong-typed arguments raise TypeError naming the argument (never an
AttributeError from deep inside, nor a 500 on the first request), and the package is
silent unless the application configures logging."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import matrix_leave as mxl
from _vectors import leave_auth_store, spec_seed

ROOM = "!r:resident.example"
USER = "@bob:remote.example"


def _key() -> mxl.SigningKey:
    return mxl.SigningKey.from_seed(spec_seed(), "ed25519:1")


def _template() -> bytes:
    event = {
        "type": "m.room.member",
        "room_id": ROOM,
        "sender": USER,
        "state_key": USER,
        "content": {"membership": "leave"},
        "depth": 5,
        "origin_server_ts": 1,
        "prev_events": ["$p"],
        "auth_events": ["$a"],
        "origin": "resident.example",
    }
    return json.dumps({"room_version": "10", "event": event}).encode()


def _no_transport(*request: Any) -> Tuple[int, bytes]:
    raise AssertionError("no request may be made")


NOT_KEYS = [None, "ed25519:1", b"\0" * 32, 42, object()]

# Every function that takes a SigningKey, called with `bad` in the key's place.
KEY_TAKERS: Dict[str, Callable[[Any], Any]] = {
    "sign_event": lambda bad: mxl.sign_event({"type": "m.x", "content": {}}, "10", "s.example", bad),
    "xmatrix_authorization": lambda bad: mxl.xmatrix_authorization(bad, "o.example", "d.example", "GET", "/x"),
    "complete_leave_template": lambda bad: mxl.complete_leave_template(_template(), ROOM, USER, "remote.example", bad),
    "leave_room": lambda bad: mxl.leave_room(ROOM, USER, "remote.example", bad, _no_transport),
    "server_key_document": lambda bad: mxl.server_key_document(bad, "s.example", 1),
}


@pytest.mark.parametrize("bad", NOT_KEYS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("function", sorted(KEY_TAKERS))
def test_a_key_that_is_not_a_signing_key_is_a_type_error(function: str, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^key must be a SigningKey") as info:
        KEY_TAKERS[function](bad)
    assert type(bad).__name__ in str(info.value)


def test_key_takers_still_work_with_a_key() -> None:
    with _key() as key:
        for function in KEY_TAKERS.values():
            function(key)


@pytest.mark.parametrize("bad", [None, "abc", [("ed25519:1", "abc")], 5], ids=repr)
def test_verify_keys_must_be_a_mapping(bad: Any) -> None:
    event = {"type": "m.x", "content": {}, "signatures": {}}
    with pytest.raises(TypeError, match=r"^verify_keys must be a mapping"):
        mxl.verify_json(event, "s.example", bad)
    with pytest.raises(TypeError, match=r"^verify_keys must be a mapping"):
        mxl.verify_xmatrix('X-Matrix origin="o.example",key="ed25519:1",sig="x"', "GET", "/", None, "d.example", bad)


def test_a_verify_key_entry_must_be_a_str_or_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"^verify_keys\['ed25519:1'\] must be"):
        mxl.verify_json({"signatures": {}}, "s.example", {"ed25519:1": 12345})


@pytest.mark.parametrize("bad", [None, "s.example", [("s.example", {})], 1], ids=repr)
def test_verify_event_keys_must_be_a_mapping(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^keys must be a mapping"):
        mxl.verify_event({"type": "m.x", "content": {}}, "10", bad)


def test_verify_event_keys_of_one_server_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"^keys\['s.example'\] must be a mapping"):
        mxl.verify_event({"type": "m.x", "content": {}}, "10", {"s.example": "abc"})


def test_any_mapping_type_is_accepted_for_keys() -> None:
    with _key() as key:
        signed = mxl.sign_event({"type": "m.x", "content": {}, "room_id": ROOM, "sender": "@a:s.example", "origin_server_ts": 1}, "10", "s.example", key)
        entry = MappingProxyType({"key": key.public_key, "valid_until_ts": 2**53 - 1})
        inner = MappingProxyType({key.key_id: entry})
        report = mxl.verify_event(signed, "10", MappingProxyType({"s.example": inner}))
        mxl.verify_json(signed, "s.example", inner)
    assert report.outcome == "accept"


@pytest.mark.parametrize("bad", ["ed25519:old", [("ed25519:old", {})], 3], ids=repr)
def test_old_keys_must_be_a_mapping(bad: Any) -> None:
    with _key() as key, pytest.raises(TypeError, match=r"^old_keys must be a mapping"):
        mxl.server_key_document(key, "s.example", 1, bad)


def test_an_old_key_entry_must_be_a_mapping() -> None:
    with _key() as key, pytest.raises(TypeError, match=r"^old_keys\['ed25519:old'\] must be a mapping"):
        mxl.server_key_document(key, "s.example", 1, {"ed25519:old": "abc"})


def test_valid_until_ts_must_be_an_int() -> None:
    with _key() as key, pytest.raises(TypeError, match=r"^valid_until_ts must be an int"):
        mxl.server_key_document(key, "s.example", "1")  # type: ignore[arg-type]


class _RoomsWithoutStore:
    """Has every RoomStore method but store_event."""

    def room_version(self, room_id: str) -> Optional[str]:
        return None

    def state_event(self, room_id: str, event_type: str, state_key: str) -> Optional[Dict[str, Any]]:
        return None

    def get_event(self, room_id: str, event_id: str) -> Optional[Dict[str, Any]]:
        return None

    def forward_extremities(self, room_id: str) -> List[Tuple[str, int]]:
        return []

    def servers_in_room(self, room_id: str) -> List[str]:
        return []


@pytest.mark.parametrize(
    "rooms,message",
    [
        (None, r"^rooms must be a RoomStore .*not None"),
        (object(), r"^rooms must be a RoomStore .*object lacks room_version, state_event"),
        ({}, r"^rooms must be a RoomStore .*dict lacks room_version"),
        (_RoomsWithoutStore(), r"^rooms must be a RoomStore .*_RoomsWithoutStore lacks store_event$"),
    ],
)
def test_resident_refuses_a_room_store_without_the_protocol(rooms: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        mxl.Resident("resident.example", None, rooms, mxl.MemoryKeyStore())


@pytest.mark.parametrize("keys", [None, object(), {"s.example": {}}, mxl.MemoryRoomStore()], ids=lambda v: type(v).__name__)
def test_resident_refuses_a_key_store_without_get_server_keys(keys: Any) -> None:
    with pytest.raises(TypeError, match=r"^keys must be a KeyStore \(get_server_keys\)"):
        mxl.Resident("resident.example", None, mxl.MemoryRoomStore(), keys)


def test_resident_refuses_a_signing_key_that_is_not_one() -> None:
    with pytest.raises(TypeError, match=r"^signing_key must be a SigningKey or None, not str"):
        mxl.Resident("resident.example", "ed25519:1", mxl.MemoryRoomStore(), mxl.MemoryKeyStore())  # type: ignore[arg-type]


def test_resident_refuses_a_logger_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match=r"^logger must be callable"):
        mxl.Resident("resident.example", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore(), logger="stderr")  # type: ignore[arg-type]


@pytest.mark.parametrize("body", ['{"type": "m.room.member"}', {"type": "m.room.member"}, None, 5], ids=lambda v: type(v).__name__)
def test_send_leave_body_must_be_bytes_and_says_how(body: Any) -> None:
    store, keys = leave_auth_store("v10/invited")
    with mxl.Resident("resident.example", None, store, keys) as resident:
        with pytest.raises(TypeError) as info:
            resident.send_leave(ROOM, "$e", body, "remote.example")
    message = str(info.value)
    assert message.startswith("body must be the raw request body as bytes")
    assert "canonical_json(event)" in message and type(body).__name__ in message
    assert store.stored == []


@pytest.mark.parametrize("body", [b"{}", bytearray(b"{}"), memoryview(b"{}")], ids=lambda v: type(v).__name__)
def test_send_leave_body_may_be_any_bytes_like(body: Any) -> None:
    store, keys = leave_auth_store("v10/invited")
    with mxl.Resident("resident.example", None, store, keys) as resident:
        status, _ = resident.send_leave("!unknown:x", "$e", body, "remote.example")
    assert status == 404


def test_leave_room_argument_types() -> None:
    with _key() as key:
        with pytest.raises(TypeError, match=r"^extra_servers must be an iterable of server names, not a single str"):
            mxl.leave_room(ROOM, USER, "remote.example", key, _no_transport, extra_servers="resident.example")
        with pytest.raises(TypeError, match=r"^transport must be callable"):
            mxl.leave_room(ROOM, USER, "remote.example", key, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^membership_event must be a mapping"):
            mxl.leave_room(ROOM, USER, "remote.example", key, _no_transport, membership_event=[("type", "x")])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Logging: silent by default
# ---------------------------------------------------------------------------------------------


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("matrix_leave").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


_REFUSAL = """
import matrix_leave as mxl
resident = mxl.Resident("resident.example", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore())
status, body = resident.send_leave("!nowhere:resident.example", "$e", b"{}", "remote.example")
assert status == 404, status
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    package_root = str(Path(mxl.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_a_refusal_prints_nothing_when_logging_is_not_configured() -> None:
    done = _run(_REFUSAL)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_a_refusal_is_logged_once_logging_is_configured() -> None:
    code = "import logging, sys\nlogging.basicConfig(stream=sys.stderr, format='%(name)s %(levelname)s %(message)s')\n"
    done = _run(code + _REFUSAL)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("matrix_leave WARNING "), done.stderr
