//! An in-memory room host for driving the resident side in tests.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::keys::{ServerKey, VerifyKey};
use matrix_leave::resident::{LogLevel, ResidentHost};
use matrix_leave::version::RoomVersion;
use matrix_leave::Error;

/// A call site of the host, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    RoomVersion,
    StateEvent,
    Event,
    ForwardExtremities,
    ServersInRoom,
    ServerKeys,
    StoreEvent,
}

/// One room kept in memory.
#[derive(Default)]
pub struct Room {
    pub version: String,
    pub events: HashMap<String, Value>,
    pub state: BTreeMap<(String, String), String>,
    pub extremities: BTreeMap<String, i64>,
}

/// A host with rooms, keys and a record of what was stored.
#[derive(Default)]
pub struct MemoryHost {
    pub rooms: RefCell<HashMap<String, Room>>,
    pub keys: HashMap<String, Vec<ServerKey>>,
    pub stored: RefCell<Vec<(String, Value, bool)>>,
    pub now: i64,
    pub fail_at: Cell<Option<Site>>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
}

impl MemoryHost {
    /// Adds an event to a room, updating state and extremities.
    pub fn add_event(&self, room_id: &str, version: &str, event_id: &str, pdu: Value) {
        let v = RoomVersion::get(version).unwrap();
        let mut rooms = self.rooms.borrow_mut();
        let room = rooms.entry(room_id.to_string()).or_insert_with(|| Room {
            version: version.to_string(),
            ..Room::default()
        });
        if let Some(prev) = pdu.get("prev_events").and_then(Value::as_array) {
            for p in prev {
                let id = if v.event_refs_are_pairs() {
                    p.as_array().and_then(|a| a.first()).and_then(Value::as_str)
                } else {
                    p.as_str()
                };
                if let Some(id) = id {
                    room.extremities.remove(id);
                }
            }
        }
        let depth = pdu.get("depth").and_then(Value::as_i64).unwrap_or(0);
        room.extremities.insert(event_id.to_string(), depth);
        if let (Some(ty), Some(sk)) = (
            pdu.get("type").and_then(Value::as_str),
            pdu.get("state_key").and_then(Value::as_str),
        ) {
            room.state
                .insert((ty.to_string(), sk.to_string()), event_id.to_string());
        }
        room.events.insert(event_id.to_string(), pdu);
    }

    /// Adds a room from a `leave_auth.json` room entry.
    pub fn add_vector_room(&self, room: &serde_json::Value) {
        let version = room["room_version"].as_str().unwrap();
        let room_id = room["room_id"].as_str().unwrap();
        for e in room["events"].as_array().unwrap() {
            let pdu = super::ours(&e["pdu"]);
            let id = e["event_id"].as_str().unwrap();
            let v = RoomVersion::get(version).unwrap();
            if v.event_id_is_hash() {
                assert_eq!(
                    event::event_id(&pdu, v).unwrap(),
                    id,
                    "vector room event id"
                );
            }
            self.add_event(room_id, version, id, pdu);
        }
    }

    /// Adds verify keys for servers, from `{server: {key_id: base64}}`.
    pub fn add_keys(&mut self, keys: &serde_json::Value) {
        for (server, ks) in keys.as_object().unwrap() {
            for (id, k) in ks.as_object().unwrap() {
                self.keys
                    .entry(server.clone())
                    .or_default()
                    .push(ServerKey {
                        key_id: id.clone(),
                        key: VerifyKey::from_b64(k.as_str().unwrap()).unwrap(),
                        valid_until_ts: None,
                        expired_ts: None,
                    });
            }
        }
    }

    fn fail(&self, site: Site) -> Result<(), Error> {
        if self.fail_at.get() == Some(site) {
            Err(Error::host(format!("injected failure at {site:?}")))
        } else {
            Ok(())
        }
    }

    fn membership(room: &Room, user: &str) -> Option<String> {
        let id = room.state.get(&("m.room.member".into(), user.into()))?;
        room.events[id]
            .get("content")?
            .get("membership")?
            .as_str()
            .map(str::to_string)
    }
}

impl ResidentHost for MemoryHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.fail(Site::RoomVersion)?;
        Ok(self.rooms.borrow().get(room_id).map(|r| r.version.clone()))
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        self.fail(Site::StateEvent)?;
        let rooms = self.rooms.borrow();
        let Some(room) = rooms.get(room_id) else {
            return Ok(None);
        };
        Ok(room
            .state
            .get(&(ty.to_string(), sk.to_string()))
            .map(|id| Arc::new(room.events[id].clone())))
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        self.fail(Site::Event)?;
        Ok(self
            .rooms
            .borrow()
            .get(room_id)
            .and_then(|r| r.events.get(event_id).cloned())
            .map(Arc::new))
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        self.fail(Site::ForwardExtremities)?;
        Ok(self
            .rooms
            .borrow()
            .get(room_id)
            .map(|r| r.extremities.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default())
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        self.fail(Site::ServersInRoom)?;
        let rooms = self.rooms.borrow();
        let Some(room) = rooms.get(room_id) else {
            return Ok(vec![]);
        };
        let mut servers: Vec<String> = room
            .state
            .keys()
            .filter(|(ty, _)| ty == "m.room.member")
            .filter(|(_, user)| Self::membership(room, user).as_deref() == Some("join"))
            .filter_map(|(_, user)| user.split_once(':').map(|(_, s)| s.to_string()))
            .collect();
        servers.sort();
        servers.dedup();
        Ok(servers)
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        self.fail(Site::ServerKeys)?;
        Ok(self.keys.get(server).cloned().unwrap_or_default())
    }

    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        ev: &Value,
        soft: bool,
    ) -> Result<(), Error> {
        self.fail(Site::StoreEvent)?;
        self.stored
            .borrow_mut()
            .push((event_id.to_string(), ev.clone(), soft));
        let version = self.rooms.borrow()[room_id].version.clone();
        if !soft {
            self.add_event(room_id, &version, event_id, ev.clone());
        } else {
            self.rooms
                .borrow_mut()
                .get_mut(room_id)
                .unwrap()
                .events
                .insert(event_id.to_string(), ev.clone());
        }
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        self.now
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}
