"""End to end: two reference homeservers (``python -m matrix_leave.host``) on loopback.

A hosts the rooms (alice); B hosts bob. Each test checks what both servers stored, not just
the HTTP answers. The servers run as child processes and are always stopped.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("cryptography")

import matrix_leave  # noqa: E402
from matrix_leave.host.testing import HostError, HostPair  # noqa: E402

try:
    matrix_leave.canonical_json({})
except Exception as exc:  # pragma: no cover - the library is not built
    pytest.skip(f"the matrix-leave library cannot be loaded: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def pair():
    """A and B with default options, shared by the tests that do not need special flags."""
    with HostPair() as p:
        yield p


def alice(p: HostPair) -> str:
    return p.a.user("alice")


def bob(p: HostPair) -> str:
    return p.b.user("bob")


def invite_bob(p: HostPair, room_version: str) -> tuple[str, dict]:
    room_id = p.a.create_room(room_version, "alice")
    answer = p.a.invite(room_id, "alice", bob(p))
    assert answer["status"] == 200, answer
    return room_id, answer


def leaves_for(host, room_id: str) -> list[dict]:
    return [r for r in host.leaves_received() if r["room_id"] == room_id]


@pytest.mark.parametrize("room_version", ["1", "10", "11", "12"])
def test_reject_invite(pair: HostPair, room_version: str) -> None:
    room_id, answer = invite_bob(pair, room_version)
    if room_version == "12":
        assert ":" not in room_id  # derived from the create event
    else:
        assert room_id.endswith(":" + pair.a.server_name)

    # Both sides know about the invite before the rejection.
    invites = [i for i in pair.b.invites_received() if i["room_id"] == room_id]
    assert len(invites) == 1 and invites[0]["accepted"] and invites[0]["user_id"] == bob(pair)
    assert invites[0]["event_id"] == answer["event_id"]
    assert pair.b.members(room_id) == {bob(pair): "invite"}
    room = pair.a.room(room_id)
    assert room["room_version"] == room_version
    assert room["members"] == {alice(pair): "join", bob(pair): "invite"}
    invite_event_id = room["state"][f"m.room.member|{bob(pair)}"]
    assert invite_event_id == answer["event_id"]

    result = pair.b.leave(room_id, bob(pair))

    assert result["ok"] and result["accepted_remotely"], result
    assert result["server"] == pair.a.server_name and result["api_version"] == 2
    assert [s["action"] for s in result["steps"]] == ["make_leave", "send_leave_v2"]
    assert [s["status"] for s in result["steps"]] == [200, 200]
    event = result["event"]
    assert event["sender"] == event["state_key"] == bob(pair)
    assert event["content"]["membership"] == "leave"
    assert pair.b.server_name in event["signatures"]
    if room_version == "1":
        assert result["event_id"] == event["event_id"]
        assert result["event_id"].endswith(":" + pair.b.server_name)
    else:
        assert "event_id" not in event

    # A: the leave is the room's state for bob, is the new forward extremity, and the
    # attempt is recorded as accepted.
    room = pair.a.room(room_id)
    assert room["members"] == {alice(pair): "join", bob(pair): "leave"}
    assert room["state"][f"m.room.member|{bob(pair)}"] == result["event_id"]
    assert [e for e, _ in room["forward_extremities"]] == [result["event_id"]]
    records = leaves_for(pair.a, room_id)
    assert len(records) == 1
    rec = records[0]
    assert rec["accepted"] and rec["api"] == "v2" and rec["status"] == 200
    assert rec["event_id_in_url"] == rec["event_id"] == result["event_id"]
    assert rec["origin"] == pair.b.server_name
    assert rec["rejected_because"] is None
    assert rec["soft_failed"] is False and rec["duplicate"] is False

    # B: bob's membership is leave, with the same event.
    assert pair.b.members(room_id) == {bob(pair): "leave"}


def test_second_rejection_is_refused_by_the_resident(pair: HostPair) -> None:
    room_id, _ = invite_bob(pair, "10")
    first = pair.b.leave(room_id, bob(pair))
    assert first["accepted_remotely"]
    # bob is no longer invited on A, so a second attempt (through 'via') gets no template
    # and ends out of band on B; A's state does not change.
    second = pair.b.leave(room_id, bob(pair), via=[pair.a.server_name])
    assert not second["accepted_remotely"]
    assert [s["action"] for s in second["steps"]] == ["make_leave", "out_of_band"]
    assert second["steps"][0]["status"] == 403
    assert second["steps"][0]["errcode"] == "M_FORBIDDEN"
    assert pair.a.members(room_id)[bob(pair)] == "leave"
    assert pair.a.room(room_id)["state"][f"m.room.member|{bob(pair)}"] == first["event_id"]


def _forged_leave(p: HostPair, room_id: str, state_key: str) -> dict:
    room = p.a.room(room_id)
    state = room["state"]
    auth = [
        state["m.room.create|"],
        state["m.room.power_levels|"],
        state[f"m.room.member|{bob(p)}"],
    ]
    if state_key != bob(p):
        auth.append(state[f"m.room.member|{state_key}"])
    return {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": bob(p),
        "state_key": state_key,
        "content": {"membership": "leave"},
        "origin": p.b.server_name,
        "origin_server_ts": int(time.time() * 1000),
        "depth": max(d for _, d in room["forward_extremities"]) + 1,
        "prev_events": [e for e, _ in room["forward_extremities"]],
        "auth_events": auth,
    }


def test_attacks_are_refused(pair: HostPair) -> None:
    room_id, _ = invite_bob(pair, "11")
    state_before = pair.a.room(room_id)["state"]

    kick = pair.b.sign_event(_forged_leave(pair, room_id, alice(pair)), "11")
    answer = pair.b.send_raw_leave(pair.a.server_name, room_id, kick["event"], kick["event_id"])
    assert answer["status"] == 400
    assert answer["body"]["errcode"] == "M_INVALID_PARAM"
    assert "differs from sender" in answer["body"]["error"]

    signed = pair.b.sign_event(_forged_leave(pair, room_id, bob(pair)), "11")
    event = signed["event"]
    sigs = event["signatures"][pair.b.server_name]
    kid = next(iter(sigs))
    raw = bytearray(base64.b64decode(sigs[kid] + "=" * (-len(sigs[kid]) % 4)))
    raw[-1] ^= 0x80
    sigs[kid] = base64.b64encode(bytes(raw)).decode().rstrip("=")
    answer = pair.b.send_raw_leave(
        pair.a.server_name, room_id, event, signed["event_id"], api_version=1
    )
    assert answer["status"] == 400
    assert answer["body"]["errcode"] == "M_INVALID_PARAM"
    assert "signature" in answer["body"]["error"]

    # Nothing changed on A, and both refusals are on record.
    assert pair.a.room(room_id)["state"] == state_before
    records = leaves_for(pair.a, room_id)
    assert [(r["api"], r["accepted"], r["status"]) for r in records] == [
        ("v2", False, 400),
        ("v1", False, 400),
    ]
    assert all(r["rejected_because"].startswith("M_INVALID_PARAM") for r in records)
    assert records[0]["event"]["state_key"] == alice(pair)
    assert records[0]["event_id_in_url"] == kick["event_id"]

    # The genuine rejection still works afterwards.
    result = pair.b.leave(room_id, bob(pair))
    assert result["accepted_remotely"]
    assert pair.a.members(room_id) == {alice(pair): "join", bob(pair): "leave"}


def _raw_federation_request(host, method: str, path: str, headers: dict, body: bytes | None = None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", host.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host.server_name, **headers})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_federation_requests_are_authenticated(pair: HostPair) -> None:
    room_id, _ = invite_bob(pair, "10")
    path = "/_matrix/federation/v1/make_leave/{}/{}".format(
        *(matrix_leave_quote(x) for x in (room_id, bob(pair)))
    )
    status, body = _raw_federation_request(pair.a, "GET", path, {})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED"

    # Signed by B's key but for another URI: the signature does not match.
    key = matrix_leave.SigningKey.generate("ed25519:x")
    auth = matrix_leave.xmatrix_authorization(
        key, pair.b.server_name, pair.a.server_name, "GET", path
    )
    status, body = _raw_federation_request(pair.a, "GET", path, {"Authorization": auth})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED"

    status, body = _raw_federation_request(pair.a, "GET", "/_matrix/federation/v1/nothing_here", {})
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED"

    # The key document is public and verifies.
    status, doc = _raw_federation_request(pair.a, "GET", "/_matrix/key/v2/server", {})
    assert status == 200
    keys = matrix_leave.verify_server_key_document(doc, pair.a.server_name)
    assert pair.a.get("/control/info")["key_id"] in keys
    assert pair.a.members(room_id)[bob(pair)] == "invite"


def matrix_leave_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def test_v1_fallback_when_v2_is_switched_off() -> None:
    with HostPair(a_args=["--disable-v2-send-leave"]) as p:
        room_id, _ = invite_bob(p, "10")
        result = p.b.leave(room_id, bob(p))
        assert result["accepted_remotely"] and result["api_version"] == 1, result
        steps = [(s["action"], s["status"], s.get("errcode")) for s in result["steps"]]
        assert steps == [
            ("make_leave", 200, None),
            ("send_leave_v2", 404, "M_UNRECOGNIZED"),
            ("send_leave_v1", 200, None),
        ]
        records = leaves_for(p.a, room_id)
        assert [(r["api"], r["accepted"], r["status"]) for r in records] == [
            ("v2", False, 404),
            ("v1", True, 200),
        ]
        assert records[0]["rejected_because"].startswith("M_UNRECOGNIZED")
        assert records[1]["event_id"] == result["event_id"]
        assert p.a.members(room_id) == {alice(p): "join", bob(p): "leave"}
        assert p.b.members(room_id) == {bob(p): "leave"}


def test_out_of_band_when_no_resident_accepts() -> None:
    with HostPair(a_args=["--disable-v2-send-leave", "--no-v1"]) as p:
        room_id, answer = invite_bob(p, "11")
        result = p.b.leave(room_id, bob(p))
        assert not result["accepted_remotely"]
        assert [s["action"] for s in result["steps"]] == [
            "make_leave",
            "send_leave_v2",
            "send_leave_v1",
            "out_of_band",
        ]
        assert result["event"]["unsigned"]["out_of_band_membership"] is True
        # B's rejection completes locally; A never accepted it, so bob is still invited there.
        assert p.b.members(room_id) == {bob(p): "leave"}
        assert p.a.members(room_id)[bob(p)] == "invite"
        records = leaves_for(p.a, room_id)
        assert [(r["api"], r["accepted"], r["status"]) for r in records] == [
            ("v2", False, 404),
            ("v1", False, 404),
        ]


def test_signing_key_and_state_survive_a_restart(tmp_path) -> None:
    p = HostPair(base_dir=tmp_path)
    with p:
        key_before = p.a.get("/control/info")["public_key"]
        room_id, _ = invite_bob(p, "12")
    # Same data directories, same ports: the servers come back with their key and rooms.
    with p:
        assert p.a.get("/control/info")["public_key"] == key_before
        assert p.b.members(room_id) == {bob(p): "invite"}
        result = p.b.leave(room_id, bob(p))
        assert result["accepted_remotely"]
        assert p.a.members(room_id) == {alice(p): "join", bob(p): "leave"}


def test_control_errors_are_json(pair: HostPair) -> None:
    with pytest.raises(HostError) as info:
        pair.b.leave("!nowhere:" + pair.a.server_name, bob(pair))
    assert info.value.status == 404 and info.value.body["errcode"] == "M_NOT_FOUND"
    with pytest.raises(HostError) as info:
        pair.a.create_room("99", "alice")
    assert info.value.body["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"


def test_accepted_leave_is_relayed_to_the_other_servers(tmp_path) -> None:
    """A leave A accepts goes on to the other servers in the room. The hosts cannot join
    rooms over federation, so a third server's member is written into A's room state
    directly; the relay then reaches that server (which, having no /send, answers 404)."""
    import sqlite3

    from matrix_leave.host.testing import Host

    with HostPair() as p, Host("C", tmp_path / "c") as c:
        c.wait_ready()
        room_id, _ = invite_bob(p, "10")
        carol = c.user("carol")
        join = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": carol,
            "state_key": carol,
            "content": {"membership": "join"},
            "depth": 1,
        }
        db = sqlite3.connect(p.a.data_dir / "host.db")
        try:
            db.execute(
                "INSERT INTO events (room_id, event_id, type, state_key, sender, depth, json,"
                " soft_failed, outlier, stored_ts) VALUES (?, '$carol-join', 'm.room.member', ?, ?, 1, ?, 0, 0, 0)",
                (room_id, carol, carol, json.dumps(join)),
            )
            db.execute(
                "INSERT INTO state (room_id, type, state_key, event_id) VALUES (?, 'm.room.member', ?, '$carol-join')",
                (room_id, carol),
            )
            db.commit()
        finally:
            db.close()

        result = p.b.leave(room_id, bob(p))
        assert result["accepted_remotely"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if f"relayed leave to {c.server_name}: HTTP 404" in p.a.log_path.read_text():
                break
            time.sleep(0.05)
        assert f"relayed leave to {c.server_name}: HTTP 404" in p.a.log_path.read_text()
        assert "PUT /_matrix/federation/v1/send/" in c.log_path.read_text()
        # B, the origin, is not relayed to.
        assert f"relayed leave to {p.b.server_name}" not in p.a.log_path.read_text()
