"""Times Synapse's own code on the send_leave receive path, in the Synapse virtualenv.

The pipeline mirrors what Synapse runs for ``PUT /send_leave`` once the request is
authenticated (``FederationServer.on_send_leave_request`` and
``FederationEventHandler.on_send_membership_event``), with the database and the key fetching
replaced by in-memory dicts and an already decoded verify key:

1. parse: ``synapse.util.json.json_decoder`` on the body text;
2. build: ``synapse.federation.federation_base.event_from_pdu_json`` (size/format checks,
   ``validate_canonicaljson`` in strict rooms, ``make_event_from_dict``);
3. the endpoint's checks: room, event ID (the reference hash from room version 3 on, via
   ``compute_event_reference_hash``), type, membership, ``state_key`` == ``sender``, origin;
4. signatures: ``signedjson.sign.verify_signed_json`` on ``prune_event(event).get_pdu_json()``
   (what ``Keyring.process_json`` verifies), then ``check_event_content_hash``;
5. auth: ``validate_event_for_room_version``, ``check_state_independent_auth_rules`` (its
   store answers from memory; the coroutine never suspends) and
   ``check_state_dependent_auth_rules`` against the auth events and again against the
   current state (the soft-fail check).

The stage ops time each step from the previous step's output. See ``_common.py`` for the
protocol.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, Iterable, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import synapse  # noqa: E402
from signedjson.key import decode_verify_key_bytes  # noqa: E402
from signedjson.sign import verify_signed_json  # noqa: E402
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS, EventFormatVersions  # noqa: E402
from synapse.crypto.event_signing import (  # noqa: E402
    check_event_content_hash,
    compute_event_reference_hash,
)
from synapse.event_auth import (  # noqa: E402
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
    validate_event_for_room_version,
)
from synapse.events import make_event_from_dict  # noqa: E402
from synapse.events.utils import prune_event  # noqa: E402
from synapse.federation.federation_base import event_from_pdu_json  # noqa: E402
from synapse.util.json import json_decoder  # noqa: E402
from unpaddedbase64 import decode_base64, encode_base64  # noqa: E402

logging.disable(logging.CRITICAL)

MAX_PDU_SIZE = 65536


class MemoryStore:
    """The one store method the state-independent auth rules call."""

    def __init__(self, events: Dict[str, Any]) -> None:
        self.events = events

    async def get_events(
        self,
        event_ids: Iterable[str],
        redact_behaviour: Any = None,
        get_prev_content: bool = False,
        allow_rejected: bool = False,
    ) -> Dict[str, Any]:
        return {i: self.events[i] for i in event_ids if i in self.events}


def drive(coro: Any) -> Any:
    """Runs a coroutine that never waits on anything."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


class Room:
    def __init__(self, data: Dict[str, Any]) -> None:
        self.room_id: str = data["room_id"]
        self.version = KNOWN_ROOM_VERSIONS[data["room_version"]]
        self.events: Dict[str, Any] = {}
        self.state: Dict[tuple, Any] = {}
        for e in data["events"]:
            ev = make_event_from_dict(e["pdu"], self.version)
            if ev.event_id != e["event_id"]:
                raise SystemExit(f"synapse event id {ev.event_id} != {e['event_id']}")
            self.events[ev.event_id] = ev
            if ev.is_state():
                self.state[(ev.type, ev.state_key)] = ev
        self.store = MemoryStore(self.events)
        self.current_state = list(self.state.values())
        self.hash_ids = self.version.event_format != EventFormatVersions.ROOM_V1_V2
        self.urlsafe = self.version.event_format not in (
            EventFormatVersions.ROOM_V1_V2,
            EventFormatVersions.ROOM_V3,
        )


