"""Differential oracle: event hashing/redaction/signing values computed by Synapse.

Run it with the Python of the Synapse virtualenv (see
``tests/interop/synapse_harness.py::ensure_synapse_venv``)::

    VENV=$(python3 -c 'import sys; sys.path.insert(0, "tests/interop"); \
        import synapse_harness as h; print(h.ensure_synapse_venv())')
    $VENV/bin/python tests/oracle/synapse_oracle.py --count 1200 --seed 7 > out.jsonl

The script deterministically (from ``--seed``) generates ``--count`` events,
spread round-robin over every room version "1".."12" that the installed
Synapse knows (``KNOWN_ROOM_VERSIONS``) and cycling through many event kinds
(member events with every membership, restricted joins, third-party invites,
create events incl. ``additional_creators``, join rules with ``allow``, power
levels, aliases, history visibility, redactions with ``content.redacts`` and/or
top-level ``redacts``, messages, topics, custom types), full of awkward
Unicode (astral characters, U+2028/2029, control characters, NUL, combining
marks, U+FFFF, keys whose UTF-16 order differs from their code-point order),
edge integers, nesting, ``unsigned`` blocks and legacy top-level keys
(``origin``, ``membership``, ``prev_state``).

Every value in the output comes from Synapse's own code. One JSON object per
line (ASCII-escaped JSON, so U+2028 etc. never break a line)::

    room_version    the room version identifier ("1".."12")
    kind            generator name (informational)
    event           the input event: no hashes, no signatures
    canonical       canonicaljson.encode_canonical_json(event), as a string
    content_hash    unpadded standard base64 of compute_content_hash(event)
    redacted        Synapse's redaction of ``event`` for the room version
                    (synapse.synapse_rust.events.redact_event_dict; older
                    Synapse: synapse.events.utils.prune_event_dict)
    signed          event after add_hashes_and_signatures(room_version, ...,
                    signature_name="remote.example", key ed25519:1 below)
    reference_hash  unpadded standard base64 of
                    compute_event_reference_hash(make_event_from_dict(signed))
    event_id        make_event_from_dict(signed, room_version).event_id
                    (v1/v2: the event's own ``event_id`` field)
    room_id         only for v12 create events: the room id Synapse derives
                    (``"!" + event_id[1:]``)

Signing key: ``signedjson.key.decode_signing_key_base64("ed25519", "1",
"YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0")``.

Events that Synapse refuses to build (``make_event_from_dict`` raising) are
regenerated and counted on stderr; the generator is designed so that this does
not happen with current Synapse. A summary (Synapse version, per-version and
per-kind counts) goes to stderr.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import random
import sys
from collections import Counter
from typing import Any, Callable, Optional

import synapse
from canonicaljson import encode_canonical_json
from signedjson.key import decode_signing_key_base64
from unpaddedbase64 import encode_base64

from synapse.api.room_versions import KNOWN_ROOM_VERSIONS, EventFormatVersions, RoomVersion
from synapse.crypto.event_signing import (
    add_hashes_and_signatures,
    compute_content_hash,
    compute_event_reference_hash,
)
from synapse.events import make_event_from_dict

try:  # Synapse >= 1.14x: redaction lives in the Rust extension.
    from synapse.synapse_rust.events import redact_event_dict as _redact
except ImportError:  # pragma: no cover - older Synapse
    from synapse.events.utils import prune_event_dict as _redact  # type: ignore

SIGNING_KEY = decode_signing_key_base64(
    "ed25519", "1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0")
SIGNATURE_NAME = "remote.example"

MAX_SAFE = 2**53 - 1
Json = Any

# --------------------------------------------------------------------------
# awkward building blocks
# --------------------------------------------------------------------------

AWKWARD_STRINGS: list[str] = [
    "",
    "plain",
    "\U0001F600",                     # astral (surrogate pair in UTF-16)
    "\U00010000",                     # first astral code point
    "\U0010FFFF",                     # last code point
    "\uFFFF",                         # BMP noncharacter
    "\uFFFE",
    "\uFFFD",
    "line\u2028sep\u2029para",        # JS line terminators
    "nul\x00inside",
    "ctl\x01\x02\x1f\x7f\x08\x0c\n\r\t",
    "\x85next-line",
    "e\u0301",                        # combining acute (NFD)
    "\u00e9",                         # precomposed (NFC)
    "a\u0300\u0301\u0302\u0303",      # stacked combining marks
    "\u200b\u200d\ufeff",             # zero width / BOM
    "\u202eRTL override",
    "quote\" backslash\\ slash/",
    "\U0001F469\u200D\U0001F469\u200D\U0001F467",  # ZWJ family
    "\uFB01",                         # sorts after astral in UTF-16
    "\uD7FF\uE000",                   # around the surrogate block
    "日本語テキスト",
    "\u0000",
    "</script>",
    "$not:an-id",
]

# Key groups whose code-point order differs from their UTF-16 order, plus
# other ordering traps (case, NFC/NFD, prefix, empty key, NUL).
AWKWARD_KEY_SETS: list[list[str]] = [
    ["\uFB01", "\U0001F600"],                   # U+FB01 < U+1F600, but 0xFB01 > 0xD83D
    ["\uFFFF", "\U00010000", "\uE000"],
    ["\uFF61", "\U0001D11E", "\uD7FF"],
    ["a", "A", "\u00e9", "e\u0301", "e"],
    ["", "\x00", "\x01", " "],
    ["ab", "a", "a\x00", "a\U0001F600", "a\uFFFF"],
    ["\u2028", "\u2029", "\x7f", "\x85"],
    ["1", "10", "2", "-1", "01"],
]

EDGE_INTS: list[int] = [0, 1, -1, MAX_SAFE, -MAX_SAFE, 2**31, -(2**31), 2**32 + 1,
                        100, 50, 9007199254740990]


def b64_std(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def b64_url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class Gen:
    """Deterministic random-data helpers bound to one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def string(self) -> str:
        r = self.r
        n = r.randint(1, 3)
        return "".join(r.choice(AWKWARD_STRINGS) for _ in range(n))

    def key(self) -> str:
        if self.chance(0.5):
            return self.r.choice(self.r.choice(AWKWARD_KEY_SETS))
        return self.r.choice(["k", "body", "x.y", "m.custom", "org.example.key",
                              "\U0001F511", "ke\u0301y"]) + str(self.r.randint(0, 9))

    def int_(self) -> int:
        if self.chance(0.6):
            return self.r.choice(EDGE_INTS)
        return self.r.randint(-MAX_SAFE, MAX_SAFE)

    def scalar(self) -> Json:
        c = self.r.randint(0, 9)
        if c <= 4:
            return self.string()
        if c <= 7:
            return self.int_()
        if c == 8:
            return self.r.choice([True, False])
        return None

    def value(self, depth: int = 0) -> Json:
        r = self.r
        if depth >= 4 or r.random() < 0.55:
            return self.scalar()
        if r.random() < 0.5:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return self.obj(depth + 1)

    def obj(self, depth: int = 0, n: Optional[int] = None) -> dict:
        r = self.r
        out: dict[str, Json] = {}
        if n is None:
            n = r.randint(0, 4)
        if r.random() < 0.4:
            # a whole ordering-trap key set at once
            for k in r.choice(AWKWARD_KEY_SETS):
                out[k] = self.value(depth + 1)
        for _ in range(n):
            out[self.key()] = self.value(depth + 1)
        return out

    def extra_content(self, content: dict, p: float = 0.6) -> dict:
        """Add some awkward extra keys to ``content`` (never overriding)."""
        if self.chance(p):
            for k, v in self.obj(1, self.r.randint(1, 3)).items():
                content.setdefault(k, v)
        return content

    def server(self) -> str:
        return self.r.choice(["remote.example", "localhost:8448", "127.0.0.1:1234",
                              "[::1]:8448", "xn--bcher-kva.example", "a.b.c.example"])

    def user(self) -> str:
        local = self.r.choice(["alice", "bob", "_under", "=3d", "x.y-z/1", "u"])
        return f"@{local}{self.r.randint(0, 99)}:{self.server()}"


