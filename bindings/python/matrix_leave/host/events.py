"""Building and signing the room events the reference homeserver creates itself: a new
room's initial state, and invites.

Room-version differences handled here:

* versions 1 and 2: each event carries ``event_id`` (``$random:server``), and
  ``prev_events`` / ``auth_events`` are ``[event_id, {"sha256": reference hash}]`` pairs;
* version 3 and later: event IDs are computed from the event (``event_id()``) and
  references are plain IDs;
* version 11 and later: the create event has no ``creator`` in its content;
* version 12: the create event has no ``room_id``; the room ID is derived from it
  (``room_id_from_create_event``), the create event is never listed in ``auth_events``,
  and the creator is not listed in the power levels' ``users`` (creators have unlimited
  power there).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import matrix_leave as mxl

V1_STYLE = ("1", "2")


def ids_in_event(room_version: str) -> bool:
    """Whether events of this room version carry their own ``event_id``."""
    return room_version in V1_STYLE


def create_in_auth_events(room_version: str) -> bool:
    return room_version != "12"


def room_id_from_create(room_version: str) -> bool:
    return room_version == "12"


def _version_number(room_version: str) -> int:
    try:
        return int(room_version)
    except ValueError:
        return 0


def _b64(data: Any) -> str:
    if isinstance(data, (bytes, bytearray)):
        return base64.b64encode(bytes(data)).decode("ascii").rstrip("=")
    return str(data)


def reference_hash_b64(event: dict, room_version: str) -> str:
    """The event's reference hash in unpadded base64 (the binding may give raw bytes or
    the base64 text)."""
    return _b64(mxl.reference_hash(event, room_version))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Built:
    """A signed event and its ID."""

    event_id: str
    event: dict
    depth: int


class EventBuilder:
    """Makes hashed and signed events of this server."""

    def __init__(self, server_name: str, key: Any) -> None:
        self.server_name = server_name
        self.key = key

    def reference(self, event_id: str, event: dict, room_version: str) -> Any:
        """How an event is referenced in ``prev_events`` / ``auth_events``."""
        if ids_in_event(room_version):
            return [event_id, {"sha256": reference_hash_b64(event, room_version)}]
        return event_id

    def finish(self, event: dict, room_version: str) -> Built:
        """Adds the event ID (versions 1 and 2), hashes and signs; computes the ID."""
        event = dict(event)
        if ids_in_event(room_version):
            event["event_id"] = f"${secrets.token_urlsafe(15)}:{self.server_name}"
        signed = mxl.sign_event(event, room_version, self.server_name, self.key)
        eid = mxl.event_id(signed, room_version)
        return Built(eid, signed, int(signed.get("depth", 0)))

    def event(
        self,
        *,
        room_id: Optional[str],
        room_version: str,
        event_type: str,
        sender: str,
        content: dict,
        state_key: Optional[str],
        prev: list[Built],
        auth: list[Built],
        depth: Optional[int] = None,
    ) -> Built:
        ev: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": content,
            "origin": self.server_name,
            "origin_server_ts": now_ms(),
            "depth": depth if depth is not None else max([p.depth for p in prev], default=0) + 1,
            "prev_events": [self.reference(p.event_id, p.event, room_version) for p in prev],
            "auth_events": [self.reference(a.event_id, a.event, room_version) for a in auth],
        }
        if room_id is not None:
            ev["room_id"] = room_id
        if state_key is not None:
            ev["state_key"] = state_key
        return self.finish(ev, room_version)

    def create_room(self, room_version: str, creator: str) -> tuple[str, list[Built]]:
        """The initial events of a new room: create, the creator's join, power levels
        (creator at 100), join rules (invite) and history visibility (shared), each
        following the previous one. Returns the room ID and the events in order."""
        n = _version_number(room_version)
        create_content: dict[str, Any] = {"room_version": room_version}
        if n < 11:
            create_content["creator"] = creator
        if room_id_from_create(room_version):
            create = self.event(
                room_id=None,
                room_version=room_version,
                event_type="m.room.create",
                sender=creator,
                content=create_content,
                state_key="",
                prev=[],
                auth=[],
                depth=1,
            )
            room_id = mxl.room_id_from_create_event(create.event)
        else:
            room_id = f"!{secrets.token_urlsafe(12)}:{self.server_name}"
            create = self.event(
                room_id=room_id,
                room_version=room_version,
                event_type="m.room.create",
                sender=creator,
                content=create_content,
                state_key="",
                prev=[],
                auth=[],
                depth=1,
            )
        with_create = [create] if create_in_auth_events(room_version) else []

        join = self.event(
            room_id=room_id,
            room_version=room_version,
            event_type="m.room.member",
            sender=creator,
            content={"membership": "join"},
            state_key=creator,
            prev=[create],
            auth=with_create,
        )
        users = {} if room_id_from_create(room_version) else {creator: 100}
        power_levels = self.event(
            room_id=room_id,
            room_version=room_version,
            event_type="m.room.power_levels",
            sender=creator,
            content={
                "users": users,
                "users_default": 0,
                "events": {},
                "events_default": 0,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 0,
            },
            state_key="",
            prev=[join],
            auth=with_create + [join],
        )
        join_rules = self.event(
            room_id=room_id,
            room_version=room_version,
            event_type="m.room.join_rules",
            sender=creator,
            content={"join_rule": "invite"},
            state_key="",
            prev=[power_levels],
            auth=with_create + [power_levels, join],
        )
        history = self.event(
            room_id=room_id,
            room_version=room_version,
            event_type="m.room.history_visibility",
            sender=creator,
            content={"history_visibility": "shared"},
            state_key="",
            prev=[join_rules],
            auth=with_create + [power_levels, join],
        )
        return room_id, [create, join, power_levels, join_rules, history]

    def member(
        self,
        *,
        room_id: str,
        room_version: str,
        sender: str,
        target: str,
        membership: str,
        prev: list[Built],
        state: Callable[[str, str], Optional[Built]],
    ) -> Built:
        """A membership event after ``prev``, with the auth events the selection algorithm
        picks from ``state`` (a lookup of current state by type and state key)."""
        wanted: list[tuple[str, str]] = []
        if create_in_auth_events(room_version):
            wanted.append(("m.room.create", ""))
        wanted += [("m.room.power_levels", ""), ("m.room.member", sender)]
        if target != sender:
            wanted.append(("m.room.member", target))
        if membership in ("join", "invite", "knock"):
            wanted.append(("m.room.join_rules", ""))
        auth = [b for b in (state(t, k) for t, k in wanted) if b is not None]
        return self.event(
            room_id=room_id,
            room_version=room_version,
            event_type="m.room.member",
            sender=sender,
            content={"membership": membership},
            state_key=target,
            prev=prev,
            auth=auth,
        )
