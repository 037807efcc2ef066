//! The bad-request catalogue (`tests/catalogue/requests.json`, generated with Synapse's
//! libraries by `tests/catalogue/generate.py`) replayed through the Rust API: every case gets
//! exactly its expected status and errcode, refusals store nothing, and accepted leaves are
//! stored exactly once.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use common::host::MemoryHost;
use common::*;
use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::keys::{ServerKey, VerifyKey};
use matrix_leave::resident::{LogLevel, Resident, ResidentHost, ResidentOptions, SendLeaveApi};
use matrix_leave::version::RoomVersion;
use matrix_leave::Error;

/// A [`MemoryHost`] whose event lookup may also find events of the other rooms it holds, as a
/// homeserver that looks events up by ID alone does (`global_event_lookup` cases).
struct CatalogueHost {
    inner: MemoryHost,
    global_events: bool,
}

impl ResidentHost for CatalogueHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.inner.room_version(room_id)
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        self.inner.state_event(room_id, ty, sk)
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        if let Some(ev) = self.inner.event(room_id, event_id)? {
            return Ok(Some(ev));
        }
        if !self.global_events {
            return Ok(None);
        }
        let rooms = self.inner.rooms.borrow();
        let mut ids: Vec<&String> = rooms.keys().collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .find_map(|r| rooms[r].events.get(event_id).cloned())
            .map(Arc::new))
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        self.inner.forward_extremities(room_id)
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        self.inner.servers_in_room(room_id)
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        self.inner.server_keys(server)
    }

    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        ev: &Value,
        soft: bool,
    ) -> Result<(), Error> {
        self.inner.store_event(room_id, event_id, ev, soft)
    }

    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message)
    }
}

fn catalogue() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/catalogue/requests.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The key table of a case: `{server: {key_id: base64 | {key, valid_until_ts?, expired_ts?}}}`.
fn server_keys(table: &serde_json::Value) -> Vec<(String, ServerKey)> {
    let mut out = vec![];
    for (server, ks) in table.as_object().unwrap() {
        for (key_id, k) in ks.as_object().unwrap() {
            let (b64, until, expired) = match k {
                serde_json::Value::String(s) => (s.as_str(), None, None),
                _ => (
                    k["key"].as_str().unwrap(),
                    k.get("valid_until_ts").and_then(|v| v.as_i64()),
                    k.get("expired_ts").and_then(|v| v.as_i64()),
                ),
            };
            out.push((
                server.clone(),
                ServerKey {
                    key_id: key_id.clone(),
                    key: VerifyKey::from_b64(b64).unwrap(),
                    valid_until_ts: until,
                    expired_ts: expired,
                },
            ));
        }
    }
    out
}

fn build_host(
    vectors: &serde_json::Value,
    cat: &serde_json::Value,
    case: &serde_json::Value,
) -> CatalogueHost {
    let mut host = MemoryHost {
        now: cat["now_ms"].as_i64().unwrap(),
        ..Default::default()
    };
    let room = &vectors["rooms"][case["room"].as_str().unwrap()];
    host.add_vector_room(room);
    let also = case.get("also_rooms").and_then(|a| a.as_array());
    for other in also.into_iter().flatten() {
        host.add_vector_room(&vectors["rooms"][other.as_str().unwrap()]);
    }
    let room_id = room["room_id"].as_str().unwrap();
    let version = room["room_version"].as_str().unwrap();
    let v = RoomVersion::get(version).unwrap();
    for e in case
        .get("extra_events")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let pdu = ours(&e["pdu"]);
        let id = e["event_id"].as_str().unwrap();
        if v.event_id_is_hash() {
            assert_eq!(event::event_id(&pdu, v).unwrap(), id, "extra event id");
        }
        host.add_event(room_id, version, id, pdu);
    }
    let table = case.get("keys").unwrap_or(&vectors["public_keys"]);
    for (server, key) in server_keys(table) {
        host.keys.entry(server).or_default().push(key);
    }
    CatalogueHost {
        inner: host,
        global_events: case.get("global_event_lookup") == Some(&serde_json::Value::Bool(true)),
    }
}