# --------------------------------------------------------------------------
# per-room-version id shapes
# --------------------------------------------------------------------------

class VersionShapes:
    """Event-id / room-id / prev-auth formats for one room version."""

    def __init__(self, rv: RoomVersion, g: Gen) -> None:
        self.rv = rv
        self.g = g
        self.fmt = rv.event_format

    @property
    def v1_format(self) -> bool:
        return self.fmt == EventFormatVersions.ROOM_V1_V2

    def hash_id(self) -> str:
        raw = bytes(self.g.r.getrandbits(8) for _ in range(32))
        if self.fmt == EventFormatVersions.ROOM_V3:
            return "$" + b64_std(raw)
        return "$" + b64_url(raw)

    def v1_event_id(self) -> str:
        g = self.g
        local = "".join(g.r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789")
                        for _ in range(g.r.randint(6, 18)))
        return f"${local}:{g.server()}"

    def ref(self) -> Json:
        """One prev/auth reference in this version's format."""
        if self.v1_format:
            raw = bytes(self.g.r.getrandbits(8) for _ in range(32))
            h: dict[str, str] = {"sha256": b64_std(raw)}
            if self.g.chance(0.1):
                h["other\U0001F600"] = self.g.string()
            return [self.v1_event_id(), h]
        return self.hash_id()

    def refs(self, lo: int, hi: int) -> list:
        return [self.ref() for _ in range(self.g.r.randint(lo, hi))]

    def room_id(self) -> str:
        if self.fmt == EventFormatVersions.ROOM_V11_HYDRA_PLUS:
            raw = bytes(self.g.r.getrandbits(8) for _ in range(32))
            return "!" + b64_url(raw)
        local = "".join(self.g.r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGH")
                        for _ in range(18))
        return f"!{local}:{self.g.server()}"

    def target_event_id(self) -> str:
        return self.v1_event_id() if self.v1_format else self.hash_id()


