"""Canonical JSON, hashes, event IDs, redaction, signing keys, signatures, X-Matrix request
authentication and server key documents.

Functions that take an event accept it as a mapping (serialized with :func:`json.dumps`) or
as the raw JSON bytes received, which the library then judges byte for byte. Results that
are JSON come back as Python values.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

from . import _native
from ._convert import (
    JsonObject,
    call_bytes,
    call_json,
    call_text,
    check,
    cstr,
    dumps,
    invalid,
    json_object,
    optional_cstr,
)
from ._errors import ResultCode
from ._handle import Handle

__all__ = [
    "SigningKey",
    "VerifyResult",
    "canonical_json",
    "canonical_json_from_text",
    "content_hash",
    "event_id",
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

#: One server's verify keys: key ID -> unpadded base64, or -> ``{"key": base64,
#: "valid_until_ts": ms, "expired_ts": ms}`` with both times optional.
VerifyKeys = Mapping[str, Union[str, Mapping[str, Any]]]

# ---------------------------------------------------------------------------------------------
# Canonical JSON, hashes, redaction and IDs
# ---------------------------------------------------------------------------------------------


def canonical_json(value: Any, room_version: Optional[str] = None) -> bytes:
    """Encodes a Python value as Matrix canonical JSON.

    The value is serialized with ``json.dumps(ensure_ascii=False, allow_nan=False)`` and the
    library re-encodes it, checking the number rules of `room_version`: versions "1" to "5"
    allow floats and large integers; later versions and None (the default) refuse them.

    Raises:
        MatrixError: M_BAD_JSON for a float, an out-of-range integer, NaN or infinity;
            M_UNSUPPORTED_ROOM_VERSION for an unknown room version.
        TypeError: the value holds something JSON cannot represent.
    """
    text = dumps(value, "value")
    return canonical_json_from_text(text, room_version)


def canonical_json_from_text(text: Union[str, bytes], room_version: Optional[str] = None) -> bytes:
    """Re-encodes raw JSON text as canonical JSON, judging the text itself.

    Unlike :func:`canonical_json`, this sees exactly what was written: duplicate keys,
    escapes, number spellings such as ``1.0`` or ``1e2``, invalid UTF-8.

    Raises:
        MatrixError: M_BAD_JSON (the message names the class of failure and the field);
            M_UNSUPPORTED_ROOM_VERSION for an unknown room version.
    """
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise invalid(f"json: lone_surrogate in the text ({exc.reason})", ResultCode.BAD_JSON) from None
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
    version = optional_cstr(room_version, "room_version")
    return call_bytes(_native.lib().mxl_canonical_json, data, len(data), version)


def content_hash(event: JsonObject) -> str:
    """The content hash of an event, as its ``hashes.sha256`` would carry it (unpadded
    base64 of SHA-256 over the event without ``unsigned``, ``signatures`` and ``hashes``).

    Raises:
        MatrixError: M_BAD_JSON when the event is not a JSON object.
    """
    data = json_object(event, "event")
    return call_text(_native.lib().mxl_content_hash, data, len(data))


def reference_hash(event: JsonObject, room_version: str) -> str:
    """The reference hash of an event in unpadded standard base64.

    Raises:
        MatrixError: M_BAD_JSON or M_UNSUPPORTED_ROOM_VERSION.
    """
    data = json_object(event, "event")
    version = cstr(room_version, "room_version")
    return call_text(_native.lib().mxl_reference_hash, data, len(data), version)


def event_id(event: JsonObject, room_version: str) -> str:
    """The ID of an event: its ``event_id`` field in room versions 1 and 2, ``$`` and its
    reference hash from version 3 on.

    Raises:
        MatrixError: M_BAD_JSON (including a version 1 or 2 event without ``event_id``) or
            M_UNSUPPORTED_ROOM_VERSION.
    """
    data = json_object(event, "event")
    version = cstr(room_version, "room_version")
    return call_text(_native.lib().mxl_event_id, data, len(data), version)


def room_id_from_create_event(create_event: JsonObject) -> str:
    """The room ID a room version 12 ``m.room.create`` event defines.

    Raises:
        MatrixError: M_INVALID_PARAM for something other than a version 12 create event.
    """
    data = json_object(create_event, "create_event")
    return call_text(_native.lib().mxl_room_id_from_create_event, data, len(data))


def redact(event: JsonObject, room_version: str) -> Dict[str, Any]:
    """The event as the room version's redaction algorithm leaves it (``unsigned`` removed).

    Raises:
        MatrixError: M_BAD_JSON or M_UNSUPPORTED_ROOM_VERSION.
    """
    data = json_object(event, "event")
    version = cstr(room_version, "room_version")
    result: Dict[str, Any] = call_json(_native.lib().mxl_redact, data, len(data), version)
    return result


# ---------------------------------------------------------------------------------------------
# Signing keys
# ---------------------------------------------------------------------------------------------


class SigningKey(Handle):
    """An ed25519 signing key with its key ID, such as ``ed25519:a_1``.

    Make one with :meth:`from_seed` or :meth:`generate`. The key is immutable and may be used
    from several threads at once. Close it (or use ``with``) to free it early; otherwise it
    is freed when garbage collected.
    """

    _kind = "SigningKey"
    _key_id: str
    _public_key: str

    def __init__(self) -> None:
        """Not for direct use: call :meth:`from_seed` or :meth:`generate`."""
        raise TypeError("use SigningKey.from_seed(...) or SigningKey.generate(...)")

    @classmethod
    def _wrap(cls, ptr: Any) -> SigningKey:
        """Takes ownership of a key pointer and caches its ID and public key."""
        key = cls.__new__(cls)
        key._adopt(ptr)
        lib = _native.lib()
        key._key_id = lib.mxl_signing_key_key_id(ptr).decode("utf-8")
        key._public_key = call_text(lib.mxl_signing_key_public_key, ptr)
        return key

    @classmethod
    def _free(cls, ptr: Any) -> None:
        """Frees the key."""
        _native.lib().mxl_signing_key_free(ptr)

    @classmethod
    def from_seed(cls, seed: bytes, key_id: str) -> SigningKey:
        """Makes a key from its 32-byte ed25519 seed.

        Raises:
            MatrixError: M_INVALID_PARAM for a seed that is not 32 bytes or a key ID that is
                not ``ed25519:`` followed by letters, digits and ``_``.
        """
        if not isinstance(seed, (bytes, bytearray, memoryview)):
            raise TypeError(f"seed must be bytes, not {type(seed).__name__}")
        data = bytes(seed)
        lib = _native.lib()
        ptr = _native.SigningKeyPtr()
        err = _native.ErrorPtr()
        code = lib.mxl_signing_key_from_seed(
            data, len(data), cstr(key_id, "key_id"), ctypes.byref(ptr), ctypes.byref(err)
        )
        check(code, err)
        return cls._wrap(ptr)

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        """Makes a new random key from the operating system's random source.

        Raises:
            MatrixError: M_INVALID_PARAM for a bad key ID.
        """
        lib = _native.lib()
        ptr = _native.SigningKeyPtr()
        err = _native.ErrorPtr()
        code = lib.mxl_signing_key_generate(cstr(key_id, "key_id"), ctypes.byref(ptr), ctypes.byref(err))
        check(code, err)
        return cls._wrap(ptr)

    @property
    def key_id(self) -> str:
        """The key ID, such as ``ed25519:1``."""
        return self._key_id

    @property
    def public_key(self) -> str:
        """The public key in unpadded standard base64, as ``verify_keys`` lists it."""
        return self._public_key

    @property
    def seed(self) -> bytes:
        """The 32-byte seed, to store the key. Keep it secret."""
        buffer = ctypes.create_string_buffer(32)
        with self._borrow() as ptr:
            code = _native.lib().mxl_signing_key_seed(ptr, buffer)
        check(code, _native.ErrorPtr())
        return buffer.raw

    def sign_json(self, value: JsonObject, server_name: str) -> Dict[str, Any]:
        """Signs a JSON object for `server_name`: the signature over its canonical form
        without ``signatures`` and ``unsigned`` is added under
        ``signatures[server_name][key_id]``; other signatures are kept.

        Raises:
            MatrixError: M_BAD_JSON, or M_INVALID_PARAM when the value is not an object.
        """
        data = json_object(value, "value")
        name = cstr(server_name, "server_name")
        with self._borrow() as ptr:
            result: Dict[str, Any] = call_json(
                _native.lib().mxl_signing_key_sign_json, ptr, data, len(data), name
            )
        return result

    def __repr__(self) -> str:
        """Shows the key ID and public key, never the seed."""
        if self.closed:
            return "<SigningKey (closed)>"
        return f"<SigningKey {self._key_id} {self._public_key}>"


def _require_signing_key(key: Any, name: str = "key") -> SigningKey:
    """Returns `key` if it is a :class:`SigningKey`.

    Raises:
        TypeError: naming the argument, for anything else (a seed, a key ID, None).
    """
    if not isinstance(key, SigningKey):
        raise TypeError(
            f"{name} must be a SigningKey (SigningKey.from_seed(...) or SigningKey.generate(...)), "
            f"not {type(key).__name__}"
        )
    return key


def _key_set(value: Any, name: str) -> Dict[str, Any]:
    """One server's verify keys as a plain dict, ready for JSON: ``{key_id: base64}`` or
    ``{key_id: {"key": base64, ...}}``.

    Raises:
        TypeError: naming the argument (or the entry) that is not a mapping of str to a
            str or a mapping.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of key IDs to public keys, not {type(value).__name__}")
    out: Dict[str, Any] = {}
    for key_id, entry in value.items():
        if not isinstance(key_id, str):
            raise TypeError(f"{name} must have str key IDs, not {type(key_id).__name__}")
        if isinstance(entry, str):
            out[key_id] = entry
        elif isinstance(entry, Mapping):
            out[key_id] = dict(entry)
        else:
            raise TypeError(
                f"{name}[{key_id!r}] must be a base64 str or a mapping with 'key', "
                f"not {type(entry).__name__}"
            )
    return out


