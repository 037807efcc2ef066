#!/usr/bin/env python3
"""Generates ``tests/catalogue/requests.json``: a catalogue of bad make_leave / send_leave
requests, each with the exact answer it must get.

Run it with the Python of the Synapse virtualenv (see
``tests/interop/synapse_harness.py`` ``ensure_synapse_venv()``)::

    ~/.cache/matrix-leave/synapse-venv/bin/python tests/catalogue/generate.py

Every hash, signature, reference hash and event ID comes from Synapse's own libraries
(``synapse.crypto.event_signing.add_hashes_and_signatures``,
``compute_event_reference_hash``, ``synapse.events.make_event_from_dict``, signedjson,
canonicaljson), never from the code under test. The rooms are those of
``tests/vectors/leave_auth.json``: every server there signs with the specification's test
key (``ed25519:1``). The output is deterministic: running the script again gives the same
bytes (``--check`` verifies that without writing).

The file format is described in ``tests/catalogue/README.md``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import synapse
from canonicaljson import encode_canonical_json
from signedjson.key import (
    decode_signing_key_base64,
    encode_verify_key_base64,
    get_verify_key,
)
from signedjson.sign import verify_signed_json
from synapse.api.errors import SynapseError
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from synapse.crypto.event_signing import (
    add_hashes_and_signatures,
    check_event_content_hash,
    compute_event_reference_hash,
    redact_event_dict,
)
from synapse.events import make_event_from_dict
from unpaddedbase64 import encode_base64


def decode_signing_key_bytes(algorithm: str, version: str, seed: bytes) -> Any:
    """A signedjson signing key from its 32-byte seed."""
    return decode_signing_key_base64(algorithm, version, encode_base64(seed))

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VECTORS = ROOT / "tests" / "vectors" / "leave_auth.json"
OUT = HERE / "requests.json"

RESIDENT = "resident.example"
REMOTE = "remote.example"
OTHER = "other.example"
USER = "@user:remote.example"
CREATOR = "@creator:resident.example"

SPEC_SEED = bytes.fromhex("6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d")
#: The key every server of leave_auth.json signs with.
SPEC_KEY = decode_signing_key_bytes("ed25519", "1", SPEC_SEED)
SPEC_PUBLIC = encode_verify_key_base64(get_verify_key(SPEC_KEY))
#: The same key material under a key ID nobody published.
SPEC_KEY_AS_2 = decode_signing_key_bytes("ed25519", "2", SPEC_SEED)
#: A key nobody published, under the published key ID.
STRANGER_KEY = decode_signing_key_bytes(
    "ed25519", "1", hashlib.sha256(b"matrix-leave catalogue: a key nobody published").digest()
)
STRANGER_PUBLIC = encode_verify_key_base64(get_verify_key(STRANGER_KEY))

MAX_PDU = 65536
MAX_SAFE = 2**53 - 1

Json = dict[str, Any]
Body = bytes | Json


# ---------------------------------------------------------------------------------------------
# Rooms
# ---------------------------------------------------------------------------------------------


class Room:
    """One room of leave_auth.json (optionally with extra events appended)."""

    def __init__(self, key: str, data: Json, extra: Sequence[Json] = ()) -> None:
        self.key = key
        self.data = data
        self.version_id: str = data["room_version"]
        self.rv: RoomVersion = KNOWN_ROOM_VERSIONS[self.version_id]
        self.room_id: str = data["room_id"]
        self.extra = [copy.deepcopy(e) for e in extra]
        self.events: list[Json] = [copy.deepcopy(e) for e in data["events"]] + self.extra
        self.by_id: dict[str, Json] = {e["event_id"]: e["pdu"] for e in self.events}
        self.state: dict[tuple[str, str], str] = {}
        referenced = set()
        for e in self.events:
            pdu = e["pdu"]
            if "state_key" in pdu:
                self.state[(pdu["type"], pdu["state_key"])] = e["event_id"]
            for p in pdu.get("prev_events", []):
                referenced.add(p[0] if isinstance(p, list) else p)
        self.extremities = [e["event_id"] for e in self.events if e["event_id"] not in referenced]
        self.max_depth = max(e["pdu"]["depth"] for e in self.events)
        self.last_ts = max(e["pdu"]["origin_server_ts"] for e in self.events)

    @property
    def pairs(self) -> bool:
        """Event references are ``[id, {sha256}]`` pairs and events carry their ID (v1, v2)."""
        return self.version_id in ("1", "2")

    @property
    def create_in_auth(self) -> bool:
        """The create event is listed in auth_events (every version but 12)."""
        return self.version_id != "12"

    def state_id(self, ty: str, sk: str = "") -> str:
        return self.state[(ty, sk)]

    def ref(self, event_id: str) -> Any:
        """How an event is referenced from prev_events / auth_events in this room."""
        if not self.pairs:
            return event_id
        pdu = self.by_id[event_id]
        _, digest = compute_event_reference_hash(make_event_from_dict(copy.deepcopy(pdu), self.rv))
        return [event_id, {"sha256": encode_base64(digest)}]

    def auth_selection(self, user: str = USER) -> list[str]:
        """The auth events a self-leave lists: create (not v12), power levels, own member."""
        ids = []
        if self.create_in_auth:
            ids.append(self.state_id("m.room.create"))
        ids.append(self.state_id("m.room.power_levels"))
        if ("m.room.member", user) in self.state:
            ids.append(self.state_id("m.room.member", user))
        return ids

    def slug(self) -> str:
        return self.key.replace("/", "")

    def leave(self, user: str = USER, **override: Any) -> Json:
        """An unsigned self-leave for `user`, as the leaving server completes the template."""
        ev: Json = {
            "type": "m.room.member",
            "room_id": self.room_id,
            "sender": user,
            "state_key": user,
            "content": {"membership": "leave"},
            "origin_server_ts": self.last_ts + 1000,
            "depth": self.max_depth + 1,
            "auth_events": [self.ref(i) for i in self.auth_selection(user)],
            "prev_events": [self.ref(i) for i in self.extremities],
        }
        if self.pairs:
            ev["event_id"] = f"$leave-{self.slug()}:{REMOTE}"
        ev.update(override)
        return ev

    def event_id(self, ev: Json) -> str:
        """The event's ID as Synapse computes it."""
        if self.pairs:
            return str(ev["event_id"])
        try:
            return str(make_event_from_dict(copy.deepcopy(ev), self.rv).event_id)
        except SynapseError:
            # Synapse refuses to build events nested deeper than its parser allows; the ID is
            # still the reference hash: SHA-256 of Synapse's redaction without signatures.
            redacted = redact_event_dict(self.rv, copy.deepcopy(ev))
            for k in ("signatures", "age_ts", "unsigned"):
                redacted.pop(k, None)
            digest = hashlib.sha256(encode_canonical_json(redacted)).digest()
            b64 = encode_base64(digest, urlsafe=self.version_id != "3")
            return "$" + b64

    def sign(self, ev: Json, signers: Sequence[tuple[str, Any]] = ((REMOTE, SPEC_KEY),)) -> Json:
        """Hashes and signs a copy of `ev` (any previous hashes and signatures dropped)."""
        out = copy.deepcopy(ev)
        out.pop("hashes", None)
        out.pop("signatures", None)
        for server, key in signers:
            add_hashes_and_signatures(self.rv, out, server, key)
        return out

    def signed_event(self, ev: Json, server: str, key: Any = SPEC_KEY) -> Json:
        """An extra room event signed by `server`, as ``{"event_id", "pdu"}``."""
        pdu = self.sign(ev, [(server, key)])
        return {"event_id": self.event_id(pdu), "pdu": pdu}


def self_check(room: Room, ev: Json) -> None:
    """Checks a base leave with Synapse's own code: content hash, remote.example's signature
    over the redacted event, and the event ID."""
    built = make_event_from_dict(copy.deepcopy(ev), room.rv)
    assert check_event_content_hash(built), room.key
    redacted = redact_event_dict(room.rv, copy.deepcopy(ev))
    verify_signed_json(redacted, REMOTE, get_verify_key(SPEC_KEY))
    assert built.event_id == room.event_id(ev), room.key


def canonical(ev: Any) -> bytes:
    return bytes(encode_canonical_json(ev))


def sub_once(text: bytes, old: bytes, new: bytes) -> bytes:
    """Replaces the one occurrence of `old` in `text`."""
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{old!r} occurs {count} times in {text[:200]!r}...")
    return text.replace(old, new)


def pad_to(text: bytes, size: int) -> bytes:
    """Pads a JSON object with spaces after its opening brace, to exactly `size` bytes."""
    assert text.startswith(b"{") and len(text) <= size
    return b"{" + b" " * (size - len(text)) + text[1:]


def std_b64(event_id: str) -> str:
    """A v4+ event ID written with the standard base64 alphabet instead of the URL-safe one."""
    return event_id.replace("-", "+").replace("_", "/")


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


