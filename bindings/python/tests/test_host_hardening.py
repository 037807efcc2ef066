"""The reference homeserver under hostile or broken requests: what is refused before any key
fetch, what is recorded (only authenticated requests, only what the library returned or the
raw text), errors of the HTTP layer as JSON, and key-fetch abuse that must not slow down a
genuine invite. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("cryptography")

import matrix_leave as mxl  # noqa: E402
from matrix_leave.host import server as host_server  # noqa: E402
from matrix_leave.host.client import Unreachable, resolve  # noqa: E402
from matrix_leave.host.store import Store  # noqa: E402
from matrix_leave.host.testing import PACKAGE_PARENT, Host, HostPair  # noqa: E402

try:
    mxl.canonical_json({})
except Exception as exc:  # pragma: no cover - the library is not built
    pytest.skip(f"the matrix-leave library cannot be loaded: {exc}", allow_module_level=True)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


class SilentListener:
    """TCP listeners on 127.0.0.1 that accept connections and never answer: a server name
    pointing at one makes a key fetch hang until its timeout."""

    def __init__(self, ports: int = 1) -> None:
        self.socks: List[socket.socket] = []
        for _ in range(ports):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(256)
            sock.setblocking(False)
            self.socks.append(sock)
        self.ports = [s.getsockname()[1] for s in self.socks]
        self.port = self.ports[0]
        self.accepted_by_port: Dict[int, int] = {p: 0 for p in self.ports}
        self._conns: List[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def accepted(self) -> int:
        return sum(self.accepted_by_port.values())

    def _run(self) -> None:
        import selectors

        with selectors.DefaultSelector() as sel:
            for sock in self.socks:
                sel.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    self.accepted_by_port[sock.getsockname()[1]] += 1
                    self._conns.append(conn)

    def __enter__(self) -> "SilentListener":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            c.close()
        for s in self.socks:
            s.close()


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(
    host: Host,
    method: str,
    path: str,
    headers: Optional[Dict[str, str]] = None,
    body: Optional[bytes] = None,
    timeout: float = 20,
) -> Tuple[int, Any, str]:
    """One HTTPS request to the host's federation port: (status, JSON body, content type)."""
    conn = http.client.HTTPSConnection("127.0.0.1", host.port, context=_tls(), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host.server_name, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, resp.getheader("Content-Type", "")
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, tls: bool = True) -> Tuple[int, Any]:
    """Sends raw bytes (not necessarily valid HTTP); returns the status and JSON body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        sock = _tls().wrap_socket(sock)
    try:
        sock.sendall(data)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                length = [int(v) for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:]) if k.strip().lower() == b"content-length"]
                if length and len(rest) >= length[0]:
                    break
    finally:
        sock.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ")[1]), json.loads(rest)


def signing_key_of(host: Host) -> mxl.SigningKey:
    """The host's own signing key, read from its database (to make requests it signed)."""
    db = sqlite3.connect(host.data_dir / "host.db")
    try:
        key_id, seed = db.execute("SELECT key_id, seed FROM signing_keys ORDER BY created_ts DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return mxl.SigningKey.from_seed(bytes(seed), key_id)


def auth(key: mxl.SigningKey, origin: str, host: Host, method: str, path: str, content: Optional[bytes]) -> str:
    return mxl.xmatrix_authorization(key, origin, host.server_name, method, path, content)


def send_leave_path(room_id: str, event_id: str, api: int = 2) -> str:
    return f"/_matrix/federation/v{api}/send_leave/{quote(room_id, safe='')}/{quote(event_id, safe='')}"


def make_leave_path(room_id: str, user_id: str) -> str:
    return f"/_matrix/federation/v1/make_leave/{quote(room_id, safe='')}/{quote(user_id, safe='')}"


@pytest.fixture(scope="module")
def pair():
    with HostPair() as p:
        yield p


def invited_room(p: HostPair, room_version: str = "10") -> str:
    room_id = p.a.create_room(room_version, "alice")
    assert p.a.invite(room_id, "alice", p.b.user("bob"))["status"] == 200
    return room_id


def leave_body(p: HostPair, room_id: str, membership: str = "leave") -> Tuple[bytes, str]:
    """A leave of bob signed by B, built from A's room state, as raw body bytes."""
    room = p.a.room(room_id)
    state = room["state"]
    bob = p.b.user("bob")
    event = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": bob,
        "state_key": bob,
        "content": {"membership": membership},
        "origin": p.b.server_name,
        "origin_server_ts": int(time.time() * 1000),
        "depth": max(d for _, d in room["forward_extremities"]) + 1,
        "prev_events": [e for e, _ in room["forward_extremities"]],
        "auth_events": [state["m.room.create|"], state["m.room.power_levels|"], state[f"m.room.member|{bob}"]],
    }
    signed = p.b.sign_event(event, room["room_version"])
    return mxl.canonical_json(signed["event"]), signed["event_id"]


