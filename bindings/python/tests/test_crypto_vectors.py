"""Every case of the crypto vector files through the Python entry points: canonical JSON,
signing and verification, hashes, event IDs, redaction, server keys and X-Matrix."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

import matrix_leave as mxl
from _vectors import load, load_case, named_key, params, spec_public_key

STRICT: Optional[str] = None  # no room version: the strict rules of v6 and later
LENIENT = "5"  # room versions 1 to 5 allow floats and large integers


def _modes(case: Dict[str, Any]) -> List[Optional[str]]:
    """The room versions that exercise a canonical_json case's mode."""
    modes: Dict[str, List[Optional[str]]] = {"strict": [STRICT], "lenient": [LENIENT], "both": [STRICT, LENIENT]}
    return modes[case["mode"]]


def _raw(case: Dict[str, Any]) -> bytes:
    """A canonical_json case's input bytes."""
    if "json_text" in case["input"]:
        return str(case["input"]["json_text"]).encode("utf-8")
    return bytes.fromhex(case["input"]["bytes_hex"])


def _outcome_matches(result: Any, expected: Dict[str, Any]) -> bool:
    """Whether a canonical_json result (bytes or MatrixError) is the expected one."""
    if "canonical" in expected:
        return bool(result == str(expected["canonical"]).encode("utf-8"))
    return bool(
        isinstance(result, mxl.MatrixError)
        and result.errcode == "M_BAD_JSON"
        and result.http_status == 400
        and str(expected["error"]) in result.message
    )


# ---------------------------------------------------------------------------------------------
# Canonical JSON
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("canonical_json.json"))
def test_canonical_json_from_text_vectors(case: Dict[str, Any]) -> None:
    for room_version in _modes(case):
        try:
            result: Any = mxl.canonical_json_from_text(_raw(case), room_version)
        except mxl.MatrixError as exc:
            result = exc
        allowed = [case["expected"], *case.get("acceptable_alternatives", [])]
        assert any(_outcome_matches(result, e) for e in allowed), (room_version, result)


@pytest.mark.parametrize(
    "case",
    [p for p in params("canonical_json.json") if "canonical" in p.values[0]["expected"]
     and p.values[0]["mode"] in ("strict", "both") and "json_text" in p.values[0]["input"]],
)
def test_canonical_json_of_python_values(case: Dict[str, Any]) -> None:
    # Inputs valid under the strict rules hold no floats, so json.loads round-trips them
    # exactly and the value path must give the same canonical form.
    value = json.loads(case["input"]["json_text"])
    expected = str(case["expected"]["canonical"]).encode("utf-8")
    assert mxl.canonical_json(value) == expected
    assert mxl.canonical_json(value, "11") == expected
    assert mxl.canonical_json_from_text(str(case["input"]["json_text"])) == expected


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in load_case("canonical_json.json")["cases"]])
def test_canonical_json_cases_from_bug_reports(case: Dict[str, Any]) -> None:
    text = case["input_text"]
    room_version = case.get("room_version")
    if "expected_hex" in case:
        assert mxl.canonical_json_from_text(text, room_version) == bytes.fromhex(case["expected_hex"])
    elif "expected_text" in case:
        assert mxl.canonical_json_from_text(text, room_version) == case["expected_text"].encode("utf-8")
    else:
        # "reject M_BAD_JSON (400)", and the two cases the project pins to a rejection:
        # `-0`/`1e10` in a v11 room (floats are refused from v6 on) and duplicate keys.
        with pytest.raises(mxl.MatrixError) as info:
            mxl.canonical_json_from_text(text, room_version)
        assert (info.value.http_status, info.value.errcode) == (400, "M_BAD_JSON")


def test_canonical_json_refuses_values_json_cannot_carry() -> None:
    for bad in ({"a": float("nan")}, {"a": float("inf")}, {"a": "\udbff"}):
        with pytest.raises(mxl.MatrixError) as info:
            mxl.canonical_json(bad)
        assert info.value.errcode == "M_BAD_JSON"
        assert info.value.code == mxl.ResultCode.BAD_JSON
    with pytest.raises(TypeError):
        mxl.canonical_json({"a": object()})
    with pytest.raises(mxl.MatrixError) as unknown:
        mxl.canonical_json({}, "13")
    assert unknown.value.errcode == "M_UNSUPPORTED_ROOM_VERSION"


# ---------------------------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("signing.json", "sign_json"))
def test_sign_json_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    with named_key(load("signing.json"), inp["key"], inp["key_id"]) as key:
        signed = key.sign_json(inp["object"], inp["server_name"])
        assert signed == exp["signed_object"]
        assert signed["signatures"][inp["server_name"]][inp["key_id"]] == exp["signature"]
        assert mxl.canonical_json(signed) == exp["signed_object_canonical"].encode("utf-8")
        unsigned = {k: v for k, v in inp["object"].items() if k not in ("signatures", "unsigned")}
        assert mxl.canonical_json(unsigned) == exp["signing_input_canonical"].encode("utf-8")
        mxl.verify_json(signed, inp["server_name"], {inp["key_id"]: key.public_key})