def main() -> None:
    data = _common.load(sys.argv[1])
    rooms = {r["room_id"]: Room(r) for r in data["rooms"]}
    origin: str = data["origin"]
    verify_key = decode_verify_key_bytes(data["key_id"], decode_base64(data["public_key"]))

    def event_id_of(room: Room, event: Any) -> str:
        if not room.hash_ids:
            return str(event.event_id)
        _, digest = compute_event_reference_hash(event)
        return "$" + encode_base64(digest, urlsafe=room.urlsafe)

    def auth(room: Room, event: Any) -> None:
        validate_event_for_room_version(event)
        drive(check_state_independent_auth_rules(room.store, event))
        auth_events = [room.events[i] for i in event.auth_event_ids()]
        check_state_dependent_auth_rules(event, auth_events)
        check_state_dependent_auth_rules(event, room.current_state)

    def pipeline(s: Dict[str, Any], i: int) -> bool:
        room = rooms[s["room_id"]]
        e = s["events"][i]
        body: bytes = e["body_bytes"]
        if len(body) > MAX_PDU_SIZE:
            return False
        pdu = json_decoder.decode(body.decode("utf-8"))
        event = event_from_pdu_json(pdu, room.version)
        if event.room_id != room.room_id:
            return False
        if event_id_of(room, event) != e["event_id"]:
            return False
        if event.type != "m.room.member" or event.content.get("membership") != "leave":
            return False
        if event.state_key != event.sender or event.sender.split(":", 1)[1] != origin:
            return False
        # The room's server ACL and the duplicate check, from memory.
        room.state.get(("m.room.server_acl", ""))
        if e["event_id"] in room.events:
            return False
        verify_signed_json(prune_event(event).get_pdu_json(), origin, verify_key)
        if not check_event_content_hash(event):
            return False
        auth(room, event)
        return True

    # Stage inputs: each stage starts from the previous stage's output.
    prepared: Dict[str, List[Dict[str, Any]]] = {}
    for s in data["sets"]:
        if s["kind"] == "make_leave":
            continue
        room = rooms[s["room_id"]]
        rows = []
        for e in s["events"]:
            pdu = json_decoder.decode(e["body_bytes"].decode("utf-8"))
            event = event_from_pdu_json(dict(pdu), room.version)
            rows.append({"pdu": pdu, "event": event})
        prepared[s["name"]] = rows

    def stage_parse(s: Dict[str, Any], i: int) -> bool:
        return isinstance(json_decoder.decode(s["events"][i]["body_bytes"].decode("utf-8")), dict)

    def stage_build(s: Dict[str, Any], i: int) -> bool:
        room = rooms[s["room_id"]]
        return event_from_pdu_json(prepared[s["name"]][i]["pdu"], room.version) is not None

    def stage_content_hash(s: Dict[str, Any], i: int) -> bool:
        return bool(check_event_content_hash(prepared[s["name"]][i]["event"]))

    def stage_reference_hash(s: Dict[str, Any], i: int) -> bool:
        return compute_event_reference_hash(prepared[s["name"]][i]["event"]) is not None

    def stage_verify(s: Dict[str, Any], i: int) -> bool:
        event = prepared[s["name"]][i]["event"]
        verify_signed_json(prune_event(event).get_pdu_json(), origin, verify_key)
        return True

    def stage_auth(s: Dict[str, Any], i: int) -> bool:
        auth(rooms[s["room_id"]], prepared[s["name"]][i]["event"])
        return True

    import canonicaljson
    import signedjson

    info = {
        "python": sys.version.split()[0],
        "synapse": synapse.__version__,
        "canonicaljson": getattr(canonicaljson, "__version__", "?"),
        "signedjson": getattr(signedjson, "__version__", "?"),
    }
    ops = {
        "pipeline": pipeline,
        "parse": stage_parse,
        "build": stage_build,
        "content_hash": stage_content_hash,
        "reference_hash": stage_reference_hash,
        "verify": stage_verify,
        "auth": stage_auth,
    }
    _common.serve(ops, _common.by_name(data), info)


if __name__ == "__main__":
    main()