class Catalogue:
    def __init__(self, vectors: Json) -> None:
        self.vectors = vectors
        self.cases: list[Json] = []
        self._rooms: dict[str, Room] = {}

    def room(self, key: str) -> Room:
        if key not in self._rooms:
            self._rooms[key] = Room(key, self.vectors["rooms"][key])
        return self._rooms[key]

    def _add(self, case: Json) -> None:
        names = {c["name"] for c in self.cases}
        assert case["name"] not in names, case["name"]
        self.cases.append(case)

    def send(
        self,
        name: str,
        category: str,
        room: Room,
        body: Body,
        status: int,
        errcode: str | None,
        why: str,
        *,
        path_room: str | None = None,
        path_event: str | None = None,
        origin: str = REMOTE,
        api: int = 2,
        keys: Json | None = None,
        options: Json | None = None,
        also_rooms: Sequence[str] = (),
        global_event_lookup: bool = False,
    ) -> None:
        if isinstance(body, dict):
            if path_event is None:
                # As it appears in the URL: a version 3 ID may hold '/', which must be escaped.
                path_event = room.event_id(body).replace("/", "%2F")
            raw = canonical(body)
        else:
            raw = body
        assert path_event is not None, name
        case: Json = {
            "name": name,
            "category": category,
            "room": room.key,
            "endpoint": "send_leave",
            "api_version": api,
            "path_room_id": room.room_id if path_room is None else path_room,
            "path_event_id": path_event,
            "origin": origin,
            "body_b64": base64.b64encode(raw).decode("ascii"),
            "expect": {"status": status, "errcode": errcode},
            "why": why,
        }
        if room.extra:
            case["extra_events"] = room.extra
        if keys is not None:
            case["keys"] = keys
        if options:
            case["options"] = options
        if also_rooms:
            case["also_rooms"] = list(also_rooms)
        if global_event_lookup:
            case["global_event_lookup"] = True
        self._add(case)

    def make(
        self,
        name: str,
        category: str,
        room: Room,
        status: int,
        errcode: str | None,
        why: str,
        *,
        path_room: str | None = None,
        path_user: str = USER,
        origin: str = REMOTE,
    ) -> None:
        case: Json = {
            "name": name,
            "category": category,
            "room": room.key,
            "endpoint": "make_leave",
            "api_version": 1,
            "path_room_id": room.room_id if path_room is None else path_room,
            "path_user_id": path_user,
            "origin": origin,
            "body_b64": "",
            "expect": {"status": status, "errcode": errcode},
            "why": why,
        }
        if room.extra:
            case["extra_events"] = room.extra
        self._add(case)


BAD_JSON = (400, "M_BAD_JSON")
INVALID = (400, "M_INVALID_PARAM")
FORBIDDEN = (403, "M_FORBIDDEN")
NOT_FOUND = (404, "M_NOT_FOUND")
TOO_LARGE = (413, "M_TOO_LARGE")
OK = (200, None)