def leaves_for(host: Host, room_id: str) -> List[Dict[str, Any]]:
    return [r for r in host.leaves_received() if r["room_id"] == room_id]


def log_of(host: Host) -> str:
    return host.log_path.read_text("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# 12: refused before any key fetch; 8: nothing recorded without X-Matrix; 9: lone surrogates
# ---------------------------------------------------------------------------------------------


def test_bad_requests_are_refused_before_any_key_fetch(pair: HostPair) -> None:
    room_id = invited_room(pair)
    with SilentListener() as listener:
        origin = f"localhost:{listener.port}"
        key = mxl.SigningKey.generate("ed25519:x")
        path = send_leave_path(room_id, "$whatever")
        good_json = b'{"type":"m.room.member"}'
        cases = {
            "over 65536 bytes": (
                {"Authorization": auth(key, origin, pair.a, "PUT", path, good_json)},
                b" " * 65537,
                413,
                "M_TOO_LARGE",
            ),
            "no Authorization": ({}, good_json, 401, "M_UNAUTHORIZED"),
            "malformed Authorization": (
                {"Authorization": f'X-Matrix origin="{origin}",key="ed25519:x"'},
                good_json,
                400,
                "M_UNAUTHORIZED",
            ),
            "not X-Matrix": ({"Authorization": "Bearer abc"}, good_json, 400, "M_UNAUTHORIZED"),
            "another destination": (
                {"Authorization": mxl.xmatrix_authorization(key, origin, "localhost:1", "PUT", path, good_json)},
                good_json,
                401,
                "M_UNAUTHORIZED",
            ),
            "not JSON": (
                {"Authorization": auth(key, origin, pair.a, "PUT", path, good_json)},
                b"{not json",
                400,
                "M_BAD_JSON",
            ),
            "lone surrogate": (
                {"Authorization": auth(key, origin, pair.a, "PUT", path, good_json)},
                b'{"type":"m.room.member","content":{"membership":"\\ud800"}}',
                400,
                "M_BAD_JSON",
            ),
        }
        for name, (headers, body, status, errcode) in cases.items():
            started = time.monotonic()
            got_status, got, content_type = request(pair.a, "PUT", path, headers, body)
            assert (got_status, got["errcode"]) == (status, errcode), (name, got)
            assert content_type.startswith("application/json"), name
            assert time.monotonic() - started < 2, f"{name}: answered only after a key fetch"
        assert listener.accepted == 0, "a key fetch was attempted for an obviously bad request"
    assert leaves_for(pair.a, room_id) == [], "an unauthenticated request was recorded"


def test_unauthenticated_send_leave_is_never_recorded(pair: HostPair) -> None:
    room_id = invited_room(pair)
    body, event_id = leave_body(pair, room_id)
    path = send_leave_path(room_id, event_id)
    forger = mxl.SigningKey.generate("ed25519:forged")
    # B's real name, a key B does not have: the keys are fetched, the signature fails.
    status, got, _ = request(pair.a, "PUT", path, {"Authorization": auth(forger, pair.b.server_name, pair.a, "PUT", path, body)}, body)
    assert (status, got["errcode"]) == (401, "M_UNAUTHORIZED")
    # B's real key, but signing another body.
    b_key = signing_key_of(pair.b)
    status, got, _ = request(pair.a, "PUT", path, {"Authorization": auth(b_key, pair.b.server_name, pair.a, "PUT", path, b"{}")}, body)
    assert (status, got["errcode"]) == (401, "M_UNAUTHORIZED")
    # A lone surrogate, whatever the header: 400 M_BAD_JSON, never a 500.
    lone = body[:-1] + b',"x":"\\udc00"}'
    status, got, _ = request(pair.a, "PUT", path, {"Authorization": auth(b_key, pair.b.server_name, pair.a, "PUT", path, body)}, lone)
    assert (status, got["errcode"]) == (400, "M_BAD_JSON")
    assert leaves_for(pair.a, room_id) == []
    assert pair.a.members(room_id)[pair.b.user("bob")] == "invite"


def test_an_authenticated_refusal_records_the_raw_text(pair: HostPair) -> None:
    room_id = invited_room(pair)
    body, event_id = leave_body(pair, room_id, membership="join")
    # Insignificant whitespace and a non-ASCII escape: the record keeps the text as sent.
    body = body.replace(b'"content":', b'"content" :  ').replace(b'"type":', b'"x":"\\u00e9",\n"type":')
    path = send_leave_path(room_id, event_id, api=1)
    b_key = signing_key_of(pair.b)
    status, got, _ = request(pair.a, "PUT", path, {"Authorization": auth(b_key, pair.b.server_name, pair.a, "PUT", path, body)}, body)
    assert status == 400, got
    records = leaves_for(pair.a, room_id)
    assert len(records) == 1
    rec = records[0]
    assert rec["accepted"] is False and rec["status"] == 400 and rec["api"] == "v1"
    assert rec["origin"] == pair.b.server_name
    assert rec["body"] == body.decode("utf-8")  # exactly what was received
    assert rec["rejected_because"].startswith(got["errcode"])
    assert rec["event"]["content"] == {"membership": "join"}  # shown parsed, for reading

    # The genuine leave: what is recorded is the event as the library accepted it.
    result = pair.b.leave(room_id, pair.b.user("bob"))
    assert result["accepted_remotely"]
    accepted = leaves_for(pair.a, room_id)[-1]
    assert accepted["accepted"] and accepted["body"] is None
    assert accepted["event"] == result["event"]


def test_the_recorded_body_is_capped() -> None:
    store = Store(":memory:", "a.example")
    try:
        text = "é" * 40000  # 80000 bytes of UTF-8
        store.record_leave(room_id="!r", api="v2", origin="o", status=400, accepted=False, event_id_in_url="$e", body=text)
        store.record_leave(room_id="!r", api="v2", origin="o", status=400, accepted=False, event_id_in_url="$e", body="\ud800x")
        first, second = store.leaves_received()
    finally:
        store.close()
    assert len(first["body"].encode("utf-8")) <= 65536 and first["body"].startswith("é" * 1000)
    assert second["body"] == "?x" or second["body"] == "\ufffdx"


def test_an_old_database_gets_the_body_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "host.db")
    db.execute(
        "CREATE TABLE leaves_received (id INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL,"
        " api TEXT NOT NULL, origin TEXT NOT NULL, status INTEGER NOT NULL, accepted INTEGER NOT NULL,"
        " event_id_in_url TEXT NOT NULL, event_id TEXT, soft_failed INTEGER, duplicate INTEGER,"
        " redacted INTEGER, rejected_because TEXT, event TEXT, received_ts INTEGER NOT NULL)"
    )
    db.commit()
    db.close()
    store = Store(tmp_path / "host.db", "a.example")
    try:
        store.record_leave(room_id="!r", api="v2", origin="o", status=400, accepted=False, event_id_in_url="$e", body="{}")
        assert store.leaves_received()[0]["body"] == "{}"
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# 10: the HTTP layer's own errors keep their status and are JSON
# ---------------------------------------------------------------------------------------------