# ---------------------------------------------------------------------------------------------
# JSON and event signatures
# ---------------------------------------------------------------------------------------------


def verify_json(value: JsonObject, server_name: str, verify_keys: VerifyKeys) -> None:
    """Checks that a JSON object carries a valid signature of `server_name`.

    `verify_keys` maps key IDs to unpadded base64 public keys (or ``{"key": ...}``).
    Signatures by unknown keys or other algorithms are ignored; at least one by a listed key
    must be present, and every such signature must be valid.

    Raises:
        MatrixError: M_INVALID_PARAM (code BAD_SIGNATURE) when the signature is missing or
            wrong; M_BAD_JSON; M_INVALID_PARAM for a bad key set.
        TypeError: `verify_keys` is not a mapping (of str to a str or a mapping).
    """
    data = json_object(value, "value")
    keys = dumps(_key_set(verify_keys, "verify_keys"), "verify_keys")
    lib = _native.lib()
    err = _native.ErrorPtr()
    code = lib.mxl_verify_json(data, len(data), cstr(server_name, "server_name"), keys, len(keys), ctypes.byref(err))
    check(code, err)


def sign_event(event: JsonObject, room_version: str, server_name: str, key: SigningKey) -> Dict[str, Any]:
    """Adds the content hash and `server_name`'s signature to an event, as its origin
    server does. Other signatures are kept.

    Raises:
        MatrixError: M_BAD_JSON or M_UNSUPPORTED_ROOM_VERSION.
        TypeError: `key` is not a :class:`SigningKey`, or another argument has the wrong
            type.
    """
    _require_signing_key(key)
    data = json_object(event, "event")
    version = cstr(room_version, "room_version")
    name = cstr(server_name, "server_name")
    with key._borrow() as ptr:
        result: Dict[str, Any] = call_json(_native.lib().mxl_sign_event, data, len(data), version, name, ptr)
    return result


