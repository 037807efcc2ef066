//! The rooms the benchmark runs against and the leave events it submits, generated once per
//! run and deterministically: the rooms come from `tests/vectors/leave_auth.json`, the leaves
//! are made with this crate's own make_leave and template completion, signed with the
//! specification's test key.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use matrix_leave::json::{Mode, Value};
use matrix_leave::keys::{self, ServerKey, SigningKey, VerifyKey};
use matrix_leave::leaving::{self, TemplateInput};
use matrix_leave::resident::{Resident, ResidentOptions, SendLeaveApi};
use matrix_leave::version::RoomVersion;

use crate::host::ApiHost;

/// The specification's test key (`content/appendices.md`), as hex.
pub const SPEC_SEED_HEX: &str = "6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d";
pub const RESIDENT: &str = "resident.example";
pub const ORIGIN: &str = "remote.example";
pub const USER: &str = "@user:remote.example";
pub const KEY_ID: &str = "ed25519:1";
/// The resident's clock, fixed so that templates are the same in every run.
pub const NOW_MS: i64 = 1_720_000_000_000;
/// The largest body every contender accepts. The specification allows 65,536 bytes; ruma's
/// `check_pdu_format` and hashes stop at 65,535, and Synapse's `_check_size_limits` measures
/// `get_pdu_json()`, which adds `"unsigned":{}` (14 bytes), so it refuses bodies over 65,522.
pub const MAX_COMMON: usize = 65_522;
/// The room versions benchmarked.
pub const VERSIONS: [&str; 4] = ["1", "10", "11", "12"];

/// One room, held both as parsed values (the Rust API host) and as canonical JSON (the C
/// ABI host, the Python workers).
pub struct Room {
    pub version: &'static RoomVersion,
    pub room_id: String,
    pub room_id_c: CString,
    /// Event IDs in the order the room was built.
    pub order: Vec<String>,
    pub events: HashMap<String, Arc<Value>>,
    pub events_json: HashMap<String, Vec<u8>>,
    /// type -> state_key -> event ID.
    pub state: HashMap<String, HashMap<String, String>>,
    pub extremities: Vec<(String, i64)>,
    pub servers: Vec<String>,
}

impl Room {
    pub fn state_id(&self, ty: &str, sk: &str) -> Option<&String> {
        self.state.get(ty).and_then(|m| m.get(sk))
    }
}

/// One leave to submit, with what the stage benchmarks start from.
pub struct Leave {
    pub event_id: String,
    pub event_id_c: CString,
    pub body: Vec<u8>,
    /// The parsed event.
    pub pdu: Value,
    /// Canonical bytes of the redacted event (what was signed).
    pub signed_bytes: Vec<u8>,
    pub sig_b64: String,
    pub sig: [u8; 64],
    /// The auth events it lists, as the host hands them over.
    pub auth_events: Vec<(String, Arc<Value>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 32 events around 1 KiB.
    Small,
    /// 4 events just under 64 KiB (MAX_COMMON and a few bytes less).
    Big,
    /// 4 events of one exact size, for the scaling table.
    Scale,
    /// make_leave for one room (no events).
    Make,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Small => "small",
            Kind::Big => "big",
            Kind::Scale => "scale",
            Kind::Make => "make_leave",
        }
    }
}

pub struct Set {
    pub name: String,
    pub kind: Kind,
    pub room: usize,
    pub events: Vec<Leave>,
    /// Target body size, for scale sets.
    pub size: usize,
}

impl Set {
    /// Calls per pass: the events, or one template.
    pub fn calls(&self) -> usize {
        if self.kind == Kind::Make {
            1
        } else {
            self.events.len()
        }
    }

    pub fn median_bytes(&self) -> usize {
        let mut sizes: Vec<usize> = self.events.iter().map(|e| e.body.len()).collect();
        sizes.sort_unstable();
        if sizes.is_empty() {
            0
        } else {
            sizes[sizes.len() / 2]
        }
    }

    pub fn version(&self, world: &World) -> &'static RoomVersion {
        world.rooms[self.room].version
    }
}