@pytest.mark.parametrize("case", params("signing.json", "verify_json"))
def test_verify_json_vectors(case: Dict[str, Any]) -> None:
    inp = case["input"]
    value: Any = inp["json_text"].encode("utf-8") if "json_text" in inp else inp["object"]
    keys = inp["public_keys"].get(inp["entity"], {})
    if case["expected"]["valid"]:
        mxl.verify_json(value, inp["entity"], keys)
    else:
        with pytest.raises(mxl.MatrixError) as info:
            mxl.verify_json(value, inp["entity"], keys)
        assert info.value.http_status == 400


@pytest.mark.parametrize("case", params("signing.json", "sign_event"))
def test_sign_event_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    version = case["room_version"]
    assert mxl.content_hash(inp["event"]) == exp["content_hash_sha256"]
    with named_key(load("signing.json"), inp["key"], inp["key_id"]) as key:
        signed = mxl.sign_event(inp["event"], version, inp["server_name"], key)
    assert signed == exp["signed_event"]
    redacted = mxl.redact(signed, version)
    redacted.pop("signatures", None)
    assert mxl.canonical_json(redacted, version) == exp["redacted_signing_input_canonical"].encode("utf-8")


@pytest.mark.parametrize("case", params("signing.json", "verify_event"))
def test_verify_event_vectors(case: Dict[str, Any]) -> None:
    exp = case["expected"]
    result = mxl.verify_event(case["input"]["event"], case["room_version"], case["input"]["public_keys"])
    assert isinstance(result, mxl.VerifyResult)
    assert result.signature_valid == exp["signature_valid"]
    assert result.content_hash_valid == exp["content_hash_valid"]
    assert result.outcome == exp["outcome"]
    assert result.computed_content_hash == exp["computed_content_hash"]
    if "redacted_event" in exp:
        assert result.redacted == exp["redacted_event"]
    else:
        assert result.redacted is None
    assert (result.error is not None) == (exp["outcome"] == "reject")


# ---------------------------------------------------------------------------------------------
# Hashes, event IDs and redaction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("event_hashes.json"))
def test_event_hash_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    version = case["room_version"]
    event = inp["event"]
    computed = mxl.content_hash(event)
    for field in ("content_hash_sha256", "computed_content_hash"):
        if field in exp:
            assert computed == exp[field]
    if "content_hash_valid" in exp:
        # The library's own comparison, through verify_event with the signer's key.
        server = event["sender"].split(":", 1)[1]
        check = mxl.verify_event(event, version, {server: {"ed25519:1": spec_public_key()}})
        allowed = [exp["content_hash_valid"]]
        allowed += [a["content_hash_valid"] for a in case.get("acceptable_alternatives", [])]
        assert check.content_hash_valid in allowed
        assert check.computed_content_hash == computed
    if "content_hash_input_canonical" in exp:
        stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
        assert mxl.canonical_json(stripped, version) == exp["content_hash_input_canonical"].encode("utf-8")
    if "key" in inp:
        with named_key(load("event_hashes.json"), inp["key"], inp["key_id"]) as key:
            signed = mxl.sign_event(event, version, inp["server_name"], key)
        assert signed == exp["signed_event"]
        assert signed["signatures"][inp["server_name"]][inp["key_id"]] == exp["signature"]
        assert mxl.reference_hash(signed, version) == exp["reference_hash_sha256_b64"]
        assert mxl.event_id(signed, version) == exp["event_id"]
        redacted = mxl.redact(signed, version)
        redacted.pop("signatures", None)
        assert mxl.canonical_json(redacted, version) == exp["signing_input_canonical"].encode("utf-8")
        check = mxl.verify_event(signed, version, {inp["server_name"]: {inp["key_id"]: spec_public_key()}})
        assert (check.outcome, check.signature_valid, check.content_hash_valid) == ("accept", True, True)


@pytest.mark.parametrize(
    "case",
    [p for p in params("event_ids.json") if p.values[0]["expected"].get("valid", True)],
)
def test_event_id_vectors(case: Dict[str, Any]) -> None:
    exp = case["expected"]
    version = case["room_version"]
    event = case["input"]["event"]
    assert mxl.event_id(event, version) == exp["event_id"]
    assert mxl.reference_hash(event, version) == exp["reference_hash_sha256_b64"]
    # Raw bytes give the same answers as the mapping.
    assert mxl.event_id(json.dumps(event).encode("utf-8"), version) == exp["event_id"]
    redacted = mxl.redact(event, version)
    redacted.pop("signatures", None)
    assert mxl.canonical_json(redacted, version) == exp["reference_hash_input_canonical"].encode("utf-8")
    if "room_id" in exp:
        assert mxl.room_id_from_create_event(event) == exp["room_id"]


