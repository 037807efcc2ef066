"""The resident side through :class:`matrix_leave.Resident` over the in-memory stores:
every leave_auth.json case, the send_leave validation cases, templates, and what happens
when a Python callback fails."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import pytest

import matrix_leave as mxl
from _vectors import body_bytes, expected_answers, leave_auth_store, load, load_case, params, spec_seed

RESIDENT = "resident.example"


def _resident(store: mxl.MemoryRoomStore, keys: mxl.MemoryKeyStore, **options: Any) -> mxl.Resident:
    """A Resident for resident.example over the stores."""
    return mxl.Resident(RESIDENT, None, store, keys, **options)


# ---------------------------------------------------------------------------------------------
# leave_auth.json: every case through send_leave
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("leave_auth.json"))
def test_leave_auth_vectors_through_send_leave(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    store, keys = leave_auth_store(inp["room"])
    request = inp["request"]
    with _resident(store, keys) as resident:
        result = resident.send_leave_detailed(
            request["path_room_id"], request["path_event_id"], body_bytes(inp["event"]), request["origin"]
        )
    sl = exp["send_leave"]
    assert (result.status, result.errcode or "") in expected_answers(sl), result
    if result.status != 200:
        assert store.stored == [], "a refused leave was stored"
        assert result.accepted is None
        assert json.loads(result.body)["errcode"] == result.errcode
        return
    assert json.loads(result.body) == sl["response_body"]
    assert len(store.stored) == 1, "an accepted leave is stored exactly once"
    stored = store.stored[0]
    assert stored.event_id == exp["event_id"]
    assert stored.room_id == store.room_ids()[0]
    redacted = bool(sl.get("stored_event_redacted", False))
    assert stored.event == exp.get("stored_event", inp["event"])
    assert result.accepted is not None
    assert result.accepted.event_id == exp["event_id"]
    assert result.accepted.event == stored.event
    assert result.accepted.redacted == redacted
    assert result.accepted.duplicate is False
    assert request["origin"] not in result.accepted.relay_to
    assert RESIDENT not in result.accepted.relay_to
    if not stored.soft_failed:
        assert store.membership(stored.room_id, inp["event"]["state_key"]) == "leave"


def test_send_leave_tuple_api_and_duplicates() -> None:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    store, keys = leave_auth_store(case["input"]["room"])
    req = case["input"]["request"]
    body = body_bytes(case["input"]["event"])
    with _resident(store, keys) as resident:
        status, answer = resident.send_leave(req["path_room_id"], req["path_event_id"], body, req["origin"])
        assert (status, json.loads(answer)) == (200, case["expected"]["send_leave"]["response_body"])
        # The same leave again over v1: the spec's v1 answer `[200, {}]`, nothing stored.
        again = resident.send_leave_detailed(req["path_room_id"], req["path_event_id"], body, req["origin"], 1)
    assert (again.status, json.loads(again.body)) == (200, [200, {}])
    assert again.accepted is not None and again.accepted.duplicate
    assert again.accepted.relay_to == []
    assert len(store.stored) == 1


def test_v1_endpoint_can_be_switched_off() -> None:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    store, keys = leave_auth_store(case["input"]["room"])
    req = case["input"]["request"]
    with _resident(store, keys, enable_v1=False) as resident:
        v1 = resident.send_leave_detailed(
            req["path_room_id"], req["path_event_id"], body_bytes(case["input"]["event"]), req["origin"], 1
        )
    assert (v1.status, v1.errcode) == (404, "M_UNRECOGNIZED")
    assert store.stored == []


def test_body_size_boundary_is_65536_inclusive() -> None:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    req = case["input"]["request"]
    body = body_bytes(case["input"]["event"])
    for size, status in ((65535, 200), (65536, 200), (65537, 413)):
        store, keys = leave_auth_store(case["input"]["room"])
        padded = body + b" " * (size - len(body))  # insignificant whitespace: same event
        with _resident(store, keys) as resident:
            result = resident.send_leave_detailed(req["path_room_id"], req["path_event_id"], padded, req["origin"])
        assert result.status == status, (size, result)
        if status == 413:
            assert result.errcode == "M_TOO_LARGE"


@pytest.mark.parametrize("api_version", [3, 0, -1, True, False, "2", 2.0, 2.7, 2**32 + 2, 2**32 + 1, None])
def test_api_version_must_be_exactly_the_int_1_or_2(api_version: Any) -> None:
    # 2**32 + 2 would pass as 2 through the C uint32_t, True as 1, "2" and 2.7 through int():
    # all are refused before the library is called, and nothing is stored.
    store, keys = leave_auth_store("v10/invited")
    with _resident(store, keys) as resident:
        with pytest.raises(ValueError, match="^api_version must be 1 or 2$"):
            resident.send_leave("!r:x", "$e", b"{}", "remote.example", api_version=api_version)
        with pytest.raises(ValueError, match="^api_version must be 1 or 2$"):
            resident.send_leave_detailed("!r:x", "$e", b"{}", "remote.example", api_version)
    assert store.stored == []


def test_api_versions_1_and_2_are_accepted() -> None:
    store, keys = leave_auth_store("v10/invited")
    with _resident(store, keys) as resident:
        for api_version in (1, 2):
            status, _ = resident.send_leave("!unknown:x", "$e", b"{}", "remote.example", api_version=api_version)
            assert status == 404


def test_nul_in_a_path_parameter_is_a_400_not_an_exception() -> None:
    store, keys = leave_auth_store("v10/invited")
    with _resident(store, keys) as resident:
        result = resident.send_leave_detailed("!r\0:x", "$e", b"{}", "remote.example")
        made = resident.make_leave_detailed("!r:x", "@u\0:y", "remote.example")
    assert (result.status, result.errcode) == (400, "M_INVALID_PARAM")
    assert json.loads(result.body)["errcode"] == "M_INVALID_PARAM"
    assert (made.status, made.errcode) == (400, "M_INVALID_PARAM")
    with pytest.raises(TypeError):
        resident_body: Any = "not bytes"
        _resident(*leave_auth_store("v10/invited")).send_leave("!r:x", "$e", resident_body, "remote.example")


# ---------------------------------------------------------------------------------------------
# make_leave
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [str(n) for n in range(1, 13)])
def test_make_leave_template_per_version(version: str) -> None:
    file = load("leave_auth.json")
    room = file["rooms"][f"v{version}/joined"]
    store, keys = leave_auth_store(f"v{version}/joined")
    with _resident(store, keys) as resident:
        result = resident.make_leave_detailed(room["room_id"], "@user:remote.example", "remote.example")
        status, body = resident.make_leave(room["room_id"], "@user:remote.example", "remote.example")
    assert (result.status, result.errcode) == (200, None)
    # The tuple API gives a template too (with its own timestamp, and for v1/v2 event ID).
    assert status == 200 and json.loads(body)["room_version"] == version
    template = json.loads(result.body)
    assert template["room_version"] == version
    ev = template["event"]
    assert ev["type"] == "m.room.member"
    assert ev["content"] == {"membership": "leave"}
    assert ev["sender"] == ev["state_key"] == "@user:remote.example"
    assert ev["room_id"] == room["room_id"]
    assert "hashes" not in ev and "signatures" not in ev
    assert ev["depth"] == max(e["pdu"]["depth"] for e in room["events"]) + 1
    # Completing the template on the leaving side gives a leave the resident accepts.
    key = mxl.SigningKey.from_seed(spec_seed(), "ed25519:1")
    done = mxl.complete_leave_template(result.body, room["room_id"], "@user:remote.example", "remote.example", key)
    with _resident(store, keys) as resident:
        sent = resident.send_leave_detailed(
            room["room_id"], done.event_id, body_bytes(done.event), "remote.example"
        )
    assert sent.status == 200, sent
    assert [s.event_id for s in store.stored] == [done.event_id]


@pytest.mark.parametrize(
    "room,status,errcode",
    [
        ("v10/left", 403, "M_FORBIDDEN"),
        ("v10/kicked", 403, "M_FORBIDDEN"),
        ("v10/banned", 403, "M_FORBIDDEN"),
        ("v10/none", 403, "M_FORBIDDEN"),
        ("v10/invited", 200, None),
        ("v10/knocked", 200, None),
    ],
)
def test_make_leave_only_for_members_who_can_leave(room: str, status: int, errcode: Optional[str]) -> None:
    # From leave_auth.json: self-leave is allowed from invite, join and knock, and refused
    # after leave, kick, ban or with no membership.
    room_id = load("leave_auth.json")["rooms"][room]["room_id"]
    store, keys = leave_auth_store(room)
    with _resident(store, keys) as resident:
        result = resident.make_leave_detailed(room_id, "@user:remote.example", "remote.example")
    assert (result.status, result.errcode) == (status, errcode)


# ---------------------------------------------------------------------------------------------
# send_leave_validation.json: a v11 room built from the file's state
# ---------------------------------------------------------------------------------------------


def _validation_room() -> Tuple[mxl.MemoryRoomStore, mxl.MemoryKeyStore, str, str]:
    """The case file's room, built event by event and signed with the spec key."""
    file = load_case("send_leave_validation.json")
    room_id, version = file["room"]["room_id"], file["room"]["room_version"]
    key = mxl.SigningKey.from_seed(spec_seed(), "ed25519:1")
    store = mxl.MemoryRoomStore()
    ts, depth = 1_700_000_000_000, 0
    order = [
        "m.room.create/",
        "m.room.member/@carol:b.test",
        "m.room.power_levels/",
        "m.room.join_rules/",
        "m.room.member/@alice:a.test",
        "m.room.member/@dave:a.test",
    ]
    for entry in order:
        event_type, state_key = entry.split("/", 1)
        spec = file["state"][entry]
        if event_type == "m.room.create":
            sender, content = spec["sender"], spec["content"]
        elif event_type == "m.room.member":
            sender, content = state_key, {"membership": spec}
        else:
            sender, content = "@carol:b.test", spec
        auth: List[str] = []
        if event_type != "m.room.create":
            for t, k in (("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", ""), ("m.room.member", sender)):
                found = store.current_state(room_id).get((t, k))
                if found:
                    auth.append(found)
        depth += 1
        ts += 1000
        event = {
            "type": event_type,
            "state_key": state_key,
            "sender": sender,
            "room_id": room_id,
            "content": content,
            "origin_server_ts": ts,
            "depth": depth,
            "auth_events": auth,
            "prev_events": [e for e, _ in store.forward_extremities(room_id)],
        }
        store.add_event(mxl.sign_event(event, version, sender.split(":", 1)[1], key), version)
    keys = mxl.MemoryKeyStore()
    for server in ("a.test", "b.test", "c.test"):
        keys.add_key(server, "ed25519:1", key.public_key)
    return store, keys, room_id, version


