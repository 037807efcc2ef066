"""Test harness that runs a real Synapse homeserver on loopback.

This module is deliberately stdlib-only (no ``requests``, no ``yaml``) so it can
be imported from any virtualenv, including the one the tests themselves run in.
Synapse is installed into its *own* virtualenv (see :func:`ensure_synapse_venv`)
and started as a separate process (see :class:`SynapseServer`).

Typical use::

    from synapse_harness import SynapseServer, find_free_port

    with SynapseServer(tmp_path / "hs1", find_free_port(),
                       federation_whitelist=["localhost:8448"]) as hs:
        alice, alice_tok = hs.register_user("alice", admin=True)
        room = hs.create_room(alice_tok, "11")
        ...

Environment variables:

``MXL_SYNAPSE_VENV``
    Location of the Synapse virtualenv (default
    ``~/.cache/matrix-leave/synapse-venv``).
``MXL_SYNAPSE_SPEC``
    pip requirement used when (re)installing, default ``matrix-synapse``
    (unpinned).  Changing it forces a reinstall.
``MXL_SYNAPSE_PYTHON``
    Interpreter used to create the virtualenv (default: the running
    interpreter).

Everything listens on 127.0.0.1 only and Synapse is configured to federate only
with the server names passed in ``federation_whitelist``.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

__all__ = [
    "HarnessError",
    "SynapseServer",
    "default_venv_dir",
    "ensure_synapse_venv",
    "find_free_port",
    "quote",
    "synapse_python",
    "synapse_version",
]

MARKER_NAME = ".mxl-synapse-install.json"
DEFAULT_SPEC = "matrix-synapse"


class HarnessError(RuntimeError):
    """Raised when the harness cannot install, start or talk to Synapse."""


# --------------------------------------------------------------------------
# virtualenv management
# --------------------------------------------------------------------------

def default_venv_dir() -> Path:
    """Return the configured Synapse venv location (``$MXL_SYNAPSE_VENV`` or the
    per-user cache default). The directory is not created."""
    env = os.environ.get("MXL_SYNAPSE_VENV")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "matrix-leave" / "synapse-venv"


def synapse_python(venv_dir: Optional[Path] = None) -> Path:
    """Path of the interpreter inside the Synapse venv (not checked)."""
    venv = Path(venv_dir) if venv_dir is not None else default_venv_dir()
    return venv / "bin" / "python"


def _probe_venv(venv: Path) -> Optional[str]:
    """Return the Synapse version importable from ``venv`` or None if broken."""
    py = synapse_python(venv)
    if not py.exists():
        return None
    try:
        out = subprocess.run(
            [str(py), "-c",
             "import synapse, canonicaljson, signedjson.key, nacl.signing, "
             "cryptography; print(synapse.__version__)"],
            capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if lines else None


def _read_marker(venv: Path) -> Optional[dict[str, Any]]:
    try:
        data: dict[str, Any] = json.loads((venv / MARKER_NAME).read_text("utf-8"))
        return data
    except (OSError, ValueError):
        return None


_VENV_OK: dict[Path, str] = {}


def ensure_synapse_venv(venv_dir: Optional[Path] = None, *,
                        spec: Optional[str] = None,
                        python: Optional[str] = None,
                        quiet: bool = True) -> Path:
    """Create (if needed) a virtualenv with ``matrix-synapse`` and return its dir.

    Idempotent and cached: a marker file (``.mxl-synapse-install.json``) in the
    venv records the requirement spec and the installed Synapse version. The
    venv is (re)built when the marker is missing, the spec changed, or the venv
    no longer imports Synapse (e.g. the base interpreter went away). A
    ``fcntl`` lock on ``<venv>.lock`` serialises concurrent callers, across
    processes, so only one of them installs.

    Args:
        venv_dir: target directory; default :func:`default_venv_dir`.
        spec: pip requirement; default ``$MXL_SYNAPSE_SPEC`` or
            ``matrix-synapse`` (unpinned).
        python: interpreter used for ``-m venv``; default
            ``$MXL_SYNAPSE_PYTHON`` or the base interpreter of the running
            Python.
        quiet: pass ``-q`` to pip.
    """
    venv = (Path(venv_dir) if venv_dir is not None else default_venv_dir())
    venv = venv.expanduser().absolute()
    spec = spec or os.environ.get("MXL_SYNAPSE_SPEC") or DEFAULT_SPEC
    if _VENV_OK.get(venv) == spec:
        return venv
    # Prefer the base interpreter: a venv made from another venv's python
    # breaks when that venv is deleted.
    python = (python or os.environ.get("MXL_SYNAPSE_PYTHON")
              or getattr(sys, "_base_executable", None) or sys.executable)

    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            marker = _read_marker(venv)
            if marker and marker.get("spec") == spec:
                version = _probe_venv(venv)
                if version and version == marker.get("version"):
                    _VENV_OK[venv] = spec
                    return venv
            # Missing, stale or broken: rebuild from scratch.
            if venv.exists():
                shutil.rmtree(venv)
            t0 = time.monotonic()
            _run([python, "-m", "venv", str(venv)],
                 "create venv (on Debian's system python you may need "
                 "'apt-get install python3-venv')")
            pip = [str(synapse_python(venv)), "-m", "pip", "install",
                   "--disable-pip-version-check"]
            if quiet:
                pip.append("-q")
            _run(pip + ["--upgrade", "pip"], "upgrade pip")
            _run(pip + [spec], f"pip install {spec}")
            version = _probe_venv(venv)
            if not version:
                raise HarnessError(f"Synapse venv {venv} does not import synapse "
                                   "after install")
            (venv / MARKER_NAME).write_text(json.dumps({
                "spec": spec,
                "version": version,
                "python": python,
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "install_seconds": round(time.monotonic() - t0, 1),
            }, indent=2) + "\n", "utf-8")
            _VENV_OK[venv] = spec
            return venv
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def synapse_version(venv_dir: Optional[Path] = None) -> Optional[str]:
    """Synapse version recorded in the venv marker, or None if not installed."""
    venv = Path(venv_dir) if venv_dir is not None else default_venv_dir()
    marker = _read_marker(venv)
    return marker.get("version") if marker else None


def _run(cmd: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is currently free on ``host``.

    There is an inherent race until the port is bound by the server; the
    harness binds soon after, which is good enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _to_yaml(obj: Any) -> str:
    """Serialise config as JSON-flow YAML (valid YAML, no PyYAML needed).
    Synapse's loader (PyYAML) reads JSON strings/numbers/bools/null fine."""
    return json.dumps(obj, indent=2, ensure_ascii=True, sort_keys=False) + "\n"