def test_http_layer_errors_are_json_matrix_errors(pair: HostPair) -> None:
    a = pair.a
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "M_UNRECOGNIZED"),
        (b"GET abc HTTP/1.1\r\nHost: x\r\n\r\n", 400, "M_UNRECOGNIZED"),
        (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "M_UNRECOGNIZED"),
        (b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400, "M_UNRECOGNIZED"),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "M_UNRECOGNIZED"),
        # Over aiohttp's client_max_size, chunked so that only reading finds out.
        (
            b"PUT /_matrix/federation/v2/invite/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 70000 + b"x" * 70000 + b"\r\n0\r\n\r\n",
            413,
            "M_TOO_LARGE",
        ),
        (
            b"PUT /_matrix/federation/v2/send_leave/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 65537\r\n\r\n" + b"x" * 65537,
            413,
            "M_TOO_LARGE",
        ),
    ]
    for data, status, errcode in cases:
        got_status, got = raw_exchange(a.port, data)
        assert (got_status, got["errcode"]) == (status, errcode), (data[:40], got)
        assert isinstance(got["error"], str) and got["error"]
    for data, status in (
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"DELETE /control/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"GARBAGE\r\n\r\n", 400),
    ):
        got_status, got = raw_exchange(a.control_port, data, tls=False)
        assert (got_status, got["errcode"]) == (status, "M_UNRECOGNIZED")
    # None of them is a bug: nothing was logged as one.
    assert "ERROR" not in log_of(a) and "Traceback" not in log_of(a)


