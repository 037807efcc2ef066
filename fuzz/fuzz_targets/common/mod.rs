//! Shared by the fuzz targets: splitting an input into fields, the spec's test key, and an
//! in-memory resident host holding every room of `tests/vectors/leave_auth.json`, built once
//! per process and never changed (a call's stores are recorded on a per-call wrapper).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use matrix_leave::event;
use matrix_leave::json::{Mode, Value};
use matrix_leave::keys::{ServerKey, SigningKey, VerifyKey};
use matrix_leave::resident::ResidentHost;
use matrix_leave::version::RoomVersion;
use matrix_leave::Error;

/// The room the brief names: a v10 room where `@user:remote.example` is joined.
pub const V10_JOINED: &str = "!v10joined:resident.example";

/// This (the resident) server.
pub const RESIDENT: &str = "resident.example";

/// The fixed clock of the host.
pub const NOW_MS: i64 = 1_800_000_000_000;

/// Splits `data` into `n` UTF-8 fields separated by `\n` and the remaining bytes.
/// `None` when there are fewer than `n` separators or a field is not UTF-8.
pub fn fields(data: &[u8], n: usize) -> Option<(Vec<&str>, &[u8])> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let at = rest.iter().position(|&b| b == b'\n')?;
        out.push(std::str::from_utf8(&rest[..at]).ok()?);
        rest = &rest[at + 1..];
    }
    Some((out, rest))
}

/// The specification's test key, which every server of the vector files signs with.
pub fn spec_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let hex = "6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d";
        let seed: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        SigningKey::from_seed(&seed, "ed25519:1").unwrap()
    })
}

/// The spec key as a server key without validity limits.
pub fn spec_server_key() -> ServerKey {
    ServerKey {
        key_id: "ed25519:1".into(),
        key: spec_key().verify_key(),
        valid_until_ts: None,
        expired_ts: None,
    }
}

/// The server part of a user or event ID, when it has a non-empty one.
pub fn server_of(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, s)| s).filter(|s| !s.is_empty())
}

/// One room of the vector file.
pub struct Room {
    pub version: &'static RoomVersion,
    pub events: HashMap<String, Value>,
    pub state: HashMap<(String, String), String>,
    pub extremities: BTreeMap<String, i64>,
}

/// Every room of `leave_auth.json` and the verify keys of its servers.
pub struct World {
    pub rooms: HashMap<String, Room>,
    pub keys: HashMap<String, Vec<ServerKey>>,
}

fn room_entry<'a>(
    rooms: &'a mut HashMap<String, Room>,
    id: &str,
    v: &'static RoomVersion,
) -> &'a mut Room {
    rooms.entry(id.to_string()).or_insert_with(|| Room {
        version: v,
        events: HashMap::new(),
        state: HashMap::new(),
        extremities: BTreeMap::new(),
    })
}

/// The vector rooms, parsed once per process.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let text = include_bytes!("../../../tests/vectors/leave_auth.json");
        let file = Value::parse(text, Mode::Lenient).expect("leave_auth.json parses");
        let mut rooms = HashMap::new();
        for room in file
            .get("rooms")
            .and_then(Value::as_object)
            .unwrap()
            .values()
        {
            let vid = room.get("room_version").and_then(Value::as_str).unwrap();
            let v = RoomVersion::get(vid).unwrap();
            let room_id = room.get("room_id").and_then(Value::as_str).unwrap();
            for e in room.get("events").and_then(Value::as_array).unwrap() {
                let pdu = e.get("pdu").unwrap().clone();
                let id = e.get("event_id").and_then(Value::as_str).unwrap();
                if v.event_id_is_hash() {
                    assert_eq!(
                        event::event_id(&pdu, v).unwrap(),
                        id,
                        "vector room event id"
                    );
                }
                let r = room_entry(&mut rooms, room_id, v);
                if let Some(prev) = pdu.get("prev_events").and_then(Value::as_array) {
                    for p in prev {
                        let pid = if v.event_refs_are_pairs() {
                            p.as_array().and_then(|a| a.first()).and_then(Value::as_str)
                        } else {
                            p.as_str()
                        };
                        if let Some(pid) = pid {
                            r.extremities.remove(pid);
                        }
                    }
                }
                let depth = pdu.get("depth").and_then(Value::as_i64).unwrap_or(0);
                r.extremities.insert(id.to_string(), depth);
                if let (Some(ty), Some(sk)) = (
                    pdu.get("type").and_then(Value::as_str),
                    pdu.get("state_key").and_then(Value::as_str),
                ) {
                    r.state
                        .insert((ty.to_string(), sk.to_string()), id.to_string());
                }
                r.events.insert(id.to_string(), pdu);
            }
        }
        let mut keys: HashMap<String, Vec<ServerKey>> = HashMap::new();
        for (server, ks) in file.get("public_keys").and_then(Value::as_object).unwrap() {
            for (id, k) in ks.as_object().unwrap() {
                keys.entry(server.clone()).or_default().push(ServerKey {
                    key_id: id.clone(),
                    key: VerifyKey::from_b64(k.as_str().unwrap()).unwrap(),
                    valid_until_ts: None,
                    expired_ts: None,
                });
            }
        }
        World { rooms, keys }
    })
}

