"""In-memory implementations of :class:`~matrix_leave.RoomStore` and
:class:`~matrix_leave.KeyStore`, for tests, examples and small hosts."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

from .crypto import event_id as compute_event_id
from .crypto import room_id_from_create_event, verify_server_key_document

__all__ = ["MemoryKeyStore", "MemoryRoomStore", "StoredEvent"]


@dataclass(frozen=True)
class StoredEvent:
    """One call of :meth:`MemoryRoomStore.store_event`, as received."""

    room_id: str
    event_id: str
    event: Dict[str, Any]
    soft_failed: bool


@dataclass
class _Room:
    """One room: its events, current state and DAG tips."""

    version: str
    events: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    #: (type, state_key) -> event ID of the current state.
    state: Dict[Tuple[str, str], str] = field(default_factory=dict)
    #: Events in the DAG (not soft-failed), in the order they were added, with their depth.
    dag: Dict[str, int] = field(default_factory=dict)
    #: Event IDs named as prev_events by some event in the DAG.
    referenced: Set[str] = field(default_factory=set)


def _ref_id(ref: Any) -> Optional[str]:
    """The event ID of a prev_events entry: ``"$id"`` (v3+) or ``["$id", {hashes}]`` (v1, v2)."""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, (list, tuple)) and ref and isinstance(ref[0], str):
        return ref[0]
    return None


class MemoryRoomStore:
    """Rooms kept in memory, fed event by event with :meth:`add_event`.

    Tracks each room's current state, its forward extremities (events no other event names
    in ``prev_events``) and the servers with joined members. Events the library hands to
    :meth:`store_event` are recorded in :attr:`stored` and, unless soft-failed, become part
    of the room. Safe to use from several threads.
    """

    def __init__(self) -> None:
        """An empty store."""
        self._rooms: Dict[str, _Room] = {}
        self._lock = threading.RLock()
        #: Every store_event call received, in order.
        self.stored: List[StoredEvent] = []

    # -- feeding ---------------------------------------------------------------------------

    def add_event(self, event: Mapping[str, Any], room_version: str) -> str:
        """Adds an event to its room and returns its ID.

        Feed each room's events in order, the create event first. The ID comes from the
        library: the event's ``event_id`` in room versions 1 and 2, its reference hash from
        version 3 on. The room is the event's ``room_id``, or for a version 12 create event
        (which has none) the room ID the library derives from it.

        Raises:
            MatrixError: the library cannot compute the ID.
            ValueError: the room already exists with another room version.
        """
        ev = copy.deepcopy(dict(event))
        eid = compute_event_id(ev, room_version)
        room_id = ev.get("room_id")
        if not isinstance(room_id, str):
            room_id = room_id_from_create_event(ev)
        with self._lock:
            room = self._rooms.setdefault(room_id, _Room(room_version))
            if room.version != room_version:
                raise ValueError(f"room {room_id} has version {room.version}, not {room_version}")
            self._add_to_dag(room, eid, ev)
        return eid

    @staticmethod
    def _add_to_dag(room: _Room, eid: str, ev: Dict[str, Any]) -> None:
        """Makes `ev` part of the room: current state and extremities follow it."""
        room.events[eid] = ev
        depth = ev.get("depth")
        room.dag[eid] = depth if isinstance(depth, int) else 0
        for ref in ev.get("prev_events") or []:
            ref_id = _ref_id(ref)
            if ref_id is not None:
                room.referenced.add(ref_id)
        state_key = ev.get("state_key")
        if isinstance(state_key, str) and isinstance(ev.get("type"), str):
            room.state[(ev["type"], state_key)] = eid

    # -- inspection ------------------------------------------------------------------------

    def room_ids(self) -> List[str]:
        """The rooms in the store."""
        with self._lock:
            return list(self._rooms)

    def current_state(self, room_id: str) -> Dict[Tuple[str, str], str]:
        """The room's current state as ``{(type, state_key): event_id}``."""
        with self._lock:
            room = self._rooms.get(room_id)
            return {} if room is None else dict(room.state)

    def membership(self, room_id: str, user_id: str) -> Optional[str]:
        """The user's current membership in the room, or None."""
        event = self.state_event(room_id, "m.room.member", user_id)
        if event is None:
            return None
        content = event.get("content")
        value = content.get("membership") if isinstance(content, dict) else None
        return value if isinstance(value, str) else None

    # -- RoomStore -------------------------------------------------------------------------

    def room_version(self, room_id: str) -> Optional[str]:
        """The room's version, or None for an unknown room."""
        with self._lock:
            room = self._rooms.get(room_id)
            return None if room is None else room.version

    def state_event(self, room_id: str, event_type: str, state_key: str) -> Optional[Dict[str, Any]]:
        """The current state event of that type and state key, or None."""
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return None
            eid = room.state.get((event_type, state_key))
            return None if eid is None else room.events[eid]

    def get_event(self, room_id: str, event_id: str) -> Optional[Dict[str, Any]]:
        """An event of the room (soft-failed ones included), or None."""
        with self._lock:
            room = self._rooms.get(room_id)
            return None if room is None else room.events.get(event_id)

    def forward_extremities(self, room_id: str) -> List[Tuple[str, int]]:
        """The events of the room's DAG that no other event names in ``prev_events``."""
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return []
            return [(eid, depth) for eid, depth in room.dag.items() if eid not in room.referenced]

    def servers_in_room(self, room_id: str) -> List[str]:
        """The servers of the room's joined members, sorted."""
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return []
            servers = set()
            for (event_type, state_key), eid in room.state.items():
                if event_type != "m.room.member":
                    continue
                content = room.events[eid].get("content")
                if isinstance(content, dict) and content.get("membership") == "join":
                    _, sep, server = state_key.partition(":")
                    if sep and server:
                        servers.add(server)
            return sorted(servers)

    def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
        """Records the event in :attr:`stored` and adds it to the room; a soft-failed event
        is kept but changes neither the state nor the extremities.

        Raises:
            KeyError: the room is unknown.
        """
        with self._lock:
            room = self._rooms[room_id]
            self.stored.append(StoredEvent(room_id, event_id, event, soft_failed))
            if soft_failed:
                room.events[event_id] = event
            else:
                self._add_to_dag(room, event_id, event)