# ---------------------------------------------------------------------------------------------
# 11: key fetch abuse
# ---------------------------------------------------------------------------------------------


def test_loopback_names_have_one_spelling_per_port() -> None:
    assert resolve("localhost:8448") == resolve("127.0.0.1:8448") == ("127.0.0.1", 8448)
    for bad in ("localhost:08448", "localhost:008448", "localhost:0", "localhost:65536", "localhost:", "localhost:١٢",
                "example.org:8448", "10.0.0.1:80", "localhost:123456"):
        with pytest.raises(Unreachable):
            resolve(bad)


def test_key_fetches_time_out_fast_are_cached_as_failed_and_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, with a short timeout: one fetch per address at a time, a failure is
    remembered, the waiters per origin are capped, and a non-loopback or non-canonical
    name never opens a socket."""
    monkeypatch.setattr(host_server, "KEY_FETCH_TIMEOUT_S", 0.5)
    args = host_server.parse_args(["--data-dir", str(tmp_path), "--port", "1", "--server-name", "localhost:1"])

    async def scenario(listener: SilentListener) -> Dict[str, Any]:
        hs = host_server.HomeServer(args)
        await hs.key_client.start()
        out: Dict[str, Any] = {}
        try:
            name, alias = f"localhost:{listener.port}", f"127.0.0.1:{listener.port}"

            async def attempt(server_name: str) -> Tuple[str, float]:
                started = time.monotonic()
                try:
                    await hs.keys_for(server_name)
                except host_server.KeyFetchBusy as e:
                    return f"busy: {e}", time.monotonic() - started
                except Unreachable as e:
                    return f"unreachable: {e}", time.monotonic() - started
                return "ok", time.monotonic() - started

            # 20 requests at once for one address under two names.
            results = await asyncio.gather(*(attempt(name if i % 2 else alias) for i in range(20)))
            out["first"] = results
            out["accepted_after_first"] = listener.accepted
            # Right after: refused at once, from the failure cache.
            out["again"] = await attempt(name)
            out["again_alias"] = await attempt(alias)
            out["zeros"] = await attempt(f"localhost:0{listener.port}")
            out["remote"] = await attempt("matrix.org")
            out["accepted_at_end"] = listener.accepted
        finally:
            await hs.key_client.close()
            hs.store.close()
        return out

    with SilentListener() as listener:
        out = asyncio.run(scenario(listener))
    busy = [r for r in out["first"] if r[0].startswith("busy")]
    failed = [r for r in out["first"] if r[0].startswith("unreachable")]
    assert len(busy) == 20 - host_server.KEY_FETCH_MAX_WAITING_PER_ORIGIN
    assert all(elapsed < 0.3 for _, elapsed in busy), busy  # refused without waiting
    assert len(failed) == host_server.KEY_FETCH_MAX_WAITING_PER_ORIGIN
    # One connection per name at most, never two at once, each cut at the timeout: the
    # other waiters were answered from the failure cache.
    assert out["accepted_after_first"] <= 2
    assert max(elapsed for _, elapsed in failed) < 0.5 * 2 + 0.5
    for key in ("again", "again_alias"):
        verdict, elapsed = out[key]
        assert verdict.startswith("unreachable") and "not asked again" in verdict, out[key]
        assert elapsed < 0.1
    assert out["zeros"][0].startswith("unreachable") and "invalid port" in out["zeros"][0]
    assert out["remote"][0].startswith("unreachable") and "not a loopback" in out["remote"][0]
    assert out["accepted_at_end"] == out["accepted_after_first"]


class Attack:
    """Threads sending unauthenticated requests, claiming origins that point at a silent
    listener, to both hosts' make_leave and send_leave, until stopped."""

    def __init__(self, targets: List[Host], origins: List[str], room_id: str) -> None:
        self.targets, self.origins, self.room_id = targets, origins, room_id
        self.stop = threading.Event()
        self.answers: List[Tuple[int, str]] = []
        self.errors: List[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(t, o), daemon=True) for t in targets for o in origins
        ]

    def _run(self, target: Host, origin: str) -> None:
        key = mxl.SigningKey.generate("ed25519:evil")
        n = 0
        while not self.stop.is_set():
            n += 1
            if n % 2:
                path = make_leave_path(self.room_id, "@mallory:" + origin)
                method, body = "GET", None
            else:
                path = send_leave_path(self.room_id, f"$evil{n}")
                method, body = "PUT", b'{"type":"m.room.member"}'
            try:
                header = mxl.xmatrix_authorization(key, origin, target.server_name, method, path, body)
                status, got, _ = request(target, method, path, {"Authorization": header}, body, timeout=30)
                self.answers.append((status, got.get("errcode", "") if isinstance(got, dict) else ""))
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.02)

    def __enter__(self) -> "Attack":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_a_genuine_invite_stays_fast_during_key_fetch_abuse() -> None:
    """Unauthenticated requests claiming 40 origins (two names each of 20 silent ports)
    hammer both servers while A invites bob and B rejects the invite. Before, every one of
    those origins got key fetches on the same connection pool as invites (32 connections,
    15 s timeout), so the genuine invite waited for the pool."""
    with HostPair() as p, SilentListener(ports=20) as listener:
        origins = [f"{h}:{port}" for port in listener.ports for h in ("localhost", "127.0.0.1")]
        target_room = p.a.create_room("10", "alice")  # a room for the attack to aim at
        with Attack([p.a, p.b], origins, target_room) as attack:
            time.sleep(1.0)  # the attack is under way: fetches hang on the listeners
            started = time.monotonic()
            room_id = p.a.create_room("10", "alice")
            invite = p.a.invite(room_id, "alice", p.b.user("bob"))
            invite_s = time.monotonic() - started
            result = p.b.leave(room_id, p.b.user("bob"))
            total_s = time.monotonic() - started
            during = dict(listener.accepted_by_port)
        assert invite["status"] == 200, invite
        assert result["accepted_remotely"], result
        assert invite_s < 3 and total_s < 4, (invite_s, total_s)
        assert p.a.members(room_id) == {p.a.user("alice"): "join", p.b.user("bob"): "leave"}
        # Every attack request was refused as unauthenticated or busy; none is a 500, and
        # none was recorded.
        assert attack.answers and not attack.errors, attack.errors[:3]
        assert {s for s, _ in attack.answers} <= {401, 429}, set(attack.answers)
        assert leaves_for(p.a, target_room) == [] and leaves_for(p.b, target_room) == []
        # Few connections reached each silent port: per server, one fetch per address at a
        # time, and a failure is remembered for 30 s.
        assert max(during.values()) <= 4, during
        for host in (p.a, p.b):
            assert "Traceback" not in log_of(host)


