//! A thread-safe in-memory resident host (`Sync`: locks inside) over the rooms of
//! `leave_auth.json`, with fault injection by method and call number, and a record of every
//! store. Used by the concurrency, fault and resource tests.
//!
//! Stored events are kept apart from the vector rooms: `event()` finds them (so a second send
//! is a duplicate), but they do not change the rooms' state, so every answer other than the
//! duplicate flag is the same whatever order requests arrive in.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::keys::{ServerKey, VerifyKey};
use matrix_leave::resident::{LogLevel, ResidentHost};
use matrix_leave::version::RoomVersion;
use matrix_leave::Error;

/// A method of [`ResidentHost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    RoomVersion,
    StateEvent,
    Event,
    ForwardExtremities,
    ServersInRoom,
    ServerKeys,
    StoreEvent,
    NowMs,
    Log,
}

impl Method {
    /// Every method, in a fixed order.
    pub const ALL: [Method; 9] = [
        Method::RoomVersion,
        Method::StateEvent,
        Method::Event,
        Method::ForwardExtremities,
        Method::ServersInRoom,
        Method::ServerKeys,
        Method::StoreEvent,
        Method::NowMs,
        Method::Log,
    ];

    /// Whether the method can return an error (`now_ms` and `log` cannot).
    pub fn fallible(self) -> bool {
        !matches!(self, Method::NowMs | Method::Log)
    }

    fn index(self) -> usize {
        Method::ALL.iter().position(|m| *m == self).unwrap()
    }
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The method returns an error.
    Error,
    /// The method sleeps, then answers normally.
    Slow(Duration),
}

/// A fault at the `nth` call (1-based) of `method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub method: Method,
    pub nth: usize,
    pub kind: FaultKind,
}

/// One vector room.
pub struct Room {
    pub version: &'static RoomVersion,
    pub events: HashMap<String, Value>,
    pub state: BTreeMap<(String, String), String>,
    pub extremities: BTreeMap<String, i64>,
}

/// The vector rooms and keys, parsed once per test binary and shared read-only.
pub struct World {
    pub rooms: HashMap<String, Room>,
    pub keys: HashMap<String, Vec<ServerKey>>,
}

