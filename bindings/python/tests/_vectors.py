"""Loading the shared vector and case files of the checkout, and building stores from them.

Expected values always come from these files (or from the Matrix specification where a file
has none); never from output of the code under test.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Tuple

import matrix_leave as mxl

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "tests" / "vectors"
CASES = ROOT / "tests" / "cases"


@lru_cache(maxsize=None)
def _read(path: Path) -> Any:
    """Parses a JSON file once per test session."""
    return json.loads(path.read_text(encoding="utf-8"))


def load(name: str) -> Dict[str, Any]:
    """``tests/vectors/<name>``."""
    data: Dict[str, Any] = _read(VECTORS / name)
    return data


def load_case(name: str) -> Dict[str, Any]:
    """``tests/cases/<name>``."""
    data: Dict[str, Any] = _read(CASES / name)
    return data


def cases(name: str) -> List[Dict[str, Any]]:
    """The ``cases`` of a vector file."""
    return list(load(name)["cases"])


def params(name: str, kind: str | None = None) -> List[Any]:
    """The cases of a vector file (optionally of one ``kind``) as pytest parameters,
    each with its case name as the test ID."""
    import pytest

    return [
        pytest.param(c, id=c["name"])
        for c in cases(name)
        if kind is None or c.get("kind") == kind
    ]


def spec_seed() -> bytes:
    """The seed of the specification's test key, from signing.json."""
    return bytes.fromhex(load("signing.json")["keys"]["spec_test_key"]["seed_hex"])


def spec_public_key() -> str:
    """The public key of the specification's test key, from signing.json."""
    return str(load("signing.json")["keys"]["spec_test_key"]["public_key_b64"])


def named_key(file: Dict[str, Any], name: str, key_id: str) -> mxl.SigningKey:
    """A key of a vector file's ``keys`` table; ``spec_test_key`` falls back to the
    specification's key where a file labels its table differently."""
    entry = file.get("keys", {}).get(name)
    seed = bytes.fromhex(entry["seed_hex"]) if entry else None
    if seed is None:
        assert name == "spec_test_key", f"no key {name}"
        seed = spec_seed()
    return mxl.SigningKey.from_seed(seed, key_id)


def add_leave_auth_room(store: mxl.MemoryRoomStore, room: str) -> str:
    """Adds one ``leave_auth.json`` room to `store`, checking each event ID the store
    computes against the file's; returns the room ID."""
    spec = load("leave_auth.json")["rooms"][room]
    for entry in spec["events"]:
        got = store.add_event(entry["pdu"], spec["room_version"])
        assert got == entry["event_id"], f"{room}: event ID {got} != {entry['event_id']}"
    return str(spec["room_id"])


def leave_auth_keys() -> mxl.MemoryKeyStore:
    """A key store with ``leave_auth.json``'s ``public_keys``."""
    keys = mxl.MemoryKeyStore()
    for server, server_keys in load("leave_auth.json")["public_keys"].items():
        for key_id, public in server_keys.items():
            keys.add_key(server, key_id, public)
    return keys


def leave_auth_store(room: str) -> Tuple[mxl.MemoryRoomStore, mxl.MemoryKeyStore]:
    """A room store holding one ``leave_auth.json`` room, and the file's keys."""
    store = mxl.MemoryRoomStore()
    room_id = add_leave_auth_room(store, room)
    assert store.room_ids() == [room_id]
    return store, leave_auth_keys()


def expected_answers(send_leave: Dict[str, Any]) -> List[Tuple[int, str]]:
    """The ``(status, errcode)`` answers a leave_auth case allows: the spec's
    ``spec_errcode`` with 400 where given, else Synapse's; plus any acceptable alternative.
    An accepted leave is ``(200, "")``."""
    if send_leave["verdict"] == "accept":
        out = [(int(send_leave["http_status"]), "")]
    elif "spec_errcode" in send_leave:
        out = [(400, str(send_leave["spec_errcode"]))]
    else:
        out = [(int(send_leave["http_status"]), str(send_leave["errcode"]))]
    for alt in send_leave.get("acceptable_alternatives", []):
        out.append((int(alt["http_status"]), str(alt["errcode"])))
    return out


def body_bytes(value: Any) -> bytes:
    """A JSON value as request body bytes, the way a remote server would send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
