"""Loading the native library and declaring every C function it exports.

Every symbol gets its ``argtypes`` and ``restype`` here, in one table, so that no call ever
falls back to ctypes' default ``int`` result (which truncates pointers). The library is
loaded on first use, not at import.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint16,
    c_uint32,
    c_void_p,
)
from pathlib import Path
from typing import Any, Mapping

from ._errors import LibraryLoadError

#: The C ABI version this binding is written for (MXL_ABI_VERSION in the header).
ABI_VERSION = 1

#: The environment variable naming the library file to load.
LIBRARY_ENV = "MATRIX_LEAVE_LIBRARY"

# ---------------------------------------------------------------------------------------------
# Opaque handle types
# ---------------------------------------------------------------------------------------------


class mxl_bytes(Structure):
    """Opaque: an owned byte string."""


class mxl_error(Structure):
    """Opaque: an owned error."""


class mxl_signing_key(Structure):
    """Opaque: a signing key."""


class mxl_resident(Structure):
    """Opaque: a resident context."""


class mxl_response(Structure):
    """Opaque: a make_leave or send_leave answer."""


BytesPtr = POINTER(mxl_bytes)
ErrorPtr = POINTER(mxl_error)
SigningKeyPtr = POINTER(mxl_signing_key)
ResidentPtr = POINTER(mxl_resident)
ResponsePtr = POINTER(mxl_response)

# ---------------------------------------------------------------------------------------------
# Structures passed by pointer. Byte buffers (`const uint8_t *` with a length) are declared
# c_char_p so a Python bytes object can be assigned without a copy; the length travels
# separately, so NUL bytes inside the buffer are fine.
# ---------------------------------------------------------------------------------------------


class mxl_lookup(Structure):
    """What a lookup callback is asked for."""

    _fields_ = [
        ("room_id", c_char_p),
        ("event_type", c_char_p),
        ("state_key", c_char_p),
        ("event_id", c_char_p),
        ("server_name", c_char_p),
    ]


class mxl_store(Structure):
    """What store_event is asked to store."""

    _fields_ = [
        ("room_id", c_char_p),
        ("event_id", c_char_p),
        ("event_json", c_void_p),
        ("event_json_len", c_size_t),
        ("soft_failed", c_bool),
    ]


#: Callback status: answered (or stored).
CB_OK = 0
#: Callback status: the thing asked for does not exist.
CB_NOT_FOUND = 1
#: Callback status: the host failed; the library answers 500 M_UNKNOWN.
CB_ERROR = 2

# The `out` and `response` slots that callbacks write into are opaque; c_void_p keeps them
# as plain addresses that go straight back to mxl_out_set / mxl_http_response_set.
LOOKUP_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(mxl_lookup), c_void_p)
STORE_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(mxl_store))
NOW_FN = CFUNCTYPE(c_int64, c_void_p)
LOG_FN = CFUNCTYPE(None, c_void_p, c_uint32, c_void_p, c_size_t)
USERDATA_FREE_FN = CFUNCTYPE(None, c_void_p)


class mxl_resident_callbacks(Structure):
    """The host callbacks of a resident context."""

    _fields_ = [
        ("userdata", c_void_p),
        ("userdata_free", USERDATA_FREE_FN),
        ("room_version", LOOKUP_FN),
        ("state_event", LOOKUP_FN),
        ("get_event", LOOKUP_FN),
        ("forward_extremities", LOOKUP_FN),
        ("servers_in_room", LOOKUP_FN),
        ("server_keys", LOOKUP_FN),
        ("store_event", STORE_FN),
        ("now_ms", NOW_FN),
        ("log", LOG_FN),
    ]


class mxl_resident_config(Structure):
    """Options of a resident context."""

    _fields_ = [
        ("server_name", c_char_p),
        ("enable_v1", c_bool),
        ("acl_allows_leave", c_bool),
    ]


class mxl_send_leave_params(Structure):
    """The inputs of mxl_resident_send_leave."""

    _fields_ = [
        ("room_id", c_char_p),
        ("event_id", c_char_p),
        ("body", c_char_p),
        ("body_len", c_size_t),
        ("origin", c_char_p),
        ("api_version", c_uint32),
    ]


class mxl_template_params(Structure):
    """The inputs of mxl_complete_leave_template."""

    _fields_ = [
        ("response", c_char_p),
        ("response_len", c_size_t),
        ("room_id", c_char_p),
        ("user_id", c_char_p),
        ("server_name", c_char_p),
        ("key", SigningKeyPtr),
        ("has_now", c_bool),
        ("now_ms", c_int64),
        ("reason", c_char_p),
        ("event_id", c_char_p),
    ]


class mxl_http_request(Structure):
    """One request the leave driver asks the host transport to perform."""

    _fields_ = [
        ("destination", c_char_p),
        ("method", c_char_p),
        ("uri", c_char_p),
        ("authorization", c_char_p),
        ("body", c_void_p),
        ("body_len", c_size_t),
    ]


SEND_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(mxl_http_request), c_void_p)


class mxl_transport(Structure):
    """The host transport of the leave driver."""

    _fields_ = [
        ("userdata", c_void_p),
        ("send", SEND_FN),
    ]


class mxl_leave_params(Structure):
    """The inputs of mxl_leave_room."""

    _fields_ = [
        ("room_id", c_char_p),
        ("user_id", c_char_p),
        ("server_name", c_char_p),
        ("key", SigningKeyPtr),
        ("membership_event", c_char_p),
        ("membership_event_len", c_size_t),
        ("room_version", c_char_p),
        ("extra_servers", c_char_p),
        ("extra_servers_len", c_size_t),
        ("now_ms", c_int64),
        ("reason", c_char_p),
    ]


# ---------------------------------------------------------------------------------------------
# Prototypes: symbol -> (argtypes, restype)
# ---------------------------------------------------------------------------------------------

_OUT_BYTES = POINTER(BytesPtr)
_OUT_ERROR = POINTER(ErrorPtr)
_RESULT = c_uint32

PROTOTYPES: Mapping[str, tuple[list[Any], Any]] = {
    # library
    "mxl_version": ([], c_char_p),
    "mxl_abi_version": ([], c_uint32),
    "mxl_ed25519_backend": ([], c_char_p),
    "mxl_result_http_status": ([c_uint32], c_uint16),
    "mxl_result_errcode": ([c_uint32], c_char_p),
    # mxl_error
    "mxl_error_code": ([ErrorPtr], _RESULT),
    "mxl_error_http_status": ([ErrorPtr], c_uint16),
    "mxl_error_errcode": ([ErrorPtr], c_char_p),
    "mxl_error_message": ([ErrorPtr], c_char_p),
    "mxl_error_free": ([ErrorPtr], None),
    # mxl_bytes
    "mxl_bytes_data": ([BytesPtr], c_void_p),
    "mxl_bytes_len": ([BytesPtr], c_size_t),
    "mxl_bytes_free": ([BytesPtr], None),
    # canonical JSON, hashes, redaction, IDs
    "mxl_canonical_json": ([c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_content_hash": ([c_char_p, c_size_t, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_reference_hash": ([c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_event_id": ([c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_room_id_from_create_event": ([c_char_p, c_size_t, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_redact": ([c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR], _RESULT),
    # signing keys
    "mxl_signing_key_from_seed": (
        [c_char_p, c_size_t, c_char_p, POINTER(SigningKeyPtr), _OUT_ERROR],
        _RESULT,
    ),
    "mxl_signing_key_generate": ([c_char_p, POINTER(SigningKeyPtr), _OUT_ERROR], _RESULT),
    "mxl_signing_key_free": ([SigningKeyPtr], None),
    "mxl_signing_key_key_id": ([SigningKeyPtr], c_char_p),
    "mxl_signing_key_public_key": ([SigningKeyPtr, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_signing_key_seed": ([SigningKeyPtr, c_void_p], _RESULT),
    "mxl_signing_key_sign_json": (
        [SigningKeyPtr, c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    # JSON and event signatures
    "mxl_verify_json": (
        [c_char_p, c_size_t, c_char_p, c_char_p, c_size_t, _OUT_ERROR],
        _RESULT,
    ),
    "mxl_sign_event": (
        [c_char_p, c_size_t, c_char_p, c_char_p, SigningKeyPtr, _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    "mxl_verify_event": (
        [c_char_p, c_size_t, c_char_p, c_char_p, c_size_t, _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    # X-Matrix
    "mxl_xmatrix_authorization": (
        [
            SigningKeyPtr,
            c_char_p,
            c_char_p,
            c_char_p,
            c_char_p,
            c_char_p,
            c_size_t,
            _OUT_BYTES,
            _OUT_ERROR,
        ],
        _RESULT,
    ),
    "mxl_xmatrix_parse": ([c_char_p, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_xmatrix_verify": (
        [
            c_char_p,
            c_char_p,
            c_char_p,
            c_char_p,
            c_size_t,
            c_char_p,
            c_char_p,
            c_size_t,
            _OUT_BYTES,
            _OUT_ERROR,
        ],
        _RESULT,
    ),
    # server key documents
    "mxl_server_key_document": (
        [SigningKeyPtr, c_char_p, c_int64, c_char_p, c_size_t, _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    "mxl_verify_server_key_document": (
        [c_char_p, c_size_t, c_char_p, _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    # resident side
    "mxl_out_set": ([c_void_p, c_char_p, c_size_t], None),
    "mxl_resident_new": (
        [
            POINTER(mxl_resident_config),
            POINTER(mxl_resident_callbacks),
            POINTER(ResidentPtr),
            _OUT_ERROR,
        ],
        _RESULT,
    ),
    "mxl_resident_free": ([ResidentPtr], None),
    "mxl_resident_make_leave": (
        [ResidentPtr, c_char_p, c_char_p, c_char_p, POINTER(ResponsePtr), _OUT_ERROR],
        _RESULT,
    ),
    "mxl_resident_send_leave": (
        [ResidentPtr, POINTER(mxl_send_leave_params), POINTER(ResponsePtr), _OUT_ERROR],
        _RESULT,
    ),
    "mxl_response_status": ([ResponsePtr], c_uint16),
    "mxl_response_code": ([ResponsePtr], _RESULT),
    "mxl_response_errcode": ([ResponsePtr], c_char_p),
    "mxl_response_message": ([ResponsePtr], c_char_p),
    "mxl_response_body": ([ResponsePtr, POINTER(c_size_t)], c_void_p),
    "mxl_response_accepted": ([ResponsePtr], c_bool),
    "mxl_response_event_id": ([ResponsePtr], c_char_p),
    "mxl_response_json": ([ResponsePtr, _OUT_BYTES, _OUT_ERROR], _RESULT),
    "mxl_response_free": ([ResponsePtr], None),
    # leaving side
    "mxl_complete_leave_template": (
        [POINTER(mxl_template_params), _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    "mxl_http_response_set": ([c_void_p, c_uint16, c_char_p, c_size_t], None),
    "mxl_http_response_fail": ([c_void_p, c_char_p, c_size_t], None),
    "mxl_leave_room": (
        [POINTER(mxl_leave_params), POINTER(mxl_transport), _OUT_BYTES, _OUT_ERROR],
        _RESULT,
    ),
    # plugin table for dlopen hosts (unused here: ctypes looks symbols up by name)
    "mxl_plugin_get": ([c_uint32, POINTER(c_char_p)], c_void_p),
}

#: Symbols a library built from an older checkout may lack; the binding does not call them.
OPTIONAL_SYMBOLS = frozenset({"mxl_plugin_get"})

# ---------------------------------------------------------------------------------------------
# Finding the library
# ---------------------------------------------------------------------------------------------

_CRATE_NAME = re.compile(r'^\s*name\s*=\s*"matrix-leave"\s*$', re.MULTILINE)


def library_file_name(platform: str = sys.platform) -> str:
    """The file name cargo gives the cdylib on `platform`."""
    if platform == "darwin":
        return "libmatrix_leave.dylib"
    if platform in ("win32", "cygwin"):
        return "matrix_leave.dll"
    return "libmatrix_leave.so"


def _is_our_crate(cargo_toml: Path) -> bool:
    """Whether `cargo_toml` is the manifest of the matrix-leave crate."""
    try:
        text = cargo_toml.read_text(encoding="utf-8")
    except OSError:
        return False
    package = text.split("[package]", 1)
    if len(package) != 2:
        return False
    section = package[1].split("\n[", 1)[0]
    return _CRATE_NAME.search(section) is not None


def _search(
    package_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """The library files to try, in order, and the places looked at that gave no candidate,
    each with the reason (for the error message when nothing loads)."""
    env = os.environ if environ is None else environ
    explicit = env.get(LIBRARY_ENV)
    if explicit:
        return [Path(explicit)], []
    here = Path(__file__).resolve().parent if package_dir is None else package_dir
    name = library_file_name()
    out: list[Path] = []
    notes: list[tuple[str, str]] = []
    bundled = here / name
    if bundled.exists():
        out.append(bundled)
    else:
        notes.append((str(bundled), "no such file (no copy of the library was installed with the package)"))
    for directory in [here, *here.parents]:
        if _is_our_crate(directory / "Cargo.toml"):
            out.append(directory / "target" / "release" / name)
            break
    else:
        notes.append(
            (
                f"a matrix-leave checkout enclosing {here}",
                "none found (no directory from there up has a Cargo.toml of the crate matrix-leave)",
            )
        )
    return out, notes


def candidate_paths(
    package_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """The library files to try, in order.

    1. ``$MATRIX_LEAVE_LIBRARY`` when set; it is then the only candidate, so an explicit
       choice never silently falls back to another copy.
    2. A copy installed inside the package, if there is one.
    3. ``target/release/<lib>`` of the nearest enclosing checkout: the first directory,
       walking up from the package, whose ``Cargo.toml`` names the crate ``matrix-leave``.
    """
    return _search(package_dir, environ)[0]


def _declare(cdll: ctypes.CDLL) -> None:
    """Sets argtypes and restype on every symbol; a missing symbol is an error unless it is
    one of OPTIONAL_SYMBOLS."""
    for name, (argtypes, restype) in PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            if name in OPTIONAL_SYMBOLS:
                continue
            raise AttributeError(f"the library has no symbol {name}") from None
        fn.argtypes = argtypes
        fn.restype = restype


def _load(path: Path) -> ctypes.CDLL:
    """Loads one candidate, declares the prototypes and checks the ABI version."""
    cdll = ctypes.CDLL(str(path))
    _declare(cdll)
    found = cdll.mxl_abi_version()
    if found != ABI_VERSION:
        raise OSError(f"C ABI version {found}, but this binding needs {ABI_VERSION}")
    return cdll


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path: Path | None = None


def lib() -> Any:
    """The loaded library, loading it on first use.

    Raises:
        LibraryLoadError: no candidate loaded; the message lists each path and why.
    """
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        candidates, attempts = _search()
        for path in candidates:
            if not path.exists():
                reason = "no such file"
                if path.parent.name == "release" and path.parent.parent.name == "target":
                    reason += f" (run `cargo build --release` in {path.parent.parent.parent})"
                attempts.append((str(path), reason))
                continue
            try:
                loaded = _load(path)
            except (OSError, AttributeError) as exc:
                attempts.append((str(path), str(exc)))
                continue
            _lib, _lib_path = loaded, path
            return loaded
        raise LibraryLoadError(attempts, explicit=bool(os.environ.get(LIBRARY_ENV)))


def library_path() -> Path:
    """The path of the loaded library (loading it if needed)."""
    lib()
    assert _lib_path is not None
    return _lib_path