/// The world of `leave_auth.json`.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let file = super::load("leave_auth.json");
        let mut rooms: HashMap<String, Room> = HashMap::new();
        for room in file["rooms"].as_object().unwrap().values() {
            let v = RoomVersion::get(room["room_version"].as_str().unwrap()).unwrap();
            let room_id = room["room_id"].as_str().unwrap();
            let r = rooms.entry(room_id.to_string()).or_insert_with(|| Room {
                version: v,
                events: HashMap::new(),
                state: BTreeMap::new(),
                extremities: BTreeMap::new(),
            });
            for e in room["events"].as_array().unwrap() {
                let pdu = super::ours(&e["pdu"]);
                let id = e["event_id"].as_str().unwrap();
                if v.event_id_is_hash() {
                    assert_eq!(event::event_id(&pdu, v).unwrap(), id);
                }
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
                r.extremities.insert(
                    id.to_string(),
                    pdu.get("depth").and_then(Value::as_i64).unwrap_or(0),
                );
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
        for (server, ks) in file["public_keys"].as_object().unwrap() {
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

/// One call of `store_event`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreCall {
    pub room_id: String,
    pub event_id: String,
    pub event: Value,
    pub soft_failed: bool,
}

/// The thread-safe host.
pub struct SyncHost {
    pub world: &'static World,
    /// Events stored through `store_event`, by (room, event ID).
    pub stored: RwLock<HashMap<(String, String), Value>>,
    /// Every `store_event` call that succeeded, in order.
    pub store_calls: Mutex<Vec<StoreCall>>,
    /// Calls per method.
    calls: [AtomicUsize; 9],
    /// The fault to inject, if any.
    pub fault: Mutex<Option<Fault>>,
    /// Whether the fault fired.
    pub fired: AtomicUsize,
    /// Log records, when kept.
    pub logs: Mutex<Vec<(LogLevel, String)>>,
    pub keep_logs: bool,
    pub now: i64,
}

impl Default for SyncHost {
    fn default() -> Self {
        SyncHost::new()
    }
}

impl SyncHost {
    /// A fresh host over the shared world, nothing stored.
    pub fn new() -> SyncHost {
        SyncHost {
            world: world(),
            stored: RwLock::new(HashMap::new()),
            store_calls: Mutex::new(Vec::new()),
            calls: Default::default(),
            fault: Mutex::new(None),
            fired: AtomicUsize::new(0),
            logs: Mutex::new(Vec::new()),
            keep_logs: false,
            now: 1_800_000_000_000,
        }
    }

    /// Sets (or clears) the fault and resets the call counters.
    pub fn inject(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
        self.fired.store(0, Ordering::SeqCst);
        for c in &self.calls {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// How many times `m` was called since the last [`SyncHost::inject`].
    pub fn calls(&self, m: Method) -> usize {
        self.calls[m.index()].load(Ordering::SeqCst)
    }

    /// How many events were stored.
    pub fn store_count(&self) -> usize {
        self.store_calls.lock().unwrap().len()
    }

    /// Counts the call and applies the fault if it is this one.
    fn enter(&self, m: Method) -> Result<(), Error> {
        let n = self.calls[m.index()].fetch_add(1, Ordering::SeqCst) + 1;
        let fault = *self.fault.lock().unwrap();
        if let Some(f) = fault {
            if f.method == m && f.nth == n {
                self.fired.fetch_add(1, Ordering::SeqCst);
                match f.kind {
                    FaultKind::Error => {
                        return Err(Error::host(format!("injected failure of {m:?} call {n}")))
                    }
                    FaultKind::Slow(d) => std::thread::sleep(d),
                }
            }
        }
        Ok(())
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

impl ResidentHost for SyncHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.enter(Method::RoomVersion)?;
        Ok(self
            .world
            .rooms
            .get(room_id)
            .map(|r| r.version.id.to_string()))
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        self.enter(Method::StateEvent)?;
        let Some(room) = self.world.rooms.get(room_id) else {
            return Ok(None);
        };
        Ok(room
            .state
            .get(&(ty.to_string(), sk.to_string()))
            .map(|id| Arc::new(room.events[id].clone())))
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        self.enter(Method::Event)?;
        if let Some(ev) = self
            .world
            .rooms
            .get(room_id)
            .and_then(|r| r.events.get(event_id))
        {
            return Ok(Some(Arc::new(ev.clone())));
        }
        Ok(self
            .stored
            .read()
            .unwrap()
            .get(&(room_id.to_string(), event_id.to_string()))
            .cloned()
            .map(Arc::new))
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        self.enter(Method::ForwardExtremities)?;
        Ok(self
            .world
            .rooms
            .get(room_id)
            .map(|r| r.extremities.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default())
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        self.enter(Method::ServersInRoom)?;
        let Some(room) = self.world.rooms.get(room_id) else {
            return Ok(vec![]);
        };
        let mut servers: Vec<String> = room
            .state
            .keys()
            .filter(|(ty, user)| {
                ty == "m.room.member" && Self::membership(room, user).as_deref() == Some("join")
            })
            .filter_map(|(_, user)| user.split_once(':').map(|(_, s)| s.to_string()))
            .collect();
        servers.sort();
        servers.dedup();
        Ok(servers)
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        self.enter(Method::ServerKeys)?;
        Ok(self.world.keys.get(server).cloned().unwrap_or_default())
    }

    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        ev: &Value,
        soft_failed: bool,
    ) -> Result<(), Error> {
        self.enter(Method::StoreEvent)?;
        self.stored
            .write()
            .unwrap()
            .insert((room_id.to_string(), event_id.to_string()), ev.clone());
        self.store_calls.lock().unwrap().push(StoreCall {
            room_id: room_id.to_string(),
            event_id: event_id.to_string(),
            event: ev.clone(),
            soft_failed,
        });
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        let _ = self.enter(Method::NowMs);
        self.now
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = self.enter(Method::Log);
        if self.keep_logs {
            self.logs.lock().unwrap().push((level, message.to_string()));
        }
    }
}

/// A send_leave request of the vector file.
#[derive(Clone, Debug)]
pub struct SendCase {
    pub name: String,
    pub room_id: String,
    pub path_room_id: String,
    pub path_event_id: String,
    pub origin: String,
    pub body: Vec<u8>,
}

/// Every case of `leave_auth.json` as a send_leave request.
pub fn send_cases() -> Vec<SendCase> {
    let file = super::load("leave_auth.json");
    super::cases(&file)
        .iter()
        .map(|case| {
            let req = &case["input"]["request"];
            let room = case["input"]["room"].as_str().unwrap();
            SendCase {
                name: case["name"].as_str().unwrap().to_string(),
                room_id: file["rooms"][room]["room_id"].as_str().unwrap().to_string(),
                path_room_id: req["path_room_id"].as_str().unwrap().to_string(),
                path_event_id: req["path_event_id"].as_str().unwrap().to_string(),
                origin: req["origin"].as_str().unwrap().to_string(),
                body: super::ours(&case["input"]["event"]).to_canonical(),
            }
        })
        .collect()
}

/// The room ID of a vector room by its name (`v10/joined`).
pub fn room_id(name: &str) -> String {
    let file = super::load("leave_auth.json");
    file["rooms"][name]["room_id"].as_str().unwrap().to_string()
}
