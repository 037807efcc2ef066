"""The leaving side's driver, :func:`matrix_leave.leave_room`, over scripted transports and
over a real :class:`matrix_leave.Resident`."""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple
from urllib.parse import unquote

import pytest

import matrix_leave as mxl
from _vectors import leave_auth_store, load, load_case, spec_seed

LOCAL = "local.example"
ROOM = "!r:inviter.example"
USER = "@bob:local.example"

Request = Tuple[str, str, str, str, Optional[bytes]]


def _key() -> mxl.SigningKey:
    return mxl.SigningKey.from_seed(spec_seed(), "ed25519:1")


def _template(room_id: str = ROOM, user: str = USER) -> bytes:
    """A make_leave answer for a v10 room."""
    event = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": user,
        "state_key": user,
        "content": {"membership": "leave"},
        "depth": 5,
        "origin_server_ts": 1,
        "prev_events": ["$p"],
        "auth_events": ["$a", "$b"],
        "origin": "resident.example",
    }
    return json.dumps({"room_version": "10", "event": event}).encode()


def _invite() -> Dict[str, Any]:
    """An invite whose sender and stripped state name two candidate servers."""
    return {
        "type": "m.room.member",
        "room_id": ROOM,
        "sender": "@alice:inviter.example",
        "state_key": USER,
        "content": {"membership": "invite"},
        "depth": 4,
        "origin_server_ts": 5,
        "prev_events": ["$x"],
        "auth_events": ["$y"],
        "hashes": {"sha256": "x"},
        "signatures": {},
        "unsigned": {
            "invite_room_state": [
                {"type": "m.room.name", "sender": "@carol:second.example", "state_key": "", "content": {}}
            ]
        },
    }


def _error(status: int, errcode: str) -> Tuple[int, bytes]:
    return status, json.dumps({"errcode": errcode, "error": "x"}).encode()


class Script:
    """A transport answering from a script; each entry names the request it expects."""

    def __init__(self, answers: List[Tuple[str, Any]]) -> None:
        self.answers: Deque[Tuple[str, Any]] = deque(answers)
        self.seen: List[Request] = []

    def __call__(self, destination: str, method: str, uri: str, authorization: str, body: Optional[bytes]) -> Tuple[int, bytes]:
        self.seen.append((destination, method, uri, authorization, body))
        expected, answer = self.answers.popleft()
        assert f"{destination} {method} {uri.split('/')[4]}" == expected
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


def _run(script: Script, extra: Tuple[str, ...] = ()) -> mxl.LeaveResult:
    with _key() as key:
        return mxl.leave_room(
            ROOM,
            USER,
            LOCAL,
            key,
            script,
            membership_event=_invite(),
            room_version="10",
            extra_servers=extra,
            now_ms=1_700_000_000_000,
            reason="no thanks",
        )


def test_v2_accepted() -> None:
    script = Script([
        ("inviter.example GET make_leave", (200, _template())),
        ("inviter.example PUT send_leave", (200, b"{}")),
    ])
    result = _run(script)
    assert isinstance(result, mxl.LeaveResult)
    assert (result.accepted_remotely, result.server, result.api_version) == (True, "inviter.example", 2)
    assert result.event["content"] == {"membership": "leave", "reason": "no thanks"}
    assert result.event["origin"] == LOCAL
    assert result.event["origin_server_ts"] == 1_700_000_000_000
    assert result.event_id == mxl.event_id(result.event, "10")
    # Every request carries an X-Matrix header that verifies with our key over the exact
    # URI and body sent.
    public = _key().public_key
    for destination, method, uri, authorization, body in script.seen:
        content = None if body is None else json.loads(body)
        assert mxl.verify_xmatrix(authorization, method, uri, content, destination, {"ed25519:1": public}) == LOCAL
    assert script.seen[1][2].startswith("/_matrix/federation/v2/send_leave/%21r%3Ainviter.example/%24")
    assert json.loads(script.seen[1][4] or b"") == result.event
    assert [(s["server"], s["action"], s["status"]) for s in result.steps] == [
        ("inviter.example", "make_leave", 200),
        ("inviter.example", "send_leave_v2", 200),
    ]


