"""SQLite storage of the reference homeserver.

Every database access of the host goes through :class:`Store`. It also implements the two
protocols the library's :class:`~matrix_leave.Resident` calls back into, synchronously and on
the calling thread:

* the room store: ``room_version``, ``state_event``, ``get_event``, ``forward_extremities``,
  ``servers_in_room`` and ``store_event``;
* the key store: ``get_server_keys``.

One connection is shared by the event loop and the worker threads that run the leave
driver, so it is opened with ``check_same_thread=False`` and every use holds one re-entrant
lock. Every method commits before it returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- This server's own signing keys; the newest is the one in use.
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id     TEXT PRIMARY KEY,
    seed       BLOB NOT NULL,
    created_ts INTEGER NOT NULL
);
-- Verify keys of other servers, from their verified key documents.
CREATE TABLE IF NOT EXISTS remote_keys (
    server_name    TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    key            TEXT NOT NULL,
    valid_until_ts INTEGER,
    expired_ts     INTEGER,
    fetched_ts     INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
-- Rooms this server is resident in (it has their state and answers make_leave for them).
CREATE TABLE IF NOT EXISTS rooms (
    room_id      TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator      TEXT NOT NULL,
    created_ts   INTEGER NOT NULL
);
-- Every event kept: room events, and outliers (invites received, leaves of local users in
-- rooms this server is not resident in).
CREATE TABLE IF NOT EXISTS events (
    room_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT,
    state_key   TEXT,
    sender      TEXT,
    depth       INTEGER,
    json        TEXT NOT NULL,
    soft_failed INTEGER NOT NULL DEFAULT 0,
    outlier     INTEGER NOT NULL DEFAULT 0,
    stored_ts   INTEGER NOT NULL,
    PRIMARY KEY (room_id, event_id)
);
CREATE TABLE IF NOT EXISTS state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE TABLE IF NOT EXISTS extremities (
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);
-- Memberships of local users in rooms this server is not resident in (invited, left).
CREATE TABLE IF NOT EXISTS local_memberships (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    membership   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    room_version TEXT,
    updated_ts   INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE TABLE IF NOT EXISTS invites_received (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id          TEXT NOT NULL,
    event_id         TEXT,
    user_id          TEXT,
    sender           TEXT,
    origin           TEXT NOT NULL,
    room_version     TEXT,
    accepted         INTEGER NOT NULL,
    rejected_because TEXT,
    event            TEXT,
    received_ts      INTEGER NOT NULL
);
-- send_leave requests whose X-Matrix signature verified (nothing is written for the
-- others). `event` is the event as the library accepted it; `body` the raw body of a
-- refused request as text (invalid UTF-8 replaced), at most 65536 bytes of it.
CREATE TABLE IF NOT EXISTS leaves_received (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id          TEXT NOT NULL,
    api              TEXT NOT NULL,
    origin           TEXT NOT NULL,
    status           INTEGER NOT NULL,
    accepted         INTEGER NOT NULL,
    event_id_in_url  TEXT NOT NULL,
    event_id         TEXT,
    soft_failed      INTEGER,
    duplicate        INTEGER,
    redacted         INTEGER,
    rejected_because TEXT,
    event            TEXT,
    received_ts      INTEGER NOT NULL,
    body             TEXT
);
"""

#: The most of a refused request body :meth:`Store.record_leave` keeps, in bytes.
RECORDED_BODY_MAX = 65536


def now_ms() -> int:
    return int(time.time() * 1000)


def server_of(user_or_event_id: str) -> str:
    """The server part of a user, room or event ID (``""`` when there is none)."""
    _, _, server = user_or_event_id.partition(":")
    return server


def ref_ids(refs: Any) -> list[str]:
    """The event IDs of ``prev_events`` / ``auth_events``, in either room version format."""
    out = []
    for r in refs or []:
        if isinstance(r, list) and r and isinstance(r[0], str):
            out.append(r[0])
        elif isinstance(r, str):
            out.append(r)
    return out