def _validation_params() -> List[Any]:
    return [pytest.param(c, id=c["id"]) for c in load_case("send_leave_validation.json")["cases"]]


@pytest.mark.parametrize("case", _validation_params())
def test_send_leave_validation_cases(case: Dict[str, Any]) -> None:
    file = load_case("send_leave_validation.json")
    resident_server = file["room"]["resident_server"]
    expect = case["expect"]
    origin = case["origin"]
    if case["id"].startswith("ML-"):
        store, keys, room_id, _ = _validation_room()
        room, user = case["endpoint"].rsplit("/", 2)[1:]
        if case.get("resident_joined") is False:
            # The resident's last member has left.
            carol = store.state_event(room_id, "m.room.member", "@carol:b.test")
            assert carol is not None
            carol["content"] = {"membership": "leave"}
        with mxl.Resident(resident_server, None, store, keys) as resident:
            result = resident.make_leave_detailed(room, user, origin)
        assert result.status == expect["status"], result
        if "errcode" in expect:
            assert result.errcode == expect["errcode"]
        if result.status == 200:
            body = json.loads(result.body)
            assert all(k in body for k in expect["body_has"])
            assert not {"signatures", "hashes", "event_id"} & set(body["event"])
            for k, v in expect["event_must_have"].items():
                assert body["event"][k] == v
        return
    for api in (2, 1):
        store, keys, room_id, version = _validation_room()
        event = dict(case["event"])
        event.setdefault("room_id", room_id)
        event["origin_server_ts"] = 1_700_000_100_000
        event["depth"] = 7
        sender = event["sender"]
        state = store.current_state(room_id)
        # The auth events of a leave: create, power levels, the sender's membership.
        event["auth_events"] = [
            state[k] for k in (("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", sender)) if k in state
        ]
        event["prev_events"] = [e for e, _ in store.forward_extremities(room_id)]
        given = event.pop("signatures", None)
        with mxl.SigningKey.from_seed(spec_seed(), "ed25519:1") as key:
            signed = mxl.sign_event(event, version, sender.split(":", 1)[1], key)
        if given is not None:
            signed["signatures"] = given
        event_id = case.get("path_event_id") or mxl.event_id(signed, version)
        path_room = case.get("path_room_id", room_id)
        with mxl.Resident(resident_server, None, store, keys) as resident:
            sent = resident.send_leave_detailed(path_room, event_id, body_bytes(signed), origin, api)
        assert (sent.status, sent.errcode) == (expect["status"], expect.get("errcode")), (api, sent)
        if sent.status == 200:
            want = expect["body_v2"] if api == 2 else expect["body_v1"]
            assert json.loads(sent.body) == want
            assert sent.accepted is not None and origin not in sent.accepted.relay_to
            assert len(store.stored) == 1
        else:
            assert store.stored == []


