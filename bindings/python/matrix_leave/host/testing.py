"""Running reference homeservers as child processes, for the demo and the end-to-end tests.

Standard library only: the processes are ``python -m matrix_leave.host`` with the same
interpreter, and the control API is plain HTTP on 127.0.0.1 (no proxy is ever used).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional, Sequence

PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # bindings/python

# No proxies, whatever the environment says: every request goes to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HostError(RuntimeError):
    """A host did not start, or its control API answered with an error."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (free when asked; a race is unlikely)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class Host:
    """One reference homeserver process and a client for its control API."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        port: Optional[int] = None,
        control_port: Optional[int] = None,
        extra_args: Sequence[str] = (),
        log_level: str = "INFO",
    ) -> None:
        if port is None or control_port is None:
            port, control_port = free_ports(2)
        self.name = name
        self.port = port
        self.control_port = control_port
        self.server_name = f"localhost:{port}"
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.log_path = self.data_dir / "host.log"
        self.proc: Optional[subprocess.Popen] = None
        self._log_file: Any = None

    # ---- process ----------------------------------------------------------------------

    def start(self) -> "Host":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PACKAGE_PARENT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "matrix_leave.host",
            "--server-name",
            self.server_name,
            "--port",
            str(self.port),
            "--control-port",
            str(self.control_port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        return self

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def wait_ready(self, timeout: float = 30.0) -> dict:
        """Waits until the control API answers; returns ``/control/info``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise HostError(
                    f"{self.name} exited with status {self.proc.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                return self.get("/control/info", timeout=2)
            except (OSError, HostError) as e:
                last = e
            time.sleep(0.05)
        raise HostError(
            f"{self.name} did not become ready in {timeout:.0f} s ({last}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """Stops the process by its PID (SIGTERM, then SIGKILL). Returns its exit status."""
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                    rc = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                except ProcessLookupError:
                    rc = proc.wait()
            else:
                rc = proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return rc

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "Host":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- control API ------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        url = f"http://127.0.0.1:{self.control_port}{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise HostError(
                f"{self.name}: {method} {path} -> HTTP {e.code}: {parsed}", e.code, parsed
            ) from None

    def get(self, path: str, timeout: float = 60, **query: str) -> Any:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        return self._call("GET", path, timeout=timeout)

    def post(self, path: str, body: Any, timeout: float = 60) -> Any:
        return self._call("POST", path, body, timeout=timeout)

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def create_room(self, room_version: str, creator: str) -> str:
        return self.post(
            "/control/create_room", {"room_version": room_version, "creator": creator}
        )["room_id"]

    def invite(self, room_id: str, sender: str, target: str) -> dict:
        return self.post(
            "/control/invite", {"room_id": room_id, "sender": sender, "target": target}
        )

    def leave(self, room_id: str, user_id: str, via: Sequence[str] = ()) -> dict:
        body: dict[str, Any] = {"room_id": room_id, "user_id": user_id}
        if via:
            body["via"] = list(via)
        return self.post("/control/leave", body)

    def room(self, room_id: str) -> dict:
        return self.get("/control/room", room_id=room_id)

    def members(self, room_id: str) -> dict[str, str]:
        return self.room(room_id)["members"]

    def invites_received(self) -> list[dict]:
        return self.get("/control/invites_received")

    def leaves_received(self) -> list[dict]:
        return self.get("/control/leaves_received")

    def sign_event(self, event: dict, room_version: str) -> dict:
        return self.post("/control/sign_event", {"event": event, "room_version": room_version})

    def send_raw_leave(
        self, destination: str, room_id: str, event: dict, event_id: str, api_version: int = 2
    ) -> dict:
        return self.post(
            "/control/send_raw_leave",
            {
                "destination": destination,
                "room_id": room_id,
                "event_id": event_id,
                "event": event,
                "api_version": api_version,
            },
        )


class HostPair:
    """Two hosts, A (the resident, inviting side) and B (the invitee's server), in fresh
    temporary data directories. Always stop it (it is a context manager)."""

    def __init__(
        self,
        a_args: Sequence[str] = (),
        b_args: Sequence[str] = (),
        base_dir: Optional[Path] = None,
        log_level: str = "INFO",
    ) -> None:
        self._tmp = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mxl-hosts-")
            base_dir = Path(self._tmp.name)
        self.base_dir = Path(base_dir)
        ports = free_ports(4)
        self.a = Host("A", self.base_dir / "a", ports[0], ports[1], a_args, log_level)
        self.b = Host("B", self.base_dir / "b", ports[2], ports[3], b_args, log_level)

    def start(self, timeout: float = 30.0) -> "HostPair":
        try:
            self.a.start()
            self.b.start()
            self.a.wait_ready(timeout)
            self.b.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, keep_files: bool = False) -> None:
        try:
            self.a.stop()
        finally:
            self.b.stop()
            if self._tmp is not None and not keep_files:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> "HostPair":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