class MemoryKeyStore:
    """Remote servers' verify keys kept in memory. Safe to use from several threads."""

    def __init__(self) -> None:
        """An empty store."""
        self._keys: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add_key(
        self,
        server_name: str,
        key_id: str,
        public_key: str,
        valid_until_ts: Optional[int] = None,
        expired_ts: Optional[int] = None,
    ) -> None:
        """Adds (or replaces) one key of a server."""
        entry: Dict[str, Any] = {"key": public_key}
        if valid_until_ts is not None:
            entry["valid_until_ts"] = int(valid_until_ts)
        if expired_ts is not None:
            entry["expired_ts"] = int(expired_ts)
        with self._lock:
            self._keys.setdefault(server_name, {})[key_id] = entry

    def add_server_keys(
        self,
        document: Union[Mapping[str, Any], bytes],
        server_name: Optional[str] = None,
    ) -> Dict[str, Dict[str, Any]]:
        """Checks a ``GET /_matrix/key/v2/server`` document with the library and adds the
        keys it vouches for; returns them.

        `server_name` is the server the document was asked of; by default the one the
        document names.

        Raises:
            MatrixError: the document is not validly self-signed, or is about another
                server.
        """
        if server_name is None:
            parsed = json.loads(document) if isinstance(document, (bytes, bytearray)) else document
            server_name = str(parsed["server_name"])
        keys = verify_server_key_document(document, server_name)
        with self._lock:
            self._keys.setdefault(server_name, {}).update(copy.deepcopy(keys))
        return keys

    def get_server_keys(self, server_name: str) -> Dict[str, Dict[str, Any]]:
        """The server's keys, ``{key_id: {"key", "valid_until_ts"?, "expired_ts"?}}``."""
        with self._lock:
            return copy.deepcopy(self._keys.get(server_name, {}))