# --------------------------------------------------------------------------
# event kinds
# --------------------------------------------------------------------------

MEMBERSHIPS = ["join", "leave", "invite", "ban", "knock", "custom\U0001F600", ""]


def base_event(g: Gen, vs: VersionShapes, etype: str,
               state_key: Optional[str], sender: Optional[str] = None) -> dict:
    r = g.r
    ev: dict[str, Json] = {
        "type": etype,
        "room_id": vs.room_id(),
        "sender": sender or g.user(),
        "origin_server_ts": r.choice([0, 1, 1700000000000, MAX_SAFE,
                                      r.randint(0, 2**41)]),
        "depth": r.choice([0, 1, 2, 12345, MAX_SAFE, MAX_SAFE - 1,
                           r.randint(0, MAX_SAFE)]),
        "prev_events": vs.refs(0, 3),
        "auth_events": vs.refs(0, 4),
        "content": {},
    }
    if state_key is not None:
        ev["state_key"] = state_key
    if vs.v1_format:
        ev["event_id"] = vs.v1_event_id()
    # legacy / extra top-level keys
    if g.chance(0.35):
        ev["origin"] = g.server() if g.chance(0.8) else g.string()
    if g.chance(0.2):
        ev["membership"] = r.choice(MEMBERSHIPS)
    if state_key is not None and g.chance(0.25):
        ev["prev_state"] = vs.refs(0, 2)
    if g.chance(0.15):
        ev[r.choice(["org.example.top", "\U0001F600top", "age", "extra"])] = g.value(1)
    if g.chance(0.4):
        ev["unsigned"] = unsigned_block(g, vs)
    return ev


def unsigned_block(g: Gen, vs: VersionShapes) -> dict:
    u: dict[str, Json] = {}
    if g.chance(0.7):
        u["age"] = g.r.choice([0, 5, 1234, MAX_SAFE])
    if g.chance(0.3):
        u["prev_content"] = g.obj(1)
    if g.chance(0.3):
        u["replaces_state"] = vs.target_event_id()
    if g.chance(0.2):
        u["invite_room_state"] = [{"type": "m.room.name", "state_key": "",
                                   "sender": g.user(),
                                   "content": {"name": g.string()}}]
    if g.chance(0.3):
        u.update(g.obj(1, 2))
    return u


