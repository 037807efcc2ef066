"""The leaving server's template completion against make_leave.json."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

import matrix_leave as mxl
from _vectors import load, named_key, params, spec_public_key


@pytest.mark.parametrize("case", params("make_leave.json"))
def test_complete_leave_template_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    response = inp["make_leave_response"]
    if exp["template_valid"]:
        room_id, user_id = response["event"]["room_id"], response["event"]["sender"]
    else:
        room_id, user_id = inp["path_room_id"], inp["path_user_id"]
    server = inp.get("leaving_server", "remote.example")
    with named_key(load("make_leave.json"), "spec_test_key", "ed25519:1") as key:
        if not exp["template_valid"]:
            with pytest.raises(mxl.MatrixError) as info:
                mxl.complete_leave_template(
                    response, room_id, user_id, server, key, event_id=inp.get("leaving_server_event_id")
                )
            # The message names the field that does not match what was asked for.
            problem = exp["problems"][0]
            field = "membership" if problem.startswith("content.membership") else problem.split(" ")[0].split(".")[0]
            assert field in info.value.message
            assert info.value.http_status == 400
            return
        done = mxl.complete_leave_template(
            response, room_id, user_id, server, key, event_id=inp.get("leaving_server_event_id")
        )
    assert isinstance(done, mxl.CompletedLeave)
    assert done.event == exp["signed_event"]
    assert done.event_id == exp["event_id"]
    assert done.uri_v2 == exp["send_leave_uri"]
    assert done.uri_v1 == exp["send_leave_uri"].replace("/v2/", "/v1/", 1)
    assert done.room_version == case["room_version"]
    assert done.event["hashes"]["sha256"] == exp["content_hash_sha256"]
    assert done.event["signatures"][server]["ed25519:1"] == exp["signature"]
    # The signed leave verifies as a receiving resident would check it.
    check = mxl.verify_event(done.event, done.room_version, {server: {"ed25519:1": spec_public_key()}})
    assert check.outcome == "accept"
    # The raw response bytes give the same leave.
    with named_key(load("make_leave.json"), "spec_test_key", "ed25519:1") as key:
        again = mxl.complete_leave_template(
            json.dumps(response).encode(), room_id, user_id, server, key, event_id=inp.get("leaving_server_event_id")
        )
    assert again.event == exp["signed_event"]


def test_template_options_reason_and_time() -> None:
    case = next(c for c in load("make_leave.json")["cases"] if c["expected"]["template_valid"] and c["room_version"] == "10")
    response = case["input"]["make_leave_response"]
    ev = response["event"]
    with named_key(load("make_leave.json"), "spec_test_key", "ed25519:1") as key:
        done = mxl.complete_leave_template(
            response, ev["room_id"], ev["sender"], "remote.example", key, now_ms=1234, reason="bye"
        )
    assert done.event["origin_server_ts"] == 1234
    assert done.event["content"] == {"membership": "leave", "reason": "bye"}
    assert done.event_id == mxl.event_id(done.event, "10")


def test_unknown_room_version_is_refused_and_nothing_signed() -> None:
    response = {
        "room_version": "org.example.custom",
        "event": {
            "type": "m.room.member",
            "room_id": "!r:x",
            "sender": "@u:y",
            "state_key": "@u:y",
            "content": {"membership": "leave"},
            "depth": 1,
            "origin_server_ts": 1,
            "prev_events": [],
            "auth_events": [],
        },
    }
    key = mxl.SigningKey.generate("ed25519:k")
    with pytest.raises(mxl.MatrixError) as info:
        mxl.complete_leave_template(response, "!r:x", "@u:y", "y", key)
    assert (info.value.http_status, info.value.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")
