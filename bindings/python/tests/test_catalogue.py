"""The bad-request catalogue (``tests/catalogue/requests.json``, generated with Synapse's
libraries by ``tests/catalogue/generate.py``) replayed through the Python binding: every case
gets exactly its expected status and errcode, refusals store nothing, and accepted leaves are
stored exactly once.

The same file is replayed through the Rust API by ``tests/catalogue.rs``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import matrix_leave as mxl
import pytest

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE = ROOT / "tests" / "catalogue" / "requests.json"
LEAVE_AUTH = ROOT / "tests" / "vectors" / "leave_auth.json"


@cache
def _catalogue() -> dict[str, Any]:
    return json.loads(CATALOGUE.read_text(encoding="utf-8"))


@cache
def _vectors() -> dict[str, Any]:
    return json.loads(LEAVE_AUTH.read_text(encoding="utf-8"))


def _cases() -> list[dict[str, Any]]:
    return list(_catalogue()["cases"])


class CatalogueRoomStore(mxl.MemoryRoomStore):
    """A MemoryRoomStore whose event lookup may also find events of its other rooms, as a
    homeserver that looks events up by ID alone does (``global_event_lookup`` cases)."""

    def __init__(self, global_event_lookup: bool) -> None:
        super().__init__()
        self.global_event_lookup = global_event_lookup

    def get_event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        event = super().get_event(room_id, event_id)
        if event is None and self.global_event_lookup:
            for other in sorted(self.room_ids()):
                event = super().get_event(other, event_id)
                if event is not None:
                    break
        return event


def _add_room(store: mxl.MemoryRoomStore, room: dict[str, Any], extra: Sequence[dict[str, Any]] = ()) -> None:
    version = room["room_version"]
    for e in list(room["events"]) + list(extra):
        got = store.add_event(e["pdu"], version)
        assert got == e["event_id"], f"event ID {got}, vector says {e['event_id']}"


def _build(case: dict[str, Any]) -> tuple[mxl.Resident, CatalogueRoomStore]:
    vectors = _vectors()
    rooms = CatalogueRoomStore(bool(case.get("global_event_lookup")))
    _add_room(rooms, vectors["rooms"][case["room"]], case.get("extra_events", []))
    for other in case.get("also_rooms", []):
        _add_room(rooms, vectors["rooms"][other])
    keys = mxl.MemoryKeyStore()
    table = case.get("keys", vectors["public_keys"])
    for server, ks in sorted(table.items()):
        for key_id, k in sorted(ks.items()):
            if isinstance(k, str):
                keys.add_key(server, key_id, k)
            else:
                keys.add_key(server, key_id, k["key"], k.get("valid_until_ts"), k.get("expired_ts"))
    options = case.get("options", {})
    resident = mxl.Resident(
        _catalogue()["resident"],
        None,
        rooms,
        keys,
        enable_v1=options.get("enable_v1", True),
        acl_allows_leave=options.get("acl_allows_leave", False),
        logger=lambda level, message: None,
    )
    return resident, rooms


def test_catalogue_size() -> None:
    cases = _cases()
    refusals = [c for c in cases if c["expect"]["status"] != 200]
    assert len(refusals) >= 150
    assert len({c["name"] for c in cases}) == len(cases)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_catalogue_case(case: dict[str, Any]) -> None:
    resident, rooms = _build(case)
    with resident:
        if case["endpoint"] == "make_leave":
            result = resident.make_leave_detailed(case["path_room_id"], case["path_user_id"], case["origin"])
        else:
            body = base64.b64decode(case["body_b64"])
            result = resident.send_leave_detailed(
                case["path_room_id"],
                case["path_event_id"],
                body,
                case["origin"],
                api_version=case["api_version"],
            )
    expect = case["expect"]
    assert (result.status, result.errcode) == (expect["status"], expect["errcode"]), (
        f"{case['name']}: got {result.status} {result.errcode} ({result.error}); "
        f"expected {expect['status']} {expect['errcode']}; {case['why']}"
    )
    want_stored = 1 if case["endpoint"] == "send_leave" and expect["status"] == 200 else 0
    assert len(rooms.stored) == want_stored, f"stored {len(rooms.stored)} events"
    body_json = json.loads(result.body)
    if expect["status"] != 200:
        assert body_json["errcode"] == expect["errcode"]
    elif case["endpoint"] == "send_leave":
        assert body_json == ([200, {}] if case["api_version"] == 1 else {})
        stored = rooms.stored[0]
        assert stored.room_id == _vectors()["rooms"][case["room"]]["room_id"]
        assert result.accepted is not None and result.accepted.event_id == stored.event_id
    else:
        assert set(body_json) == {"event", "room_version"}
