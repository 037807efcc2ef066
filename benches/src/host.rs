//! The two in-memory hosts: one for the Rust API (parsed events shared behind an `Arc`, as a
//! host with a cache of parsed events hands them over) and one behind the C ABI
//! (`extern "C"` callbacks answering with JSON bytes, as a C or database-backed host would).
//! Neither keeps what it is asked to store, so the same leave can be submitted again and
//! again without becoming a duplicate.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::Arc;

use matrix_leave::json::Value;
use matrix_leave::keys::ServerKey;
use matrix_leave::resident::{LogLevel, ResidentHost};
use matrix_leave::version::RoomVersion;
use matrix_leave::Error;

use matrix_leave::ffi::resident::{
    mxl_lookup, mxl_out, mxl_out_set, mxl_resident, mxl_resident_callbacks, mxl_resident_config,
    mxl_resident_new, mxl_store, MXL_CB_NOT_FOUND, MXL_CB_OK,
};

use crate::world::{World, NOW_MS, ORIGIN, RESIDENT};

/// The Rust API host.
pub struct ApiHost<'w> {
    world: &'w World,
    pub stored: Cell<usize>,
}

impl<'w> ApiHost<'w> {
    pub fn new(world: &'w World) -> ApiHost<'w> {
        ApiHost {
            world,
            stored: Cell::new(0),
        }
    }
}

impl ResidentHost for ApiHost<'_> {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        Ok(self.world.room(room_id).map(|r| r.version.id.to_string()))
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        Ok(self
            .world
            .room(room_id)
            .and_then(|r| r.state_id(ty, sk).map(|id| r.events[id].clone())))
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        Ok(self
            .world
            .room(room_id)
            .and_then(|r| r.events.get(event_id).cloned()))
    }

    // A host keeps its state as event IDs, so it names them without hashing the events.
    fn state_event_id(
        &self,
        room_id: &str,
        ty: &str,
        sk: &str,
        _: &RoomVersion,
    ) -> Result<Option<String>, Error> {
        Ok(self
            .world
            .room(room_id)
            .and_then(|r| r.state_id(ty, sk).cloned()))
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        Ok(self
            .world
            .room(room_id)
            .map(|r| r.extremities.clone())
            .unwrap_or_default())
    }

    // No logger: the records are not built.
    fn log_enabled(&self, _: LogLevel) -> bool {
        false
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .world
            .room(room_id)
            .map(|r| r.servers.clone())
            .unwrap_or_default())
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        Ok(if server == ORIGIN {
            self.world.server_keys.clone()
        } else {
            vec![]
        })
    }

    fn store_event(&self, _: &str, _: &str, _: &Value, _: bool) -> Result<(), Error> {
        self.stored.set(self.stored.get() + 1);
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        NOW_MS
    }
}

// ---- C ABI host ------------------------------------------------------------------------

struct CRoom {
    version: Vec<u8>,
    events: HashMap<String, Vec<u8>>,
    state: HashMap<String, HashMap<String, String>>,
    extremities_json: Vec<u8>,
    servers_json: Vec<u8>,
}

/// What the C callbacks reach through `userdata`.
pub struct CWorld {
    rooms: HashMap<String, CRoom>,
    keys_json: Vec<u8>,
    pub stored: Cell<usize>,
}

impl CWorld {
    pub fn new(world: &World) -> Box<CWorld> {
        let rooms = world
            .rooms
            .iter()
            .map(|r| {
                let ext = serde_json::to_vec(
                    &r.extremities
                        .iter()
                        .map(|(id, d)| serde_json::json!([id, d]))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                (
                    r.room_id.clone(),
                    CRoom {
                        version: r.version.id.as_bytes().to_vec(),
                        events: r.events_json.clone(),
                        state: r.state.clone(),
                        extremities_json: ext,
                        servers_json: serde_json::to_vec(&r.servers).unwrap(),
                    },
                )
            })
            .collect();
        let keys_json = serde_json::to_vec(&serde_json::json!({
            crate::world::KEY_ID: {"key": world.public_key_b64}
        }))
        .unwrap();
        Box::new(CWorld {
            rooms,
            keys_json,
            stored: Cell::new(0),
        })
    }
}

/// # Safety
/// NULL or a NUL-terminated string valid for the callback.
unsafe fn s<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        ""
    } else {
        // SAFETY: the library passes NUL-terminated UTF-8 valid during the callback.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
    }
}

