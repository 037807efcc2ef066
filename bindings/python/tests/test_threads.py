"""One Resident shared by eight Python threads: mixed make_leave and send_leave calls, good
and bad, each answered as it is when made alone, and each accepted leave stored once."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import matrix_leave as mxl
from _vectors import add_leave_auth_room, body_bytes, leave_auth_keys, load

THREADS = 8
CALLS = 4000

#: (kind, arguments, the leave_auth room it is about)
Request = Tuple[str, Tuple[Any, ...], str]


def _rooms_and_requests() -> Tuple[List[str], List[Request]]:
    file = load("leave_auth.json")
    rooms = sorted(file["rooms"])
    requests: List[Request] = []
    for case in file["cases"]:
        req = case["input"]["request"]
        body = body_bytes(case["input"]["event"])
        args = (req["path_room_id"], req["path_event_id"], body, req["origin"])
        requests.append(("send", args, case["input"]["room"]))
    for name in rooms:
        room_id = file["rooms"][name]["room_id"]
        for origin in ("remote.example", "other.example"):
            requests.append(("make", (room_id, "@user:remote.example", origin), name))
    return rooms, requests


def _fresh(rooms: List[str]) -> Tuple[mxl.MemoryRoomStore, mxl.MemoryKeyStore]:
    store = mxl.MemoryRoomStore()
    for name in rooms:
        add_leave_auth_room(store, name)
    return store, leave_auth_keys()


def _answer(resident: mxl.Resident, request: Request) -> Tuple[int, str]:
    kind, args, _room = request
    if kind == "send":
        status, body = resident.send_leave(*args)
    else:
        status, body = resident.make_leave(*args)
    errcode = "" if status == 200 else json.loads(body)["errcode"]
    return status, errcode


def test_eight_threads_share_one_resident() -> None:
    rooms, requests = _rooms_and_requests()

    # Alone: each request on a fresh copy of its room, then on a store where every good leave
    # is already stored. A request whose answer differs between the two depends on order (a
    # leave's make_leave, or a tampered copy of a leave answered as its stored duplicate); it
    # is left out.
    keys = leave_auth_keys()
    fresh = []
    for r in requests:
        one, _ = _fresh([r[2]])
        with mxl.Resident("resident.example", None, one, keys) as resident:
            fresh.append(_answer(resident, r))
    store, keys = _fresh(rooms)
    with mxl.Resident("resident.example", None, store, keys) as resident:
        for r in requests:
            _answer(resident, r)
        after = [_answer(resident, r) for r in requests]
    good_ids = {(s.room_id, s.event_id) for s in store.stored}
    assert len(good_ids) >= 20
    pool = [r for r, a, b in zip(requests, fresh, after) if a == b]
    expected = {id(r): a for r, a, b in zip(requests, fresh, after) if a == b}
    assert len(pool) > 200

    store, keys = _fresh(rooms)
    rng = random.Random(7)
    picks = [rng.randrange(len(pool)) for _ in range(CALLS)]
    failures: List[str] = []
    lock = threading.Lock()

    with mxl.Resident("resident.example", None, store, keys) as resident:

        def work(chunk: List[int]) -> None:
            for i in chunk:
                got = _answer(resident, pool[i])
                if got != expected[id(pool[i])]:
                    with lock:
                        failures.append(f"{pool[i][0]} {pool[i][1][:2]}: {got} != {expected[id(pool[i])]}")

        chunks = [picks[t::THREADS] for t in range(THREADS)]
        with ThreadPoolExecutor(max_workers=THREADS) as ex:
            list(ex.map(work, chunks))

    assert not failures, "\n".join(failures[:20])
    stored: Dict[Tuple[str, str], int] = {}
    for s in store.stored:
        stored[(s.room_id, s.event_id)] = stored.get((s.room_id, s.event_id), 0) + 1
    assert all(n == 1 for n in stored.values()), stored
    assert set(stored) <= good_ids