@dataclass(frozen=True)
class VerifyResult:
    """What the checks of a received event found, and what to do with it.

    Attributes:
        signature_valid: every required server signed the event.
        content_hash_valid: the content hash matches.
        outcome: ``"accept"`` (use as is), ``"redact"`` (signatures good, hash wrong: use
            :attr:`redacted` instead) or ``"reject"`` (signatures bad: drop it).
        computed_content_hash: the content hash the event should carry.
        redacted: for ``"redact"``, the redacted copy to keep; otherwise None.
        error: for ``"reject"``, why the signature check failed; otherwise None.
    """

    signature_valid: bool
    content_hash_valid: bool
    outcome: str
    computed_content_hash: str
    redacted: Optional[Dict[str, Any]] = None
    error: Optional[str] = None


def verify_event(
    event: JsonObject,
    room_version: str,
    keys: Mapping[str, VerifyKeys],
) -> VerifyResult:
    """Checks the signatures and content hash of a received event.

    `keys` maps server names to their verify keys (see :data:`VerifyKeys`); an entry may
    carry ``valid_until_ts`` / ``expired_ts``, which count from room version 5 on.

    Raises:
        MatrixError: only when the event cannot be checked at all (M_BAD_JSON, a bad key
            set, an unknown room version). A bad signature is a result, not an error.
        TypeError: `keys` is not a mapping of server names to mappings of verify keys.
    """
    data = json_object(event, "event")
    version = cstr(room_version, "room_version")
    if not isinstance(keys, Mapping):
        raise TypeError(
            f"keys must be a mapping of server names to their verify keys, not {type(keys).__name__}"
        )
    key_sets: Dict[str, Any] = {}
    for server, server_keys in keys.items():
        if not isinstance(server, str):
            raise TypeError(f"keys must have str server names, not {type(server).__name__}")
        key_sets[server] = _key_set(server_keys, f"keys[{server!r}]")
    key_json = dumps(key_sets, "keys")
    report = call_json(_native.lib().mxl_verify_event, data, len(data), version, key_json, len(key_json))
    return VerifyResult(
        signature_valid=bool(report["signature_valid"]),
        content_hash_valid=bool(report["content_hash_valid"]),
        outcome=str(report["outcome"]),
        computed_content_hash=str(report["computed_content_hash"]),
        redacted=report.get("redacted"),
        error=report.get("error"),
    )