# ---------------------------------------------------------------------------------------------
# Python callbacks that fail
# ---------------------------------------------------------------------------------------------


class Boom(Exception):
    """The exception the failing stores raise."""


class FailingRooms(mxl.MemoryRoomStore):
    """A room store whose method `site` raises."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def _maybe_fail(self, site: str) -> None:
        if self.site == site:
            raise Boom(site)

    def room_version(self, room_id: str) -> Optional[str]:
        self._maybe_fail("room_version")
        return super().room_version(room_id)

    def state_event(self, room_id: str, event_type: str, state_key: str) -> Optional[Dict[str, Any]]:
        self._maybe_fail("state_event")
        return super().state_event(room_id, event_type, state_key)

    def get_event(self, room_id: str, event_id: str) -> Optional[Dict[str, Any]]:
        self._maybe_fail("get_event")
        return super().get_event(room_id, event_id)

    def forward_extremities(self, room_id: str) -> List[Tuple[str, int]]:
        self._maybe_fail("forward_extremities")
        return super().forward_extremities(room_id)

    def servers_in_room(self, room_id: str) -> List[str]:
        self._maybe_fail("servers_in_room")
        return super().servers_in_room(room_id)

    def store_event(self, room_id: str, event_id: str, event: Dict[str, Any], soft_failed: bool) -> None:
        self._maybe_fail("store_event")
        super().store_event(room_id, event_id, event, soft_failed)


class FailingKeys(mxl.MemoryKeyStore):
    """A key store that raises while `failing` is set."""

    failing = False

    def get_server_keys(self, server_name: str) -> Dict[str, Dict[str, Any]]:
        if self.failing:
            raise Boom("server_keys")
        return super().get_server_keys(server_name)


def _failing_setup(site: str) -> Tuple[FailingRooms, FailingKeys, Dict[str, Any]]:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    plain, plain_keys = leave_auth_store(case["input"]["room"])
    rooms = FailingRooms("")
    for entry in load("leave_auth.json")["rooms"][case["input"]["room"]]["events"]:
        rooms.add_event(entry["pdu"], case["room_version"])
    keys = FailingKeys()
    for server in ("remote.example", "resident.example"):
        for key_id, k in plain_keys.get_server_keys(server).items():
            keys.add_key(server, key_id, k["key"])
    rooms.site = site
    keys.failing = site == "server_keys"
    return rooms, keys, case


@pytest.mark.parametrize(
    "site", ["room_version", "state_event", "get_event", "servers_in_room", "server_keys", "store_event"]
)
def test_a_raising_callback_is_re_raised_and_nothing_is_stored(site: str) -> None:
    rooms, keys, case = _failing_setup(site)
    req = case["input"]["request"]
    body = body_bytes(case["input"]["event"])
    records: List[Tuple[int, str]] = []
    with mxl.Resident(RESIDENT, None, rooms, keys, logger=lambda level, msg: records.append((level, msg))) as resident:
        with pytest.raises(Boom) as info:
            resident.send_leave(req["path_room_id"], req["path_event_id"], body, req["origin"])
        assert str(info.value) == site
        # The traceback reaches into the failing callback.
        assert info.traceback[-1].name == "_maybe_fail" or site == "server_keys"
        assert rooms.stored == []
        # The library answered 500 M_UNKNOWN: it says so in its error-level log record and,
        # where exceptions carry notes, in a note on the exception.
        assert any(level == mxl.LOG_ERROR and "500 M_UNKNOWN" in msg for level, msg in records)
        if sys.version_info >= (3, 11):
            assert any(f"{site} callback" in n and "500 M_UNKNOWN" in n for n in info.value.__notes__)
        # The context is unharmed: once the store works, the same leave is accepted.
        rooms.site = ""
        keys.failing = False
        result = resident.send_leave_detailed(req["path_room_id"], req["path_event_id"], body, req["origin"])
    assert result.status == 200
    assert [s.event_id for s in rooms.stored] == [case["expected"]["event_id"]]


@pytest.mark.parametrize("site", ["room_version", "state_event", "forward_extremities", "servers_in_room", "get_event"])
def test_a_raising_callback_during_make_leave_is_re_raised(site: str) -> None:
    # A v1 room: its template names prev and auth events with their hashes, so the library
    # reads events too.
    spec = load("leave_auth.json")["rooms"]["v1/joined"]
    rooms = FailingRooms(site)
    rooms.site = ""
    for entry in spec["events"]:
        rooms.add_event(entry["pdu"], spec["room_version"])
    rooms.site = site
    with mxl.Resident(RESIDENT, None, rooms, mxl.MemoryKeyStore()) as resident:
        with pytest.raises(Boom):
            resident.make_leave(spec["room_id"], "@user:remote.example", "remote.example")
        rooms.site = ""
        assert resident.make_leave(spec["room_id"], "@user:remote.example", "remote.example")[0] == 200


def test_base_exceptions_from_callbacks_propagate_too() -> None:
    class Interrupting(mxl.MemoryRoomStore):
        def room_version(self, room_id: str) -> Optional[str]:
            raise KeyboardInterrupt

    with mxl.Resident(RESIDENT, None, Interrupting(), mxl.MemoryKeyStore()) as resident:
        with pytest.raises(KeyboardInterrupt):
            resident.make_leave("!r:resident.example", "@u:remote.example", "remote.example")


def test_a_callback_returning_the_wrong_type_is_reported() -> None:
    class Confused(mxl.MemoryRoomStore):
        def room_version(self, room_id: str) -> Optional[str]:
            return 10  # type: ignore[return-value]

    with mxl.Resident(RESIDENT, None, Confused(), mxl.MemoryKeyStore()) as resident:
        with pytest.raises(TypeError):
            resident.make_leave("!r:resident.example", "@u:remote.example", "remote.example")


def _accepted_case() -> Tuple[mxl.MemoryRoomStore, mxl.MemoryKeyStore, Dict[str, Any], bytes]:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    store, keys = leave_auth_store(case["input"]["room"])
    return store, keys, case, body_bytes(case["input"]["event"])


def test_a_raising_logger_does_not_change_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger that raises is reported through sys.unraisablehook; the call completes,
    the leave is accepted and stored once, and nothing is raised."""
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def logger(level: int, message: str) -> None:
        raise Boom("logger")

    store, keys, case, body = _accepted_case()
    req = case["input"]["request"]
    with mxl.Resident(RESIDENT, None, store, keys, logger=logger) as resident:
        result = resident.send_leave_detailed(req["path_room_id"], req["path_event_id"], body, req["origin"])
        # A refusal (logged at warn) is an answer too, not an exception.
        refused = resident.send_leave_detailed("!unknown:resident.example", "$e", b"{}", req["origin"])
        made = resident.make_leave_detailed("!unknown:resident.example", "@u:remote.example", req["origin"])
    assert result.status == 200 and result.accepted is not None
    assert [s.event_id for s in store.stored] == [case["expected"]["event_id"]]
    assert (refused.status, refused.errcode) == (404, "M_NOT_FOUND")
    assert made.status == 404
    assert reported, "the logger's exception was not reported"
    assert all(isinstance(r.exc_value, Boom) and "logger" in r.err_msg for r in reported)


