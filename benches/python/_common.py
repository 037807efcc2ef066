"""What both Python workers share: the line protocol, timing and memory measurement.

A worker reads one JSON request per line on stdin and answers one JSON line on stdout:

* ``{"cmd": "time", "op": OP, "set": NAME, "reps": N}`` -> ``{"ns": total, "calls": n}``: runs
  OP over every event of the set N times and times the loop with ``perf_counter_ns``.
* ``{"cmd": "mem", "op": OP, "set": NAME, "index": I}`` -> ``{"tracemalloc_peak": bytes,
  "vmhwm_delta_kb": kib}``: one call on event I, with tracemalloc on and the process's peak
  RSS reset first (``/proc/self/clear_refs``), outside any timing.
* ``{"cmd": "quit"}``.

Errors are answered as ``{"error": "..."}``; stderr is free for diagnostics.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from typing import Any, Callable, Dict, List

# An operation runs one call on event `i` of a set and returns True when it succeeded.
Op = Callable[[Dict[str, Any], int], bool]


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def serve(ops: Dict[str, Op], sets: Dict[str, Dict[str, Any]], info: Dict[str, Any]) -> None:
    out = sys.stdout
    out.write(json.dumps({"ready": True, **info}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            op = ops[req["op"]]
            s = sets[req["set"]]
            calls = s["calls"]
            if cmd == "time":
                reps = int(req["reps"])
                gc.collect()
                ok = True
                t0 = time.perf_counter_ns()
                for _ in range(reps):
                    for i in range(calls):
                        ok &= op(s, i)
                ns = time.perf_counter_ns() - t0
                if not ok:
                    raise RuntimeError(f"{req['op']} failed on {req['set']}")
                resp: Dict[str, Any] = {"ns": ns, "calls": reps * calls}
            elif cmd == "mem":
                i = int(req.get("index", 0))
                op(s, i)  # warm
                gc.collect()
                have_reset = _reset_peak_rss()
                rss0 = _status_kb("VmRSS")
                tracemalloc.start()
                ok = op(s, i)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                hwm = _status_kb("VmHWM")
                resp = {
                    "ok": ok,
                    "tracemalloc_peak": peak,
                    "vmhwm_delta_kb": max(0, hwm - rss0) if have_reset else None,
                }
            else:
                raise ValueError(f"unknown cmd {cmd!r}")
        except Exception as exc:  # noqa: BLE001 - reported to the harness
            resp = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(resp) + "\n")
        out.flush()


def load(path: str) -> Dict[str, Any]:
    with open(path, "rb") as f:
        data: Dict[str, Any] = json.load(f)
    for s in data["sets"]:
        for e in s["events"]:
            e["body_bytes"] = e["body"].encode("utf-8")
        s["calls"] = len(s["events"]) if s["kind"] != "make_leave" else 1
    return data


def by_name(data: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {s["name"]: s for s in data["sets"]}


def rooms_by_id(data: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {r["room_id"]: r for r in data["rooms"]}


__all__: List[str] = ["Op", "serve", "load", "by_name", "rooms_by_id"]