# ---------------------------------------------------------------------------------------------
# X-Matrix request authentication
# ---------------------------------------------------------------------------------------------


def _content(content: Optional[JsonObject]) -> Optional[bytes]:
    """A request body as JSON bytes, or None for a request without one."""
    if content is None:
        return None
    return json_object(content, "content")


def xmatrix_authorization(
    key: SigningKey,
    origin: str,
    destination: str,
    method: str,
    uri: str,
    content: Optional[JsonObject] = None,
) -> str:
    """The ``Authorization`` header value that signs an outgoing federation request.

    `uri` is the request target exactly as sent (path and query, percent-encoded);
    `content` the JSON body, or None when there is none.

    Raises:
        MatrixError: M_BAD_JSON for a bad body.
        TypeError: `key` is not a :class:`SigningKey`, or another argument has the wrong
            type.
    """
    _require_signing_key(key)
    body = _content(content)
    args = (
        cstr(origin, "origin"),
        cstr(destination, "destination"),
        cstr(method, "method"),
        cstr(uri, "uri"),
        body,
        0 if body is None else len(body),
    )
    with key._borrow() as ptr:
        return call_text(_native.lib().mxl_xmatrix_authorization, ptr, *args)


def parse_xmatrix(header: str) -> Dict[str, str]:
    """Parses an X-Matrix ``Authorization`` value without checking its signature.

    Returns ``{"origin", "key", "sig"}`` plus ``"destination"`` when the header names one.

    Raises:
        MatrixError: 400 M_UNAUTHORIZED (code MALFORMED_AUTH) for a malformed header.
    """
    result: Dict[str, str] = call_json(_native.lib().mxl_xmatrix_parse, cstr(header, "header"))
    return result