def build(vectors: Json) -> list[Json]:
    cat = Catalogue(vectors)
    v10 = cat.room("v10/joined")
    v1 = cat.room("v1/joined")
    v2 = cat.room("v2/joined")
    v5 = cat.room("v5/joined")
    v6 = cat.room("v6/joined")
    v7k = cat.room("v7/knocked")
    v11i = cat.room("v11/invited")
    v12 = cat.room("v12/joined")
    v10i = cat.room("v10/invited")

    good = {r.key: r.sign(r.leave()) for r in (v10, v1, v2, v5, v6, v7k, v11i, v12, v10i)}
    for key, ev in good.items():
        self_check(cat.room(key), ev)
    g10 = good["v10/joined"]
    g10_id = v10.event_id(g10)
    g10_text = canonical(g10)

    def send(name: str, category: str, room: Room, body: Body, expect: tuple[int, str | None],
             why: str, **kw: Any) -> None:
        cat.send(name, category, room, body, expect[0], expect[1], why, **kw)

    def make(name: str, category: str, room: Room, expect: tuple[int, str | None], why: str,
             **kw: Any) -> None:
        cat.make(name, category, room, expect[0], expect[1], why, **kw)

    def mutate(room: Room, **fields: Any) -> Json:
        """A leave of `room` with fields replaced (None removes one), then signed."""
        ev = room.leave()
        for k, v in fields.items():
            if v is None:
                ev.pop(k, None)
            else:
                ev[k] = v
        return room.sign(ev)

    # ---- body size ---------------------------------------------------------------------
    c = "size"
    send("size_65535_accepted", c, v10, pad_to(g10_text, MAX_PDU - 1), OK,
         "Boundary: a valid leave padded with insignificant whitespace to 65535 bytes is accepted "
         "(the limit is 65536 inclusive).", path_event=g10_id)
    send("size_65536_accepted", c, v10, pad_to(g10_text, MAX_PDU), OK,
         "Boundary: exactly 65536 bytes is still within the PDU size limit.", path_event=g10_id)
    send("size_65536_accepted_v1_api", c, v10, pad_to(g10_text, MAX_PDU), OK,
         "Boundary through the legacy v1 endpoint.", path_event=g10_id, api=1)
    send("size_65537", c, v10, pad_to(g10_text, MAX_PDU + 1), TOO_LARGE,
         "One byte over the 65536-byte PDU limit, though otherwise a valid leave.",
         path_event=g10_id)
    send("size_65537_v1_api", c, v10, pad_to(g10_text, MAX_PDU + 1), TOO_LARGE,
         "Over the limit through the legacy v1 endpoint.", path_event=g10_id, api=1)
    send("size_twice_the_limit", c, v10, pad_to(g10_text, 2 * MAX_PDU), TOO_LARGE,
         "A body of 131072 bytes.", path_event=g10_id)
    send("size_65537_not_json", c, v10, b"x" * (MAX_PDU + 1), TOO_LARGE,
         "The size is checked before the body is parsed.", path_event=g10_id)
    send("size_65537_unknown_room", c, v10, pad_to(g10_text, MAX_PDU + 1), TOO_LARGE,
         "The size is checked before the room is looked up (cheapest check first).",
         path_room="!nosuchroom:resident.example", path_event=g10_id)
    big_reason = v10.sign(v10.leave(content={"membership": "leave", "reason": "r" * 66000}))
    send("size_signed_content_over_limit", c, v10, big_reason, TOO_LARGE,
         "A correctly signed leave whose content makes the PDU larger than 65536 bytes.")
    send("size_65536_invalid_json", c, v10, pad_to(g10_text, MAX_PDU)[:-1] + b" ", BAD_JSON,
         "65536 bytes is within the limit, so the truncated JSON is what is refused.",
         path_event=g10_id)

    # ---- unknown room --------------------------------------------------------------------
    c = "unknown_room"
    nowhere = v10.sign(v10.leave(room_id="!nosuchroom:resident.example"))
    send("room_unknown", c, v10, nowhere, NOT_FOUND,
         "A correctly signed leave for a room this server has never heard of.",
         path_room="!nosuchroom:resident.example")
    send("room_unknown_v1_api", c, v10, nowhere, NOT_FOUND,
         "The same through the v1 endpoint.", path_room="!nosuchroom:resident.example", api=1)
    send("room_unknown_garbage_body", c, v10, b"\xff not json", NOT_FOUND,
         "The room is looked up before the body is parsed.",
         path_room="!nosuchroom:resident.example", path_event=g10_id)
    send("room_id_case_differs", c, v10, g10, NOT_FOUND,
         "Room IDs are case-sensitive: !V10joined is not !v10joined.",
         path_room="!V10joined:resident.example")
    send("room_id_other_server_part", c, v10, g10, NOT_FOUND,
         "!v10joined:other.example is a different (unknown) room.",
         path_room="!v10joined:other.example")
    send("room_id_trailing_space", c, v10, g10, NOT_FOUND,
         "A percent-encoded trailing space makes another, unknown, room ID.",
         path_room="!v10joined:resident.example%20")

    # ---- JSON syntax ---------------------------------------------------------------------
    c = "json_syntax"
    syntax: list[tuple[str, bytes, str]] = [
        ("empty_body", b"", "An empty body is not JSON."),
        ("whitespace_only", b" \n\t ", "Only whitespace."),
        ("truncated_half", g10_text[: len(g10_text) // 2], "The leave cut off halfway."),
        ("truncated_last_byte", g10_text[:-1], "The leave without its closing brace."),
        ("truncated_open_brace", b"{", "Just an opening brace."),
        ("truncated_in_string", g10_text[: g10_text.index(b"m.room.member") + 5],
         "Cut off inside a string."),
        ("truncated_in_escape", g10_text[: g10_text.index(b'"leave"') + 6] + b"\\",
         "Cut off inside an escape sequence."),
        ("trailing_garbage", g10_text + b"x", "A byte of garbage after the object."),
        ("two_objects", g10_text + g10_text, "Two JSON texts back to back."),
        ("trailing_comma_object", sub_once(g10_text, b'"leave"}', b'"leave",}'),
         "A trailing comma in an object."),
        ("trailing_comma_array", sub_once(g10_text, b'"prev_events":["' + g10["prev_events"][0].encode() + b'"]',
                                           b'"prev_events":["' + g10["prev_events"][0].encode() + b'",]'),
         "A trailing comma in an array."),
        ("single_quotes", sub_once(g10_text, b'"membership":"leave"', b"'membership':'leave'"),
         "Single-quoted strings."),
        ("unquoted_key", sub_once(g10_text, b'"membership":', b"membership:"), "An unquoted key."),
        ("missing_colon", sub_once(g10_text, b'"membership":', b'"membership" '), "A missing colon."),
        ("comment", b"/* leave */" + g10_text, "A comment before the object."),
        ("nan_literal", sub_once(g10_text, b'"depth":7', b'"depth":NaN'), "NaN is not JSON."),
        ("infinity_literal", sub_once(g10_text, b'"depth":7', b'"depth":Infinity'),
         "Infinity is not JSON."),
        ("hex_number", sub_once(g10_text, b'"depth":7', b'"depth":0x7'), "Hex numbers are not JSON."),
        ("leading_zero", sub_once(g10_text, b'"depth":7', b'"depth":07'), "A leading zero."),
        ("leading_plus", sub_once(g10_text, b'"depth":7', b'"depth":+7'), "A leading plus sign."),
        ("capitalised_true", sub_once(g10_text, b'"membership":"leave"', b'"membership":"leave","x":True'),
         "True is not a JSON literal."),
        ("invalid_escape", sub_once(g10_text, b'"leave"}', b'"le\\ave"}'), "\\a is not a JSON escape."),
        ("short_unicode_escape", sub_once(g10_text, b'"leave"}', b'"leave\\u12"}'),
         "A \\u escape with two hex digits."),
        ("lone_high_surrogate_escape", sub_once(g10_text, b'"leave"}', b'"leave","reason":"\\ud800"}'),
         "A lone high-surrogate escape is not a Unicode scalar value."),
        ("lone_low_surrogate_escape", sub_once(g10_text, b'"leave"}', b'"leave","reason":"\\udc00"}'),
         "A lone low-surrogate escape."),
        ("high_surrogate_then_letter", sub_once(g10_text, b'"leave"}', b'"leave","reason":"\\ud800\\u0041"}'),
         "A high surrogate followed by a non-surrogate escape."),
        ("raw_newline_in_string", sub_once(g10_text, b'"leave"}', b'"leave","reason":"a\nb"}'),
         "An unescaped control character inside a string."),
        ("utf8_bom", b"\xef\xbb\xbf" + g10_text,
         ("A UTF-8 byte order mark: JSON texts exchanged between systems must not start with "
          "one (RFC 8259 section 8.1).")),
        ("utf16_body", g10_text.decode("utf-8").encode("utf-16-le"),
         "The leave encoded as UTF-16: federation JSON is UTF-8."),
        ("top_level_array", b"[" + g10_text + b"]", "The event wrapped in an array."),
        ("top_level_string", b'"leave"', "A JSON string, not an event object."),
        ("top_level_null", b"null", "null is not an event object."),
        ("top_level_number", b"7", "A number is not an event object."),
    ]
    for name, raw, why in syntax:
        send(f"json_{name}", c, v10, raw, BAD_JSON, why, path_event=g10_id)
    send("json_truncated_v1_room", c, v1, canonical(good["v1/joined"])[:-3], BAD_JSON,
         "Truncated leave in a version 1 room.", path_event=good["v1/joined"]["event_id"])
    send("json_truncated_v12_room", c, v12, canonical(good["v12/joined"])[:-3], BAD_JSON,
         "Truncated leave in a version 12 room.", path_event=v12.event_id(good["v12/joined"]))

    # ---- invalid UTF-8 -------------------------------------------------------------------
    c = "invalid_utf8"
    utf8: list[tuple[str, bytes, str]] = [
        ("ff_byte", b"\xff", "0xFF never appears in UTF-8."),
        ("lone_continuation", b"\x80", "A continuation byte with no lead byte."),
        ("overlong_slash", b"\xc0\xaf", "An overlong encoding of '/'."),
        ("encoded_surrogate", b"\xed\xa0\x80", "U+D800 encoded as UTF-8 (CESU-style)."),
        ("truncated_sequence", b"\xf0\x9f\x98", "A four-byte sequence missing its last byte."),
        ("above_u10ffff", b"\xf4\x90\x80\x80", "A code point above U+10FFFF."),
        ("latin1_e_acute", b"caf\xe9", "Latin-1 text, not UTF-8."),
    ]
    for name, bad, why in utf8:
        raw = sub_once(g10_text, b'"leave"}', b'"leave","reason":"' + bad + b'"}')
        send(f"utf8_{name}_in_value", c, v10, raw, BAD_JSON, why + " (inside content.reason)",
             path_event=g10_id)
    send("utf8_invalid_in_key", c, v10, sub_once(g10_text, b'"leave"}', b'"leave","\xfe":1}'),
         BAD_JSON, "An invalid byte inside an object key.", path_event=g10_id)
    send("utf8_invalid_in_membership", c, v10, sub_once(g10_text, b'"leave"}', b'"leav\xe9"}'),
         BAD_JSON, "An invalid byte inside the membership value itself.", path_event=g10_id)
    send("utf8_invalid_in_v1_room", c, v1,
         sub_once(canonical(good["v1/joined"]), b'"leave"}', b'"leave","reason":"\xc3\x28"}'),
         BAD_JSON, "Invalid UTF-8 in a version 1 room (no leniency for old versions).",
         path_event=good["v1/joined"]["event_id"])

    # ---- NUL -----------------------------------------------------------------------------
    c = "nul"
    sel_nul = v10.auth_selection()
    sel_nul[1] = sel_nul[1][:5] + "\u0000" + sel_nul[1][5:]
    send("nul_raw_in_string", c, v10, sub_once(g10_text, b'"leave"}', b'"leave","reason":"a\x00b"}'),
         BAD_JSON, "A raw NUL byte inside a string: control characters must be escaped.",
         path_event=g10_id)
    send("nul_raw_after_object", c, v10, g10_text + b"\x00", BAD_JSON,
         "A NUL byte after the object (a C-string reader would stop before it).",
         path_event=g10_id)
    send("nul_raw_inside_membership", c, v10, sub_once(g10_text, b'"leave"}', b'"leave\x00"}'),
         BAD_JSON, "A raw NUL byte right after 'leave': a C-string reader would see a valid leave.",
         path_event=g10_id)
    send("nul_escaped_in_membership", c, v10,
         v10.sign(v10.leave(content={"membership": "leave\u0000"})), INVALID,
         "membership is 'leave\\u0000' (correctly signed), which is not 'leave'.")
    send("nul_escaped_in_type", c, v10, v10.sign(v10.leave(type="m.room.member\u0000")), INVALID,
         "type 'm.room.member\\u0000' is not m.room.member.")
    send("nul_escaped_after_sender_server", c, v10,
         v10.sign(v10.leave(sender=USER + "\u0000", state_key=USER + "\u0000")), INVALID,
         "The sender's server name is 'remote.example\\u0000', not the origin remote.example.")
    send("nul_escaped_in_room_id", c, v10,
         v10.sign(v10.leave(room_id=v10.room_id + "\u0000")), INVALID,
         "The body's room_id has a trailing NUL, so it is not the room in the path.")
    send("nul_percent_in_path_event_id", c, v10, g10, INVALID,
         "%00 appended to the path event ID: the decoded ID is not the event's ID.",
         path_event=g10_id + "%00")
    send("nul_percent_in_path_room_id", c, v10, g10, INVALID,
         "%00 inside the path room ID: a NUL cannot be part of any valid room ID, so the path "
         "parameter is invalid (both APIs must agree; the C ABI cannot even hand it to a callback).",
         path_room="!v10joined%00:resident.example")
    send("nul_escaped_in_auth_event_id", c, v10,
         v10.sign(v10.leave(auth_events=sel_nul)), FORBIDDEN,
         "An auth_events entry with a \\u0000 inside (correctly signed): no such event can be "
         "known, so the auth events are not an allowed selection. Both APIs must give the same "
         "answer (a C host cannot even be asked for it).")
    nul_v1 = v1.sign(v1.leave(event_id="$lea\u0000ve:remote.example"))
    send("nul_in_v1_event_id", c, v1, nul_v1, INVALID,
         "Version 1 leave whose (signed) event_id has a NUL in its opaque part, named in the path "
         "as '%00': room and user IDs explicitly exclude NUL and the C ABI cannot carry it, so "
         "the path parameter is invalid rather than an event to store.",
         path_event="$lea%00ve:remote.example")
    reason_nul = v10.sign(v10.leave(content={"membership": "leave", "reason": "a\u0000b"}))
    send("nul_escaped_in_reason_accepted", c, v10, reason_nul, OK,
         "Control: \\u0000 inside a string is valid JSON; a correctly signed leave whose reason "
         "contains it is accepted (and the NUL must survive the C ABI).")

    # ---- nesting ---------------------------------------------------------------------------
    c = "nesting"
    deep = 10_000
    send("nesting_10000_arrays_in_content", c, v10,
         sub_once(g10_text, b'"leave"}', b'"leave","x":' + b"[" * deep + b"]" * deep + b"}"),
         BAD_JSON, "10,000 nested arrays inside content (the limit is 256).", path_event=g10_id)
    send("nesting_10000_objects_in_content", c, v10,
         sub_once(g10_text, b'"leave"}', b'"leave","x":' + b'{"a":' * deep + b"1" + b"}" * deep + b"}"),
         BAD_JSON, "10,000 nested objects inside content.", path_event=g10_id)
    send("nesting_10000_unterminated", c, v10, b"[" * deep, BAD_JSON,
         "10,000 opening brackets and nothing else.", path_event=g10_id)
    send("nesting_10000_in_unsigned", c, v10,
         sub_once(g10_text, b'"type":"m.room.member"', b'"type":"m.room.member","unsigned":{"x":'
                  + b"[" * deep + b"]" * deep + b"}"),
         BAD_JSON, "10,000 nested arrays inside unsigned (not signed, still parsed).",
         path_event=g10_id)
    nest300: Any = 1
    for _ in range(300):
        nest300 = [nest300]
    send("nesting_300_signed", c, v10,
         v10.sign(v10.leave(content={"membership": "leave", "x": nest300})), BAD_JSON,
         "A correctly signed leave nesting 300 levels deep, over the 256 limit.")

    # ---- duplicate keys --------------------------------------------------------------------
    c = "duplicate_keys"
    join10 = v10.sign(v10.leave(content={"membership": "join"}))

    def dup(name: str, raw: bytes, why: str, room: Room = v10, path_event: str = g10_id) -> None:
        send(f"dup_{name}", c, room, raw, BAD_JSON,
             why + " Duplicate keys make the event ambiguous: refused whatever was signed.",
             path_event=path_event)

    dup("membership_join_then_leave", sub_once(g10_text, b'"membership":"leave"',
                                               b'"membership":"join","membership":"leave"'),
        "content has membership 'join' then 'leave'; the signature covers 'leave' (last wins).")
    dup("membership_leave_then_join", sub_once(g10_text, b'"membership":"leave"',
                                               b'"membership":"leave","membership":"join"'),
        "content has membership 'leave' then 'join' (first wins would see a leave).")
    dup("membership_escaped_key", sub_once(g10_text, b'"membership":"leave"',
                                           b'"membership":"join","membershi\\u0070":"leave"'),
        "The second membership key is spelled with an escape, so it is only a duplicate once "
        "unescaped.")
    dup("membership_signed_join_plus_leave", sub_once(canonical(join10), b'"membership":"join"',
                                                      b'"membership":"join","membership":"leave"'),
        "The signature covers membership 'join'; a second 'leave' key is appended.",
        path_event=v10.event_id(join10))
    dup("state_key_victim_first", sub_once(g10_text, b'"state_key":"@user:remote.example"',
                                           b'"state_key":"@victim:resident.example",'
                                           b'"state_key":"@user:remote.example"'),
        "Two state_keys: a victim's first, the signed sender's last (a disguised kick).")
    dup("state_key_victim_last", sub_once(g10_text, b'"state_key":"@user:remote.example"',
                                          b'"state_key":"@user:remote.example",'
                                          b'"state_key":"@victim:resident.example"'),
        "Two state_keys: the signed one first, a victim's last.")
    dup("sender_other_server", sub_once(g10_text, b'"sender":"@user:remote.example"',
                                        b'"sender":"@user:remote.example","sender":"@user:other.example"'),
        "Two senders on different servers.")
    dup("type_two_values", sub_once(g10_text, b'"type":"m.room.member"',
                                    b'"type":"m.room.message","type":"m.room.member"'),
        "Two types.")
    dup("room_id_two_rooms", sub_once(g10_text, b'"room_id":"' + v10.room_id.encode() + b'"',
                                      b'"room_id":"' + v11i.room_id.encode() + b'","room_id":"'
                                      + v10.room_id.encode() + b'"'),
        "Two room_ids, another room's first.")
    dup("content_objects", sub_once(g10_text, b'"content":{"membership":"leave"}',
                                    b'"content":{"membership":"ban"},"content":{"membership":"leave"}'),
        "Two content objects.")
    dup("depth_twice", sub_once(g10_text, b'"depth":7', b'"depth":1,"depth":7'), "Two depths.")
    dup("auth_events_twice", sub_once(g10_text, b'"auth_events":[',
                                      b'"auth_events":["' + v10.state_id("m.room.join_rules").encode()
                                      + b'"],"auth_events":['),
        "Two auth_events arrays, the first naming the join rules.")
    sig10 = g10["signatures"][REMOTE]["ed25519:1"].encode()
    dup("signatures_objects", sub_once(g10_text, b'"signatures":{',
                                       b'"signatures":{},"signatures":{'),
        "Two signatures objects, the first empty.")
    dup("signature_key_id_twice", sub_once(g10_text, b'"ed25519:1":"' + sig10 + b'"',
                                           b'"ed25519:1":"AAAA","ed25519:1":"' + sig10 + b'"'),
        "The same key ID twice inside signatures.remote.example.")
    dup("hashes_sha256_twice", sub_once(g10_text, b'"hashes":{"sha256":',
                                        b'"hashes":{"sha256":"AAAA","sha256":'),
        "Two sha256 content hashes.")
    dup("unsigned_key_twice", sub_once(g10_text, b'"type":"m.room.member"',
                                       b'"type":"m.room.member","unsigned":{"age":1,"age":2}'),
        "A duplicate key inside unsigned, which is not signed but is still JSON.")
    dup("event_id_twice_v1", sub_once(canonical(good["v1/joined"]), b'"event_id":"',
                                      b'"event_id":"$other:remote.example","event_id":"'),
        "Two event_ids in a version 1 leave.", room=v1, path_event=good["v1/joined"]["event_id"])
    g11 = good["v11/invited"]
    dup("membership_invite_rejection_v11", sub_once(canonical(g11), b'"membership":"leave"',
                                                    b'"membership":"leave","membership":"join"'),
        "An invite rejection (version 11) with a second, joining, membership.", room=v11i,
        path_event=v11i.event_id(g11))

    # ---- wrong JSON types of top-level fields ----------------------------------------------
    c = "wrong_type"
    wrong: list[tuple[str, Any, str]] = [
        ("type", 42, "number"), ("type", None, "null"), ("type", ["m.room.member"], "array"),
        ("sender", 42, "number"), ("sender", {"user_id": USER}, "object"), ("sender", True, "bool"),
        ("state_key", 42, "number"), ("state_key", None, "null"), ("state_key", [USER], "array"),
        ("room_id", 42, "number"), ("room_id", None, "null"), ("room_id", [v10.room_id], "array"),
        ("content", "leave", "string"), ("content", None, "null"), ("content", ["leave"], "array"),
        ("depth", "7", "string"), ("depth", None, "null"), ("depth", True, "bool"),
        ("origin_server_ts", str(v10.last_ts + 1000), "string"), ("origin_server_ts", None, "null"),
        ("origin_server_ts", [], "array"),
        ("prev_events", v10.extremities[0], "string"), ("prev_events", {}, "object"),
        ("prev_events", None, "null"), ("prev_events", [42], "array_of_number"),
        ("auth_events", v10.auth_selection()[0], "string"), ("auth_events", {}, "object"),
        ("auth_events", None, "null"), ("auth_events", [[v10.auth_selection()[0], {"sha256": "x"}]],
                                         "array_of_pairs_in_v10"),
        ("hashes", "sha256", "string"), ("hashes", None, "null"), ("hashes", [], "array"),
        ("signatures", "sig", "string"), ("signatures", None, "null"), ("signatures", [], "array"),
        ("unsigned", "x", "string"), ("unsigned", [], "array"), ("unsigned", 42, "number"),
        ("origin", 42, "number"),
    ]
    for field, value, kind in wrong:
        ev = copy.deepcopy(g10)
        ev[field] = value
        raw = canonical(ev)
        send(f"type_{field}_{kind}", c, v10, raw, BAD_JSON,
             f"{field} is a {kind.replace('_', ' ')}: a field of the wrong type.", path_event=g10_id)
    g1 = good["v1/joined"]
    for kind, value in (("number", 42), ("null", None), ("array", [g1["event_id"]])):
        ev = copy.deepcopy(g1)
        ev["event_id"] = value
        send(f"type_event_id_{kind}_v1", c, v1, canonical(ev), BAD_JSON,
             f"event_id of a version 1 leave is a {kind}.", path_event=g1["event_id"])
    for field in ("prev_events", "auth_events"):
        ev = copy.deepcopy(g1)
        ev[field] = [r[0] for r in ev[field]]
        send(f"type_{field}_bare_ids_v1", c, v1, canonical(ev), BAD_JSON,
             f"{field} of a version 1 leave lists bare IDs instead of [id, hashes] pairs.",
             path_event=g1["event_id"])
    ev = copy.deepcopy(g1)
    ev["auth_events"][0] = [ev["auth_events"][0][0], "sha256"]
    send("type_auth_events_pair_hash_string_v1", c, v1, canonical(ev), BAD_JSON,
         "The second member of a version 1 auth_events pair is a string, not an object.",
         path_event=g1["event_id"])
    ev = copy.deepcopy(g1)
    ev["prev_events"][0] = ev["prev_events"][0] + ["extra"]
    send("type_prev_events_triple_v1", c, v1, canonical(ev), BAD_JSON,
         "A version 1 prev_events entry with three members.", path_event=g1["event_id"])
    # content.membership: the specification's send_leave rule is "membership is not leave".
    for kind, value in (("number", 1), ("null", None), ("array", ["leave"]), ("object", {"leave": True}),
                        ("bool", True)):
        send(f"type_membership_{kind}", c, v10,
             v10.sign(v10.leave(content={"membership": value})), INVALID,
             f"content.membership is a {kind} (correctly signed): it is not the string 'leave', "
             "which the spec's send_leave rules answer with M_INVALID_PARAM.")
    send("type_membership_missing", c, v10, v10.sign(v10.leave(content={})), INVALID,
         "content has no membership (correctly signed): not a leave.")

    # ---- missing fields ------------------------------------------------------------------
    c = "missing_field"
    for field in ("type", "sender", "room_id", "content", "depth", "origin_server_ts",
                  "prev_events", "auth_events", "hashes", "signatures"):
        ev = copy.deepcopy(g10)
        del ev[field]
        send(f"missing_{field}", c, v10, canonical(ev), BAD_JSON,
             f"The required PDU field {field} is missing.", path_event=g10_id)
    send("missing_state_key", c, v10, mutate(v10, state_key=None), INVALID,
         "No state_key (correctly signed): not a state event, so not a membership event.")
    ev = copy.deepcopy(g1)
    del ev["event_id"]
    send("missing_event_id_v1", c, v1, canonical(ev), BAD_JSON,
         "A version 1 PDU must carry its event_id.", path_event=g1["event_id"])
    for r in (v10, v12):
        ev = copy.deepcopy(good[r.key])
        ev["event_id"] = r.event_id(good[r.key])
        send(f"event_id_present_v{r.version_id}", c, r, canonical(ev), BAD_JSON,
             f"event_id is present in a version {r.version_id} PDU, whose ID is its reference hash.",
             path_event=r.event_id(good[r.key]))

    # ---- numbers: depth and timestamps -----------------------------------------------------
    c = "numbers"
    ts10 = v10.last_ts + 1000
    send("depth_negative", c, v10, mutate(v10, depth=-1), BAD_JSON,
         "depth -1 (correctly signed): depth is a non-negative integer.")
    send("depth_2p53_v10", c, v10, mutate(v10, depth=2**53), BAD_JSON,
         "depth 2^53 (correctly signed) is outside canonical JSON's integer range in version 10.")
    send("depth_2p63_v10", c, v10, mutate(v10, depth=2**63), BAD_JSON,
         "depth 2^63 does not even fit in a signed 64-bit integer.")
    send("depth_float_v10", c, v10, mutate(v10, depth=7.5), BAD_JSON,
         "depth 7.5 (correctly signed).")
    send("depth_integral_float_v10", c, v10, sub_once(g10_text, b'"depth":7', b'"depth":7.0'),
         BAD_JSON, "depth written 7.0: a float in version 10.", path_event=g10_id)
    send("depth_exponent_v10", c, v10, sub_once(g10_text, b'"depth":7', b'"depth":7e0'),
         BAD_JSON, "depth written 7e0: an exponent in version 10.", path_event=g10_id)
    send("depth_huge_exponent_v10", c, v10, sub_once(g10_text, b'"depth":7', b'"depth":1e400'),
         BAD_JSON, "depth 1e400 overflows a double.", path_event=g10_id)
    send("depth_negative_v1", c, v1, mutate(v1, depth=-5), BAD_JSON,
         "depth -5 in a version 1 room (correctly signed).")
    send("depth_2p63_v5", c, v5, mutate(v5, depth=2**63), BAD_JSON,
         "depth 2^63 in version 5 (correctly signed): the PDU schema caps depth at 2^63 - 1.")
    send("ts_negative", c, v10, mutate(v10, origin_server_ts=-1), BAD_JSON,
         "origin_server_ts -1 (correctly signed).")
    send("ts_2p53_v10", c, v10, mutate(v10, origin_server_ts=2**53), BAD_JSON,
         "origin_server_ts 2^53 (correctly signed), outside canonical JSON's range in version 10.")
    send("ts_float_v10", c, v10, mutate(v10, origin_server_ts=ts10 + 0.5), BAD_JSON,
         "origin_server_ts with a fraction (correctly signed).")
    send("ts_integral_float_v10", c, v10,
         sub_once(g10_text, b'"origin_server_ts":%d' % ts10, b'"origin_server_ts":%d.0' % ts10),
         BAD_JSON, "origin_server_ts written with '.0'.", path_event=g10_id)
    send("ts_exponent_v12", c, v12,
         sub_once(canonical(good["v12/joined"]), b'"origin_server_ts":%d' % (v12.last_ts + 1000),
                  b'"origin_server_ts":%de3' % ((v12.last_ts + 1000) // 1000)),
         BAD_JSON, "origin_server_ts written with an exponent in version 12.",
         path_event=v12.event_id(good["v12/joined"]))
    send("ts_2p64_v5", c, v5, mutate(v5, origin_server_ts=2**64), BAD_JSON,
         "origin_server_ts 2^64 in version 5 (correctly signed): not an int64.")
    for name, value, why in (
        ("float", 1.5, "a float"),
        ("exponent_float", 1e100, "1e+100"),
        ("big_int", 2**53, "2^53"),
        ("big_negative_int", -(2**53), "-2^53"),
    ):
        send(f"content_{name}_v10", c, v10,
             v10.sign(v10.leave(content={"membership": "leave", "x": value})), BAD_JSON,
             f"content holds {why} (correctly signed): not canonical JSON in version 10.")
    send("content_float_v6", c, v6,
         v6.sign(v6.leave(content={"membership": "leave", "x": 0.1})), BAD_JSON,
         "A float in content in version 6, the first version with strict canonical JSON.")
    send("content_big_int_v12", c, v12,
         v12.sign(v12.leave(content={"membership": "leave", "x": MAX_SAFE + 1})), BAD_JSON,
         "2^53 in content in version 12.")
    send("depth_2p60_v5_accepted", c, v5, mutate(v5, depth=2**60), OK,
         "Control: depth 2^60 in version 5 is within the PDU schema's limit (less than 2^63 - 1; "
         "pdu_v4.yaml) and version 5 has no canonical-JSON integer range; README: big integers "
         "are refused only in v6+.")
    send("ts_far_future_key_cap_v10", c, v10, mutate(v10, origin_server_ts=MAX_SAFE), INVALID,
         "origin_server_ts 2^53-1 signed with a key whose valid_until_ts is also 2^53-1: in v5+ "
         "a key is valid only until the lesser of valid_until_ts and 7 days from now, so it does "
         "not cover this event.",
         keys={REMOTE: {"ed25519:1": {"key": SPEC_PUBLIC, "valid_until_ts": MAX_SAFE}},
               RESIDENT: {"ed25519:1": SPEC_PUBLIC}, OTHER: {"ed25519:1": SPEC_PUBLIC}})

    # ---- ID sizes --------------------------------------------------------------------------
    c = "id_size"
    u256 = "@" + "u" * (256 - 1 - len(":remote.example")) + ":remote.example"
    u255 = u256[:1] + u256[2:]
    assert len(u256.encode()) == 256 and len(u255.encode()) == 255
    r256 = "!" + "r" * (256 - 1 - len(":resident.example")) + ":resident.example"
    e256 = "$" + "e" * 255
    send("id256_sender_and_state_key", c, v10, v10.sign(v10.leave(u256)), BAD_JSON,
         "sender and state_key are 256 bytes long (limit 255).")
    send("id256_state_key_only", c, v10,
         v10.sign(v10.leave(state_key=u256)), BAD_JSON,
         "state_key is 256 bytes long; the size check precedes the state_key/sender comparison.")
    send("id256_sender_only", c, v10, v10.sign(v10.leave(sender=u256)), BAD_JSON,
         "sender is 256 bytes long.")
    send("id256_multibyte_sender", c, v10,
         v10.sign(v10.leave("@" + "\u00e9" * 120 + "x" * (256 - 1 - 240 - 15) + ":remote.example")),
         BAD_JSON, "A sender of 256 bytes but far fewer characters: the limit counts UTF-8 bytes.")
    send("id256_room_id_in_body", c, v10, v10.sign(v10.leave(room_id=r256)), BAD_JSON,
         "The body's room_id is 256 bytes long.")
    send("id256_type", c, v10, v10.sign(v10.leave(type="m." + "t" * 254)), BAD_JSON,
         "type is 256 bytes long.")
    send("id256_auth_event", c, v10,
         v10.sign(v10.leave(auth_events=v10.auth_selection()[:2] + [e256])), BAD_JSON,
         "An auth_events entry is 256 bytes long.")
    send("id256_prev_event", c, v10, v10.sign(v10.leave(prev_events=[e256])), BAD_JSON,
         "A prev_events entry is 256 bytes long.")
    ev = v1.leave(event_id="$" + "e" * (256 - 1 - len(":remote.example")) + ":remote.example")
    sev = v1.sign(ev)
    send("id256_event_id_v1", c, v1, sev, BAD_JSON, "A version 1 event_id of 256 bytes.",
         path_event=sev["event_id"][:255])
    auth1 = copy.deepcopy(v1.leave()["auth_events"])
    auth1[-1] = ["$" + "e" * 255, auth1[-1][1]]
    send("id256_auth_event_pair_v1", c, v1, v1.sign(v1.leave(auth_events=auth1)), BAD_JSON,
         "A 256-byte ID inside a version 1 auth_events pair.")
    send("id256_path_room_id", c, v10, g10, INVALID,
         "The path room ID is 256 bytes long.", path_room=r256)
    send("id256_path_event_id", c, v10, g10, INVALID,
         "The path event ID is 256 bytes long.", path_event=e256)
    send("id255_sender_passes_format_fails_auth", c, v10, v10.sign(v10.leave(u255)), FORBIDDEN,
         "Boundary: a 255-byte sender passes the format checks and its signature check; the "
         "user has no membership in the room, so the auth rules refuse the leave.")
    send("too_many_auth_events", c, v10,
         v10.sign(v10.leave(auth_events=v10.auth_selection() * 3 + v10.auth_selection()[:2])),
         BAD_JSON, "11 auth_events (limit 10).")
    send("too_many_prev_events", c, v10,
         v10.sign(v10.leave(prev_events=[f"$prev{i:02d}" for i in range(21)])), BAD_JSON,
         "21 prev_events (limit 20).")
    send("too_many_auth_events_v1", c, v1,
         v1.sign(v1.leave(auth_events=(v1.leave()["auth_events"] * 4)[:11])), BAD_JSON,
         "11 auth_events pairs in a version 1 leave.")

    # ---- path / body mismatches --------------------------------------------------------------
    c = "mismatch"
    g10i = good["v10/invited"]
    g10i_id = v10i.event_id(g10i)
    g11_id = v11i.event_id(g11)
    send("path_room_other_known_room", c, v10, g10, INVALID,
         "Path names another room this server is in (v10/invited); the body is v10/joined's leave.",
         path_room=v10i.room_id, also_rooms=["v10/invited"])
    send("body_room_other_known_room", c, v10, g10i, INVALID,
         "Path names v10/joined; the body is v10/invited's (valid there) leave, with its own ID.",
         also_rooms=["v10/invited"])
    send("body_room_other_path_event_this", c, v10, g10i, INVALID,
         "Path room and event ID are v10/joined's leave; the body is v10/invited's leave.",
         path_event=g10_id, also_rooms=["v10/invited"])
    send("path_event_other_leave", c, v10, g10, INVALID,
         "Path event ID is another room's leave; body and room are v10/joined's.",
         path_event=g10i_id)
    send("path_both_other_body_this", c, v10, g10, INVALID,
         "Path room and event are v10/invited's leave; the body is v10/joined's.",
         path_room=v10i.room_id, path_event=g10i_id, also_rooms=["v10/invited"])
    send("path_room_matches_body_event_does_not", c, v10, g10i, INVALID,
         "Path room is v10/invited, as is the body (its valid leave), but the path event ID is "
         "v10/joined's leave.", path_room=v10i.room_id, path_event=g10_id,
         also_rooms=["v10/invited"])
    send("path_event_one_char_changed", c, v10, g10, INVALID,
         "Path event ID differs from the event's reference hash in one character.",
         path_event=g10_id[:-1] + ("A" if g10_id[-1] != "A" else "B"))
    send("path_event_of_join", c, v10, g10, INVALID,
         "Path event ID is the user's join event, which the server has; the body is the leave.",
         path_event=v10.state_id("m.room.member", USER))
    send("path_event_without_sigil", c, v10, g10, INVALID,
         "Path event ID without its '$' sigil.", path_event=g10_id[1:])
    send("path_room_without_sigil", c, v10, g10, INVALID,
         "Path room ID without its '!' sigil.", path_room=v10.room_id[1:])
    send("path_room_alias", c, v10, g10, INVALID,
         "A room alias in place of the room ID.", path_room="#v10joined:resident.example")
    send("path_event_empty", c, v10, g10, INVALID, "An empty path event ID.", path_event="")
    send("path_room_empty", c, v10, g10, INVALID, "An empty path room ID.", path_room="")
    ev = v10.leave()
    ev["room_id"] = v10i.room_id
    send("body_room_swapped_resigned", c, v10, v10.sign(ev), INVALID,
         "The leave re-targeted at v10/invited and re-signed, sent to v10/joined's path.")
    send("path_event_v1_mismatch", c, v1, g1, INVALID,
         "Version 1: the path event ID is not the body's event_id.",
         path_event="$other-leave:remote.example")
    ev = v1.sign(v1.leave(event_id="$renamed:remote.example"))
    send("body_event_id_v1_changed", c, v1, ev, INVALID,
         "Version 1: the body's (signed) event_id differs from the path's.",
         path_event=g1["event_id"])
    send("v12_path_room_of_v10", c, v12, good["v12/joined"], INVALID,
         "The version 12 leave sent to the v10/joined room's path.", path_room=v10.room_id,
         also_rooms=["v10/joined"])

    # ---- percent-encoding in path IDs ----------------------------------------------------------
    c = "percent_encoding"
    enc_room = v10.room_id.replace("!", "%21").replace(":", "%3A")
    send("pct_room_fully_encoded_accepted", c, v10, g10, OK,
         "Control: the path room ID percent-encoded ('%21...%3A...') is the same room.",
         path_room=enc_room)
    send("pct_room_lower_hex_accepted", c, v10, g10, OK,
         "Control: lower-case hex digits ('%3a') decode the same.",
         path_room=v10.room_id.replace(":", "%3a"))
    send("pct_event_encoded_accepted", c, v10, g10, OK,
         "Control: the path event ID with '$' written %24.", path_event="%24" + g10_id[1:])
    send("pct_room_double_encoded_sigil", c, v10, g10, INVALID,
         "'%2521' decodes once to the literal '%21': the room ID then lacks its '!' sigil.",
         path_room=enc_room.replace("%21", "%2521"))
    send("pct_room_double_encoded_colon", c, v10, g10, NOT_FOUND,
         "'%253A' decodes once to a literal '%3A': a different, unknown, room ID.",
         path_room=v10.room_id.replace(":", "%253A"))
    send("pct_event_double_encoded_sigil", c, v10, g10, INVALID,
         "'%2524' decodes once to a literal '%24': the event ID lacks its '$' sigil.",
         path_event="%2524" + g10_id[1:])
    send("pct_room_invalid_hex", c, v10, g10, INVALID, "'%zz' is not a percent-escape.",
         path_room=v10.room_id.replace(":", "%zz"))
    send("pct_room_truncated_escape", c, v10, g10, INVALID, "A '%' with one hex digit at the end.",
         path_room=v10.room_id + "%4")
    send("pct_room_bare_percent", c, v10, g10, INVALID, "A lone '%' at the end.",
         path_room=v10.room_id + "%")
    send("pct_event_invalid_hex", c, v10, g10, INVALID, "'%g0' inside the event ID.",
         path_event=g10_id[:5] + "%g0" + g10_id[5:])
    send("pct_room_slash", c, v10, g10, NOT_FOUND,
         "'%2F' decodes to '/', which makes another, unknown, room ID.",
         path_room=v10.room_id.replace(":", "%2F:"))
    send("pct_room_invalid_utf8", c, v10, g10, INVALID,
         "'%C3%28' decodes to bytes that are not UTF-8.",
         path_room=v10.room_id.replace(":", "%C3%28:"))
    send("pct_room_overlong", c, v10, g10, INVALID,
         "'%C0%AF' is an overlong '/', not UTF-8.", path_room=v10.room_id.replace(":", "%C0%AF:"))
    send("pct_event_slash", c, v10, g10, INVALID,
         "'%2F' in the event ID: the decoded ID has a '/' the reference hash does not.",
         path_event=g10_id[:10] + "%2F" + g10_id[10:])
    # A leave whose ID has '-' or '_', written in the standard base64 alphabet instead.
    sb_room = next(r for r in (v10, v11i, v12, v7k, v5, v6, v10i)
                   if std_b64(r.event_id(good[r.key])) != r.event_id(good[r.key]))
    sb_id = sb_room.event_id(good[sb_room.key])
    send("pct_event_standard_base64", c, sb_room, good[sb_room.key], INVALID,
         "The event ID written in standard base64 ('+' '/' as %2B %2F) instead of the "
         "URL-safe alphabet version 4+ IDs use.",
         path_event=std_b64(sb_id).replace("+", "%2B").replace("/", "%2F"))
    body_enc = v10.sign(v10.leave(room_id=enc_room))
    send("pct_body_room_encoded", c, v10, body_enc, INVALID,
         "The body's room_id is the percent-encoded form: bodies are not percent-decoded, so it "
         "is not the path's room.", path_event=v10.event_id(body_enc))

    # ---- not a leave -----------------------------------------------------------------------
    c = "not_a_leave"
    send("type_message", c, v10, mutate(v10, type="m.room.message"), INVALID,
         "A correctly signed m.room.message.")
    send("type_member_case", c, v10, mutate(v10, type="m.room.Member"), INVALID,
         "Event types are case-sensitive.")
    for label, m in (("join", "join"), ("ban", "ban"), ("invite", "invite"), ("knock", "knock"),
                     ("capitalised", "Leave"), ("trailing_space", "leave "), ("empty", "")):
        send(f"membership_{label}", c, v10, v10.sign(v10.leave(content={"membership": m})), INVALID,
             f"membership {m!r} (correctly signed) is not 'leave'.")
    send("membership_join_v11_invite_rejection", c, v11i,
         v11i.sign(v11i.leave(content={"membership": "join"})), INVALID,
         "An invitee sends a join through send_leave (version 11).")
    send("membership_top_level_only_v1", c, v1,
         v1.sign(v1.leave(content={}, membership="leave")), INVALID,
         "Version 1: membership only at the top level (a legacy field), not in content.")

    # ---- who ---------------------------------------------------------------------------------
    c = "sender_origin"
    send("kick_state_key_victim", c, v10, v10.sign(v10.leave(state_key="@victim:resident.example")),
         INVALID, "state_key is another user: send_leave only takes a user's own leave.")
    send("kick_rmod_of_user", c, v10,
         v10.sign(v10.leave(sender="@rmod:remote.example")), INVALID,
         "A remote moderator's kick of @user through send_leave: state_key differs from sender.")
    send("origin_other_server", c, v10, g10, INVALID,
         "The requesting server other.example relays remote.example's leave.", origin=OTHER)
    send("origin_resident_itself", c, v10, g10, INVALID,
         "The request claims to come from this server.", origin=RESIDENT)
    send("origin_case_differs", c, v10, g10, INVALID,
         "origin REMOTE.example is not the sender's server remote.example (compared exactly).",
         origin="REMOTE.example")
    ev = v10.leave("@user:other.example")
    send("sender_other_server_signed_by_it", c, v10,
         v10.sign(ev, [(OTHER, SPEC_KEY)]), INVALID,
         "other.example's user, signed by other.example, sent by remote.example.")
    send("sender_without_server", c, v10, v10.sign(v10.leave("@user"), [(REMOTE, SPEC_KEY)]), INVALID,
         "sender '@user' has no server name, so it cannot be from the origin.")
    send("sender_port_suffix", c, v10,
         v10.sign(v10.leave("@user:remote.example:8448"), [(REMOTE, SPEC_KEY)]), INVALID,
         "sender's server name is remote.example:8448, not the origin remote.example.")

    # ---- signatures --------------------------------------------------------------------------
    c = "signature"

    def resign(ev: Json, fn: Callable[[Json], None]) -> Json:
        out = copy.deepcopy(ev)
        fn(out)
        return out

    send("sig_none", c, v10, resign(g10, lambda e: e.__setitem__("signatures", {})), INVALID,
         "No signatures at all.", path_event=g10_id)
    send("sig_wrong_server_only", c, v10, v10.sign(v10.leave(), [(OTHER, SPEC_KEY)]), INVALID,
         "Signed only by other.example (with a key other.example really has).")
    send("sig_resident_only", c, v10, v10.sign(v10.leave(), [(RESIDENT, SPEC_KEY)]), INVALID,
         "Signed only by the resident server's name.")
    send("sig_unpublished_key_id", c, v10, v10.sign(v10.leave(), [(REMOTE, SPEC_KEY_AS_2)]), INVALID,
         "Signed under key ID ed25519:2, which remote.example never published.")
    send("sig_stranger_key", c, v10, v10.sign(v10.leave(), [(REMOTE, STRANGER_KEY)]), INVALID,
         "Signed under ed25519:1 with a key that is not remote.example's.")
    for alg in ("ed448", "curve25519", "ED25519"):
        send(f"sig_algorithm_{alg.lower()}{'_upper' if alg.isupper() else ''}", c, v10,
             resign(g10, lambda e, a=alg: e["signatures"].__setitem__(
                 REMOTE, {f"{a}:1": g10["signatures"][REMOTE]["ed25519:1"]})),
             INVALID, f"The good signature filed under '{alg}:1', an algorithm the server does not "
                      "support (key IDs are case-sensitive).", path_event=g10_id)
    good_sig = g10["signatures"][REMOTE]["ed25519:1"]
    flipped = ("B" if good_sig[0] != "B" else "C") + good_sig[1:]
    send("sig_flipped_char", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", flipped)), INVALID,
         "The signature with its first character changed.", path_event=g10_id)
    send("sig_truncated", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", good_sig[:-4])),
         INVALID, "The signature with its last four characters cut.", path_event=g10_id)
    send("sig_not_base64", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", "!" * 86)),
         INVALID, "A signature that is not base64.", path_event=g10_id)
    send("sig_value_number", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", 42)),
         INVALID, "The signature value is a number.", path_event=g10_id)
    send("sig_server_entry_string", c, v10,
         resign(g10, lambda e: e["signatures"].__setitem__(REMOTE, good_sig)),
         INVALID, "signatures.remote.example is a string, not an object of key IDs.",
         path_event=g10_id)
    send("sig_padded_base64_accepted", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", good_sig + "==")),
         OK, "Control: the same signature with base64 padding; the spec's Unpadded Base64 "
             "appendix says decoders SHOULD accept padded input.", path_event=g10_id)
    join_sig = join10["signatures"][REMOTE]["ed25519:1"]
    assert join_sig != good_sig
    send("sig_of_another_event", c, v10,
         resign(g10, lambda e: e["signatures"][REMOTE].__setitem__("ed25519:1", join_sig)),
         INVALID, "remote.example's genuine signature of a different event (its join-membership "
                  "twin) attached to the leave.", path_event=g10_id)
    # A signed field changed after signing: the ID changes, so the path names the new ID.
    for field, value in (("origin_server_ts", g10["origin_server_ts"] + 1), ("depth", 8),
                         ("prev_events", [v10.state_id("m.room.join_rules")])):
        ev = copy.deepcopy(g10)
        ev[field] = value
        send(f"sig_tampered_{field}", c, v10, ev, INVALID,
             f"{field} changed after signing (path carries the changed event's ID): the "
             "signature no longer verifies.")
    ev = copy.deepcopy(g1)
    ev["event_id"] = "$leave-v1joined:other.example"
    send("sig_v1_event_id_server_unsigned", c, v1, v1.sign(ev), INVALID,
         "Version 1: the event ID's server other.example must sign too, and has not.")
    send("sig_v12_wrong_server", c, v12, v12.sign(v12.leave(), [(OTHER, SPEC_KEY)]), INVALID,
         "Version 12 leave signed only by other.example.")
    send("sig_v1_stranger_key", c, v1, v1.sign(v1.leave(), [(REMOTE, STRANGER_KEY)]), INVALID,
         "Version 1 leave signed with a key that is not remote.example's.")
    no_remote = {RESIDENT: {"ed25519:1": SPEC_PUBLIC}, OTHER: {"ed25519:1": SPEC_PUBLIC}}
    send("sig_no_keys_known", c, v10, g10, INVALID,
         "The key store knows no key of remote.example.", keys=no_remote, path_event=g10_id)

    # ---- key validity ------------------------------------------------------------------------
    c = "key_validity"

    def keyset(**remote: Any) -> Json:
        entry: Json = {"key": SPEC_PUBLIC}
        entry.update(remote)
        return {REMOTE: {"ed25519:1": entry}, RESIDENT: {"ed25519:1": SPEC_PUBLIC},
                OTHER: {"ed25519:1": SPEC_PUBLIC}}

    for r in (v5, v10, v11i, v12, v7k):
        g = good[r.key]
        ts = g["origin_server_ts"]
        send(f"key_expired_before_event_v{r.version_id}{'_' + r.key.split('/')[1]}", c, r, g, INVALID,
             f"Version {r.version_id}: remote.example's key has valid_until_ts one millisecond "
             "before the leave's origin_server_ts; v5+ rooms must not use it.",
             keys=keyset(valid_until_ts=ts - 1))
    g5 = good["v5/joined"]
    send("key_old_expired_before_event_v5", c, v5, g5, INVALID,
         "Version 5: the key is an old key whose expired_ts is before the leave.",
         keys=keyset(expired_ts=g5["origin_server_ts"] - 1))
    send("key_valid_until_equal_ts_v5_accepted", c, v5, g5, OK,
         "Control: valid_until_ts equal to origin_server_ts is 'at least as large' "
         "(v5-signing-requirements), so the key is used.",
         keys=keyset(valid_until_ts=g5["origin_server_ts"]))
    v4 = cat.room("v4/joined")
    g4 = v4.sign(v4.leave())
    send("key_expired_v4_accepted", c, v4, g4, OK,
         "Control: before version 5 key validity is not enforced, so an expired key still "
         "verifies.", keys=keyset(valid_until_ts=g4["origin_server_ts"] - 1))
    send("key_expired_plus_other_alg_v10", c, v10, resign(good["v10/joined"], lambda e: e["signatures"][REMOTE]
                                                         .__setitem__("ed448:1", "AAAA")),
         INVALID, "Version 10: an expired ed25519 key next to an unsupported-algorithm signature.",
         keys=keyset(valid_until_ts=g10["origin_server_ts"] - 1), path_event=g10_id)

    # ---- auth events -------------------------------------------------------------------------
    c = "auth"
    jr10 = v10.state_id("m.room.join_rules")
    sel10 = v10.auth_selection()
    send("auth_join_rules_added", c, v10, v10.sign(v10.leave(auth_events=sel10 + [jr10])), FORBIDDEN,
         "The join rules are listed: the auth-events selection for a leave does not include them.")
    send("auth_duplicate_power_levels", c, v10,
         v10.sign(v10.leave(auth_events=sel10 + [sel10[1]])), FORBIDDEN,
         "The power levels event listed twice.")
    send("auth_duplicate_member", c, v10,
         v10.sign(v10.leave(auth_events=sel10 + [sel10[2]])), FORBIDDEN,
         "The user's member event listed twice.")
    send("auth_create_missing_v10", c, v10, v10.sign(v10.leave(auth_events=sel10[1:])), FORBIDDEN,
         "Version 10: no create event in auth_events.")
    send("auth_create_missing_v1", c, v1,
         v1.sign(v1.leave(auth_events=v1.leave()["auth_events"][1:])), FORBIDDEN,
         "Version 1: no create event in auth_events.")
    send("auth_create_missing_v5", c, v5,
         v5.sign(v5.leave(auth_events=v5.auth_selection()[1:])), FORBIDDEN,
         "Version 5: no create event in auth_events.")
    send("auth_create_present_v12", c, v12,
         v12.sign(v12.leave(auth_events=[v12.state_id("m.room.create")] + v12.auth_selection())),
         FORBIDDEN, "Version 12: the create event must not be listed in auth_events.")
    send("auth_empty", c, v10, v10.sign(v10.leave(auth_events=[])), FORBIDDEN,
         "No auth events at all.")
    send("auth_member_missing", c, v10, v10.sign(v10.leave(auth_events=sel10[:2])), FORBIDDEN,
         "Create and power levels only: the user's membership is not among the auth events, so "
         "they are not in the room as far as the leave says.")
    send("auth_unknown_event", c, v10,
         v10.sign(v10.leave(auth_events=sel10[:2] + ["$doesnotexist"])), FORBIDDEN,
         "An auth event the server does not know.")
    send("auth_other_users_member", c, v10,
         v10.sign(v10.leave(auth_events=sel10[:2] + [v10.state_id("m.room.member", "@mod:resident.example")])),
         FORBIDDEN, "Another user's member event in place of the sender's.")
    send("auth_creator_member_added", c, v10,
         v10.sign(v10.leave(auth_events=sel10 + [v10.state_id("m.room.member", CREATOR)])),
         FORBIDDEN, "The creator's member event added: not in the selection for this leave.")
    pl_other = v10i.state_id("m.room.power_levels")
    send("auth_event_from_other_room", c, v10,
         v10.sign(v10.leave(auth_events=[sel10[0], pl_other, sel10[2]])), FORBIDDEN,
         "The power levels event of another room (v10/invited), which the host can look up by ID.",
         also_rooms=["v10/invited"], global_event_lookup=True)
    send("auth_event_from_other_room_unknown_here", c, v10,
         v10.sign(v10.leave(auth_events=[sel10[0], pl_other, sel10[2]])), FORBIDDEN,
         "The same, with a host that only finds events of the room itself.",
         also_rooms=["v10/invited"])
    send("auth_create_of_other_room", c, v10,
         v10.sign(v10.leave(auth_events=[v10i.state_id("m.room.create")] + sel10[1:])), FORBIDDEN,
         "Another room's create event in place of this room's.", also_rooms=["v10/invited"],
         global_event_lookup=True)
    send("auth_member_from_other_room", c, v10,
         v10.sign(v10.leave(auth_events=sel10[:2] + [v10i.state_id("m.room.member", USER)])),
         FORBIDDEN, "The user's (invite) member event of another room.", also_rooms=["v10/invited"],
         global_event_lookup=True)
    v1_auth = v1.leave()["auth_events"]
    send("auth_join_rules_added_v1", c, v1,
         v1.sign(v1.leave(auth_events=v1_auth + [v1.ref(v1.state_id("m.room.join_rules"))])),
         FORBIDDEN, "Version 1: join rules listed in auth_events.")
    send("auth_join_rules_added_v11_invite", c, v11i,
         v11i.sign(v11i.leave(auth_events=v11i.auth_selection() + [v11i.state_id("m.room.join_rules")])),
         FORBIDDEN, "Version 11 invite rejection listing the join rules.")
    for key in ("v10/left", "v10/banned", "v10/kicked", "v10/none", "v12/banned", "v1/left",
                "v6/knocked_unsupported"):
        r = cat.room(key)
        send(f"prior_{key.replace('/', '_')}", c, r, r.sign(r.leave()), FORBIDDEN,
             f"The user's current membership in {key} does not allow a leave (only join, invite "
             "and, from version 7, knock do).")

    # ---- replay ------------------------------------------------------------------------------
    c = "replay"
    send("replay_v11_leave_into_v10", c, v10, g11, INVALID,
         "v11/invited's accepted leave replayed to the v10/joined path (its own event ID).",
         path_event=g11_id)
    send("replay_v10_leave_into_v12", c, v12, g10, INVALID,
         "v10/joined's leave replayed to the v12/joined room.", path_event=g10_id)
    la_case = next(x for x in vectors["cases"] if x["name"] == "v10_self_leave_prior_invite")
    la_ev = la_case["input"]["event"]
    send("replay_leave_auth_vector_into_v10_joined", c, v10, la_ev, INVALID,
         "The leave_auth.json vector v10_self_leave_prior_invite (accepted in v10/invited) "
         "replayed to v10/joined.", path_event=la_case["expected"]["event_id"])
    send("replay_leave_auth_vector_other_path_event", c, v10i, la_ev, INVALID,
         "The same vector sent to its own room under the path event ID of v10/joined's leave.",
         path_event=g10_id)
    left = cat.room("v10/left")
    old_leave_id = left.state_id("m.room.member", USER)
    send("replay_old_leave_into_joined_room", c, v10, left.by_id[old_leave_id], INVALID,
         "The leave the user sent in v10/left, replayed to v10/joined.", path_event=old_leave_id)
    join_id = v10.state_id("m.room.member", USER)
    send("replay_own_join_as_leave", c, v10, v10.by_id[join_id], INVALID,
         "The user's own join event (already in the room) sent through send_leave.",
         path_event=join_id)
    mod_join = v10.state_id("m.room.member", "@mod:resident.example")
    send("replay_resident_join_from_resident", c, v10, v10.by_id[mod_join], INVALID,
         "A resident user's join replayed by the resident server's own name.",
         path_event=mod_join, origin=RESIDENT)
    ev = copy.deepcopy(g10)
    ev["room_id"] = v10i.room_id
    send("replay_retargeted_not_resigned", c, v10i, ev, INVALID,
         "v10/joined's leave with room_id rewritten to v10/invited without re-signing.")
    template = v10.leave()
    template["origin"] = RESIDENT
    send("replay_unsigned_template", c, v10, template, BAD_JSON,
         "The make_leave template sent back unsigned, without hashes or signatures.")
    tpl1 = v1.leave(event_id="$template:resident.example")
    tpl1["origin"] = RESIDENT
    send("replay_template_event_id_not_replaced_v1", c, v1, v1.sign(tpl1), INVALID,
         "Version 1: the leaving server signed the template but kept the resident's event ID, "
         "so the resident's signature is required and missing.")

    # ---- ACL -----------------------------------------------------------------------------------
    c = "acl"

    def acl_room(base: Room, content: Json) -> Room:
        ev = {
            "type": "m.room.server_acl",
            "room_id": base.room_id,
            "sender": CREATOR,
            "state_key": "",
            "content": content,
            "origin_server_ts": base.last_ts + 500,
            "depth": base.max_depth + 1,
            "auth_events": [base.ref(i) for i in base.auth_selection(CREATOR)],
            "prev_events": [base.ref(i) for i in base.extremities],
        }
        if base.pairs:
            ev["event_id"] = f"$acl-{base.slug()}:{RESIDENT}"
        extra = base.signed_event(ev, RESIDENT)
        return Room(base.key, base.data, [extra])

    deny_remote = acl_room(v10, {"allow": ["*"], "deny": [REMOTE], "allow_ip_literals": True})
    deny_glob = acl_room(v10, {"allow": ["*"], "deny": ["*.example"], "allow_ip_literals": True})
    allow_resident = acl_room(v10, {"allow": [RESIDENT], "deny": [], "allow_ip_literals": True})
    deny_v1 = acl_room(v1, {"allow": ["*"], "deny": ["remote.*"]})
    for name, r, why in (
        ("acl_denies_origin", deny_remote, "m.room.server_acl denies remote.example."),
        ("acl_denies_by_glob", deny_glob, "m.room.server_acl denies *.example."),
        ("acl_allows_only_resident", allow_resident, "m.room.server_acl allows resident.example only."),
        ("acl_denies_origin_v1_room", deny_v1, "Version 1 room whose ACL denies remote.*."),
    ):
        send(name, c, r, r.sign(r.leave()), FORBIDDEN, why + " Server ACLs protect send_leave "
             "(403 M_FORBIDDEN).")
    send("acl_denies_origin_v1_api", c, deny_remote, deny_remote.sign(deny_remote.leave()), FORBIDDEN,
         "The ACL applies to the legacy v1 endpoint too.", api=1)
    send("acl_option_lets_denied_server_leave", c, deny_remote, deny_remote.sign(deny_remote.leave()),
         OK, "Control: with acl_allows_leave the denied server may still leave.",
         options={"acl_allows_leave": True})
    make("make_leave_acl_denies_origin", c, deny_remote, FORBIDDEN,
         "make_leave is ACL-protected too.")

    # ---- the same checks across room versions ------------------------------------------------
    c = "version_sweep"
    for key in ("v2/joined", "v3/joined", "v6/joined", "v7/knocked", "v8/joined", "v9/joined",
                "v11/invited", "v12/joined"):
        r = cat.room(key)
        tag = key.replace("/", "_")
        base = r.sign(r.leave())
        self_check(r, base)
        text = canonical(base)
        base_path = r.event_id(base).replace("/", "%2F")
        send(f"sweep_{tag}_control_accepted", c, r, base, OK,
             f"Control: the unmodified base leave of {key} is accepted, so the refusals below are "
             "caused by their one change.")
        send(f"sweep_{tag}_membership_join", c, r, r.sign(r.leave(content={"membership": "join"})),
             INVALID, f"{key}: membership 'join' (correctly signed).")
        send(f"sweep_{tag}_sender_other_server", c, r,
             r.sign(r.leave("@user:other.example"), [(OTHER, SPEC_KEY)]), INVALID,
             f"{key}: a user of other.example, signed by other.example, sent by remote.example.")
        send(f"sweep_{tag}_stranger_key", c, r, r.sign(r.leave(), [(REMOTE, STRANGER_KEY)]),
             INVALID, f"{key}: signed with a key that is not remote.example's.")
        jr = r.ref(r.state_id("m.room.join_rules"))
        send(f"sweep_{tag}_join_rules_in_auth", c, r,
             r.sign(r.leave(auth_events=r.leave()["auth_events"] + [jr])), FORBIDDEN,
             f"{key}: the join rules listed among the auth events.")
        send(f"sweep_{tag}_duplicate_membership", c, r,
             sub_once(text, b'"membership":"leave"', b'"membership":"join","membership":"leave"'),
             BAD_JSON, f"{key}: content has membership 'join' then the signed 'leave'.",
             path_event=base_path)
        if r.pairs:
            send(f"sweep_{tag}_path_event_mismatch", c, r, base, INVALID,
                 f"{key}: the path event ID is not the body's event_id.",
                 path_event=f"$elsewhere:{REMOTE}")
        else:
            ev = copy.deepcopy(base)
            ev["event_id"] = r.event_id(base)
            send(f"sweep_{tag}_event_id_present", c, r, canonical(ev), BAD_JSON,
                 f"{key}: event_id present in a version {r.version_id} PDU.", path_event=base_path)

    # ---- endpoint switched off --------------------------------------------------------------
    c = "endpoint"
    send("v1_switched_off", c, v10, g10, (404, "M_UNRECOGNIZED"),
         "A valid leave to PUT /v1/send_leave on a server that switched v1 off.",
         api=1, options={"enable_v1": False})
    send("v1_switched_off_garbage", c, v10, b"garbage", (404, "M_UNRECOGNIZED"),
         "Switched-off endpoint: nothing else is looked at.", path_event=g10_id, api=1,
         options={"enable_v1": False})

    # ---- make_leave ----------------------------------------------------------------------------
    c = "make_leave"
    make("make_user_not_from_origin", c, v10, FORBIDDEN,
         "other.example asks for a template for remote.example's user.", origin=OTHER)
    make("make_user_from_resident", c, v10, FORBIDDEN,
         "remote.example asks for a template for a resident user.",
         path_user="@mod:resident.example")
    make("make_unknown_room", c, v10, NOT_FOUND, "A room this server does not know.",
         path_room="!nosuchroom:resident.example")
    for key in ("v10/none", "v10/left", "v10/banned", "v10/kicked", "v6/knocked_unsupported",
                "v12/left"):
        make(f"make_not_member_{key.replace('/', '_')}", c, cat.room(key), FORBIDDEN,
             f"The user's membership in {key} allows no leave.")
    make("make_never_seen_user", c, v10, FORBIDDEN,
         "A user of remote.example the room has never seen.", path_user="@stranger:remote.example")
    make("make_room_without_sigil", c, v10, INVALID, "Room ID without '!'.",
         path_room=v10.room_id[1:])
    make("make_user_without_sigil", c, v10, INVALID, "User ID without '@'.", path_user=USER[1:])
    make("make_user_without_server", c, v10, INVALID, "User ID without a server name.",
         path_user="@user")
    make("make_user_empty_server", c, v10, INVALID, "User ID with an empty server name.",
         path_user="@user:")
    make("make_room_256", c, v10, INVALID, "Room ID of 256 bytes.", path_room=r256)
    make("make_user_256", c, v10, INVALID, "User ID of 256 bytes.", path_user=u256)
    make("make_room_invalid_escape", c, v10, INVALID, "'%zz' in the room ID.",
         path_room=v10.room_id.replace(":", "%zz"))
    make("make_user_invalid_escape", c, v10, INVALID, "A lone '%' at the end of the user ID.",
         path_user=USER + "%")
    make("make_user_invalid_utf8", c, v10, INVALID, "'%FF' decodes to a byte that is not UTF-8.",
         path_user="@user%FF:remote.example")
    make("make_user_nul_in_localpart", c, v10, INVALID,
         "'%00' in the localpart: no user ID grammar (not even historical user IDs, U+0021 to "
         "U+007E) allows NUL, so the path parameter is invalid.",
         path_user="@user%00:remote.example")
    make("make_room_nul", c, v10, INVALID, "'%00' inside the room ID.",
         path_room="!v10joined%00:resident.example")
    make("make_user_double_encoded_sigil", c, v10, INVALID,
         "'%2540' decodes once to a literal '%40': no '@' sigil.",
         path_user="%2540user:remote.example")
    make("make_user_encoded_colon_other_server", c, v10, FORBIDDEN,
         "'@user%3Aother.example' decodes to a user of other.example, not of the origin.",
         path_user="@user%3Aother.example")
    make("make_user_encoded_accepted", c, v10, OK,
         "Control: the user ID fully percent-encoded is the same user.",
         path_user="%40user%3Aremote.example")
    make("make_room_encoded_sigil_v12_accepted", c, v12, OK,
         "Control: the version 12 room ID with its '!' written %21.",
         path_room=v12.room_id.replace("!", "%21"))

    return cat.cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="verify that requests.json is up to date instead of writing it")
    args = parser.parse_args()
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    cases = build(vectors)
    doc = {
        "description": (
            "Bad make_leave / send_leave requests, each with the exact answer it must get; "
            "the few 200 cases are boundaries and controls. Generated by "
            "tests/catalogue/generate.py with Synapse's libraries; see tests/catalogue/README.md."
        ),
        "generated_by": f"synapse {synapse.__version__}",
        "resident": RESIDENT,
        "now_ms": 1_800_000_000_000,
        "cases": cases,
    }
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    counts = Counter(c["category"] for c in cases)
    bad = sum(1 for c in cases if c["expect"]["status"] != 200)
    print(f"{len(cases)} cases ({bad} refusals) -> {OUT}", file=sys.stderr)
    for k, n in sorted(counts.items()):
        print(f"  {k}: {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
