#!/usr/bin/env python3
"""End-to-end demo of matrix-leave: two reference homeservers on loopback.

Server A hosts rooms; server B hosts bob. For room versions 1, 10, 11 and 12, alice (on A)
creates a room and invites bob; bob rejects the invite, so B drives the leave handshake
(make_leave, then send_leave) against A. Then B's operator tries two attacks on A's
send_leave: a kick disguised as a leave, and a leave with a forged signature. A must refuse
both.

Run it from the checkout after `cargo build --release` (the Makefile's `demo` target does
both): `.venv/bin/python demo/run_demo.py`. It exits 0 only if everything behaved as
expected, and always stops both servers.

Options: --keep keeps the servers' data directories and logs; --verbose prints the servers'
logs at the end.
"""

from __future__ import annotations

import argparse
import base64
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python"))

try:
    from matrix_leave.host.testing import HostError, HostPair
except ImportError as e:  # pragma: no cover - a setup problem, explained to the user
    print(f"cannot import the matrix_leave binding ({e}); run `make venv` first", file=sys.stderr)
    sys.exit(2)

ROOM_VERSIONS = ("1", "10", "11", "12")


class Demo:
    def __init__(self, pair: HostPair) -> None:
        self.a, self.b = pair.a, pair.b
        self.checks: list[tuple[str, bool]] = []
        self.alice = self.a.user("alice")
        self.bob = self.b.user("bob")

    # ---- output -------------------------------------------------------------------------

    @staticmethod
    def say(text: str = "") -> None:
        print(text, flush=True)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((what, ok))
        mark = "ok  " if ok else "FAIL"
        self.say(f"    [{mark}] {what}{(' -- ' + detail) if detail else ''}")
        return ok

    @staticmethod
    def short(identifier: str, keep: int = 14) -> str:
        return identifier if len(identifier) <= keep + 3 else identifier[:keep] + "..."

    # ---- the legitimate rejection of an invite -------------------------------------------

    def invite_bob(self, room_version: str) -> str:
        room_id = self.a.create_room(room_version, "alice")
        self.say(f"  A: alice creates a version {room_version} room {room_id}")
        answer = self.a.invite(room_id, "alice", self.bob)
        self.say(
            f"  A: alice invites {self.bob}; B answers HTTP {answer['status']}"
            + (
                " with the countersigned invite"
                if answer["status"] == 200
                else f": {answer.get('response')}"
            )
        )
        self.check("B countersigned the invite", answer["status"] == 200)
        got = [i for i in self.b.invites_received() if i["room_id"] == room_id]
        self.check(
            "B recorded the invite for bob",
            bool(got) and got[-1]["accepted"] and got[-1]["user_id"] == self.bob,
        )
        self.check(
            "A's room state has bob invited",
            self.a.members(room_id).get(self.bob) == "invite",
        )
        return room_id

    def reject(self, room_id: str) -> dict:
        self.say("  B: bob rejects the invite (POST /control/leave); B runs the handshake:")
        result = self.b.leave(room_id, self.bob)
        for n, step in enumerate(result["steps"], 1):
            errcode = f" {step['errcode']}" if step.get("errcode") else ""
            self.say(
                f"      {n}. {step['action']:<14} -> {step['server']:<16} "
                f"HTTP {step['status']}{errcode}: {step.get('detail', '')}"
            )
        how = (
            f"accepted by {result['server']} over send_leave v{result['api_version']}"
            if result["accepted_remotely"]
            else "no server accepted it: kept out of band"
        )
        self.say(f"  => leave {self.short(result['event_id'], 24)} {how}")
        return result

    def legit_round(self, room_version: str) -> None:
        self.say(f"\n-- Room version {room_version}: bob rejects alice's invite --")
        room_id = self.invite_bob(room_version)
        result = self.reject(room_id)
        self.check(
            "the leave was accepted by A over send_leave v2",
            result["accepted_remotely"]
            and result["server"] == self.a.server_name
            and result["api_version"] == 2,
        )
        on_a = self.a.members(room_id)
        on_b = self.b.members(room_id)
        self.say(
            f"  bob's membership: on A (the room's state) = {on_a.get(self.bob)}; on B = {on_b.get(self.bob)}"
        )
        self.check(
            "A: bob has left, alice is still joined",
            on_a.get(self.bob) == "leave" and on_a.get(self.alice) == "join",
        )
        self.check("B: bob has left", on_b.get(self.bob) == "leave")
        leaves = [r for r in self.a.leaves_received() if r["room_id"] == room_id]
        self.check(
            "A recorded one accepted send_leave for this event",
            len(leaves) == 1
            and leaves[0]["accepted"]
            and leaves[0]["event_id_in_url"] == result["event_id"],
        )

    # ---- attacks ------------------------------------------------------------------------

    def forged_member_event(self, room_id: str, room_version: str, state_key: str) -> dict:
        """A leave from bob's server, built by hand from A's room state."""
        room = self.a.room(room_id)
        state = room["state"]
        extremities = room["forward_extremities"]
        auth = [
            state["m.room.create|"],
            state["m.room.power_levels|"],
            state[f"m.room.member|{self.bob}"],
        ]
        if state_key != self.bob:
            auth.append(state[f"m.room.member|{state_key}"])
        return {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": self.bob,
            "state_key": state_key,
            "content": {"membership": "leave"},
            "origin": self.b.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "depth": max(d for _, d in extremities) + 1,
            "prev_events": [e for e, _ in extremities],
            "auth_events": auth,
        }

    def attack(
        self, title: str, room_id: str, event: dict, event_id: str, expect_in_error: str
    ) -> None:
        self.say(
            f"  B sends it to A: PUT /_matrix/federation/v2/send_leave/.../{self.short(event_id, 20)}"
        )
        answer = self.b.send_raw_leave(self.a.server_name, room_id, event, event_id, api_version=2)
        body = answer["body"] if isinstance(answer["body"], dict) else {}
        errcode, error = body.get("errcode"), body.get("error", "")
        self.say(f"  A answers HTTP {answer['status']} {errcode}: {error}")
        self.check(
            f"{title}: refused with 400 M_INVALID_PARAM",
            answer["status"] == 400 and errcode == "M_INVALID_PARAM" and expect_in_error in error,
        )

    def attacks(self) -> None:
        room_version = "11"
        self.say(
            f"\n-- Attacks on A's send_leave (a version {room_version} room where bob is invited) --"
        )
        room_id = self.invite_bob(room_version)

        self.say("\n  Attack 1: a kick disguised as a leave.")
        self.say(f"  B signs a leave with sender {self.bob} but state_key {self.alice},")
        self.say("  so that accepting it would remove alice from her own room.")
        kick = self.b.sign_event(
            self.forged_member_event(room_id, room_version, self.alice), room_version
        )
        self.attack(
            "disguised kick", room_id, kick["event"], kick["event_id"], "differs from sender"
        )

        self.say("\n  Attack 2: a leave with a forged signature.")
        signed = self.b.sign_event(
            self.forged_member_event(room_id, room_version, self.bob), room_version
        )
        event = signed["event"]
        sigs = event["signatures"][self.b.server_name]
        key_id = next(iter(sigs))
        raw = bytearray(base64.b64decode(sigs[key_id] + "=" * (-len(sigs[key_id]) % 4)))
        raw[0] ^= 0x01
        sigs[key_id] = base64.b64encode(bytes(raw)).decode().rstrip("=")
        self.say(f"  B signs bob's leave properly, then flips one bit of its signature ({key_id}).")
        self.attack("forged signature", room_id, event, signed["event_id"], "signature")

        members = self.a.members(room_id)
        self.say(
            f"  A's room state after the attacks: alice = {members.get(self.alice)}, bob = {members.get(self.bob)}"
        )
        self.check(
            "the attacks changed nothing on A",
            members.get(self.alice) == "join" and members.get(self.bob) == "invite",
        )
        refused = [
            r for r in self.a.leaves_received() if r["room_id"] == room_id and not r["accepted"]
        ]
        self.say("  A's leaves_received for this room:")
        for r in refused:
            ev = r["event"] if isinstance(r["event"], dict) else {}
            self.say(
                f"      {r['api']} from {r['origin']}: sender={ev.get('sender')} state_key={ev.get('state_key')}"
                f" -> refused ({r['rejected_because']})"
            )
        self.check(
            "A recorded both refusals as M_INVALID_PARAM",
            len(refused) == 2
            and all((r["rejected_because"] or "").startswith("M_INVALID_PARAM") for r in refused),
        )

        self.say(
            "\n  Finally bob really rejects this invite; the genuine leave still goes through."
        )
        result = self.reject(room_id)
        members = self.a.members(room_id)
        self.check(
            "genuine leave accepted after the attacks",
            result["accepted_remotely"]
            and members.get(self.bob) == "leave"
            and members.get(self.alice) == "join",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    parser.add_argument(
        "--verbose", action="store_true", help="print both servers' logs at the end"
    )
    args = parser.parse_args()

    # A SIGTERM (from make, CI or a timeout) still runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    print(
        "== matrix-leave demo: rejecting invites over federation between two homeservers ==",
        flush=True,
    )
    pair = HostPair()
    ok = False
    try:
        print(
            f"Starting A (localhost:{pair.a.port}) and B (localhost:{pair.b.port}) ...", flush=True
        )
        pair.start()
        for host, role in ((pair.a, "hosts the rooms, alice"), (pair.b, "hosts bob")):
            info = host.get("/control/info")
            print(
                f"  {host.name}: {info['server_name']} pid {host.pid}, key {info['key_id']}, "
                f"control http://127.0.0.1:{host.control_port} ({role})",
                flush=True,
            )
        print(f"  both ready after {time.monotonic() - started:.1f} s", flush=True)

        demo = Demo(pair)
        for v in ROOM_VERSIONS:
            demo.legit_round(v)
        demo.attacks()

        failed = [what for what, good in demo.checks if not good]
        ok = not failed
        print(
            f"\n== {len(demo.checks) - len(failed)}/{len(demo.checks)} checks passed "
            f"in {time.monotonic() - started:.1f} s ==",
            flush=True,
        )
        for what in failed:
            print(f"   FAILED: {what}", flush=True)
    except HostError as e:
        print(f"\nERROR: {e}", flush=True)
    except Exception as e:  # noqa: BLE001 - reported, and the servers are still stopped
        print(f"\nERROR: {type(e).__name__}: {e}", flush=True)
    finally:
        if not ok or args.verbose:
            for host in (pair.a, pair.b):
                print(
                    f"\n--- log of {host.name} ({host.server_name}), last lines ---\n{host.log_tail(60)}",
                    flush=True,
                )
        print(f"\nStopping A (pid {pair.a.pid}) and B (pid {pair.b.pid}).", flush=True)
        keep = args.keep or not ok
        pair.stop(keep_files=keep)
        if keep:
            print(f"Data directories and logs kept in {pair.base_dir}", flush=True)
    print("Demo " + ("succeeded." if ok else "FAILED."), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