def k_member(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    target = g.user()
    ev = base_event(g, vs, "m.room.member", target,
                    sender=target if g.chance(0.5) else None)
    content: dict[str, Json] = {"membership": r.choice(MEMBERSHIPS[:5]) if g.chance(0.9)
                                else r.choice(MEMBERSHIPS)}
    if g.chance(0.5):
        content["displayname"] = g.string()
    if g.chance(0.3):
        content["avatar_url"] = "mxc://" + g.server() + "/" + g.string()
    if g.chance(0.3):
        content["reason"] = g.string()
    if g.chance(0.2):
        content["is_direct"] = g.chance(0.5)
    g.extra_content(content, 0.4)
    ev["content"] = content
    return ev


def k_member_restricted(g: Gen, vs: VersionShapes) -> dict:
    ev = k_member(g, vs)
    ev["content"]["membership"] = "join"
    ev["content"]["join_authorised_via_users_server"] = (
        g.user() if g.chance(0.85) else g.value(1))
    return ev


def k_member_3pid(g: Gen, vs: VersionShapes) -> dict:
    ev = k_member(g, vs)
    ev["content"]["membership"] = g.r.choice(["invite", "join", "invite"])
    tpi: dict[str, Json] = {"display_name": g.string()}
    if g.chance(0.7):
        tpi["signed"] = {
            "mxid": ev["state_key"],
            "token": g.string(),
            "signatures": {g.server(): {"ed25519:0": b64_std(
                bytes(g.r.getrandbits(8) for _ in range(64)))}},
        }
        if g.chance(0.3):
            tpi["signed"]["extra\u2028"] = g.value(1)
    if g.chance(0.3):
        tpi.update(g.obj(1, 2))
    ev["content"]["third_party_invite"] = tpi
    return ev


def k_create(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    ev = base_event(g, vs, "m.room.create", "")
    ev["prev_events"] = []
    ev["auth_events"] = []
    if g.chance(0.7):
        ev["depth"] = 1
    content: dict[str, Json] = {}
    if g.chance(0.9):
        content["room_version"] = vs.rv.identifier
    if int(vs.rv.identifier) <= 10 or g.chance(0.3):
        content["creator"] = ev["sender"]
    if g.chance(0.4):
        content["m.federate"] = g.chance(0.5)
    if g.chance(0.3):
        content["type"] = r.choice(["m.space", "org.example.\U0001F600", ""])
    if g.chance(0.3):
        content["predecessor"] = {"room_id": vs.room_id(),
                                  "event_id": vs.target_event_id()}
    if g.chance(0.5):
        content["additional_creators"] = [g.user() for _ in range(r.randint(0, 3))]
    g.extra_content(content, 0.6)
    ev["content"] = content
    if vs.fmt == EventFormatVersions.ROOM_V11_HYDRA_PLUS:
        # MSC4291: the create event has no room_id; the id derives from it.
        del ev["room_id"]
    return ev


def k_join_rules(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    ev = base_event(g, vs, "m.room.join_rules", "")
    content: dict[str, Json] = {
        "join_rule": r.choice(["public", "invite", "knock", "restricted",
                               "knock_restricted", "private", "x\U0001F600"])}
    if g.chance(0.7):
        allow = []
        for _ in range(r.randint(0, 3)):
            a: dict[str, Json] = {"type": r.choice(["m.room_membership", "org.example"])}
            if g.chance(0.9):
                a["room_id"] = vs.room_id()
            if g.chance(0.2):
                a.update(g.obj(1, 1))
            allow.append(a)
        content["allow"] = allow
    g.extra_content(content, 0.5)
    ev["content"] = content
    return ev


def k_power_levels(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    ev = base_event(g, vs, "m.room.power_levels", "")
    content: dict[str, Json] = {}
    for k in ["ban", "events_default", "kick", "redact", "state_default",
              "users_default", "invite"]:
        if g.chance(0.7):
            content[k] = g.int_() if g.chance(0.9) else str(g.int_())
    if g.chance(0.8):
        content["users"] = {g.user(): g.int_() for _ in range(r.randint(0, 4))}
    if g.chance(0.8):
        ev_levels: dict[str, Json] = {}
        for _ in range(r.randint(0, 4)):
            ev_levels[r.choice(["m.room.name", "m.room.power_levels", "m.room.topic",
                                "\U0001F600.type", g.key()])] = g.int_()
        content["events"] = ev_levels
    if g.chance(0.5):
        content["notifications"] = {"room": g.int_(), **g.obj(1, 1)}
    g.extra_content(content, 0.5)
    ev["content"] = content
    return ev


def k_aliases(g: Gen, vs: VersionShapes) -> dict:
    server = g.server()
    ev = base_event(g, vs, "m.room.aliases", server)
    content: dict[str, Json] = {
        "aliases": [f"#{g.string()}:{server}" for _ in range(g.r.randint(0, 3))]}
    g.extra_content(content, 0.5)
    ev["content"] = content
    return ev


def k_history_visibility(g: Gen, vs: VersionShapes) -> dict:
    ev = base_event(g, vs, "m.room.history_visibility", "")
    content: dict[str, Json] = {"history_visibility": g.r.choice(
        ["world_readable", "shared", "invited", "joined", "x\u2028"])}
    g.extra_content(content, 0.5)
    ev["content"] = content
    return ev


def k_redaction(g: Gen, vs: VersionShapes) -> dict:
    ev = base_event(g, vs, "m.room.redaction", None)
    target = vs.target_event_id()
    style = g.r.choice(["top", "content", "both", "both_differ"])
    content: dict[str, Json] = {}
    if style in ("content", "both", "both_differ"):
        content["redacts"] = target
    if style in ("top", "both"):
        ev["redacts"] = target
    if style == "both_differ":
        ev["redacts"] = vs.target_event_id()
    if g.chance(0.4):
        content["reason"] = g.string()
    g.extra_content(content, 0.3)
    ev["content"] = content
    return ev


def k_message(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    ev = base_event(g, vs, "m.room.message", None)
    content: dict[str, Json] = {"msgtype": r.choice(["m.text", "m.notice", "m.emote"]),
                                "body": g.string()}
    if g.chance(0.3):
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = "<b>" + g.string() + "</b>"
    if g.chance(0.3):
        content["m.relates_to"] = {"rel_type": "m.thread",
                                   "event_id": vs.target_event_id()}
    g.extra_content(content, 0.7)
    ev["content"] = content
    return ev


def k_topic(g: Gen, vs: VersionShapes) -> dict:
    ev = base_event(g, vs, "m.room.topic", "")
    content: dict[str, Json] = {"topic": g.string()}
    if g.chance(0.3):
        content["m.topic"] = [{"mimetype": "text/plain", "body": g.string()}]
    g.extra_content(content, 0.4)
    ev["content"] = content
    return ev


def k_custom(g: Gen, vs: VersionShapes) -> dict:
    r = g.r
    etype = r.choice(["org.example.custom", "m.room.name", "m.room.encryption",
                      "\U0001F600.event", "m.room.third_party_invite",
                      "m.room.server_acl", "m.room.guest_access", "x\u2028y", ""])
    state_key = (None if g.chance(0.4) else
                 r.choice(["", g.string(), g.user(), "\U0001F600"]))
    ev = base_event(g, vs, etype, state_key)
    ev["content"] = g.obj(0, r.randint(0, 6))
    return ev


def k_nested(g: Gen, vs: VersionShapes) -> dict:
    """Deeply nested content and long arrays."""
    r = g.r
    ev = base_event(g, vs, "org.example.nested", "" if g.chance(0.5) else None)
    node: Json = g.scalar()
    for _ in range(r.randint(3, 10)):
        node = [node, g.scalar()] if g.chance(0.5) else {g.key(): node, "n": g.int_()}
    ev["content"] = {"deep": node, "list": [g.int_() for _ in range(r.randint(0, 30))],
                     "empty_obj": {}, "empty_list": [], "null": None}
    return ev


def k_member_everything(g: Gen, vs: VersionShapes) -> dict:
    """Member event carrying every redaction-relevant key at once, plus legacy
    top-level keys, so the per-version differences all show up."""
    ev = k_member_3pid(g, vs)
    ev["content"]["join_authorised_via_users_server"] = g.user()
    ev["origin"] = g.server()
    ev["membership"] = ev["content"]["membership"]
    ev["prev_state"] = vs.refs(1, 2)
    ev["unsigned"] = unsigned_block(g, vs)
    return ev


KINDS: list[tuple[str, Callable[[Gen, VersionShapes], dict]]] = [
    ("member", k_member),
    ("member_restricted", k_member_restricted),
    ("member_3pid", k_member_3pid),
    ("member_everything", k_member_everything),
    ("create", k_create),
    ("join_rules", k_join_rules),
    ("power_levels", k_power_levels),
    ("aliases", k_aliases),
    ("history_visibility", k_history_visibility),
    ("redaction", k_redaction),
    ("message", k_message),
    ("topic", k_topic),
    ("custom", k_custom),
    ("nested", k_nested),
    ("member", k_member),
    ("create", k_create),
    ("redaction", k_redaction),
]


# --------------------------------------------------------------------------
# oracle
# --------------------------------------------------------------------------

def room_versions() -> list[RoomVersion]:
    """Stable room versions "1".."12" that this Synapse knows, in order."""
    out = []
    for i in range(1, 13):
        rv = KNOWN_ROOM_VERSIONS.get(str(i))
        if rv is None:
            print(f"warning: Synapse {synapse.__version__} has no room version {i}",
                  file=sys.stderr)
        else:
            out.append(rv)
    return out


def oracle_record(rv: RoomVersion, kind: str, event: dict) -> dict:
    """Compute every oracle value for ``event`` with Synapse's functions."""
    for forbidden in ("hashes", "signatures", "age_ts", "outlier", "destinations"):
        assert forbidden not in event, forbidden
    pristine = copy.deepcopy(event)
    _alg, content_digest = compute_content_hash(copy.deepcopy(event), hashlib.sha256)
    redacted = _redact(rv, copy.deepcopy(event))
    signed = copy.deepcopy(event)
    add_hashes_and_signatures(rv, signed, signature_name=SIGNATURE_NAME,
                              signing_key=SIGNING_KEY)
    ev_obj = make_event_from_dict(copy.deepcopy(signed), rv)
    _alg, ref_digest = compute_event_reference_hash(ev_obj)
    assert event == pristine, "Synapse mutated the input event"
    rec: dict[str, Json] = {
        "room_version": rv.identifier,
        "kind": kind,
        "event": event,
        "canonical": encode_canonical_json(event).decode("utf-8"),
        "content_hash": encode_base64(content_digest),
        "redacted": redacted,
        "signed": signed,
        "reference_hash": encode_base64(ref_digest),
        "event_id": ev_obj.event_id,
    }
    if rv.event_format == EventFormatVersions.ROOM_V1_V2:
        assert rec["event_id"] == event["event_id"]
    if (event.get("type") == "m.room.create" and event.get("state_key") == ""
            and "room_id" not in event
            and rv.event_format == EventFormatVersions.ROOM_V11_HYDRA_PLUS):
        room_id = ev_obj.room_id
        assert room_id == "!" + rec["event_id"][1:], (room_id, rec["event_id"])
        rec["room_id"] = room_id
    return rec


def generate(count: int, seed: int) -> tuple[list[dict], Counter]:
    """Generate ``count`` oracle records deterministically from ``seed``."""
    rng = random.Random(seed)
    g = Gen(rng)
    versions = room_versions()
    records: list[dict] = []
    failures: Counter = Counter()
    i = 0
    while len(records) < count:
        rv = versions[i % len(versions)]
        kind, fn = KINDS[(i // len(versions)) % len(KINDS)]
        i += 1
        vs = VersionShapes(rv, g)
        event = fn(g, vs)
        try:
            records.append(oracle_record(rv, kind, event))
        except Exception as e:  # Synapse refused the event: note it, move on
            failures[f"{rv.identifier}/{kind}: {type(e).__name__}: {e}"[:200]] += 1
            if sum(failures.values()) > count:
                raise RuntimeError(f"too many rejected events: {failures.most_common(5)}")
    return records, failures


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1200, help="number of events")
    ap.add_argument("--seed", type=int, default=7, help="generator seed")
    ap.add_argument("--output", "-o", default="-", help="output file (default stdout)")
    args = ap.parse_args(argv)

    records, failures = generate(args.count, args.seed)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="ascii")
    try:
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=True, sort_keys=True,
                                 separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()

    per_version = Counter(r["room_version"] for r in records)
    per_kind = Counter(r["kind"] for r in records)
    print(f"synapse {synapse.__version__}: {len(records)} events, seed {args.seed}",
          file=sys.stderr)
    print("  per room version: " + ", ".join(
        f"{v}={per_version[v]}" for v in sorted(per_version, key=int)), file=sys.stderr)
    print("  per kind: " + ", ".join(f"{k}={n}" for k, n in sorted(per_kind.items())),
          file=sys.stderr)
    if failures:
        print(f"  rejected by Synapse ({sum(failures.values())}):", file=sys.stderr)
        for msg, n in failures.most_common(10):
            print(f"    {n} x {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