def verify_xmatrix(
    header: str,
    method: str,
    uri: str,
    content: Optional[JsonObject],
    destination: str,
    verify_keys: VerifyKeys,
) -> str:
    """Authenticates an incoming request by its X-Matrix header; returns the origin.

    `destination` is this server's name (a header naming another server is refused);
    `verify_keys` the origin's keys (learn the origin first with :func:`parse_xmatrix`);
    `uri` the request target exactly as received, still percent-encoded.

    Raises:
        MatrixError: 400 M_UNAUTHORIZED for a malformed header, 401 M_UNAUTHORIZED for a
            wrong destination, unknown key or bad signature, M_BAD_JSON for a bad body.
        TypeError: `verify_keys` is not a mapping, or another argument has the wrong type.
    """
    body = _content(content)
    keys = dumps(_key_set(verify_keys, "verify_keys"), "verify_keys")
    return call_text(
        _native.lib().mxl_xmatrix_verify,
        cstr(header, "header"),
        cstr(method, "method"),
        cstr(uri, "uri"),
        body,
        0 if body is None else len(body),
        cstr(destination, "destination"),
        keys,
        len(keys),
    )


# ---------------------------------------------------------------------------------------------
# Server key documents
# ---------------------------------------------------------------------------------------------


def server_key_document(
    key: SigningKey,
    server_name: str,
    valid_until_ts: int,
    old_keys: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Dict[str, Any]:
    """Builds and signs this server's ``GET /_matrix/key/v2/server`` response.

    `old_keys` maps retired key IDs to ``{"key": base64, "expired_ts": ms}``.

    Raises:
        MatrixError: M_INVALID_PARAM for a bad old key.
        TypeError: `key` is not a :class:`SigningKey`; `old_keys` is not a mapping of key
            IDs to mappings; `valid_until_ts` is not an int.
    """
    _require_signing_key(key)
    if isinstance(valid_until_ts, bool) or not isinstance(valid_until_ts, int):
        raise TypeError(f"valid_until_ts must be an int (ms since the epoch), not {type(valid_until_ts).__name__}")
    old = None
    if old_keys is not None:
        if not isinstance(old_keys, Mapping):
            raise TypeError(
                f"old_keys must be a mapping of key IDs to {{'key', 'expired_ts'}} mappings, "
                f"not {type(old_keys).__name__}"
            )
        entries: Dict[str, Any] = {}
        for key_id, entry in old_keys.items():
            if not isinstance(key_id, str):
                raise TypeError(f"old_keys must have str key IDs, not {type(key_id).__name__}")
            if not isinstance(entry, Mapping):
                raise TypeError(
                    f"old_keys[{key_id!r}] must be a mapping with 'key' and 'expired_ts', "
                    f"not {type(entry).__name__}"
                )
            entries[key_id] = dict(entry)
        old = dumps(entries, "old_keys") if entries else None
    name = cstr(server_name, "server_name")
    with key._borrow() as ptr:
        result: Dict[str, Any] = call_json(
            _native.lib().mxl_server_key_document,
            ptr,
            name,
            int(valid_until_ts),
            old,
            0 if old is None else len(old),
        )
    return result


def verify_server_key_document(doc: JsonObject, requested_server: str) -> Dict[str, Dict[str, Any]]:
    """Checks a server key document and returns the keys it vouches for.

    Returns ``{key_id: {"key": base64, "valid_until_ts": ms}}`` for current keys and
    ``{key_id: {"key": ..., "expired_ts": ms}}`` for old ones: one server's entry in the
    shape :func:`verify_event` takes.

    Raises:
        MatrixError: code BAD_SIGNATURE when it is not self-signed; M_INVALID_PARAM for a
            document about another server or a malformed one.
    """
    data = json_object(doc, "doc")
    result: Dict[str, Dict[str, Any]] = call_json(
        _native.lib().mxl_verify_server_key_document, data, len(data), cstr(requested_server, "requested_server")
    )
    return result