pub struct World {
    pub rooms: Vec<Room>,
    pub room_index: HashMap<String, usize>,
    pub public_key_b64: String,
    pub public_key: [u8; 32],
    pub verify_key: VerifyKey,
    pub server_keys: Vec<ServerKey>,
    pub sets: Vec<Set>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn spec_key() -> SigningKey {
    SigningKey::from_seed(&hex(SPEC_SEED_HEX), KEY_ID).unwrap()
}

/// splitmix64: a small deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &str) -> Rng {
        // FNV-1a of the seed text.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in seed.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        Rng(h)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes a character takes in canonical JSON.
fn encoded_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\t' | '\n' | '\u{c}' | '\r' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

const ASCII: &str = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?-()'";
const TWO_BYTE: &str = "éèüößñçåøÆŒœđłΩαβγδλπσφψωЖжЩщЯяДд";
const THREE_BYTE: &str = "漢字日本語中文한국어ひらがなカタカナ€™…‘’“”\u{2028}\u{2029}";
const FOUR_BYTE: &str = "😀🎉🚀🌍🦀🧪𝄞𐍈🀄🫠";
const ESCAPED: &str = "\"\\\n\t\u{1}\u{1f}";

/// A `reason` of mixed text taking exactly `budget` bytes in canonical JSON.
pub fn mixed_text(rng: &mut Rng, budget: usize) -> String {
    let pools: [Vec<char>; 5] = [
        ASCII.chars().collect(),
        TWO_BYTE.chars().collect(),
        THREE_BYTE.chars().collect(),
        FOUR_BYTE.chars().collect(),
        ESCAPED.chars().collect(),
    ];
    let mut out = String::with_capacity(budget);
    let mut left = budget;
    while left > 0 {
        // Weights: ASCII 55%, 2-byte 15%, 3-byte 15%, 4-byte 12%, escaped 3%.
        let roll = rng.below(100);
        let pool = match roll {
            0..=54 => &pools[0],
            55..=69 => &pools[1],
            70..=84 => &pools[2],
            85..=96 => &pools[3],
            _ => &pools[4],
        };
        let mut c = pool[rng.below(pool.len())];
        if encoded_len(c) > left {
            c = 'x';
        }
        left -= encoded_len(c);
        out.push(c);
    }
    out
}

fn parse(v: &serde_json::Value) -> Value {
    Value::parse(serde_json::to_string(v).unwrap().as_bytes(), Mode::Lenient).unwrap()
}

fn load_room(file: &serde_json::Value, name: &str) -> Room {
    let r = &file["rooms"][name];
    let version = RoomVersion::get(r["room_version"].as_str().unwrap()).unwrap();
    let room_id = r["room_id"].as_str().unwrap().to_string();
    let mut room = Room {
        version,
        room_id_c: CString::new(room_id.clone()).unwrap(),
        room_id,
        order: vec![],
        events: HashMap::new(),
        events_json: HashMap::new(),
        state: HashMap::new(),
        extremities: vec![],
        servers: vec![],
    };
    let mut extremities: Vec<(String, i64)> = vec![];
    for e in r["events"].as_array().unwrap() {
        let id = e["event_id"].as_str().unwrap().to_string();
        let pdu = parse(&e["pdu"]);
        if let Some(prev) = pdu.get("prev_events").and_then(Value::as_array) {
            for p in prev {
                let pid = if version.event_refs_are_pairs() {
                    p.as_array().and_then(|a| a.first()).and_then(Value::as_str)
                } else {
                    p.as_str()
                };
                extremities.retain(|(x, _)| Some(x.as_str()) != pid);
            }
        }
        extremities.push((
            id.clone(),
            pdu.get("depth").and_then(Value::as_i64).unwrap(),
        ));
        let ty = pdu.get("type").and_then(Value::as_str).unwrap().to_string();
        if let Some(sk) = pdu.get("state_key").and_then(Value::as_str) {
            room.state
                .entry(ty)
                .or_default()
                .insert(sk.to_string(), id.clone());
        }
        room.events_json.insert(id.clone(), pdu.to_canonical());
        room.events.insert(id.clone(), Arc::new(pdu));
        room.order.push(id);
    }
    room.extremities = extremities;
    let mut servers: Vec<String> = room
        .state
        .get("m.room.member")
        .map(|m| {
            m.iter()
                .filter(|(_, id)| {
                    room.events[*id]
                        .get("content")
                        .and_then(|c| c.get("membership"))
                        .and_then(Value::as_str)
                        == Some("join")
                })
                .filter_map(|(user, _)| user.split_once(':').map(|(_, s)| s.to_string()))
                .collect()
        })
        .unwrap_or_default();
    servers.sort();
    servers.dedup();
    room.servers = servers;
    room
}

impl World {
    pub fn room(&self, room_id: &str) -> Option<&Room> {
        self.room_index.get(room_id).map(|&i| &self.rooms[i])
    }

