//! ruma's equivalent of the send_leave receive path: parse to a `CanonicalJsonObject`,
//! `check_pdu_format`, the event ID from `reference_hash` (room versions 3+), the endpoint's
//! own field checks, `verify_event` against a public key map (signatures of the required
//! servers and the content hash), then ruma-state-res's state-independent auth rules and
//! state-dependent rules against the auth events, and once more against the room's current
//! state (the soft-fail check), as matrix-leave does.

use std::collections::{BTreeMap, HashMap};

use js_int::UInt;
use ruma_common::canonical_json::CanonicalJsonObject;
use ruma_common::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma_common::serde::Base64;
use ruma_common::{
    CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedUserId, RoomId, RoomVersionId, UserId,
};
use ruma_events::{StateEventType, TimelineEventType};
use ruma_signatures::{PublicKeyMap, Verified};
use ruma_state_res::Event;
use serde_json::value::RawValue;

use crate::world::{Leave, Room, World, KEY_ID, ORIGIN};

/// A PDU as ruma-state-res sees it.
pub struct RumaPdu {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
}

impl Event for RumaPdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}

fn str_field<'a>(obj: &'a CanonicalJsonObject, k: &str) -> Option<&'a str> {
    match obj.get(k) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

fn refs(obj: &CanonicalJsonObject, k: &str, pairs: bool) -> Result<Vec<OwnedEventId>, String> {
    let Some(CanonicalJsonValue::Array(a)) = obj.get(k) else {
        return Err(format!("{k} is not an array"));
    };
    a.iter()
        .map(|r| {
            let id = match (pairs, r) {
                (false, CanonicalJsonValue::String(s)) => s.as_str(),
                (true, CanonicalJsonValue::Array(p)) => match p.first() {
                    Some(CanonicalJsonValue::String(s)) => s.as_str(),
                    _ => return Err(format!("{k}: bad pair")),
                },
                _ => return Err(format!("{k}: bad entry")),
            };
            EventId::parse(id).map_err(|e| e.to_string())
        })
        .collect()
}

impl RumaPdu {
    /// The typed event from its canonical object, as a ruma-based server builds it.
    pub fn from_object(
        obj: &CanonicalJsonObject,
        event_id: OwnedEventId,
        rules: &RoomVersionRules,
    ) -> Result<RumaPdu, String> {
        let pairs = matches!(rules.event_id_format, EventIdFormatVersion::V1);
        let ts = match obj.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(i)) => {
                UInt::try_from(i64::from(*i)).map_err(|e| e.to_string())?
            }
            _ => return Err("origin_server_ts".into()),
        };
        Ok(RumaPdu {
            event_id,
            room_id: str_field(obj, "room_id")
                .map(RoomId::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            sender: UserId::parse(str_field(obj, "sender").ok_or("sender")?)
                .map_err(|e| e.to_string())?,
            origin_server_ts: MilliSecondsSinceUnixEpoch(ts),
            kind: TimelineEventType::from(str_field(obj, "type").ok_or("type")?),
            content: serde_json::value::to_raw_value(obj.get("content").ok_or("content")?)
                .map_err(|e| e.to_string())?,
            state_key: str_field(obj, "state_key").map(str::to_string),
            prev_events: refs(obj, "prev_events", pairs)?,
            auth_events: refs(obj, "auth_events", pairs)?,
            redacts: str_field(obj, "redacts")
                .map(EventId::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
        })
    }
}

/// A room as a ruma-based server holds it: typed events and the current state.
pub struct RumaRoom {
    pub rules: RoomVersionRules,
    pub room_id: String,
    pub events: HashMap<OwnedEventId, RumaPdu>,
    pub state: HashMap<StateEventType, HashMap<String, OwnedEventId>>,
}

pub struct RumaWorld {
    pub rooms: Vec<RumaRoom>,
    pub keys: PublicKeyMap,
}

impl RumaWorld {
    pub fn new(world: &World) -> RumaWorld {
        let rooms = world.rooms.iter().map(ruma_room).collect();
        let mut set = BTreeMap::new();
        set.insert(
            KEY_ID.to_string(),
            Base64::parse(world.public_key_b64.clone()).unwrap(),
        );
        let mut keys = BTreeMap::new();
        keys.insert(ORIGIN.to_string(), set);
        RumaWorld { rooms, keys }
    }
}

