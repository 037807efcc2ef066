//! The authorization rules that decide a leave, and the auth-events selection.
//!
//! Only what a leave needs is here: the rules every event passes (auth events, create event,
//! `m.federate`) and the `m.room.member` rules for `membership: leave`. Each rule is one
//! paragraph with the room versions it applies to; the differences come from the
//! [`RoomVersion`] table.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::error::Error;
use crate::json::Value;
use crate::version::RoomVersion;

/// A state key: `(event type, state_key)`.
pub type StateKey = (String, String);

/// Looks up a state event by type and state key. `D` is however the caller holds the event:
/// `&Value`, `Cow<Value>`, `Arc<Value>` or an owned `Value`.
pub type StateLookup<'a, D> = dyn FnMut(&str, &str) -> Result<Option<D>, Error> + 'a;

/// Auth events by `(type, state_key)`, borrowed from the fetched events.
pub type AuthMap<'e> = HashMap<(&'e str, &'e str), &'e Value>;

fn forbidden(why: impl Into<String>) -> Error {
    Error::forbidden(format!("leave event was rejected: {}", why.into()))
}

fn server_of(id: &str) -> &str {
    id.split_once(':').map(|(_, s)| s).unwrap_or("")
}

/// The `(type, state_key)` pairs the auth-events selection algorithm allows for a member
/// event that is not a join or an invite: the create event (versions 1 to 11), the power
/// levels, and the membership of the sender and of the target.
pub fn leave_auth_selection(sender: &str, target: &str, version: &RoomVersion) -> Vec<StateKey> {
    let mut keys = Vec::with_capacity(4);
    if version.create_in_auth_events {
        keys.push(("m.room.create".to_string(), String::new()));
    }
    keys.push(("m.room.power_levels".to_string(), String::new()));
    keys.push(("m.room.member".to_string(), sender.to_string()));
    if target != sender {
        keys.push(("m.room.member".to_string(), target.to_string()));
    }
    keys
}

/// Checks that `auth_events` (the events the leave lists, already fetched) are exactly a
/// selection the algorithm allows: each from this room, none twice for the same state key,
/// none of a type or state key outside the selection, the create event present in versions
/// 1 to 11 and absent in version 12. Returns them keyed by state key.
pub fn check_auth_events<'e, D: Borrow<Value>>(
    event: &Value,
    auth_events: &'e [(String, D)],
    room_id: &str,
    version: &RoomVersion,
) -> Result<AuthMap<'e>, Error> {
    let sender = event.get("sender").and_then(Value::as_str).unwrap_or("");
    let target = event.get("state_key").and_then(Value::as_str).unwrap_or("");
    let allowed = leave_auth_selection(sender, target, version);
    let mut map = HashMap::new();
    for (id, ev) in auth_events {
        let ev: &Value = ev.borrow();
        let ty = ev.get("type").and_then(Value::as_str).unwrap_or("");
        let sk = ev.get("state_key").and_then(Value::as_str);
        let Some(sk) = sk else {
            return Err(forbidden(format!("auth event {id} is not a state event")));
        };
        // Version 12 create events carry no room_id; every other auth event must be from
        // this room.
        let ev_room = ev.get("room_id").and_then(Value::as_str);
        if ev_room.is_some_and(|r| r != room_id) || (ev_room.is_none() && ty != "m.room.create") {
            return Err(forbidden(format!("auth event {id} is from another room")));
        }
        if ty == "m.room.create" && !version.create_in_auth_events {
            return Err(forbidden(format!(
                "auth event {id}: the create event must not be listed in auth_events in room version {}",
                version.id
            )));
        }
        if !allowed.iter().any(|(t, k)| t == ty && k == sk) {
            return Err(forbidden(format!(
                "auth event {id} ({ty}, {sk:?}) is not one the auth-events selection allows for a leave"
            )));
        }
        if map.insert((ty, sk), ev).is_some() {
            return Err(forbidden(format!(
                "auth_events lists two events for ({ty}, {sk:?})"
            )));
        }
    }
    if version.create_in_auth_events && !map.contains_key(&("m.room.create", "")) {
        return Err(forbidden("no m.room.create event in auth_events"));
    }
    Ok(map)
}

/// The power levels of a room, read from its `m.room.power_levels` and create events.
pub struct PowerLevels {
    users: HashMap<String, i64>,
    users_default: i64,
    kick: i64,
    ban: i64,
    creators: Vec<String>,
    creators_privileged: bool,
}

fn pl_int(v: Option<&Value>, version: &RoomVersion) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        // Before version 10, power levels written as strings of digits are read as integers.
        Value::String(s) if !version.integer_power_levels => s.trim().parse().ok(),
        _ => None,
    }
}