fn options(case: &serde_json::Value) -> ResidentOptions {
    let mut o = ResidentOptions::default();
    if let Some(opts) = case.get("options") {
        if let Some(b) = opts.get("enable_v1").and_then(|b| b.as_bool()) {
            o.enable_v1 = b;
        }
        if let Some(b) = opts.get("acl_allows_leave").and_then(|b| b.as_bool()) {
            o.acl_allows_leave = b;
        }
    }
    o
}

/// Runs one case; `Err` describes how the answer differs from the expectation.
fn run_case(
    vectors: &serde_json::Value,
    cat: &serde_json::Value,
    case: &serde_json::Value,
) -> Result<(), String> {
    let host = build_host(vectors, cat, case);
    let resident = Resident::new(cat["resident"].as_str().unwrap(), options(case));
    let s = |k: &str| case[k].as_str().unwrap();
    let endpoint = s("endpoint");
    let resp = match endpoint {
        "make_leave" => {
            resident.make_leave(&host, s("path_room_id"), s("path_user_id"), s("origin"))
        }
        "send_leave" => {
            let body = base64::engine::general_purpose::STANDARD
                .decode(s("body_b64"))
                .unwrap();
            let api = match case["api_version"].as_u64() {
                Some(1) => SendLeaveApi::V1,
                Some(2) => SendLeaveApi::V2,
                other => panic!("api_version {other:?}"),
            };
            resident.send_leave(
                &host,
                s("path_room_id"),
                s("path_event_id"),
                &body,
                s("origin"),
                api,
            )
        }
        other => panic!("endpoint {other}"),
    };
    let want_status = case["expect"]["status"].as_u64().unwrap() as u16;
    let want_errcode = case["expect"]["errcode"].as_str();
    let got_errcode = resp.error.as_ref().map(|e| e.errcode());
    let message = resp
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    if std::env::var_os("CATALOGUE_VERBOSE").is_some() {
        eprintln!(
            "{}: {} {} {message:?}",
            s("name"),
            resp.status,
            got_errcode.unwrap_or("-")
        );
    }
    if (resp.status, got_errcode) != (want_status, want_errcode) {
        return Err(format!(
            "got {} {} ({message}), expected {} {}",
            resp.status,
            got_errcode.unwrap_or("-"),
            want_status,
            want_errcode.unwrap_or("-")
        ));
    }
    let stored = host.inner.stored.borrow().len();
    let want_stored = usize::from(endpoint == "send_leave" && want_status == 200);
    if stored != want_stored {
        return Err(format!("stored {stored} events, expected {want_stored}"));
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|e| format!("response body is not JSON: {e}"))?;
    match (want_status, endpoint) {
        (200, "send_leave") => {
            let want = if case["api_version"] == 1 {
                serde_json::json!([200, {}])
            } else {
                serde_json::json!({})
            };
            if body != want {
                return Err(format!("body {body}, expected {want}"));
            }
        }
        (200, _) => {
            if body.get("event").is_none() || body.get("room_version").is_none() {
                return Err(format!("template body {body}"));
            }
        }
        _ => {
            if body["errcode"].as_str() != want_errcode {
                return Err(format!("error body {body}"));
            }
        }
    }
    Ok(())
}

#[test]
fn catalogue_through_the_rust_api() {
    let vectors = load("leave_auth.json");
    let cat = catalogue();
    let cases = cat["cases"].as_array().unwrap();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut failures = vec![];
    for case in cases {
        let name = case["name"].as_str().unwrap();
        if let Err(why) = run_case(&vectors, &cat, case) {
            failures.push(format!(
                "{name} [{}]: {why}",
                case["category"].as_str().unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} catalogue cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn catalogue_is_well_formed() {
    let cat = catalogue();
    let mut names = std::collections::BTreeSet::new();
    let mut refusals = 0;
    for case in cat["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "duplicate case {name}");
        for k in [
            "room",
            "endpoint",
            "path_room_id",
            "origin",
            "body_b64",
            "why",
        ] {
            assert!(case[k].is_string(), "{name}: {k}");
        }
        let key = if case["endpoint"] == "send_leave" {
            "path_event_id"
        } else {
            "path_user_id"
        };
        assert!(case[key].is_string(), "{name}: {key}");
        let status = case["expect"]["status"].as_u64().unwrap();
        assert_eq!(
            case["expect"]["errcode"].is_null(),
            status == 200,
            "{name}: errcode"
        );
        if status != 200 {
            refusals += 1;
        }
    }
    assert!(refusals >= 150, "only {refusals} refusals");
}
