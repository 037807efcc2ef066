//! The resident side driven by the shared leave-auth vectors and the send_leave validation
//! cases, through the real make_leave / send_leave code path over an in-memory host.

mod common;

use common::host::{MemoryHost, Site};
use common::*;
use matrix_leave::auth;
use matrix_leave::event;
use matrix_leave::json::{self, Value};
use matrix_leave::resident::{Resident, ResidentHost, ResidentOptions, SendLeaveApi};
use matrix_leave::version::RoomVersion;

fn expected_answer(sl: &serde_json::Value) -> Vec<(u16, String)> {
    let mut out = vec![];
    if sl["verdict"] == "accept" {
        out.push((200, String::new()));
    } else if let Some(spec) = sl.get("spec_errcode") {
        // The project follows the current spec where it recommends 400 M_INVALID_PARAM.
        out.push((400, spec.as_str().unwrap().to_string()));
    } else {
        out.push((
            sl["http_status"].as_u64().unwrap() as u16,
            sl["errcode"].as_str().unwrap().to_string(),
        ));
    }
    if let Some(alts) = sl.get("acceptable_alternatives").and_then(|a| a.as_array()) {
        for a in alts {
            out.push((
                a["http_status"].as_u64().unwrap() as u16,
                a["errcode"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn vector_host(file: &serde_json::Value, room: &str) -> MemoryHost {
    let mut host = MemoryHost::default();
    host.add_vector_room(&file["rooms"][room]);
    host.add_keys(&file["public_keys"]);
    host.now = 1_800_000_000_000;
    host
}

/// Sends `body` to the resident at the path of a vector case's request, from its origin.
fn send_to_case_path(
    resident: &Resident,
    host: &MemoryHost,
    req: &serde_json::Value,
    body: &[u8],
    api: SendLeaveApi,
) -> matrix_leave::resident::Response {
    resident.send_leave(
        host,
        req["path_room_id"].as_str().unwrap(),
        req["path_event_id"].as_str().unwrap(),
        body,
        req["origin"].as_str().unwrap_or("remote.example"),
        api,
    )
}

#[test]
fn leave_auth_vectors_through_send_leave() {
    let file = load("leave_auth.json");
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let mut failures = vec![];
    for case in cases(&file) {
        let name = case["name"].as_str().unwrap();
        let input = &case["input"];
        let host = vector_host(&file, input["room"].as_str().unwrap());
        let req = &input["request"];
        let body = ours(&input["event"]).to_canonical();
        let resp = send_to_case_path(&resident, &host, req, &body, SendLeaveApi::V2);
        let sl = &case["expected"]["send_leave"];
        let allowed = expected_answer(sl);
        let got = (
            resp.status,
            resp.error
                .as_ref()
                .map(|e| e.errcode().to_string())
                .unwrap_or_default(),
        );
        if !allowed.contains(&got) {
            failures.push(format!(
                "{name}: got {got:?} ({:?}), expected {allowed:?}",
                resp.error
            ));
            continue;
        }
        let stored = host.stored.borrow();
        if resp.status == 200 {
            if resp.body != b"{}" || stored.len() != 1 {
                failures.push(format!(
                    "{name}: body or store count wrong ({} stored)",
                    stored.len()
                ));
                continue;
            }
            let (id, ev, _soft) = &stored[0];
            if id != case["expected"]["event_id"].as_str().unwrap() {
                failures.push(format!("{name}: stored id {id}"));
            }
            let redacted = sl.get("stored_event_redacted") == Some(&serde_json::Value::Bool(true));
            if let Some(exp) = case["expected"].get("stored_event") {
                if theirs(ev) != *exp {
                    failures.push(format!("{name}: stored event differs"));
                }
            } else if redacted {
                failures.push(format!("{name}: no stored_event recorded"));
            } else if theirs(ev) != input["event"] {
                failures.push(format!("{name}: stored event is not the sent event"));
            }
            if resp.accepted.as_ref().unwrap().redacted != redacted {
                failures.push(format!("{name}: redacted flag wrong"));
            }
        } else if !stored.is_empty() {
            failures.push(format!("{name}: refused but stored"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The auth-rules verdict of each case on its own: the auth events it lists, then the
/// membership rules for a leave.
#[test]
fn leave_auth_vectors_auth_verdicts() {
    let file = load("leave_auth.json");
    let mut failures = vec![];
    for case in cases(&file) {
        let name = case["name"].as_str().unwrap();
        let v = RoomVersion::get(case["room_version"].as_str().unwrap()).unwrap();
        let host = vector_host(&file, case["input"]["room"].as_str().unwrap());
        let ev = ours(&case["input"]["event"]);
        // These auth rules are those of a leave; other memberships, and events whose
        // signatures fail, are refused before the rules apply.
        let membership = case["input"]["event"]["content"]["membership"].as_str();
        if membership != Some("leave") || case["expected"]["signature_valid"] == false {
            continue;
        }
        let room_id = ev
            .get("room_id")
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        let ids: Vec<String> = ev
            .get("auth_events")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|r| {
                if v.event_refs_are_pairs() {
                    r.as_array().unwrap()[0].as_str().unwrap().to_string()
                } else {
                    r.as_str().unwrap().to_string()
                }
            })
            .collect();
        let verdict = (|| {
            let mut evs = vec![];
            for id in &ids {
                let e = host
                    .event(&room_id, id)
                    .unwrap()
                    .ok_or_else(|| matrix_leave::Error::forbidden("unknown auth event"))?;
                evs.push((id.clone(), e));
            }
            let map = auth::check_auth_events(&ev, &evs, &room_id, v)?;
            let create = if v.create_in_auth_events {
                None
            } else {
                host.state_event(&room_id, "m.room.create", "").unwrap()
            };
            auth::check_leave(&ev, v, &mut |ty, sk| {
                if ty == "m.room.create" {
                    if let Some(c) = &create {
                        return Ok(Some(&**c));
                    }
                }
                Ok(map.get(&(ty, sk)).copied())
            })
        })();
        let expected = case["expected"]["auth"]["verdict"].as_str().unwrap();
        let got = if verdict.is_ok() { "allow" } else { "reject" };
        // A leave whose signature or JSON the endpoint refuses never reaches the auth rules;
        // its recorded verdict is still about the rules alone.
        if got != expected {
            failures.push(format!("{name}: {got} ({verdict:?}), expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_leave_is_answered_without_a_second_store() {
    let file = load("leave_auth.json");
    let case = cases(&file)
        .iter()
        .find(|c| c["name"] == "v10_self_leave_prior_invite")
        .unwrap();
    let host = vector_host(&file, "v10/invited");
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let req = &case["input"]["request"];
    let body = ours(&case["input"]["event"]).to_canonical();
    let send = |api| send_to_case_path(&resident, &host, req, &body, api);
    let first = send(SendLeaveApi::V2);
    assert_eq!(first.status, 200);
    assert!(!first.accepted.as_ref().unwrap().duplicate);
    // Spec: the v1 endpoint answers `[200, {}]`.
    let second = send(SendLeaveApi::V1);
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"[200,{}]"[..])
    );
    let acc = second.accepted.unwrap();
    assert!(acc.duplicate);
    assert!(acc.relay_to.is_empty());
    assert_eq!(host.stored.borrow().len(), 1);
}

#[test]
fn v1_endpoint_can_be_switched_off() {
    let file = load("leave_auth.json");
    let case = cases(&file)
        .iter()
        .find(|c| c["name"] == "v10_self_leave_prior_invite")
        .unwrap();
    let host = vector_host(&file, "v10/invited");
    let resident = Resident::new(
        "resident.example",
        ResidentOptions {
            enable_v1: false,
            ..Default::default()
        },
    );
    let req = &case["input"]["request"];
    let body = ours(&case["input"]["event"]).to_canonical();
    let r = send_to_case_path(&resident, &host, req, &body, SendLeaveApi::V1);
    assert_eq!(
        (r.status, r.error.unwrap().errcode()),
        (404, "M_UNRECOGNIZED")
    );
    assert!(host.stored.borrow().is_empty());
}

#[test]
fn failing_callback_at_each_site_is_a_500_with_nothing_stored() {
    let file = load("leave_auth.json");
    let case = cases(&file)
        .iter()
        .find(|c| c["name"] == "v10_self_leave_prior_invite")
        .unwrap();
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let req = &case["input"]["request"];
    let body = ours(&case["input"]["event"]).to_canonical();
    for site in [
        Site::RoomVersion,
        Site::StateEvent,
        Site::Event,
        Site::ServersInRoom,
        Site::ServerKeys,
        Site::StoreEvent,
    ] {
        let host = vector_host(&file, "v10/invited");
        host.fail_at.set(Some(site));
        let r = send_to_case_path(&resident, &host, req, &body, SendLeaveApi::V2);
        assert_eq!(
            (r.status, r.error.as_ref().map(|e| e.errcode())),
            (500, Some("M_UNKNOWN")),
            "{site:?}"
        );
        assert!(host.stored.borrow().is_empty(), "{site:?}");
        // The next call works.
        host.fail_at.set(None);
        let ok = send_to_case_path(&resident, &host, req, &body, SendLeaveApi::V2);
        assert_eq!(ok.status, 200, "{site:?}");
    }
    for site in [
        Site::RoomVersion,
        Site::StateEvent,
        Site::ForwardExtremities,
        Site::ServersInRoom,
        Site::Event,
    ] {
        let host = vector_host(&file, "v1/joined");
        host.fail_at.set(Some(site));
        let r = resident.make_leave(
            &host,
            "!v1joined:resident.example",
            "@user:remote.example",
            "remote.example",
        );
        assert_eq!(r.status, 500, "{site:?}");
    }
}

#[test]
fn body_size_boundary_is_65536_inclusive() {
    let file = load("leave_auth.json");
    let case = cases(&file)
        .iter()
        .find(|c| c["name"] == "v10_self_leave_prior_invite")
        .unwrap();
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let req = &case["input"]["request"];
    let body = ours(&case["input"]["event"]).to_canonical();
    // Pad with insignificant trailing whitespace: the event (and so its ID) is unchanged.
    for (size, status) in [(65535usize, 200u16), (65536, 200), (65537, 413)] {
        let host = vector_host(&file, "v10/invited");
        let mut padded = body.clone();
        padded.resize(size, b' ');
        let r = send_to_case_path(&resident, &host, req, &padded, SendLeaveApi::V2);
        assert_eq!(r.status, status, "size {size}: {:?}", r.error);
        if status == 413 {
            assert_eq!(r.error.unwrap().errcode(), "M_TOO_LARGE");
        }
    }
}

// ---- send_leave_validation.json: a v11 room built from the case file's state ----

struct Built {
    host: MemoryHost,
    room_id: String,
    version: &'static RoomVersion,
}

fn build_validation_room(file: &serde_json::Value) -> Built {
    let room = &file["room"];
    let room_id = room["room_id"].as_str().unwrap().to_string();
    let vid = room["room_version"].as_str().unwrap();
    let v = RoomVersion::get(vid).unwrap();
    let resident_server = room["resident_server"].as_str().unwrap();
    let mut host = MemoryHost {
        now: 1_800_000_000_000,
        ..Default::default()
    };
    let key = spec_key("ed25519:1");
    let mut ts = 1_700_000_000_000i64;
    let mut depth = 0;
    let order = [
        "m.room.create/",
        "m.room.member/@carol:b.test",
        "m.room.power_levels/",
        "m.room.join_rules/",
        "m.room.member/@alice:a.test",
        "m.room.member/@dave:a.test",
    ];
    for k in order {
        let (ty, sk) = k.split_once('/').unwrap();
        let spec = &file["state"][k];
        let (sender, content) = match ty {
            "m.room.create" => (
                spec["sender"].as_str().unwrap().to_string(),
                ours(&spec["content"]),
            ),
            "m.room.member" => (
                sk.to_string(),
                json::object([("membership", Value::from(spec.as_str().unwrap()))]),
            ),
            _ => ("@carol:b.test".to_string(), ours(spec)),
        };
        let mut selection = vec![];
        if ty != "m.room.create" {
            for (aty, ask) in [
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.join_rules", ""),
            ] {
                if let Some(e) = host.state_event(&room_id, aty, ask).unwrap() {
                    selection.push(e);
                }
            }
            if let Some(e) = host
                .state_event(&room_id, "m.room.member", &sender)
                .unwrap()
            {
                selection.push(e);
            }
            if ty == "m.room.member"
                && sender != "@carol:b.test"
                && host
                    .state_event(&room_id, "m.room.member", &sender)
                    .unwrap()
                    .is_none()
            {
                // A first join of a remote user in a public room: create, PL, join rules.
            }
        }
        let auth_ids: Vec<Value> = selection
            .iter()
            .map(|e| Value::from(event::event_id(e, v).unwrap()))
            .collect();
        let prev: Vec<Value> = host
            .forward_extremities(&room_id)
            .unwrap()
            .into_iter()
            .map(|(id, _)| Value::from(id))
            .collect();
        depth += 1;
        ts += 1000;
        let mut ev = json::object([
            ("type", Value::from(ty)),
            ("state_key", Value::from(sk)),
            ("sender", Value::from(sender.as_str())),
            ("room_id", Value::from(room_id.as_str())),
            ("content", content),
            ("origin_server_ts", Value::Int(ts)),
            ("depth", Value::Int(depth)),
            ("auth_events", Value::Array(auth_ids)),
            ("prev_events", Value::Array(prev)),
        ]);
        let signer = sender.split_once(':').unwrap().1.to_string();
        event::sign_event(&mut ev, v, &signer, &key).unwrap();
        let id = event::event_id(&ev, v).unwrap();
        host.add_event(&room_id, vid, &id, ev);
    }
    let mut keys = serde_json::Map::new();
    for s in ["a.test", "b.test", "c.test"] {
        keys.insert(
            s.into(),
            serde_json::json!({"ed25519:1": "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}),
        );
    }
    host.add_keys(&serde_json::Value::Object(keys));
    let _ = resident_server;
    Built {
        host,
        room_id,
        version: v,
    }
}

#[test]
fn send_leave_validation_cases() {
    let file = load_case("send_leave_validation.json");
    let resident = Resident::new("b.test", ResidentOptions::default());
    let key = spec_key("ed25519:1");
    let mut failures = vec![];
    for case in cases(&file) {
        let id = case["id"].as_str().unwrap();
        let b = build_validation_room(&file);
        let expect = &case["expect"];
        let origin = case["origin"].as_str().unwrap();
        if id.starts_with("ML-") {
            let endpoint = case["endpoint"].as_str().unwrap();
            let mut parts = endpoint.rsplit('/');
            let user = parts.next().unwrap();
            let room = parts.next().unwrap();
            if case.get("resident_joined") == Some(&serde_json::Value::Bool(false)) {
                // The resident's last member leaves.
                let mut rooms = b.host.rooms.borrow_mut();
                let r = rooms.get_mut(&b.room_id).unwrap();
                let carol_id =
                    r.state[&("m.room.member".to_string(), "@carol:b.test".to_string())].clone();
                let mut ev = r.events[&carol_id].clone();
                ev.as_object_mut().unwrap().insert(
                    "content".into(),
                    json::object([("membership", Value::from("leave"))]),
                );
                r.events.insert(carol_id, ev);
            }
            let r = resident.make_leave(&b.host, room, user, origin);
            let status = expect["status"].as_u64().unwrap() as u16;
            if r.status != status {
                failures.push(format!("{id}: status {} ({:?})", r.status, r.error));
                continue;
            }
            if let Some(code) = expect.get("errcode") {
                if r.error.as_ref().map(|e| e.errcode()) != code.as_str() {
                    failures.push(format!("{id}: errcode {:?}", r.error));
                }
            }
            if status == 200 {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                for k in expect["body_has"].as_array().unwrap() {
                    if body.get(k.as_str().unwrap()).is_none() {
                        failures.push(format!("{id}: body lacks {k}"));
                    }
                }
                for k in ["signatures", "hashes", "event_id"] {
                    if body["event"].get(k).is_some() {
                        failures.push(format!("{id}: template has {k}"));
                    }
                }
                for (k, v) in expect["event_must_have"].as_object().unwrap() {
                    if body["event"][k] != *v {
                        failures.push(format!("{id}: template {k} = {}", body["event"][k]));
                    }
                }
            }
            continue;
        }
        // A send_leave case: complete the case's partial event, sign it as a.test.
        let mut ev = ours(&case["event"]);
        let obj = ev.as_object_mut().unwrap();
        obj.entry("room_id".to_string())
            .or_insert_with(|| Value::from(b.room_id.as_str()));
        obj.insert("origin_server_ts".into(), Value::Int(1_700_000_100_000));
        obj.insert("depth".into(), Value::Int(7));
        let sender = obj["sender"].as_str().unwrap().to_string();
        let mut auth_ids = vec![];
        for (ty, sk) in auth::leave_auth_selection(&sender, &sender, b.version) {
            if let Some(e) = b.host.state_event(&b.room_id, &ty, &sk).unwrap() {
                auth_ids.push(Value::from(event::event_id(&e, b.version).unwrap()));
            }
        }
        obj.insert("auth_events".into(), Value::Array(auth_ids));
        let prev: Vec<Value> = b
            .host
            .forward_extremities(&b.room_id)
            .unwrap()
            .into_iter()
            .map(|(id, _)| Value::from(id))
            .collect();
        obj.insert("prev_events".into(), Value::Array(prev));
        let given_sigs = obj.remove("signatures");
        let signer = sender.split_once(':').unwrap().1.to_string();
        event::sign_event(&mut ev, b.version, &signer, &key).unwrap();
        if let Some(s) = given_sigs {
            ev.as_object_mut().unwrap().insert("signatures".into(), s);
        }
        let event_id = match case.get("path_event_id") {
            Some(p) => p.as_str().unwrap().to_string(),
            None => event::event_id(&ev, b.version).unwrap(),
        };
        let path_room = case
            .get("path_room_id")
            .and_then(|p| p.as_str())
            .unwrap_or(&b.room_id);
        for api in [SendLeaveApi::V2, SendLeaveApi::V1] {
            let host = build_validation_room(&file).host;
            let r =
                resident.send_leave(&host, path_room, &event_id, &ev.to_canonical(), origin, api);
            let status = expect["status"].as_u64().unwrap() as u16;
            let ok = r.status == status
                && expect.get("errcode").and_then(|c| c.as_str())
                    == r.error.as_ref().map(|e| e.errcode());
            if !ok {
                failures.push(format!("{id} {api:?}: got {} {:?}", r.status, r.error));
                continue;
            }
            if status == 200 {
                let want = if api == SendLeaveApi::V2 {
                    &expect["body_v2"]
                } else {
                    &expect["body_v1"]
                };
                let got: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                if got != *want {
                    failures.push(format!("{id}: body {got}"));
                }
                // The happy path is relayed to the room's other servers (none here but b.test
                // and the origin a.test, so nobody).
                if r.accepted
                    .as_ref()
                    .unwrap()
                    .relay_to
                    .contains(&origin.to_string())
                {
                    failures.push(format!("{id}: relays back to the origin"));
                }
                if host.stored.borrow().len() != 1 {
                    failures.push(format!(
                        "{id}: stored {} events",
                        host.stored.borrow().len()
                    ));
                }
            } else if !host.stored.borrow().is_empty() {
                failures.push(format!("{id}: refused but stored"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn make_leave_template_shape_per_version() {
    // The template for a joined user in each vector room: spec fields, no hashes/signatures,
    // depth = max(prev depth) + 1, auth events by the selection algorithm.
    let file = load("leave_auth.json");
    let resident = Resident::new("resident.example", ResidentOptions::default());
    for n in 1..=12 {
        let room_name = format!("v{n}/joined");
        let host = vector_host(&file, &room_name);
        let room_id = file["rooms"][&room_name]["room_id"].as_str().unwrap();
        let r = resident.make_leave(&host, room_id, "@user:remote.example", "remote.example");
        assert_eq!(r.status, 200, "v{n}: {:?}", r.error);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["room_version"], n.to_string());
        let ev = &body["event"];
        assert_eq!(ev["type"], "m.room.member");
        assert_eq!(ev["content"], serde_json::json!({"membership": "leave"}));
        assert_eq!(ev["sender"], "@user:remote.example");
        assert_eq!(ev["state_key"], "@user:remote.example");
        assert_eq!(ev["room_id"], room_id);
        assert_eq!(ev["origin"], "resident.example");
        assert!(ev.get("hashes").is_none() && ev.get("signatures").is_none());
        let v = RoomVersion::get(&n.to_string()).unwrap();
        assert_eq!(ev.get("event_id").is_some(), !v.event_id_is_hash());
        let events = file["rooms"][&room_name]["events"].as_array().unwrap();
        let max_depth = events
            .iter()
            .map(|e| e["pdu"]["depth"].as_i64().unwrap())
            .max()
            .unwrap();
        assert_eq!(ev["depth"].as_i64().unwrap(), max_depth + 1);
        let auth = ev["auth_events"].as_array().unwrap();
        // create (not in v12), power levels, the user's membership; never join rules.
        assert_eq!(
            auth.len(),
            if v.create_in_auth_events { 3 } else { 2 },
            "v{n}"
        );
        if v.event_refs_are_pairs() {
            assert!(auth.iter().all(|a| a[1]["sha256"].is_string()));
        }
    }
    // A user who has left, was kicked or banned, or never joined gets no template.
    for room in [
        "v10/left",
        "v10/kicked",
        "v10/banned",
        "v10/none",
        "v6/knocked_unsupported",
    ] {
        let host = vector_host(&file, room);
        let room_id = file["rooms"][room]["room_id"].as_str().unwrap();
        let r = resident.make_leave(&host, room_id, "@user:remote.example", "remote.example");
        assert_eq!(
            (r.status, r.error.map(|e| e.errcode())),
            (403, Some("M_FORBIDDEN")),
            "{room}"
        );
    }
    for room in ["v10/invited", "v10/knocked"] {
        let host = vector_host(&file, room);
        let room_id = file["rooms"][room]["room_id"].as_str().unwrap();
        let r = resident.make_leave(&host, room_id, "@user:remote.example", "remote.example");
        assert_eq!(r.status, 200, "{room}");
    }
}

#[test]
fn v1_event_id_of_an_existing_event_is_no_shortcut_past_the_signatures() {
    // In room versions 1 and 2 the sender writes the event ID. Naming an event the room
    // already has must not make an unsigned leave look like a stored duplicate.
    let file = load("leave_auth.json");
    let host = vector_host(&file, "v1/invited");
    let room = &file["rooms"]["v1/invited"];
    let room_id = room["room_id"].as_str().unwrap();
    let existing = room["events"][1]["event_id"].as_str().unwrap();
    let case = cases(&file)
        .iter()
        .find(|c| {
            c["input"]["room"] == "v1/invited" && c["expected"]["send_leave"]["verdict"] == "accept"
        })
        .unwrap();
    let mut ev = case["input"]["event"].clone();
    ev["event_id"] = serde_json::Value::from(existing);
    ev["signatures"] = serde_json::json!({});
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let encoded = existing.replace('$', "%24").replace(':', "%3A");
    let r = resident.send_leave(
        &host,
        room_id,
        &encoded,
        &ours(&ev).to_canonical(),
        "remote.example",
        SendLeaveApi::V2,
    );
    assert_eq!(
        (r.status, r.error.map(|e| e.errcode())),
        (400, Some("M_INVALID_PARAM"))
    );
    assert!(host.stored.borrow().is_empty());
}

#[test]
fn unsigned_from_the_sender_is_not_stored() {
    let file = load("leave_auth.json");
    let case = cases(&file)
        .iter()
        .find(|c| c["name"] == "v10_self_leave_prior_invite")
        .unwrap();
    let host = vector_host(&file, "v10/invited");
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let mut ev = case["input"]["event"].clone();
    // `unsigned` is covered by neither the hash nor the signature.
    ev["unsigned"] =
        serde_json::json!({"age": -5, "redacted_because": {"type": "m.room.redaction"}});
    let req = &case["input"]["request"];
    let r = send_to_case_path(
        &resident,
        &host,
        req,
        &ours(&ev).to_canonical(),
        SendLeaveApi::V2,
    );
    assert_eq!(r.status, 200, "{:?}", r.error);
    let stored = host.stored.borrow();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.get("unsigned").is_none());
    assert_eq!(theirs(&stored[0].1), case["input"]["event"]);
}