    /// Builds the rooms and every set of events.
    pub fn generate(vectors: &std::path::Path, quick: bool) -> World {
        let text = std::fs::read_to_string(vectors.join("leave_auth.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", vectors.display()));
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let key = spec_key();
        let public_key_b64 = key.public_key_b64();
        let public_key: [u8; 32] = keys::b64_decode(&public_key_b64)
            .unwrap()
            .try_into()
            .unwrap();
        let mut world = World {
            rooms: vec![],
            room_index: HashMap::new(),
            verify_key: key.verify_key(),
            server_keys: vec![ServerKey {
                key_id: KEY_ID.to_string(),
                key: key.verify_key(),
                valid_until_ts: None,
                expired_ts: None,
            }],
            public_key_b64,
            public_key,
            sets: vec![],
        };
        for v in VERSIONS {
            let room = load_room(&file, &format!("v{v}/joined"));
            world
                .room_index
                .insert(room.room_id.clone(), world.rooms.len());
            world.rooms.push(room);
        }

        let small_n = if quick { 8 } else { 32 };
        let mut sets = vec![];
        for (ri, v) in VERSIONS.iter().enumerate() {
            // 32 sizes spread evenly around 1 KiB: 760 .. 1288 bytes, median 1024.
            let targets: Vec<usize> = (0..small_n)
                .map(|i| (1024.0 + (i as f64 - (small_n as f64 - 1.0) / 2.0) * 17.0) as usize)
                .collect();
            sets.push(world.make_set(&key, ri, &format!("small-v{v}"), Kind::Small, &targets));
            let big: Vec<usize> = [0usize, 11, 23, 37]
                .iter()
                .map(|d| MAX_COMMON - d)
                .collect();
            sets.push(world.make_set(&key, ri, &format!("big-v{v}"), Kind::Big, &big));
        }
        // The scaling table: room version 10 at 1, 8, 32 and 64 KiB (64 KiB being
        // MAX_COMMON).
        let ri10 = 1;
        for (label, size) in [
            ("1k", 1024),
            ("8k", 8192),
            ("32k", 32768),
            ("64k", MAX_COMMON),
        ] {
            let mut s = world.make_set(
                &key,
                ri10,
                &format!("scale-{label}-v10"),
                Kind::Scale,
                &[size; 4],
            );
            s.size = size;
            sets.push(s);
        }
        for (ri, v) in VERSIONS.iter().enumerate() {
            sets.push(Set {
                name: format!("make_leave-v{v}"),
                kind: Kind::Make,
                room: ri,
                events: vec![],
                size: 0,
            });
        }
        world.sets = sets;
        world
    }