/// What one call stored: room, event ID, event, soft-failed.
pub type Stored = (String, String, Value, bool);

/// A host over the shared world for one call; stores are recorded, not applied.
pub struct CallHost {
    pub world: &'static World,
    pub stored: RefCell<Vec<Stored>>,
}

impl CallHost {
    pub fn new() -> CallHost {
        CallHost {
            world: world(),
            stored: RefCell::new(Vec::new()),
        }
    }

    fn membership<'a>(room: &'a Room, user: &str) -> Option<&'a str> {
        let id = room.state.get(&("m.room.member".into(), user.into()))?;
        room.events[id].get("content")?.get("membership")?.as_str()
    }
}

impl ResidentHost for CallHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        Ok(self
            .world
            .rooms
            .get(room_id)
            .map(|r| r.version.id.to_string()))
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        let Some(room) = self.world.rooms.get(room_id) else {
            return Ok(None);
        };
        Ok(room
            .state
            .get(&(ty.to_string(), sk.to_string()))
            .map(|id| Arc::new(room.events[id].clone())))
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        Ok(self
            .world
            .rooms
            .get(room_id)
            .and_then(|r| r.events.get(event_id).cloned())
            .map(Arc::new))
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        Ok(self
            .world
            .rooms
            .get(room_id)
            .map(|r| r.extremities.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default())
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        let Some(room) = self.world.rooms.get(room_id) else {
            return Ok(vec![]);
        };
        let mut servers: Vec<String> = room
            .state
            .keys()
            .filter(|(ty, user)| {
                ty == "m.room.member" && Self::membership(room, user) == Some("join")
            })
            .filter_map(|(_, user)| server_of(user).map(str::to_string))
            .collect();
        servers.sort();
        servers.dedup();
        Ok(servers)
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        Ok(self.world.keys.get(server).cloned().unwrap_or_default())
    }

    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        ev: &Value,
        soft: bool,
    ) -> Result<(), Error> {
        self.stored.borrow_mut().push((
            room_id.to_string(),
            event_id.to_string(),
            ev.clone(),
            soft,
        ));
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        NOW_MS
    }
}

/// Checks that an error answer's body is `{"errcode", "error"}` with the response's errcode.
pub fn check_error_body(status: u16, body: &[u8], errcode: &str) {
    assert!(
        matches!(status, 400 | 401 | 403 | 404 | 413 | 500),
        "unexpected status {status}"
    );
    let v = Value::parse(body, Mode::Strict).expect("an error body is JSON");
    assert_eq!(v.get("errcode").and_then(Value::as_str), Some(errcode));
    assert!(v.get("error").and_then(Value::as_str).is_some());
}

/// The event's ID under `v`, as send_leave computes it: the reference hash from v3 on, the
/// `event_id` field before.
pub fn id_of(pdu: &Value, v: &RoomVersion) -> Option<String> {
    if v.event_id_is_hash() {
        event::event_id(pdu, v).ok()
    } else {
        pdu.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}
