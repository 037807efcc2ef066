"""Times matrix-leave through its Python binding (ctypes over the C ABI): send_leave and
make_leave on a :class:`matrix_leave.Resident` over a :class:`matrix_leave.MemoryRoomStore`
holding the same rooms as the Rust benchmarks. The store keeps nothing it is asked to store,
so the same leave can be submitted again without becoming a duplicate.

Run by ``mxl-bench`` with ``PYTHONPATH`` pointing at ``bindings/python`` and
``MATRIX_LEAVE_LIBRARY`` at the release library. See ``_common.py`` for the protocol.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import matrix_leave as mxl  # noqa: E402


class BenchRooms(mxl.MemoryRoomStore):
    """The in-memory store, less the storing: accepted leaves are only counted."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
        self.count += 1


def main() -> None:
    data = _common.load(sys.argv[1])
    rooms = BenchRooms()
    for room in data["rooms"]:
        for ev in room["events"]:
            eid = rooms.add_event(ev["pdu"], room["room_version"])
            if eid != ev["event_id"]:
                raise SystemExit(f"event id {eid} != {ev['event_id']}")
    keys = mxl.MemoryKeyStore()
    keys.add_key(data["origin"], data["key_id"], data["public_key"])
    resident = mxl.Resident(data["resident"], None, rooms, keys)
    origin = data["origin"]
    user = data["user_id"]

    def send_leave(s: Dict[str, Any], i: int) -> bool:
        e = s["events"][i]
        status, _body = resident.send_leave(s["room_id"], e["event_id"], e["body_bytes"], origin)
        return status == 200

    def make_leave(s: Dict[str, Any], i: int) -> bool:
        status, _body = resident.make_leave(s["room_id"], user, origin)
        return status == 200

    info = {
        "python": sys.version.split()[0],
        "library": mxl.library_path(),
        "library_version": mxl.library_version(),
    }
    _common.serve({"send_leave": send_leave, "make_leave": make_leave}, _common.by_name(data), info)


if __name__ == "__main__":
    main()