    /// Signs a leave for room `ri` with a `reason` sized so the body is `target` bytes
    /// (or as small as it can be, when a leave without reason is already larger).
    fn make_leave(&self, key: &SigningKey, ri: usize, tag: &str, i: usize, target: usize) -> Leave {
        let room = &self.rooms[ri];
        let host = ApiHost::new(self);
        let resident = Resident::new(RESIDENT, ResidentOptions::default());
        let resp = resident.make_leave(&host, &room.room_id, USER, ORIGIN);
        assert_eq!(
            resp.status,
            200,
            "make_leave: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let template = Value::parse(&resp.body, Mode::Lenient).unwrap();
        let event_id = format!("${tag}-{i}:{ORIGIN}");
        let complete = |reason: &str| {
            leaving::complete_template(
                &template,
                &TemplateInput {
                    room_id: &room.room_id,
                    user_id: USER,
                    server_name: ORIGIN,
                    key,
                    now_ms: Some(NOW_MS + i as i64),
                    reason: Some(reason),
                    event_id: Some(&event_id),
                },
            )
            .unwrap()
        };
        let base = complete("").event.to_canonical().len();
        let mut rng = Rng::new(&format!("{tag}/{i}"));
        let reason = mixed_text(&mut rng, target.saturating_sub(base));
        let done = complete(&reason);
        let body = done.event.to_canonical();
        assert!(
            body.len() == target || (base > target && body.len() == base),
            "{tag}/{i}: body is {} bytes, wanted {target}",
            body.len()
        );
        let pdu = done.event;
        let redacted = matrix_leave::event::redact(&pdu, room.version).unwrap();
        let signed_bytes = keys::signing_bytes(&redacted).unwrap();
        let sig_b64 = pdu
            .get("signatures")
            .and_then(|s| s.get(ORIGIN))
            .and_then(|s| s.get(KEY_ID))
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        let sig: [u8; 64] = keys::b64_decode(&sig_b64).unwrap().try_into().unwrap();
        let auth_events = pdu
            .get("auth_events")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|r| {
                let id = if room.version.event_refs_are_pairs() {
                    r.as_array().unwrap()[0].as_str().unwrap()
                } else {
                    r.as_str().unwrap()
                };
                (id.to_string(), room.events[id].clone())
            })
            .collect();
        // The leave must be accepted as it is: not redacted, not soft-failed.
        let resp = resident.send_leave(
            &host,
            &room.room_id,
            &done.event_id,
            &body,
            ORIGIN,
            SendLeaveApi::V2,
        );
        let acc = resp.accepted.as_ref().unwrap_or_else(|| {
            panic!("{tag}/{i} refused: {}", String::from_utf8_lossy(&resp.body))
        });
        assert!(
            !acc.redacted && !acc.soft_failed && !acc.duplicate,
            "{tag}/{i}"
        );
        Leave {
            event_id_c: CString::new(done.event_id.clone()).unwrap(),
            event_id: done.event_id,
            body,
            pdu,
            signed_bytes,
            sig_b64,
            sig,
            auth_events,
        }
    }

    fn make_set(
        &self,
        key: &SigningKey,
        ri: usize,
        name: &str,
        kind: Kind,
        sizes: &[usize],
    ) -> Set {
        let events = sizes
            .iter()
            .enumerate()
            .map(|(i, &t)| self.make_leave(key, ri, name, i, t))
            .collect();
        Set {
            name: name.to_string(),
            kind,
            room: ri,
            events,
            size: 0,
        }
    }

    /// The rooms and sets as JSON for the Python workers.
    pub fn to_json(&self) -> serde_json::Value {
        let rooms: Vec<serde_json::Value> = self
            .rooms
            .iter()
            .map(|r| {
                serde_json::json!({
                    "room_id": r.room_id,
                    "room_version": r.version.id,
                    "events": r.order.iter().map(|id| serde_json::json!({
                        "event_id": id,
                        "pdu": serde_json::from_slice::<serde_json::Value>(&r.events_json[id]).unwrap(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let sets: Vec<serde_json::Value> = self
            .sets
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "kind": s.kind.as_str(),
                    "room_id": self.rooms[s.room].room_id,
                    "room_version": self.rooms[s.room].version.id,
                    "events": s.events.iter().map(|e| serde_json::json!({
                        "event_id": e.event_id,
                        "body": String::from_utf8(e.body.clone()).unwrap(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "resident": RESIDENT,
            "origin": ORIGIN,
            "user_id": USER,
            "key_id": KEY_ID,
            "public_key": self.public_key_b64,
            "now_ms": NOW_MS,
            "rooms": rooms,
            "sets": sets,
        })
    }
}
