//! The room-version capability table.
//!
//! Every behaviour that differs between room versions is a field here, and the rest of the
//! library asks this table instead of comparing version strings. Versions 1 to 12 are the
//! stable versions defined by the Matrix specification.

use crate::error::{Code, Error};

/// How an event's ID is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventIdFormat {
    /// Versions 1 and 2: `$localpart:server`, carried in the event's `event_id` field.
    InEvent,
    /// Version 3: `$` + the reference hash in standard unpadded base64.
    ReferenceHashStandard,
    /// Versions 4 and later: `$` + the reference hash in URL-safe unpadded base64.
    ReferenceHashUrlSafe,
}

/// What a room version allows and requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomVersion {
    /// The version identifier, `"1"` to `"12"`.
    pub id: &'static str,
    /// How event IDs are formed; also whether `prev_events`/`auth_events` are
    /// `[id, {sha256}]` pairs (versions 1 and 2) or plain IDs.
    pub event_id_format: EventIdFormat,
    /// Versions 5+: a signing key may only be used for events before its `valid_until_ts`.
    pub enforce_key_validity: bool,
    /// Versions 6+: floats and integers outside ±(2^53-1) are refused.
    pub strict_canonical_json: bool,
    /// Versions 1 to 5: redaction keeps `m.room.aliases` content `aliases`.
    pub redaction_keeps_aliases: bool,
    /// Versions 7+: the `knock` membership exists.
    pub knock: bool,
    /// Versions 8+: redaction keeps `m.room.join_rules` content `allow`.
    pub redaction_keeps_join_rule_allow: bool,
    /// Versions 9+: redaction keeps `m.room.member` content `join_authorised_via_users_server`.
    pub redaction_keeps_join_authorised_via: bool,
    /// Versions 10+: power levels must be integers, not strings.
    pub integer_power_levels: bool,
    /// Versions 11+: the updated redaction algorithm (no top-level `origin`, `membership`,
    /// `prev_state`; the whole create content; power levels `invite`; the signed part of a
    /// third-party invite; redaction `redacts`).
    pub redaction_v11: bool,
    /// Versions 1 to 11: the create event is listed in `auth_events`. Version 12 derives the
    /// room ID from the create event and leaves it out.
    pub create_in_auth_events: bool,
    /// Version 12: the room ID is `!` + the create event's reference hash.
    pub room_id_from_create: bool,
    /// Version 12: the create event's sender and `additional_creators` have unlimited power.
    pub creators_privileged: bool,
}

impl RoomVersion {
    /// Whether `prev_events` and `auth_events` are `[id, {sha256}]` pairs.
    pub fn event_refs_are_pairs(&self) -> bool {
        self.event_id_format == EventIdFormat::InEvent
    }

    /// Whether event IDs are derived from reference hashes (and so never carried in the event).
    pub fn event_id_is_hash(&self) -> bool {
        self.event_id_format != EventIdFormat::InEvent
    }

    /// The JSON number rules for events of this version.
    pub fn json_mode(&self) -> crate::json::Mode {
        if self.strict_canonical_json {
            crate::json::Mode::Strict
        } else {
            crate::json::Mode::Lenient
        }
    }

    /// Looks a version up by its identifier.
    pub fn get(id: &str) -> Option<&'static RoomVersion> {
        ROOM_VERSIONS.iter().find(|v| v.id == id)
    }

    /// Looks a version up, or fails with `400 M_UNSUPPORTED_ROOM_VERSION`.
    pub fn require(id: &str) -> Result<&'static RoomVersion, Error> {
        RoomVersion::get(id).ok_or_else(|| {
            Error::new(
                Code::UnsupportedRoomVersion,
                format!("room_version {id:?} is not a supported room version (1 to 12)"),
            )
        })
    }
}

const fn version(n: u8) -> RoomVersion {
    let id = match n {
        1 => "1",
        2 => "2",
        3 => "3",
        4 => "4",
        5 => "5",
        6 => "6",
        7 => "7",
        8 => "8",
        9 => "9",
        10 => "10",
        11 => "11",
        _ => "12",
    };
    RoomVersion {
        id,
        event_id_format: match n {
            1 | 2 => EventIdFormat::InEvent,
            3 => EventIdFormat::ReferenceHashStandard,
            _ => EventIdFormat::ReferenceHashUrlSafe,
        },
        enforce_key_validity: n >= 5,
        strict_canonical_json: n >= 6,
        redaction_keeps_aliases: n <= 5,
        knock: n >= 7,
        redaction_keeps_join_rule_allow: n >= 8,
        redaction_keeps_join_authorised_via: n >= 9,
        integer_power_levels: n >= 10,
        redaction_v11: n >= 11,
        create_in_auth_events: n <= 11,
        room_id_from_create: n >= 12,
        creators_privileged: n >= 12,
    }
}

/// The stable room versions, 1 to 12.
pub static ROOM_VERSIONS: [RoomVersion; 12] = [
    version(1),
    version(2),
    version(3),
    version(4),
    version(5),
    version(6),
    version(7),
    version(8),
    version(9),
    version(10),
    version(11),
    version(12),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec_milestones() {
        // Facts from the room version documents of the Matrix specification.
        let v = |s| RoomVersion::get(s).unwrap();
        assert_eq!(v("1").event_id_format, EventIdFormat::InEvent);
        assert_eq!(v("3").event_id_format, EventIdFormat::ReferenceHashStandard);
        assert_eq!(v("4").event_id_format, EventIdFormat::ReferenceHashUrlSafe);
        assert!(!v("4").enforce_key_validity && v("5").enforce_key_validity);
        assert!(!v("5").strict_canonical_json && v("6").strict_canonical_json);
        assert!(!v("6").knock && v("7").knock);
        assert!(!v("10").redaction_v11 && v("11").redaction_v11);
        assert!(v("11").create_in_auth_events && !v("12").create_in_auth_events);
        assert!(RoomVersion::get("13").is_none());
        assert!(RoomVersion::get("org.matrix.msc1234").is_none());
        assert_eq!(
            RoomVersion::require("0").unwrap_err().code,
            Code::UnsupportedRoomVersion
        );
    }
}