@pytest.mark.parametrize("case", params("redaction.json"))
def test_redaction_vectors(case: Dict[str, Any]) -> None:
    version = case["room_version"]
    redacted = mxl.redact(case["input"]["event"], version)
    assert redacted == case["expected"]["redacted"]
    assert mxl.canonical_json(redacted, version) == case["expected"]["redacted_canonical"].encode("utf-8")
    assert mxl.redact(redacted, version) == redacted


def test_room_id_from_an_older_create_event_is_refused() -> None:
    create = next(
        c["input"]["event"] for c in load("event_ids.json")["cases"] if "room_id" in c["expected"]
    )
    older = dict(create, content={"room_version": "11"})
    with pytest.raises(mxl.MatrixError) as info:
        mxl.room_id_from_create_event(older)
    assert info.value.errcode == "M_INVALID_PARAM"


# ---------------------------------------------------------------------------------------------
# Server keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("server_keys.json", "sign_server_keys"))
def test_sign_server_keys_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    unsigned = inp["response_unsigned"]
    server = inp["server_name"]
    (key_id,) = unsigned["verify_keys"]
    with named_key(load("server_keys.json"), inp["key"], key_id) as key:
        assert mxl.canonical_json(unsigned) == exp["signing_input_canonical"].encode("utf-8")
        assert key.sign_json(unsigned, server) == exp["signed_response"]
        old = unsigned.get("old_verify_keys") or None
        built = mxl.server_key_document(key, server, unsigned["valid_until_ts"], old)
        assert built == exp["signed_response"]
    assert mxl.verify_server_key_document(exp["signed_response"], server) == exp["usable_keys"]
    store = mxl.MemoryKeyStore()
    assert store.add_server_keys(exp["signed_response"]) == exp["usable_keys"]
    assert store.get_server_keys(server) == exp["usable_keys"]


@pytest.mark.parametrize("case", params("server_keys.json", "verify_server_keys"))
def test_verify_server_keys_vectors(case: Dict[str, Any]) -> None:
    inp = case["input"]
    if case["expected"]["valid"]:
        keys = mxl.verify_server_key_document(inp["response"], inp["requested_server"])
        assert set(keys) == set(inp["response"]["verify_keys"]) | set(inp["response"].get("old_verify_keys", {}))
    else:
        with pytest.raises(mxl.MatrixError):
            mxl.verify_server_key_document(inp["response"], inp["requested_server"])
        store = mxl.MemoryKeyStore()
        with pytest.raises(mxl.MatrixError):
            store.add_server_keys(inp["response"], inp["requested_server"])
        assert store.get_server_keys(inp["requested_server"]) == {}


# ---------------------------------------------------------------------------------------------
# X-Matrix
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("xmatrix.json", "sign_request"))
def test_xmatrix_sign_request_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    with named_key(load("xmatrix.json"), inp["key"], inp["key_id"]) as key:
        header = mxl.xmatrix_authorization(
            key, inp["origin"], inp["destination"], inp["method"], inp["uri"], inp.get("content")
        )
        public = key.public_key
    assert header == exp["authorization_header"]
    assert mxl.parse_xmatrix(header)["sig"] == exp["signature"]
    assert mxl.canonical_json(
        {k: v for k, v in exp["signed_json"].items() if k != "signatures"}
    ) == exp["signing_input_canonical"].encode("utf-8")
    origin = mxl.verify_xmatrix(
        header, inp["method"], inp["uri"], inp.get("content"), inp["destination"], {inp["key_id"]: public}
    )
    assert origin == inp["origin"]


@pytest.mark.parametrize("case", params("xmatrix.json", "parse_header"))
def test_xmatrix_parse_header_vectors(case: Dict[str, Any]) -> None:
    exp = case["expected"]
    if exp["ok"]:
        parsed = mxl.parse_xmatrix(case["input"]["authorization"])
        assert parsed["origin"] == exp["origin"]
        assert parsed["key"] == exp["key"]
        assert parsed["sig"] == exp["sig"]
        assert parsed.get("destination") == exp.get("destination")
    else:
        with pytest.raises(mxl.MatrixError) as info:
            mxl.parse_xmatrix(case["input"]["authorization"])
        assert (info.value.http_status, info.value.errcode) == (exp["http_status"], exp["errcode"])


@pytest.mark.parametrize("case", params("xmatrix.json", "verify_request"))
def test_xmatrix_verify_request_vectors(case: Dict[str, Any]) -> None:
    inp, exp = case["input"], case["expected"]
    header = (inp["headers"].get("Authorization") or [""])[0]
    try:
        origin = mxl.parse_xmatrix(header)["origin"]
    except mxl.MatrixError:
        origin = ""
    keys = inp["public_keys"].get(origin, {})

    def verify() -> str:
        return mxl.verify_xmatrix(header, inp["method"], inp["uri"], inp.get("content"), inp["server_name"], keys)

    if exp["accept"]:
        assert verify() == exp["origin"]
    else:
        with pytest.raises(mxl.MatrixError) as info:
            verify()
        assert (info.value.http_status, info.value.errcode) == (exp["http_status"], exp["errcode"])