def _unpadded_b64(data: bytes) -> str:
    import base64
    return base64.b64encode(data).decode("ascii").rstrip("=")


_LIVE_SERVERS: "set[SynapseServer]" = set()


def _stop_all_at_exit() -> None:
    for srv in list(_LIVE_SERVERS):
        try:
            srv.stop()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass


atexit.register(_stop_all_at_exit)


_HIGH = 100000
# Rate limits that effectively disable limiting.  Only keys that Synapse
# parses; unknown top-level keys are ignored by Synapse anyway.
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_registration": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_registration_token_validity": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_login": {
        "address": {"per_second": _HIGH, "burst_count": _HIGH},
        "account": {"per_second": _HIGH, "burst_count": _HIGH},
        "failed_attempts": {"per_second": _HIGH, "burst_count": _HIGH},
    },
    "rc_admin_redaction": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_joins": {
        "local": {"per_second": _HIGH, "burst_count": _HIGH},
        "remote": {"per_second": _HIGH, "burst_count": _HIGH},
    },
    "rc_joins_per_room": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_3pid_validation": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_key_requests": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_profile": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_invites": {
        "per_room": {"per_second": _HIGH, "burst_count": _HIGH},
        "per_user": {"per_second": _HIGH, "burst_count": _HIGH},
        "per_issuer": {"per_second": _HIGH, "burst_count": _HIGH},
    },
    "rc_third_party_invite": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_media_create": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_federation": {  # window_size / sleep_delay are in milliseconds
        "window_size": 1000,
        "sleep_limit": _HIGH,
        "sleep_delay": 1,
        "reject_limit": _HIGH,
        "concurrent": _HIGH,
    },
    "rc_presence": {"per_user": {"per_second": _HIGH, "burst_count": _HIGH}},
    "rc_delayed_event_mgmt": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_reports": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_room_creation": {"per_second": _HIGH, "burst_count": _HIGH},
    "rc_user_directory": {"per_second": _HIGH, "burst_count": _HIGH},
}