/// # Safety
/// `out` is the callback's output slot.
unsafe fn answer(out: *mut mxl_out, bytes: &[u8]) -> i32 {
    // SAFETY: as documented for mxl_out_set.
    unsafe { mxl_out_set(out, bytes.as_ptr(), bytes.len()) };
    MXL_CB_OK
}

/// # Safety
/// `ud` is the CWorld given to mxl_resident_new.
unsafe fn cw<'a>(ud: *mut c_void) -> &'a CWorld {
    // SAFETY: the CWorld outlives the resident context.
    unsafe { &*(ud as *const CWorld) }
}

unsafe extern "C" fn cb_room_version(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    // SAFETY: pointers from the library, valid for the call.
    unsafe {
        match cw(ud).rooms.get(s((*q).room_id)) {
            Some(r) => answer(out, &r.version),
            None => MXL_CB_NOT_FOUND,
        }
    }
}

unsafe extern "C" fn cb_state_event(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    // SAFETY: as above.
    unsafe {
        let q = &*q;
        let Some(r) = cw(ud).rooms.get(s(q.room_id)) else {
            return MXL_CB_NOT_FOUND;
        };
        match r
            .state
            .get(s(q.event_type))
            .and_then(|m| m.get(s(q.state_key)))
            .and_then(|id| r.events.get(id))
        {
            Some(ev) => answer(out, ev),
            None => MXL_CB_NOT_FOUND,
        }
    }
}

unsafe extern "C" fn cb_get_event(ud: *mut c_void, q: *const mxl_lookup, out: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        let q = &*q;
        match cw(ud)
            .rooms
            .get(s(q.room_id))
            .and_then(|r| r.events.get(s(q.event_id)))
        {
            Some(ev) => answer(out, ev),
            None => MXL_CB_NOT_FOUND,
        }
    }
}

unsafe extern "C" fn cb_extremities(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    // SAFETY: as above.
    unsafe {
        match cw(ud).rooms.get(s((*q).room_id)) {
            Some(r) => answer(out, &r.extremities_json),
            None => MXL_CB_NOT_FOUND,
        }
    }
}

unsafe extern "C" fn cb_servers(ud: *mut c_void, q: *const mxl_lookup, out: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        match cw(ud).rooms.get(s((*q).room_id)) {
            Some(r) => answer(out, &r.servers_json),
            None => MXL_CB_NOT_FOUND,
        }
    }
}

unsafe extern "C" fn cb_server_keys(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    // SAFETY: as above.
    unsafe {
        if s((*q).server_name) == ORIGIN {
            answer(out, &cw(ud).keys_json)
        } else {
            MXL_CB_NOT_FOUND
        }
    }
}

unsafe extern "C" fn cb_store(ud: *mut c_void, p: *const mxl_store) -> i32 {
    // SAFETY: as above; a real host would copy the bytes out here.
    unsafe {
        let p = &*p;
        std::hint::black_box(std::slice::from_raw_parts(p.event_json, p.event_json_len));
        let w = cw(ud);
        w.stored.set(w.stored.get() + 1);
    }
    MXL_CB_OK
}

unsafe extern "C" fn cb_now(_: *mut c_void) -> i64 {
    NOW_MS
}

/// A resident context over `cworld`, which must outlive it.
pub fn c_resident(cworld: &CWorld) -> *mut mxl_resident {
    let callbacks = mxl_resident_callbacks {
        userdata: cworld as *const CWorld as *mut c_void,
        userdata_free: None,
        room_version: Some(cb_room_version),
        state_event: Some(cb_state_event),
        get_event: Some(cb_get_event),
        forward_extremities: Some(cb_extremities),
        servers_in_room: Some(cb_servers),
        server_keys: Some(cb_server_keys),
        store_event: Some(cb_store),
        now_ms: Some(cb_now),
        log: None,
    };
    let name = std::ffi::CString::new(RESIDENT).unwrap();
    let config = mxl_resident_config {
        server_name: name.as_ptr(),
        enable_v1: true,
        acl_allows_leave: false,
    };
    let mut out: *mut mxl_resident = ptr::null_mut();
    // SAFETY: valid config and callbacks for the call.
    let code = unsafe { mxl_resident_new(&config, &callbacks, &mut out, ptr::null_mut()) };
    assert_eq!(code as u32, 0, "mxl_resident_new");
    out
}
