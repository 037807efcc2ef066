#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the shared test vectors in tests/vectors/*.json.

Each seed is written in the input format its target reads (see the comment at the top of
each fuzz_targets/*.rs). Files are named by the SHA-1 of their content, as libFuzzer names
its own, so running this again adds nothing twice. The corpora are git-ignored.

Usage: python3 fuzz/seed_corpora.py [--out fuzz/corpus]
"""

import argparse
import hashlib
import json
import os
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "tests", "vectors")
CASES = os.path.join(ROOT, "tests", "cases")

TARGETS = [
    "canonical_json",
    "send_leave",
    "make_leave_params",
    "xmatrix",
    "template",
    "server_keys",
    "event_properties",
]


def load(name, folder=VECTORS):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


def dumps(value):
    """Compact JSON, non-ASCII kept raw, as a server would send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def pretty(value):
    return json.dumps(value, ensure_ascii=True, indent=1).encode("utf-8")


class Corpus:
    def __init__(self, out):
        self.out = out
        self.counts = {t: 0 for t in TARGETS}

    def add(self, target, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        folder = os.path.join(self.out, target)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, hashlib.sha1(data).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.counts[target] += 1


def walk_events(value):
    """Every object in a vector file that looks like an event or a JSON document."""
    if isinstance(value, dict):
        if "type" in value and ("content" in value or "sender" in value):
            yield value
        for v in value.values():
            yield from walk_events(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_events(v)


def seed_canonical_json(c):
    for case in load("canonical_json.json")["cases"]:
        inp = case["input"]
        if "json_text" in inp:
            c.add("canonical_json", inp["json_text"])
        elif "bytes_hex" in inp:
            c.add("canonical_json", bytes.fromhex(inp["bytes_hex"]))
    cases = load("canonical_json.json", CASES)
    for case in cases.get("cases", []):
        text = case.get("input_text") or case.get("json_text")
        if isinstance(text, str):
            c.add("canonical_json", text)
    for name in ["event_hashes.json", "redaction.json", "signing.json"]:
        for ev in walk_events(load(name)):
            c.add("canonical_json", pretty(ev))
    # A few shapes the vectors do not have.
    for text in [
        '{"a":1.00000000000000000001}',
        '[0.1e-5, 1e400, -0.0, 1E+2, 123456789012345678901234567890]',
        '"\\ud83d\\ude00\\u0000\\u001f\\u2028"',
        "[" * 256 + "]" * 256,
        '{"\\u0000":{"":[]}}',
    ]:
        c.add("canonical_json", text)


def seed_leave_auth(c):
    file = load("leave_auth.json")
    for case in file["cases"]:
        ev = dumps(case["input"]["event"])
        # flags 0: v2, origin from the sender; 1: v1; 4: percent-encoded path.
        for flags in (0, 1, 4):
            c.add("send_leave", bytes([flags]) + ev)
        c.add("event_properties", bytes([int(case["room_version"]) - 1]) + ev)
    for room in file["rooms"].values():
        rid = room["room_id"]
        for ev in room["events"][-2:]:
            c.add("send_leave", b"\x00" + dumps(ev["pdu"]))
        for user in ["@user:remote.example", "@creator:resident.example", "@mod:resident.example"]:
            origin = user.split(":", 1)[1]
            c.add("make_leave_params", f"{rid}\n{user}\n{origin}")
            c.add(
                "make_leave_params",
                f"{urllib.parse.quote(rid, safe='')}\n{urllib.parse.quote(user, safe='')}\n{origin}",
            )
        c.add("make_leave_params", f"{rid}\n@user:remote.example\nother.example")


def seed_make_leave(c):
    for case in load("make_leave.json")["cases"]:
        inp = case["input"]
        resp = inp["make_leave_response"]
        room_id = inp.get("path_room_id") or resp["event"].get("room_id", "")
        user_id = inp.get("path_user_id") or resp["event"].get("sender", "")
        for opts in ("", "r", "ne"):
            c.add("template", f"{room_id}\n{user_id}\n{opts}\n".encode() + dumps(resp))
        c.add("event_properties", bytes([int(resp.get("room_version", "1")) - 1]) + dumps(resp["event"]))


def seed_xmatrix(c):
    file = load("xmatrix.json")
    default = ("GET", "/_matrix/federation/v1/make_leave/%21r%3Aa/%40u%3Ab", "remote.example", "resident.example")
    for case in file["cases"]:
        inp = case["input"]
        exp = case["expected"]
        method = inp.get("method", default[0])
        uri = inp.get("uri", default[1])
        origin = inp.get("origin", default[2])
        dest = inp.get("destination", inp.get("server_name", default[3]))
        content = dumps(inp["content"]) if "content" in inp else b""
        headers = []
        if "authorization" in inp:
            headers.append(inp["authorization"])
        if "authorization_header" in exp:
            headers.append(exp["authorization_header"])
        for values in (inp.get("headers") or {}).values():
            for h in values if isinstance(values, list) else [values]:
                if isinstance(h, str):
                    headers.append(h)
        if not headers:
            headers.append("X-Matrix origin=remote.example,key=ed25519:1,sig=abc")
        for h in headers:
            line = "\n".join([h, method, uri, origin, dest]) + "\n"
            if "\n" in h or "\n" in uri:
                continue
            c.add("xmatrix", line.encode("utf-8") + content)


def seed_server_keys(c):
    for case in load("server_keys.json")["cases"]:
        inp = case["input"]
        exp = case["expected"]
        if "response" in inp:
            c.add("server_keys", f"{inp['requested_server']}\n".encode() + dumps(inp["response"]))
        if "signed_response" in exp:
            c.add("server_keys", f"{inp['server_name']}\n".encode() + dumps(exp["signed_response"]))
        if "response_unsigned" in inp:
            c.add("server_keys", f"{inp['server_name']}\n".encode() + dumps(inp["response_unsigned"]))


def seed_events(c):
    for name in ["event_hashes.json", "event_ids.json", "redaction.json", "signing.json"]:
        for case in load(name)["cases"]:
            version = int(case.get("room_version") or "10")
            for ev in walk_events(case["input"]):
                c.add("event_properties", bytes([version - 1]) + dumps(ev))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "fuzz", "corpus"))
    args = parser.parse_args()
    c = Corpus(args.out)
    seed_canonical_json(c)
    seed_leave_auth(c)
    seed_make_leave(c)
    seed_xmatrix(c)
    seed_server_keys(c)
    seed_events(c)
    for t in TARGETS:
        os.makedirs(os.path.join(args.out, t), exist_ok=True)
        print(f"{t}: {c.counts[t]} new seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