fn ruma_room(r: &Room) -> RumaRoom {
    let rules = RoomVersionId::try_from(r.version.id)
        .unwrap()
        .rules()
        .unwrap();
    let mut events = HashMap::new();
    let mut state: HashMap<StateEventType, HashMap<String, OwnedEventId>> = HashMap::new();
    for id in &r.order {
        let obj: CanonicalJsonObject = serde_json::from_slice(&r.events_json[id]).unwrap();
        let eid = EventId::parse(id.as_str()).unwrap();
        let pdu = RumaPdu::from_object(&obj, eid.clone(), &rules).unwrap();
        if let Some(sk) = &pdu.state_key {
            state
                .entry(StateEventType::from(pdu.kind.to_string()))
                .or_default()
                .insert(sk.clone(), eid.clone());
        }
        events.insert(eid, pdu);
    }
    RumaRoom {
        rules,
        room_id: r.room_id.clone(),
        events,
        state,
    }
}

/// Parse: the body to a canonical JSON object.
pub fn parse(body: &[u8]) -> Result<CanonicalJsonObject, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// The event ID: carried in versions 1 and 2, `$` + the reference hash after.
pub fn event_id(obj: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<String, String> {
    if matches!(rules.event_id_format, EventIdFormatVersion::V1) {
        return str_field(obj, "event_id")
            .map(str::to_string)
            .ok_or_else(|| "event_id".into());
    }
    let hash = ruma_signatures::reference_hash(obj, rules).map_err(|e| e.to_string())?;
    Ok(format!("${hash}"))
}

/// The state-independent rules, then the state-dependent ones against the auth events and
/// against the current state.
pub fn auth(room: &RumaRoom, pdu: &RumaPdu) -> Result<(), String> {
    let rules = &room.rules.authorization;
    ruma_state_res::check_state_independent_auth_rules(rules, pdu, |id: &EventId| {
        room.events.get(id)
    })?;
    let mut by_key: HashMap<StateEventType, HashMap<&str, &RumaPdu>> = HashMap::new();
    for id in &pdu.auth_events {
        let ev = room.events.get(id).ok_or("unknown auth event")?;
        by_key
            .entry(StateEventType::from(ev.kind.to_string()))
            .or_default()
            .insert(ev.state_key.as_deref().unwrap_or(""), ev);
    }
    if room.rules.authorization.room_create_event_id_as_room_id {
        // Version 12: the create event is the one the room ID names.
        let id = EventId::parse(format!("${}", &room.room_id[1..])).map_err(|e| e.to_string())?;
        let create = room.events.get(&id).ok_or("no create event")?;
        by_key
            .entry(StateEventType::RoomCreate)
            .or_default()
            .insert("", create);
    }
    ruma_state_res::check_state_dependent_auth_rules(
        rules,
        pdu,
        |ty: &StateEventType, sk: &str| by_key.get(ty).and_then(|m| m.get(sk)).copied(),
    )?;
    ruma_state_res::check_state_dependent_auth_rules(rules, pdu, |ty: &StateEventType, sk: &str| {
        room.state
            .get(ty)
            .and_then(|m| m.get(sk))
            .and_then(|id| room.events.get(id))
    })
}

/// The whole receive path for one leave.
pub fn send_leave(
    rw: &RumaWorld,
    room: &RumaRoom,
    leave: &Leave,
    origin: &str,
) -> Result<(), String> {
    let obj = parse(&leave.body)?;
    ruma_state_res::check_pdu_format(&obj, &room.rules.event_format)?;
    if str_field(&obj, "room_id") != Some(room.room_id.as_str()) {
        return Err("room_id".into());
    }
    let event_id = event_id(&obj, &room.rules)?;
    if event_id != leave.event_id {
        return Err(format!("event id {event_id} != {}", leave.event_id));
    }
    // The endpoint's own checks, as matrix-leave makes them.
    if str_field(&obj, "type") != Some("m.room.member") {
        return Err("type".into());
    }
    let membership = match obj.get("content") {
        Some(CanonicalJsonValue::Object(c)) => str_field(c, "membership"),
        _ => None,
    };
    if membership != Some("leave") {
        return Err("membership".into());
    }
    let sender = str_field(&obj, "sender").unwrap_or("");
    if str_field(&obj, "state_key") != Some(sender) {
        return Err("state_key".into());
    }
    if sender.split_once(':').map(|x| x.1) != Some(origin) {
        return Err("origin".into());
    }
    // The room's server ACL and the duplicate check: lookups a server makes before verifying.
    std::hint::black_box(
        room.state
            .get(&StateEventType::RoomServerAcl)
            .and_then(|m| m.get("")),
    );
    let parsed_id = EventId::parse(event_id.as_str()).map_err(|e| e.to_string())?;
    if room.events.contains_key(&parsed_id) {
        return Err("duplicate".into());
    }
    match ruma_signatures::verify_event(&rw.keys, &obj, &room.rules) {
        Ok(Verified::All) => {}
        Ok(Verified::Signatures) => return Err("content hash".into()),
        Err(e) => return Err(e.to_string()),
    }
    let pdu = RumaPdu::from_object(&obj, parsed_id, &room.rules)?;
    auth(room, &pdu)
}