def test_a_raising_logger_is_printed_by_the_default_unraisable_hook(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's own hook (pytest installs another one while tests run).
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)

    def logger(level: int, message: str) -> None:
        raise Boom("logger says no")

    store, keys, case, body = _accepted_case()
    req = case["input"]["request"]
    with mxl.Resident(RESIDENT, None, store, keys, logger=logger) as resident:
        status, _ = resident.send_leave(req["path_room_id"], req["path_event_id"], body, req["origin"])
    assert status == 200
    err = capfd.readouterr().err
    assert "matrix_leave logger callback" in err and "logger says no" in err


def test_a_store_failure_is_still_re_raised_when_the_logger_raises_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)

    def logger(level: int, message: str) -> None:
        raise ValueError("logger")

    rooms, keys, case = _failing_setup("store_event")
    req = case["input"]["request"]
    with mxl.Resident(RESIDENT, None, rooms, keys, logger=logger) as resident:
        with pytest.raises(Boom):
            resident.send_leave(req["path_room_id"], req["path_event_id"], body_bytes(case["input"]["event"]), req["origin"])
    assert rooms.stored == []


def test_a_keyboard_interrupt_in_the_logger_still_propagates() -> None:
    def logger(level: int, message: str) -> None:
        raise KeyboardInterrupt

    store, keys, case, body = _accepted_case()
    req = case["input"]["request"]
    with mxl.Resident(RESIDENT, None, store, keys, logger=logger) as resident:
        with pytest.raises(KeyboardInterrupt):
            resident.send_leave(req["path_room_id"], req["path_event_id"], body, req["origin"])


def test_default_logger_goes_to_the_logging_module(caplog: pytest.LogCaptureFixture) -> None:
    case = next(c for c in load("leave_auth.json")["cases"] if c["name"] == "v10_self_leave_prior_invite")
    store, keys = leave_auth_store(case["input"]["room"])
    req = case["input"]["request"]
    with caplog.at_level(1, logger="matrix_leave"):
        with _resident(store, keys) as resident:
            resident.send_leave(req["path_room_id"], req["path_event_id"], body_bytes(case["input"]["event"]), req["origin"])
    assert any(r.name == "matrix_leave" and case["expected"]["event_id"] in r.getMessage() for r in caplog.records)


def test_stores_satisfy_the_protocols() -> None:
    assert isinstance(mxl.MemoryRoomStore(), mxl.RoomStore)
    assert isinstance(mxl.MemoryKeyStore(), mxl.KeyStore)


def test_invalid_server_name_is_refused() -> None:
    with pytest.raises(mxl.MatrixError) as info:
        mxl.Resident("not a server name!", None, mxl.MemoryRoomStore(), mxl.MemoryKeyStore())
    assert info.value.errcode == "M_INVALID_PARAM"