def test_v2_unrecognized_then_v1() -> None:
    script = Script([
        ("inviter.example GET make_leave", (200, _template())),
        ("inviter.example PUT send_leave", _error(404, "M_UNRECOGNIZED")),
        ("inviter.example PUT send_leave", (200, b"[200,{}]")),
    ])
    result = _run(script)
    assert (result.accepted_remotely, result.api_version) == (True, 1)
    assert script.seen[2][2].startswith("/_matrix/federation/v1/send_leave/")
    assert script.seen[1][4] == script.seen[2][4]


def test_refusals_move_on_then_out_of_band() -> None:
    script = Script([
        ("inviter.example GET make_leave", _error(403, "M_FORBIDDEN")),
        ("second.example GET make_leave", (200, _template())),
        ("second.example PUT send_leave", _error(502, "M_UNKNOWN")),
        ("third.example GET make_leave", ConnectionRefusedError("connection refused")),
        ("fourth.example GET make_leave", (200, _template())),
        ("fourth.example PUT send_leave", _error(404, "M_NOT_FOUND")),
        ("fifth.example GET make_leave", (200, _template())),
        ("fifth.example PUT send_leave", _error(400, "M_BAD_JSON")),
    ])
    result = _run(script, ("third.example", "fourth.example", LOCAL, "fifth.example"))
    assert not script.answers
    assert result.accepted_remotely is False
    assert (result.server, result.api_version) == (None, None)
    assert [(s["server"], s["action"], s["status"], s["errcode"]) for s in result.steps] == [
        ("inviter.example", "make_leave", 403, "M_FORBIDDEN"),
        ("second.example", "make_leave", 200, None),
        ("second.example", "send_leave_v2", 502, "M_UNKNOWN"),
        ("third.example", "make_leave", 0, None),
        ("fourth.example", "make_leave", 200, None),
        ("fourth.example", "send_leave_v2", 404, "M_NOT_FOUND"),
        ("fifth.example", "make_leave", 200, None),
        ("fifth.example", "send_leave_v2", 400, "M_BAD_JSON"),
        (LOCAL, "out_of_band", 0, None),
    ]
    # The transport's exception is recorded in its step, not raised.
    assert "ConnectionRefusedError" in result.steps[3]["detail"]
    assert "connection refused" in result.steps[3]["detail"]
    # The out-of-band leave follows the invite and is never to be federated.
    assert result.event["prev_events"] == [mxl.event_id(_invite(), "10")]
    assert result.event["unsigned"]["out_of_band_membership"] is True
    assert result.event["content"]["membership"] == "leave"


def test_a_bad_template_is_discarded() -> None:
    script = Script([
        ("inviter.example GET make_leave", (200, _template(room_id="!other:inviter.example"))),
        ("second.example GET make_leave", (200, _template())),
        ("second.example PUT send_leave", (200, b"{}")),
    ])
    result = _run(script)
    assert result.accepted_remotely and result.server == "second.example"
    assert "room_id" in result.steps[0]["detail"]


def test_keyboard_interrupt_propagates_and_stops_the_driver() -> None:
    script = Script([
        ("inviter.example GET make_leave", KeyboardInterrupt()),
    ])
    with pytest.raises(KeyboardInterrupt):
        _run(script, ("third.example",))
    # No request after the interrupt (the script would have failed on an unexpected one).
    assert len(script.seen) == 1


def test_a_transport_returning_nonsense_is_a_bug_raised_after_the_call() -> None:
    def transport(*request: Any) -> Any:
        return 200, "not bytes"

    with _key() as key, pytest.raises(TypeError):
        mxl.leave_room(ROOM, USER, LOCAL, key, transport, membership_event=_invite())


def test_no_candidate_is_out_of_band_at_once() -> None:
    calls: List[Any] = []

    def transport(*request: Any) -> Tuple[int, bytes]:
        calls.append(request)
        return 500, b""

    with _key() as key:
        result = mxl.leave_room(ROOM, USER, LOCAL, key, transport, room_version="10")
    assert calls == []
    assert result.accepted_remotely is False
    assert [s["action"] for s in result.steps] == ["out_of_band"]


