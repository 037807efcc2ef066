"""Python binding of matrix-leave: the Matrix federation leave handshake (make_leave /
send_leave), canonical JSON, event hashing and signing, and X-Matrix request
authentication, over the library's C ABI with :mod:`ctypes`.

The native library is found, on first use, through ``$MATRIX_LEAVE_LIBRARY``, else a copy
installed inside this package, else ``target/release`` of the enclosing Cargo checkout.

The library's log records (refusals at warning level) go to the ``matrix_leave`` logger of
:mod:`logging`, which has a :class:`logging.NullHandler`: nothing is printed unless the
application configures logging.
"""

from __future__ import annotations

import logging as _logging

from . import _native
from ._errors import HandleClosedError, LibraryLoadError, MatrixError, ResultCode
from ._handle import Handle
from .crypto import (
    SigningKey,
    VerifyKeys,
    VerifyResult,
    canonical_json,
    canonical_json_from_text,
    content_hash,
    event_id,
    parse_xmatrix,
    redact,
    reference_hash,
    room_id_from_create_event,
    server_key_document,
    sign_event,
    verify_event,
    verify_json,
    verify_server_key_document,
    verify_xmatrix,
    xmatrix_authorization,
)
from .leaving import CompletedLeave, LeaveResult, Transport, complete_leave_template, leave_room
from .memory import MemoryKeyStore, MemoryRoomStore, StoredEvent
from .resident import (
    LOG_DEBUG,
    LOG_ERROR,
    LOG_INFO,
    LOG_TRACE,
    LOG_WARN,
    AcceptedLeave,
    KeyStore,
    Logger,
    MakeLeaveResult,
    Resident,
    RoomStore,
    SendLeaveResult,
    default_logger,
)

__version__ = "0.1.0"

# A library does not print: without this, Python's last-resort handler would write every
# refusal (a warning) to stderr when the application has not configured logging.
_logging.getLogger("matrix_leave").addHandler(_logging.NullHandler())

__all__ = [
    "AcceptedLeave",
    "CompletedLeave",
    "Handle",
    "HandleClosedError",
    "KeyStore",
    "LOG_DEBUG",
    "LOG_ERROR",
    "LOG_INFO",
    "LOG_TRACE",
    "LOG_WARN",
    "LeaveResult",
    "LibraryLoadError",
    "Logger",
    "MakeLeaveResult",
    "MatrixError",
    "MemoryKeyStore",
    "MemoryRoomStore",
    "Resident",
    "ResultCode",
    "RoomStore",
    "SendLeaveResult",
    "SigningKey",
    "StoredEvent",
    "Transport",
    "VerifyKeys",
    "VerifyResult",
    "abi_version",
    "canonical_json",
    "canonical_json_from_text",
    "complete_leave_template",
    "ed25519_backend",
    "content_hash",
    "default_logger",
    "event_id",
    "leave_room",
    "library_path",
    "library_version",
    "parse_xmatrix",
    "redact",
    "reference_hash",
    "room_id_from_create_event",
    "server_key_document",
    "sign_event",
    "verify_event",
    "verify_json",
    "verify_server_key_document",
    "verify_xmatrix",
    "xmatrix_authorization",
]


def library_version() -> str:
    """The version of the loaded native library, such as ``"0.1.0"``."""
    return str(_native.lib().mxl_version().decode("utf-8"))


def abi_version() -> int:
    """The C ABI version of the loaded native library (checked against this binding's
    when the library is loaded)."""
    return int(_native.lib().mxl_abi_version())


def ed25519_backend() -> str:
    """The ed25519 code the native library verifies with on this CPU: ``"avx512ifma"``,
    ``"avx2"`` or ``"serial"``."""
    return str(_native.lib().mxl_ed25519_backend().decode("ascii"))


def library_path() -> str:
    """The path of the loaded native library, loading it if needed.

    Raises:
        LibraryLoadError: no candidate loaded; the message lists each path tried.
    """
    return str(_native.library_path())