impl PowerLevels {
    /// Reads the power levels from the room's power levels event (if any) and create event.
    pub fn new(pl: Option<&Value>, create: Option<&Value>, version: &RoomVersion) -> PowerLevels {
        let mut creators = Vec::new();
        if let Some(c) = create {
            if version.creators_privileged || version.redaction_v11 {
                if let Some(s) = c.get("sender").and_then(Value::as_str) {
                    creators.push(s.to_string());
                }
            } else if let Some(s) = c
                .get("content")
                .and_then(|c| c.get("creator"))
                .and_then(Value::as_str)
            {
                creators.push(s.to_string());
            }
            if version.creators_privileged {
                if let Some(extra) = c
                    .get("content")
                    .and_then(|c| c.get("additional_creators"))
                    .and_then(Value::as_array)
                {
                    creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_string));
                }
            }
        }
        let content = pl.and_then(|p| p.get("content"));
        let Some(content) = content else {
            // No power levels event: the creator has 100, everyone else 0.
            return PowerLevels {
                users: creators.iter().map(|c| (c.clone(), 100)).collect(),
                users_default: 0,
                kick: 50,
                ban: 50,
                creators,
                creators_privileged: version.creators_privileged,
            };
        };
        let users = content
            .get("users")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| pl_int(Some(v), version).map(|n| (k.clone(), n)))
                    .collect()
            })
            .unwrap_or_default();
        PowerLevels {
            users,
            users_default: pl_int(content.get("users_default"), version).unwrap_or(0),
            kick: pl_int(content.get("kick"), version).unwrap_or(50),
            ban: pl_int(content.get("ban"), version).unwrap_or(50),
            creators,
            creators_privileged: version.creators_privileged,
        }
    }

    /// A user's power level; `i64::MAX` stands for a version 12 creator's unlimited power.
    pub fn user(&self, user: &str) -> i64 {
        if self.creators_privileged && self.creators.iter().any(|c| c == user) {
            return i64::MAX;
        }
        self.users.get(user).copied().unwrap_or(self.users_default)
    }
}

fn membership_of(member_event: Option<&Value>) -> &str {
    member_event
        .and_then(|e| e.get("content"))
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str)
        .unwrap_or("leave")
}

/// Applies the auth rules for an `m.room.member` event with `membership: leave`, against the
/// state given by `state` (the event's auth events, or the room's current state).
pub fn check_leave<D: Borrow<Value>>(
    event: &Value,
    version: &RoomVersion,
    state: &mut StateLookup<'_, D>,
) -> Result<(), Error> {
    let sender = event.get("sender").and_then(Value::as_str).unwrap_or("");
    let target = event
        .get("state_key")
        .and_then(Value::as_str)
        .ok_or_else(|| forbidden("no state_key"))?;
    let room_id = event.get("room_id").and_then(Value::as_str).unwrap_or("");
    let create = state("m.room.create", "")?;

    // All versions: the create event must be known (in versions 1-11 it is among the auth
    // events; in version 12 it is the event whose ID the room ID is made from).
    let Some(create) = create else {
        return Err(forbidden("no m.room.create event in the room's state"));
    };
    let create: &Value = create.borrow();

    // All versions: a room created with `m.federate: false` admits no other server.
    let federate = create.get("content").and_then(|c| c.get("m.federate"));
    if matches!(federate, Some(Value::Bool(false))) {
        let creator_server = create
            .get("sender")
            .and_then(Value::as_str)
            .map(server_of)
            .unwrap_or("");
        if server_of(sender) != creator_server {
            return Err(forbidden(format!(
                "room {room_id} does not federate and {sender} is from another server"
            )));
        }
    }

    // All versions: a member event needs `membership` in its content.
    let membership = event
        .get("content")
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str)
        .ok_or_else(|| forbidden("content.membership is missing"))?;
    if membership != "leave" {
        return Err(forbidden(format!("membership {membership:?} is not leave")));
    }

    let sender_member = state("m.room.member", sender)?;
    let sender_membership = membership_of(sender_member.as_ref().map(Borrow::borrow));

    // Leave rule 1 (all versions): a user may leave by themself only from invite or join,
    // and from knock in versions 7 and later.
    if sender == target {
        let ok = matches!(sender_membership, "join" | "invite")
            || (version.knock && sender_membership == "knock");
        return if ok {
            Ok(())
        } else {
            Err(forbidden(format!(
                "{sender} is not in room {room_id} (membership {sender_membership})"
            )))
        };
    }

    // Leave rule 2: otherwise the sender must be joined.
    if sender_membership != "join" {
        return Err(forbidden(format!(
            "{sender} is not joined to room {room_id}"
        )));
    }
    let pl_event = state("m.room.power_levels", "")?;
    let pls = PowerLevels::new(pl_event.as_ref().map(Borrow::borrow), Some(create), version);
    let target_member = state("m.room.member", target)?;
    let sender_pl = pls.user(sender);
    let target_pl = pls.user(target);

    // Leave rule 3: unbanning needs the ban level.
    if membership_of(target_member.as_ref().map(Borrow::borrow)) == "ban" && sender_pl < pls.ban {
        return Err(forbidden(format!("{sender} may not unban {target}")));
    }
    // Leave rule 4: a kick needs the kick level and a higher level than the target.
    if sender_pl >= pls.kick && target_pl < sender_pl {
        return Ok(());
    }
    // Leave rule 5: anything else is refused.
    Err(forbidden(format!("{sender} may not kick {target}")))
}