# ---------------------------------------------------------------------------------------------
# send_leave_fallback.json through the driver
# ---------------------------------------------------------------------------------------------


def _answer(response: Dict[str, Any]) -> Tuple[int, bytes]:
    body = response["body_raw"].encode() if "body_raw" in response else json.dumps(response["body"]).encode()
    return int(response["status"]), body


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load_case("send_leave_fallback.json")["cases"]])
def test_fallback_decisions_from_bug_reports(case: Dict[str, Any]) -> None:
    expect = case["expect"]
    answers: List[Tuple[str, Any]] = [("inviter.example GET make_leave", (200, _template()))]
    if "v2_response" in case:
        answers.append(("inviter.example PUT send_leave", _answer(case["v2_response"])))
        retry_v1 = "retry" in expect and "v1" in expect and "NOT" not in expect
        if retry_v1:
            answers.append(("inviter.example PUT send_leave", (200, b"[200,{}]")))
    else:
        # A v1 answer: reached after v2 is reported missing.
        answers.append(("inviter.example PUT send_leave", _error(404, "M_UNRECOGNIZED")))
        answers.append(("inviter.example PUT send_leave", _answer(case["v1_response"])))
        retry_v1 = True
    script = Script(answers)
    with _key() as key:
        result = mxl.leave_room(ROOM, USER, LOCAL, key, script, membership_event={**_invite(), "unsigned": {}})
    assert not script.answers, "the driver skipped a request the case expects"
    uris = [uri.split("/")[3] for _, method, uri, _, _ in script.seen if method == "PUT"]
    if retry_v1:
        assert uris == ["v2", "v1"]
        assert (result.accepted_remotely, result.api_version) == (True, 1)
    elif expect.startswith("success"):
        assert uris == ["v2"]
        assert (result.accepted_remotely, result.api_version) == (True, 2)
    else:
        # Never v1; with no other candidate the leave ends out of band.
        assert uris == ["v2"]
        assert result.accepted_remotely is False


# ---------------------------------------------------------------------------------------------
# Both sides through the binding
# ---------------------------------------------------------------------------------------------


def test_leave_room_against_a_resident() -> None:
    """The leaving server's driver talks to a Resident through a transport that
    authenticates each request by its X-Matrix header, as a homeserver would."""
    file = load("leave_auth.json")
    room = file["rooms"]["v10/joined"]
    store, keys = leave_auth_store("v10/joined")
    requests: List[str] = []

    with mxl.Resident("resident.example", None, store, keys) as resident:

        def transport(destination: str, method: str, uri: str, authorization: str, body: Optional[bytes]) -> Tuple[int, bytes]:
            requests.append(f"{method} {uri.split('/')[3]} {uri.split('/')[4]}")
            assert destination == "resident.example"
            origin = mxl.parse_xmatrix(authorization)["origin"]
            content = None if body is None else json.loads(body)
            mxl.verify_xmatrix(authorization, method, uri, content, "resident.example", keys.get_server_keys(origin))
            parts = uri.split("?")[0].split("/")
            if parts[4] == "make_leave":
                return resident.make_leave(parts[5], parts[6], origin)
            api = int(parts[3][1:])
            return resident.send_leave(parts[5], unquote(parts[6]), body or b"", origin, api)

        with mxl.SigningKey.from_seed(spec_seed(), "ed25519:1") as key:
            result = mxl.leave_room(
                room["room_id"], "@user:remote.example", "remote.example", key, transport,
                extra_servers=["resident.example"],
            )
    assert requests == ["GET v1 make_leave", "PUT v2 send_leave"]
    assert (result.accepted_remotely, result.server, result.api_version) == (True, "resident.example", 2)
    assert [s.event_id for s in store.stored] == [result.event_id]
    assert store.membership(room["room_id"], "@user:remote.example") == "leave"

