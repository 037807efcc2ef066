"""Exceptions raised by the binding and the result codes of the C ABI."""

from __future__ import annotations

import enum
from typing import Sequence

__all__ = [
    "HandleClosedError",
    "LibraryLoadError",
    "MatrixError",
    "ResultCode",
]


class ResultCode(enum.IntEnum):
    """The `mxl_result` codes of the C ABI. The numbers never change."""

    OK = 0
    BAD_JSON = 1
    INVALID_PARAM = 2
    FORBIDDEN = 3
    NOT_FOUND = 4
    TOO_LARGE = 5
    UNSUPPORTED_ROOM_VERSION = 6
    UNAUTHORIZED = 7
    HOST_FAILURE = 8
    NULL_ARGUMENT = 9
    BAD_SIGNATURE = 10
    UNRECOGNIZED = 11
    INTERNAL = 12
    MISSING_PARAM = 13
    MALFORMED_AUTH = 14


class MatrixError(Exception):
    """A failure reported by the library.

    Attributes:
        code: the `mxl_result` number (compare with :class:`ResultCode`).
        errcode: the Matrix errcode, such as ``"M_BAD_JSON"``.
        http_status: the HTTP status a federation endpoint answers with.
        message: what is wrong, naming the argument, field or rule at fault.
    """

    code: int
    errcode: str
    http_status: int
    message: str

    def __init__(self, code: int, errcode: str, http_status: int, message: str) -> None:
        """Records the code, errcode, HTTP status and message of a failure."""
        super().__init__(code, errcode, http_status, message)
        self.code = code
        self.errcode = errcode
        self.http_status = http_status
        self.message = message

    @property
    def result(self) -> ResultCode | int:
        """The code as a :class:`ResultCode`, or the bare number if this binding does not know it."""
        try:
            return ResultCode(self.code)
        except ValueError:
            return self.code

    def __str__(self) -> str:
        """``"<errcode> (<status>): <message>"``."""
        return f"{self.errcode} ({self.http_status}): {self.message}"

    def __repr__(self) -> str:
        """A representation showing every field."""
        return (
            f"MatrixError(code={self.code!r}, errcode={self.errcode!r}, "
            f"http_status={self.http_status!r}, message={self.message!r})"
        )


class LibraryLoadError(ImportError):
    """The native library could not be found or loaded.

    Attributes:
        attempts: every place looked at, each with the reason it gave no library: the
            paths tried, the in-package copy that is not there, the checkout search that
            found none.
    """

    attempts: list[tuple[str, str]]

    def __init__(self, attempts: Sequence[tuple[str, str]], explicit: bool = False) -> None:
        """Builds a message listing each place looked at, why it failed, and how to fix it.

        `explicit` says MATRIX_LEAVE_LIBRARY was set (so it was the only path tried).
        """
        self.attempts = list(attempts)
        lines = ["could not load the matrix-leave native library; looked at:"]
        lines += [f"  {path}: {why}" for path, why in self.attempts]
        if not self.attempts:
            lines.append("  (no candidate path)")
        if explicit:
            lines.append(
                "MATRIX_LEAVE_LIBRARY is set, so only that path was tried: point it at a "
                "libmatrix_leave.so built with `cargo build --release`, or unset it."
            )
        else:
            lines += [
                "To fix it, either:",
                "  - set MATRIX_LEAVE_LIBRARY to the path of libmatrix_leave.so, or",
                "  - in a checkout of matrix-leave, run `cargo build --release` and then "
                "`pip install -e bindings/python` (an editable install finds "
                "target/release/libmatrix_leave.so).",
            ]
        super().__init__("\n".join(lines))


class HandleClosedError(ValueError):
    """A handle was used after :meth:`close` (or after leaving its ``with`` block)."""