# ---------------------------------------------------------------------------------------------
# 13: the control API is documented in --help and the module documentation
# ---------------------------------------------------------------------------------------------

CONTROL_ENDPOINTS = [
    "GET  /control/info",
    "POST /control/create_room",
    "POST /control/invite",
    "POST /control/leave",
    "GET  /control/room",
    "GET  /control/invites_received",
    "GET  /control/leaves_received",
    "POST /control/sign_event",
    "POST /control/send_raw_leave",
]


def test_every_control_endpoint_is_documented_with_method_and_body() -> None:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "matrix_leave.host", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = host_server.__doc__ or ""
    for endpoint in CONTROL_ENDPOINTS:
        assert endpoint in done.stdout, endpoint
        assert endpoint in doc, endpoint
    for field in ('{"creator": user', '{"room_id", "sender": user, "target": user}', '"via"?', '{"event": {...}, "room_version"}', '"api_version"?'):
        assert field in done.stdout, field
    # Every route the control app serves is documented, and nothing more.
    args = host_server.parse_args(["--data-dir", "/nonexistent-never-created", "--port", "1"])
    hs = host_server.HomeServer.__new__(host_server.HomeServer)
    hs.args = args
    routes = {
        f"{r.method:<4} {r.resource.canonical}"
        for r in host_server.HomeServer.control_app(hs).router.routes()
        if r.method != "HEAD"
    }
    assert routes == set(CONTROL_ENDPOINTS)
