"""Ownership of native objects: close, ``with``, garbage collection, use after close, and a
Resident shared between threads."""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import pytest

import matrix_leave as mxl
from matrix_leave import resident as resident_module
from _vectors import add_leave_auth_room, body_bytes, leave_auth_keys, load, spec_seed


@pytest.fixture
def frees(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Records each native free of a SigningKey or Resident by class name."""
    seen: List[str] = []
    for cls in (mxl.SigningKey, mxl.Resident):
        original = cls.__dict__["_free"].__func__

        def counting(klass: Any, ptr: Any, _original: Any = original) -> None:
            seen.append(klass.__name__)
            _original(klass, ptr)

        monkeypatch.setattr(cls, "_free", classmethod(counting))
    return seen


def test_signing_key_close_twice_and_use_after_close(frees: List[str]) -> None:
    key = mxl.SigningKey.from_seed(spec_seed(), "ed25519:1")
    assert not key.closed
    key.close()
    key.close()
    assert key.closed
    assert frees == ["SigningKey"]
    with pytest.raises(mxl.HandleClosedError):
        key.seed
    with pytest.raises(mxl.HandleClosedError):
        key.sign_json({}, "a.example")
    with pytest.raises(mxl.HandleClosedError):
        mxl.sign_event({"type": "x"}, "10", "a.example", key)
    with pytest.raises(mxl.HandleClosedError):
        mxl.xmatrix_authorization(key, "a.example", "b.example", "GET", "/x")
    with pytest.raises(mxl.HandleClosedError):
        with key:
            pass
    # The cached ID and public key stay readable.
    assert key.key_id == "ed25519:1"
    assert "closed" in repr(key)


def test_with_block_closes(frees: List[str]) -> None:
    with mxl.SigningKey.generate("ed25519:auto") as key:
        assert len(key.seed) == 32
    assert key.closed
    assert frees == ["SigningKey"]


def test_garbage_collection_frees(frees: List[str]) -> None:
    key = mxl.SigningKey.generate("ed25519:gc")
    ref = weakref.ref(key)
    del key
    gc.collect()
    assert ref() is None
    assert frees == ["SigningKey"]


def test_signing_key_round_trips_its_seed() -> None:
    seed = spec_seed()
    with mxl.SigningKey.from_seed(seed, "ed25519:1") as key:
        assert key.seed == seed
        assert key.public_key == load("signing.json")["keys"]["spec_test_key"]["public_key_b64"]
        assert repr(key) == f"<SigningKey ed25519:1 {key.public_key}>"
    with pytest.raises(mxl.MatrixError) as short:
        mxl.SigningKey.from_seed(seed[:31], "ed25519:1")
    assert short.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(mxl.MatrixError):
        mxl.SigningKey.generate("rsa:1")
    with pytest.raises(TypeError):
        mxl.SigningKey()


def _callback_states() -> Dict[int, Any]:
    return resident_module._states


def test_resident_close_runs_the_finalizer(frees: List[str]) -> None:
    before = set(_callback_states())
    resident = mxl.Resident("resident.example", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore())
    assert len(_callback_states()) == len(before) + 1
    resident.close()
    resident.close()
    assert frees == ["Resident"]
    # mxl_resident_free called userdata_free, which forgot the callback state.
    assert set(_callback_states()) == before
    with pytest.raises(mxl.HandleClosedError):
        resident.make_leave("!r:x", "@u:y", "y")
    with pytest.raises(mxl.HandleClosedError):
        resident.send_leave("!r:x", "$e", b"{}", "y")


def test_resident_garbage_collection_frees(frees: List[str]) -> None:
    before = set(_callback_states())
    resident = mxl.Resident("resident.example", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore())
    ref = weakref.ref(resident)
    del resident
    gc.collect()
    assert ref() is None
    assert frees == ["Resident"]
    assert set(_callback_states()) == before


def test_failed_construction_leaks_no_state() -> None:
    before = set(_callback_states())
    with pytest.raises(mxl.MatrixError):
        mxl.Resident("bad name!", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore())
    gc.collect()
    assert set(_callback_states()) == before


def test_close_during_a_call_waits_for_it(frees: List[str]) -> None:
    """Closing a Resident from inside its own callback (or from another thread while a call
    runs) defers the free until the call returns."""
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    holder: Dict[str, mxl.Resident] = {}

    class ClosingStore(mxl.MemoryRoomStore):
        def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
            holder["r"].close()
            assert frees == []  # still in use: not freed yet
            super().store_event(room_id, event_id, event, soft_failed)

    store = ClosingStore()
    add_leave_auth_room(store, case["input"]["room"])
    keys = leave_auth_keys()
    holder["r"] = mxl.Resident("resident.example", None, store, keys)
    req = case["input"]["request"]
    status, _ = holder["r"].send_leave(req["path_room_id"], req["path_event_id"], body_bytes(case["input"]["event"]), req["origin"])
    assert status == 200
    assert holder["r"].closed
    assert frees == ["Resident"]


def test_one_resident_serves_many_threads() -> None:
    """Accepted leave_auth cases in distinct rooms, sent concurrently through one Resident;
    in half of the rooms the store fails, and each thread sees only its own exception."""
    file = load("leave_auth.json")
    chosen: Dict[str, Dict[str, Any]] = {}
    for case in file["cases"]:
        if case["expected"]["send_leave"]["verdict"] == "accept" and case["input"]["room"] not in chosen:
            chosen[case["input"]["room"]] = case
    assert len(chosen) >= 8
    failing = {file["rooms"][name]["room_id"] for i, name in enumerate(sorted(chosen)) if i % 2}

    class RoomFailure(Exception):
        pass

    class SometimesFailing(mxl.MemoryRoomStore):
        def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
            if room_id in failing:
                raise RoomFailure(room_id)
            super().store_event(room_id, event_id, event, soft_failed)

    rooms = SometimesFailing()
    for name in chosen:
        add_leave_auth_room(rooms, name)
    keys = leave_auth_keys()

    barrier = threading.Barrier(len(chosen))

    with mxl.Resident("resident.example", None, rooms, keys) as resident:

        def send(case: Dict[str, Any]) -> Any:
            req = case["input"]["request"]
            barrier.wait()
            try:
                return resident.send_leave_detailed(
                    req["path_room_id"], req["path_event_id"], body_bytes(case["input"]["event"]), req["origin"]
                )
            except RoomFailure as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            results = list(pool.map(send, chosen.values()))

    for case, result in zip(chosen.values(), results):
        room_id = case["input"]["request"]["path_room_id"]
        if room_id in failing:
            assert isinstance(result, RoomFailure) and str(result) == room_id
        else:
            assert isinstance(result, mxl.SendLeaveResult) and result.status == 200, result
            assert result.accepted is not None and result.accepted.event_id == case["expected"]["event_id"]
    stored_rooms = sorted(s.room_id for s in rooms.stored)
    assert stored_rooms == sorted(file["rooms"][n]["room_id"] for n in chosen if file["rooms"][n]["room_id"] not in failing)
