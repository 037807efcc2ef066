"""Conversions between Python values and the C ABI: strings, JSON, owned bytes, errors."""

from __future__ import annotations

import ctypes
import json
from typing import Any, Callable, Mapping, Optional, Union

from . import _native
from ._errors import MatrixError, ResultCode

#: A JSON object given either as a mapping or as its raw UTF-8 text.
JsonObject = Union[Mapping[str, Any], bytes, bytearray, memoryview]


def invalid(message: str, code: ResultCode = ResultCode.INVALID_PARAM) -> MatrixError:
    """A MatrixError for a bad argument found before calling the library.

    The errcode and HTTP status are the library's own mapping of `code`.
    """
    lib = _native.lib()
    errcode = lib.mxl_result_errcode(int(code)).decode("utf-8")
    status = int(lib.mxl_result_http_status(int(code)))
    return MatrixError(int(code), errcode, status, message)


def cstr(value: str, name: str) -> bytes:
    """Encodes a string argument as NUL-terminated UTF-8.

    Raises:
        TypeError: `value` is not a str.
        MatrixError: it holds a NUL character or a lone surrogate (M_INVALID_PARAM), which
            no C string can carry.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise invalid(f"{name} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid(f"{name} is not valid Unicode: {exc.reason}") from None


def optional_cstr(value: Optional[str], name: str) -> Optional[bytes]:
    """As :func:`cstr`, with None passed through as NULL."""
    return None if value is None else cstr(value, name)


def dumps(value: Any, name: str) -> bytes:
    """Serializes a value as UTF-8 JSON text (not yet canonical; the library does that).

    Raises:
        TypeError: the value holds something JSON cannot represent.
        MatrixError: M_BAD_JSON for NaN or infinity, or a string with a lone surrogate.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise invalid(f"{name}: {exc}", ResultCode.BAD_JSON) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid(f"{name}: a string is not valid Unicode ({exc.reason})", ResultCode.BAD_JSON) from None


def json_object(value: JsonObject, name: str) -> bytes:
    """The JSON text of an object given as a mapping or as raw bytes.

    Raw bytes go to the library untouched, so the library judges exactly what was received.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        return dumps(dict(value), name)
    raise TypeError(f"{name} must be a mapping or JSON bytes, not {type(value).__name__}")


def loads(data: bytes) -> Any:
    """Parses JSON produced by the library."""
    return json.loads(data.decode("utf-8"))


def take_error(code: int, err: Any) -> MatrixError:
    """Builds a MatrixError from an `mxl_error` and frees it.

    When the library gave no error object, the code alone gives the errcode and status.
    """
    lib = _native.lib()
    try:
        if err:
            return MatrixError(
                int(lib.mxl_error_code(err)),
                (lib.mxl_error_errcode(err) or b"M_UNKNOWN").decode("utf-8"),
                int(lib.mxl_error_http_status(err)),
                (lib.mxl_error_message(err) or b"").decode("utf-8", "replace"),
            )
        return MatrixError(
            int(code),
            (lib.mxl_result_errcode(code) or b"M_UNKNOWN").decode("utf-8"),
            int(lib.mxl_result_http_status(code)),
            f"the library reported code {code} without an error message",
        )
    finally:
        lib.mxl_error_free(err)


def check(code: int, err: Any) -> None:
    """Raises the error of a failed call, and frees any error object either way."""
    if code != ResultCode.OK:
        raise take_error(code, err)
    if err:
        _native.lib().mxl_error_free(err)


def take_bytes(ptr: Any) -> bytes:
    """Copies an `mxl_bytes` into Python bytes and frees it."""
    lib = _native.lib()
    try:
        if not ptr:
            return b""
        data = lib.mxl_bytes_data(ptr)
        size = int(lib.mxl_bytes_len(ptr))
        return ctypes.string_at(data, size) if data and size else b""
    finally:
        lib.mxl_bytes_free(ptr)


def call_bytes(fn: Callable[..., int], *args: Any) -> bytes:
    """Calls an export whose last two parameters are `out_bytes` and `out_error`.

    Returns the bytes it produced; raises its error as a MatrixError.
    """
    out = _native.BytesPtr()
    err = _native.ErrorPtr()
    code = fn(*args, ctypes.byref(out), ctypes.byref(err))
    try:
        check(code, err)
    except BaseException:
        _native.lib().mxl_bytes_free(out)
        raise
    return take_bytes(out)


def call_text(fn: Callable[..., int], *args: Any) -> str:
    """As :func:`call_bytes`, decoding the result as UTF-8 text."""
    return call_bytes(fn, *args).decode("utf-8")


def call_json(fn: Callable[..., int], *args: Any) -> Any:
    """As :func:`call_bytes`, parsing the result as JSON."""
    return loads(call_bytes(fn, *args))