def _dumps(value: Any) -> str:
    """JSON text for a TEXT column. A string holding a lone surrogate (which a JSON parser
    can produce from ``"\\ud800"``) cannot be stored as UTF-8, so then every non-ASCII
    character is written as an escape instead."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return text


def body_text(body: bytes, limit: int = RECORDED_BODY_MAX) -> str:
    """A request body as text to record: at most `limit` bytes of it, invalid UTF-8 (and a
    multi-byte character cut at the limit) replaced by U+FFFD."""
    return bytes(body[:limit]).decode("utf-8", "replace")


def _shown_event(text: Optional[str]) -> Optional[dict]:
    """A recorded body as an object, when it is one, for display only (the library judged
    the raw bytes; this is never fed back to it)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class Store:
    """The host's SQLite database: rooms, events, state, keys and request records."""

    def __init__(self, path: str | Path, server_name: str) -> None:
        self.path = str(path)
        self.server_name = server_name
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(leaves_received)")}
            if "body" not in columns:  # a database made before the column existed
                self._db.execute("ALTER TABLE leaves_received ADD COLUMN body TEXT")
        #: Our own verify keys, served to the Resident for our own name.
        self._own_keys: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- helpers ------------------------------------------------------------------------

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Optional[sqlite3.Row]:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- meta and our signing key -------------------------------------------------------

    def get_meta(self, key: str) -> Optional[str]:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))])

    def signing_key_seed(self) -> Optional[tuple[str, bytes]]:
        """The key ID and 32-byte seed of the key in use, if one was made already."""
        row = self._one("SELECT key_id, seed FROM signing_keys ORDER BY created_ts DESC LIMIT 1")
        return (row["key_id"], bytes(row["seed"])) if row else None

    def save_signing_key(self, key_id: str, seed: bytes) -> None:
        self._write(
            [
                (
                    "INSERT INTO signing_keys (key_id, seed, created_ts) VALUES (?, ?, ?)",
                    (key_id, seed, now_ms()),
                )
            ]
        )

    def set_own_keys(self, keys: dict[str, dict[str, Any]]) -> None:
        """Our verify keys, returned by :meth:`get_server_keys` for our own name (a leave a
        local user sends through our own resident is checked like any other)."""
        self._own_keys = dict(keys)

    # ---- remote keys (the key store protocol) -------------------------------------------

    def save_server_keys(self, server_name: str, keys: dict[str, dict[str, Any]]) -> None:
        ts = now_ms()
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO remote_keys (server_name, key_id, key, valid_until_ts,"
                    " expired_ts, fetched_ts) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        server_name,
                        key_id,
                        entry["key"],
                        entry.get("valid_until_ts"),
                        entry.get("expired_ts"),
                        ts,
                    ),
                )
                for key_id, entry in keys.items()
            ]
        )

    def get_server_keys(self, server_name: str) -> dict[str, dict[str, Any]]:
        """The known verify keys of a server: ``{key_id: {"key", "valid_until_ts"?,
        "expired_ts"?}}``. Called by the Resident."""
        if server_name == self.server_name:
            return dict(self._own_keys)
        out: dict[str, dict[str, Any]] = {}
        for row in self._query(
            "SELECT key_id, key, valid_until_ts, expired_ts FROM remote_keys WHERE server_name = ?",
            (server_name,),
        ):
            entry: dict[str, Any] = {"key": row["key"]}
            if row["valid_until_ts"] is not None:
                entry["valid_until_ts"] = row["valid_until_ts"]
            if row["expired_ts"] is not None:
                entry["expired_ts"] = row["expired_ts"]
            out[row["key_id"]] = entry
        return out

    # ---- rooms (the room store protocol) ------------------------------------------------

    def add_room(self, room_id: str, room_version: str, creator: str) -> None:
        self._write(
            [
                (
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)",
                    (room_id, room_version, creator, now_ms()),
                )
            ]
        )

    def is_resident(self, room_id: str) -> bool:
        return self._one("SELECT 1 FROM rooms WHERE room_id = ?", (room_id,)) is not None

    def room_version(self, room_id: str) -> Optional[str]:
        """The version of a room this server is resident in; ``None`` otherwise."""
        row = self._one("SELECT room_version FROM rooms WHERE room_id = ?", (room_id,))
        return row["room_version"] if row else None

    def state_event(self, room_id: str, event_type: str, state_key: str) -> Optional[dict]:
        row = self._one(
            "SELECT e.json FROM state s JOIN events e ON e.room_id = s.room_id AND e.event_id = s.event_id"
            " WHERE s.room_id = ? AND s.type = ? AND s.state_key = ?",
            (room_id, event_type, state_key),
        )
        return json.loads(row["json"]) if row else None

    def state_event_id(self, room_id: str, event_type: str, state_key: str) -> Optional[str]:
        row = self._one(
            "SELECT event_id FROM state WHERE room_id = ? AND type = ? AND state_key = ?",
            (room_id, event_type, state_key),
        )
        return row["event_id"] if row else None

    def get_event(self, room_id: str, event_id: str) -> Optional[dict]:
        row = self._one(
            "SELECT json FROM events WHERE room_id = ? AND event_id = ?", (room_id, event_id)
        )
        return json.loads(row["json"]) if row else None

    def forward_extremities(self, room_id: str) -> list[tuple[str, int]]:
        return [
            (row["event_id"], int(row["depth"] or 0))
            for row in self._query(
                "SELECT x.event_id, e.depth FROM extremities x LEFT JOIN events e"
                " ON e.room_id = x.room_id AND e.event_id = x.event_id WHERE x.room_id = ?"
                " ORDER BY e.depth DESC, x.event_id",
                (room_id,),
            )
        ]

    def servers_in_room(self, room_id: str) -> list[str]:
        servers = {
            server_of(row["state_key"])
            for row in self._query(
                "SELECT s.state_key, e.json FROM state s JOIN events e"
                " ON e.room_id = s.room_id AND e.event_id = s.event_id"
                " WHERE s.room_id = ? AND s.type = 'm.room.member'",
                (room_id,),
            )
            if json.loads(row["json"]).get("content", {}).get("membership") == "join"
        }
        return sorted(s for s in servers if s)

    def store_event(self, room_id: str, event_id: str, event: dict, soft_failed: bool) -> None:
        """Stores an accepted room event: the event, and unless it soft-failed, the state it
        sets and the forward extremities. Called by the Resident for an accepted leave."""
        self._write(self._event_statements(room_id, event_id, event, soft_failed, outlier=False))

    def store_room_events(self, room_id: str, events: list[tuple[str, dict]]) -> None:
        """Stores events this server made or accepted, in order, in one transaction."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for event_id, event in events:
            statements += self._event_statements(room_id, event_id, event, False, outlier=False)
        self._write(statements)

    def _event_statements(
        self, room_id: str, event_id: str, event: dict, soft_failed: bool, outlier: bool
    ) -> list[tuple[str, tuple[Any, ...]]]:
        st: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT OR REPLACE INTO events (room_id, event_id, type, state_key, sender, depth,"
                " json, soft_failed, outlier, stored_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room_id,
                    event_id,
                    event.get("type"),
                    event.get("state_key"),
                    event.get("sender"),
                    event.get("depth") if isinstance(event.get("depth"), int) else None,
                    _dumps(event),
                    int(bool(soft_failed)),
                    int(outlier),
                    now_ms(),
                ),
            )
        ]
        if soft_failed or outlier:
            return st
        if isinstance(event.get("state_key"), str):
            st.append(
                (
                    "INSERT OR REPLACE INTO state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                    (room_id, event["type"], event["state_key"], event_id),
                )
            )
        for prev in ref_ids(event.get("prev_events")):
            st.append(
                ("DELETE FROM extremities WHERE room_id = ? AND event_id = ?", (room_id, prev))
            )
        st.append(
            (
                "INSERT OR IGNORE INTO extremities (room_id, event_id) VALUES (?, ?)",
                (room_id, event_id),
            )
        )
        return st

    def room_state_ids(self, room_id: str) -> dict[str, str]:
        """The current state as ``{"type|state_key": event_id}``."""
        return {
            f"{row['type']}|{row['state_key']}": row["event_id"]
            for row in self._query(
                "SELECT type, state_key, event_id FROM state WHERE room_id = ? ORDER BY type, state_key",
                (room_id,),
            )
        }

    def members(self, room_id: str) -> dict[str, str]:
        """``{user_id: membership}``: from the room state when this server is resident,
        otherwise the memberships of local users it recorded for the room."""
        if self.is_resident(room_id):
            out = {}
            for row in self._query(
                "SELECT s.state_key, e.json FROM state s JOIN events e"
                " ON e.room_id = s.room_id AND e.event_id = s.event_id"
                " WHERE s.room_id = ? AND s.type = 'm.room.member' ORDER BY s.state_key",
                (room_id,),
            ):
                out[row["state_key"]] = json.loads(row["json"]).get("content", {}).get("membership")
            return out
        return {
            row["user_id"]: row["membership"]
            for row in self._query(
                "SELECT user_id, membership FROM local_memberships WHERE room_id = ? ORDER BY user_id",
                (room_id,),
            )
        }

    # ---- local users in rooms we are not resident in ------------------------------------

    def set_local_membership(
        self,
        room_id: str,
        user_id: str,
        membership: str,
        event_id: str,
        event: dict,
        room_version: Optional[str],
    ) -> None:
        """Records a local user's membership in a room this server is not resident in, and
        keeps its event as an outlier."""
        st = self._event_statements(room_id, event_id, event, False, outlier=True)
        st.append(
            (
                "INSERT OR REPLACE INTO local_memberships (room_id, user_id, membership, event_id,"
                " room_version, updated_ts) VALUES (?, ?, ?, ?, ?, ?)",
                (room_id, user_id, membership, event_id, room_version, now_ms()),
            )
        )
        self._write(st)

    def local_membership(self, room_id: str, user_id: str) -> Optional[dict[str, Any]]:
        row = self._one(
            "SELECT membership, event_id, room_version FROM local_memberships"
            " WHERE room_id = ? AND user_id = ?",
            (room_id, user_id),
        )
        if not row:
            return None
        return {
            "membership": row["membership"],
            "event_id": row["event_id"],
            "room_version": row["room_version"],
            "event": self.get_event(room_id, row["event_id"]),
        }

    # ---- request records ----------------------------------------------------------------

    def record_invite(
        self,
        *,
        room_id: str,
        origin: str,
        accepted: bool,
        event_id: Optional[str] = None,
        user_id: Optional[str] = None,
        sender: Optional[str] = None,
        room_version: Optional[str] = None,
        rejected_because: Optional[str] = None,
        event: Optional[dict] = None,
    ) -> None:
        self._write(
            [
                (
                    "INSERT INTO invites_received (room_id, event_id, user_id, sender, origin,"
                    " room_version, accepted, rejected_because, event, received_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        room_id,
                        event_id,
                        user_id,
                        sender,
                        origin,
                        room_version,
                        int(accepted),
                        rejected_because,
                        _dumps(event) if event is not None else None,
                        now_ms(),
                    ),
                )
            ]
        )

    def invites_received(self) -> list[dict[str, Any]]:
        return [
            {
                "room_id": row["room_id"],
                "accepted": bool(row["accepted"]),
                "event_id": row["event_id"],
                "user_id": row["user_id"],
                "sender": row["sender"],
                "origin": row["origin"],
                "room_version": row["room_version"],
                "rejected_because": row["rejected_because"],
            }
            for row in self._query("SELECT * FROM invites_received ORDER BY id")
        ]

    def record_leave(
        self,
        *,
        room_id: str,
        api: str,
        origin: str,
        status: int,
        accepted: bool,
        event_id_in_url: str,
        event: Optional[dict] = None,
        body: Optional[str] = None,
        event_id: Optional[str] = None,
        soft_failed: Optional[bool] = None,
        duplicate: Optional[bool] = None,
        redacted: Optional[bool] = None,
        rejected_because: Optional[str] = None,
    ) -> None:
        """Records one authenticated send_leave request: for an accepted leave `event`, the
        event as the library accepted it; for a refusal `body`, the raw body as text (see
        :func:`body_text`; cut to :data:`RECORDED_BODY_MAX` bytes here too)."""
        if body is not None:
            body = body_text(body.encode("utf-8", "replace"))
        self._write(
            [
                (
                    "INSERT INTO leaves_received (room_id, api, origin, status, accepted,"
                    " event_id_in_url, event_id, soft_failed, duplicate, redacted,"
                    " rejected_because, event, body, received_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        room_id,
                        api,
                        origin,
                        status,
                        int(accepted),
                        event_id_in_url,
                        event_id,
                        None if soft_failed is None else int(soft_failed),
                        None if duplicate is None else int(duplicate),
                        None if redacted is None else int(redacted),
                        rejected_because,
                        _dumps(event) if event is not None else None,
                        body,
                        now_ms(),
                    ),
                )
            ]
        )

    def leaves_received(self) -> list[dict[str, Any]]:
        """The recorded send_leave requests, oldest first. ``event`` is the accepted event,
        or for a refusal whose body is a JSON object that object (for display); ``body`` the
        recorded raw body of a refusal."""

        def flag(v: Any) -> Optional[bool]:
            return None if v is None else bool(v)

        return [
            {
                "room_id": row["room_id"],
                "api": row["api"],
                "origin": row["origin"],
                "status": row["status"],
                "accepted": bool(row["accepted"]),
                "event": json.loads(row["event"]) if row["event"] else _shown_event(row["body"]),
                "body": row["body"],
                "event_id_in_url": row["event_id_in_url"],
                "event_id": row["event_id"],
                "soft_failed": flag(row["soft_failed"]),
                "duplicate": flag(row["duplicate"]),
                "redacted": flag(row["redacted"]),
                "rejected_because": row["rejected_because"],
            }
            for row in self._query("SELECT * FROM leaves_received ORDER BY id")
        ]