# Retry/backoff knobs of the ``federation`` section (Synapse >= 1.90).  With
# the defaults, one failed request to the peer blocks further sends to it for
# minutes, which makes failing interop tests cascade.  Durations are ints in
# milliseconds or strings with an s/m/h/d/w/y suffix: "100ms" is NOT accepted
# (it parses as "100m" + "s"... and fails).
_FEDERATION_SECTION: dict[str, Any] = {
    "client_timeout": "30s",
    "max_short_retries": 2,
    "max_long_retries": 2,
    "max_short_retry_delay": 200,
    "max_long_retry_delay": "1s",
    "destination_min_retry_interval": 100,
    "destination_retry_multiplier": 1,
    "destination_max_retry_interval": 500,
}

_CERT_SCRIPT = r"""
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

cert_path, key_path = sys.argv[1], sys.argv[2]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name).issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1))
    .not_valid_after(now + datetime.timedelta(days=3650))
    .add_extension(x509.SubjectAlternativeName([
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
with open(key_path, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
"""


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------

class SynapseServer:
    """A Synapse homeserver process listening on loopback.

    * Federation (+ key) API over TLS (self-signed) on ``port``; the server
      name is ``localhost:<port>`` so peers reach it without DNS/SRV/well-known.
    * Client + admin API over plain HTTP on ``client_port`` (127.0.0.1 only).

    Use as a context manager (or call :meth:`start`/:meth:`stop`). The process
    is stopped by its own PID (SIGTERM, then SIGKILL after ``stop_timeout``) in
    ``__exit__`` and, as a safety net, at interpreter exit.

    Args:
        work_dir: directory for config, keys, certs, database, media and logs
            (created if missing; an existing database is reused).
        port: federation TLS port; also part of the server name.
        federation_whitelist: server names Synapse may federate with (its own
            name is added automatically).
        client_port: plain HTTP client port (default: a free port).
        default_room_version: ``default_room_version`` config value.
        venv_dir: Synapse venv (default: :func:`ensure_synapse_venv`).
        registration_shared_secret: secret for admin registration (random by
            default).
        log_level: root log level written to the log config.
        start_timeout: seconds to wait for ``/_matrix/client/versions``.
        stop_timeout: seconds between SIGTERM and SIGKILL.
        extra_config: dict merged (shallowly) over the generated config; a
            value of None removes that key.
    """

    def __init__(self, work_dir: "os.PathLike[str] | str", port: int, *,
                 federation_whitelist: Iterable[str] = (),
                 client_port: Optional[int] = None,
                 default_room_version: str = "10",
                 venv_dir: Optional[Path] = None,
                 registration_shared_secret: Optional[str] = None,
                 log_level: str = "INFO",
                 start_timeout: float = 60.0,
                 stop_timeout: float = 10.0,
                 extra_config: Optional[Mapping[str, Any]] = None) -> None:
        self.work_dir: Path = Path(work_dir).absolute()
        self.port: int = int(port)
        self.client_port: int = int(client_port) if client_port else find_free_port()
        self.server_name: str = f"localhost:{self.port}"
        wl = [self.server_name]
        for name in federation_whitelist:
            if name not in wl:
                wl.append(name)
        self.federation_whitelist: list[str] = wl
        self.default_room_version: str = str(default_room_version)
        self.venv_dir: Optional[Path] = Path(venv_dir) if venv_dir else None
        self.registration_shared_secret: str = (
            registration_shared_secret or secrets.token_hex(16))
        self.log_level: str = log_level
        self.start_timeout: float = start_timeout
        self.stop_timeout: float = stop_timeout
        self.extra_config: dict[str, Any] = dict(extra_config or {})

        self.config_path: Path = self.work_dir / "homeserver.yaml"
        self.log_path: Path = self.work_dir / "homeserver.log"
        self.stdio_path: Path = self.work_dir / "stdio.log"
        self.signing_key_path: Path = self.work_dir / "signing.key"
        self.tls_cert_path: Path = self.work_dir / "tls.crt"
        self.tls_key_path: Path = self.work_dir / "tls.key"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start_seconds: Optional[float] = None
        self._stdio_file: Any = None

    # -- URLs -----------------------------------------------------------------

    @property
    def client_base_url(self) -> str:
        """``http://127.0.0.1:<client_port>`` (client + admin API)."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_base_url(self) -> str:
        """``https://127.0.0.1:<port>`` (federation + key API, self-signed)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def signing_key_id(self) -> str:
        """Key id such as ``ed25519:a_AbCd`` of the server's signing key."""
        alg, version, _seed = self.signing_key_path.read_text().split()
        return f"{alg}:{version}"

    # -- config -----------------------------------------------------------------

    def build_config(self) -> dict[str, Any]:
        """Return the homeserver config dict written to ``homeserver.yaml``."""
        wd = self.work_dir
        cfg: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"http://127.0.0.1:{self.client_port}/",
            "pid_file": str(wd / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    "resources": [{"names": ["federation", "keys"],
                                   "compress": False}],
                },
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # The admin API (/_synapse/admin) is served on "client".
                    "resources": [{"names": ["client"], "compress": False}],
                },
            ],
            "tls_certificate_path": str(self.tls_cert_path),
            "tls_private_key_path": str(self.tls_key_path),
            "federation_verify_certificates": False,
            # Synapse blocks outbound requests to private ranges (incl.
            # loopback) by default; a blocked peer shows up as a DNS-ish
            # "no address" error.  Both the old and the new spelling are
            # accepted by current Synapse; use the old one for compatibility.
            "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
            "federation_domain_whitelist": list(self.federation_whitelist),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "signing_key_path": str(self.signing_key_path),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "enable_registration": False,
            "report_stats": False,
            "enable_metrics": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "caches": {"sync_response_cache_duration": 0},
            "database": {"name": "sqlite3",
                         "args": {"database": str(wd / "homeserver.db")}},
            "log_config": str(wd / "log.config"),
            "media_store_path": str(wd / "media_store"),
            "default_room_version": self.default_room_version,
            "federation": dict(_FEDERATION_SECTION),
        }
        cfg.update(_RATE_LIMITS)
        for key, value in self.extra_config.items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        return cfg

    def _write_log_config(self) -> None:
        log_cfg = {
            "version": 1,
            "formatters": {"precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s "
                          "- %(request)s - %(message)s"}},
            "filters": {"context": {
                "()": "synapse.logging.context.LoggingContextFilter"}},
            "handlers": {"file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(self.log_path),
                "encoding": "utf8",
                "filters": ["context"],
            }},
            "loggers": {"synapse.storage.SQL": {"level": "INFO"},
                        "twisted": {"level": "WARNING"}},
            "root": {"level": self.log_level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (self.work_dir / "log.config").write_text(_to_yaml(log_cfg), "utf-8")

    def _ensure_keys(self, py: Path) -> None:
        if not self.signing_key_path.exists():
            version = "a_" + "".join(secrets.choice(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                for _ in range(4))
            seed = _unpadded_b64(secrets.token_bytes(32))
            self.signing_key_path.write_text(f"ed25519 {version} {seed}\n")
            os.chmod(self.signing_key_path, 0o600)
        if not (self.tls_cert_path.exists() and self.tls_key_path.exists()):
            proc = subprocess.run(
                [str(py), "-c", _CERT_SCRIPT, str(self.tls_cert_path),
                 str(self.tls_key_path)], capture_output=True, text=True)
            if proc.returncode != 0:
                # Fall back to the openssl CLI.
                proc2 = subprocess.run(
                    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                     "-keyout", str(self.tls_key_path), "-out",
                     str(self.tls_cert_path), "-days", "3650", "-subj",
                     "/CN=localhost", "-addext",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                    capture_output=True, text=True)
                if proc2.returncode != 0:
                    raise HarnessError("cannot create TLS certificate:\n"
                                       + proc.stderr + proc2.stderr)

    def write_config(self, py: Optional[Path] = None) -> Path:
        """Create work dir, keys, certificate, log config and homeserver.yaml.
        Returns the config path."""
        if py is None:
            py = synapse_python(self.venv_dir or ensure_synapse_venv())
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "media_store").mkdir(exist_ok=True)
        self._ensure_keys(py)
        self._write_log_config()
        self.config_path.write_text(_to_yaml(self.build_config()), "utf-8")
        return self.config_path

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> "SynapseServer":
        """Write the config, start Synapse and wait for the client API."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        venv = self.venv_dir or ensure_synapse_venv()
        self.venv_dir = venv
        py = synapse_python(venv)
        self.write_config(py)
        t0 = time.monotonic()
        self._stdio_file = open(self.stdio_path, "ab")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        # Keep federation strictly on loopback even if a proxy is configured.
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                    "all_proxy", "ALL_PROXY"):
            env.pop(var, None)
        env["no_proxy"] = env["NO_PROXY"] = "*"
        self.proc = subprocess.Popen(
            [str(py), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=str(self.work_dir), stdout=self._stdio_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        _LIVE_SERVERS.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_err: str = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            rc = self.proc.poll()
            if rc is not None:
                raise HarnessError(
                    f"Synapse exited with code {rc} during startup\n"
                    f"--- stdio ---\n{self._tail(self.stdio_path, 40)}\n"
                    f"--- log ---\n{self.tail_log()}")
            try:
                status, _ = self.request("GET", "/_matrix/client/versions",
                                         timeout=2.0)
                if status == 200:
                    return
                last_err = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as e:
                last_err = repr(e)
            time.sleep(0.2)
        raise HarnessError(
            f"Synapse did not answer /_matrix/client/versions within "
            f"{self.start_timeout}s (last: {last_err})\n"
            f"--- stdio ---\n{self._tail(self.stdio_path, 40)}\n"
            f"--- log ---\n{self.tail_log()}")

    def stop(self) -> Optional[int]:
        """Stop the process (SIGTERM, SIGKILL after ``stop_timeout``).
        Returns the exit code, or None if it was never started."""
        proc = self.proc
        rc: Optional[int] = None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    try:
                        os.kill(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=30)
            rc = proc.returncode
        if self._stdio_file is not None:
            self._stdio_file.close()
            self._stdio_file = None
        _LIVE_SERVERS.discard(self)
        return rc

    @property
    def running(self) -> bool:
        """True while the Synapse process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "SynapseServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- logs -------------------------------------------------------------------

    @staticmethod
    def _tail(path: Path, n: int) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return f"<no {path.name}>"
        return "\n".join(data.splitlines()[-n:])

    def tail_log(self, n: int = 80) -> str:
        """Last ``n`` lines of the Synapse log file (for failure messages)."""
        return self._tail(self.log_path, n)

    # -- HTTP -------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                token: Optional[str] = None, *,
                query: Optional[Mapping[str, Any]] = None,
                timeout: float = 30.0) -> tuple[int, Any]:
        """Send a request to the plain-HTTP client port.

        ``path`` must already be percent-encoded where needed (see
        :func:`quote`). ``body`` is JSON-encoded unless it is ``bytes``.
        Returns ``(status, parsed JSON or None)``.
        """
        if query:
            path = path + ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port,
                                          timeout=timeout)
        return _do_request(conn, method, path, body, token)

    def federation_request(self, method: str, path: str, body: Any = None, *,
                           headers: Optional[Mapping[str, str]] = None,
                           timeout: float = 30.0) -> tuple[int, Any]:
        """Send an (unauthenticated unless ``headers`` carries an
        Authorization) request to the TLS federation port, without
        certificate verification."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           timeout=timeout, context=ctx)
        return _do_request(conn, method, path, body, None, headers)

    def _ok(self, method: str, path: str, body: Any = None,
            token: Optional[str] = None, **kw: Any) -> Any:
        status, data = self.request(method, path, body, token, **kw)
        if status != 200:
            raise HarnessError(f"{method} {path} -> {status}: {data}")
        return data

    # -- client API helpers -------------------------------------------------------

    def register_user(self, localpart: str, admin: bool = False,
                      password: Optional[str] = None) -> tuple[str, str]:
        """Register via the shared-secret admin API.
        Returns ``(user_id, access_token)``."""
        password = password or secrets.token_hex(12)
        nonce = self._ok("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode("utf-8"),
                       digestmod=hashlib.sha1)
        mac.update(nonce.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(localpart.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(password.encode("utf-8"))
        mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        data = self._ok("POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": localpart, "password": password,
            "admin": admin, "mac": mac.hexdigest(),
        })
        return data["user_id"], data["access_token"]

    def create_room(self, token: str, room_version: Optional[str] = None,
                    invite: Optional[Sequence[str]] = None,
                    preset: str = "private_chat",
                    extra: Optional[Mapping[str, Any]] = None) -> str:
        """Create a room; returns its room id."""
        body: dict[str, Any] = {"preset": preset}
        if room_version is not None:
            body["room_version"] = str(room_version)
        if invite:
            body["invite"] = list(invite)
        if extra:
            body.update(extra)
        return self._ok("POST", "/_matrix/client/v3/createRoom", body,
                        token)["room_id"]

    def invite(self, token: str, room_id: str, user_id: str,
               reason: Optional[str] = None) -> None:
        """Invite ``user_id`` (local or remote) into ``room_id``."""
        body: dict[str, Any] = {"user_id": user_id}
        if reason is not None:
            body["reason"] = reason
        self._ok("POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                 body, token)

    def join(self, token: str, room_id_or_alias: str,
             server_name: Optional[Sequence[str]] = None) -> str:
        """Join a room (``server_name`` = via servers); returns the room id."""
        path = f"/_matrix/client/v3/join/{quote(room_id_or_alias)}"
        if server_name:
            path += "?" + urllib.parse.urlencode(
                [("server_name", s) for s in server_name])
        return self._ok("POST", path, {}, token)["room_id"]

    def leave(self, token: str, room_id: str,
              reason: Optional[str] = None) -> None:
        """Leave, or reject an invite to, ``room_id``."""
        body: dict[str, Any] = {}
        if reason is not None:
            body["reason"] = reason
        self._ok("POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/leave",
                 body, token)

    def room_state(self, admin_token: str, room_id: str) -> list[dict[str, Any]]:
        """Current state of the room via the admin API (works whatever the
        admin's own membership)."""
        return self._ok("GET",
                        f"/_synapse/admin/v1/rooms/{quote(room_id)}/state",
                        token=admin_token)["state"]

    def membership_of(self, admin_token: str, room_id: str,
                      user_id: str) -> Optional[str]:
        """Current ``membership`` of ``user_id`` in ``room_id`` according to
        this server (admin API, so the caller needs no room membership).
        None if there is no member event."""
        for ev in self.room_state(admin_token, room_id):
            if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id:
                return ev.get("content", {}).get("membership")
        return None

    def sync(self, token: str, since: Optional[str] = None,
             timeout_ms: int = 0) -> dict[str, Any]:
        """One ``/sync`` call; returns the JSON body."""
        q: dict[str, Any] = {"timeout": timeout_ms}
        if since:
            q["since"] = since
        return self._ok("GET", "/_matrix/client/v3/sync", token=token, query=q,
                        timeout=timeout_ms / 1000.0 + 30)

    def wait_for_invite(self, token: str, room_id: str,
                        timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``room_id`` shows up under ``rooms.invite`` in /sync.
        Returns that invite entry (with ``invite_state``)."""
        deadline = time.monotonic() + timeout
        since: Optional[str] = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"no invite to {room_id} within {timeout}s\n"
                                   + self.tail_log(40))
            data = self.sync(token, since, int(min(remaining, 5.0) * 1000))
            inv = data.get("rooms", {}).get("invite", {})
            if room_id in inv:
                return inv[room_id]
            since = data.get("next_batch", since)

    def wait_for_membership(self, admin_token: str, room_id: str, user_id: str,
                            membership: str, timeout: float = 30.0) -> None:
        """Poll :meth:`membership_of` until it equals ``membership``."""
        deadline = time.monotonic() + timeout
        current: Optional[str] = None
        while time.monotonic() < deadline:
            current = self.membership_of(admin_token, room_id, user_id)
            if current == membership:
                return
            time.sleep(0.2)
        raise HarnessError(f"{user_id} in {room_id}: membership {current!r}, "
                           f"expected {membership!r} after {timeout}s\n"
                           + self.tail_log(40))

    def server_keys(self) -> dict[str, Any]:
        """``GET /_matrix/key/v2/server`` over TLS (no cert verification)."""
        status, data = self.federation_request("GET", "/_matrix/key/v2/server")
        if status != 200:
            raise HarnessError(f"key query -> {status}: {data}")
        return data


def quote(s: str) -> str:
    """Percent-encode a path segment (room ids, user ids, event ids)."""
    return urllib.parse.quote(s, safe="")


def _do_request(conn: http.client.HTTPConnection, method: str, path: str,
                body: Any, token: Optional[str],
                headers: Optional[Mapping[str, str]] = None) -> tuple[int, Any]:
    hdrs: dict[str, str] = {"Accept": "application/json"}
    payload: Optional[bytes] = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            payload = bytes(body)
        else:
            payload = json.dumps(body).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if headers:
        hdrs.update(headers)
    try:
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    finally:
        conn.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw.decode("utf-8", "replace")
    return status, data
