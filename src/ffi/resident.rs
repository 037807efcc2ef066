//! C ABI of the resident side: a context built from host callbacks that answers make_leave
//! and send_leave.

#![expect(
    non_camel_case_types,
    reason = "C type names follow the mxl_ naming of the ABI"
)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, OnceLock, RwLock};

use super::{guard, guard_or, mxl_bytes, mxl_error, out_arg, ref_arg, slice_arg, str_arg};
use crate::error::{Code, Error};
use crate::json::{self, Mode, Object, Value};
use crate::keys::{ServerKey, VerifyKey};
use crate::resident::{self, LogLevel, Resident, ResidentHost, ResidentOptions, SendLeaveApi};
use crate::version::RoomVersion;

/// What a lookup callback is asked for. Fields that do not apply to a callback are NULL.
/// The strings are borrowed for the duration of the callback only.
#[repr(C)]
pub struct mxl_lookup {
    /// The room, for room lookups.
    pub room_id: *const c_char,
    /// The event type, for `state_event`.
    pub event_type: *const c_char,
    /// The state key, for `state_event`.
    pub state_key: *const c_char,
    /// The event ID, for `get_event`.
    pub event_id: *const c_char,
    /// The remote server, for `server_keys`.
    pub server_name: *const c_char,
}

/// What `store_event` is asked to store. Borrowed for the duration of the callback only.
#[repr(C)]
pub struct mxl_store {
    /// The room.
    pub room_id: *const c_char,
    /// The event's ID.
    pub event_id: *const c_char,
    /// The event as canonical JSON (not NUL-terminated).
    pub event_json: *const u8,
    /// Length of `event_json`.
    pub event_json_len: usize,
    /// True when the event passed its auth events but not the current state: keep it, but
    /// do not relay it or treat it as current state.
    pub soft_failed: bool,
}

/// A place a callback writes its answer into with `mxl_out_set`. Owned by the library.
pub struct mxl_out {
    data: Option<Vec<u8>>,
}

pub use super::abi::{MXL_CB_ERROR, MXL_CB_NOT_FOUND, MXL_CB_OK};

/// A lookup callback: answers `query` by calling `mxl_out_set(out, ...)` and returning
/// `MXL_CB_OK`, or returns `MXL_CB_NOT_FOUND` or `MXL_CB_ERROR`.
pub type mxl_lookup_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, query: *const mxl_lookup, out: *mut mxl_out) -> i32,
>;

/// The host callbacks of a resident context. Every pointer may be NULL; a missing callback
/// behaves as one that fails (`500 M_UNKNOWN`), except `now_ms` (the system clock is used)
/// and `log` (records are dropped). The callbacks may be called from any thread that uses
/// the context, and concurrently when the host shares the context between threads.
///
/// The context keeps the events `state_event` and `get_event` return in parsed form (up to
/// 4096 events or about 32 MiB of heap, JSON and parsed trees counted together; an event
/// whose share would pass 512 KiB is not kept) and reuses one only when the callback
/// answers the same query with the same bytes again, so every answer is still asked for
/// and changes are seen at once.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mxl_resident_callbacks {
    /// Passed first to every callback.
    pub userdata: *mut c_void,
    /// Called once with `userdata` when the context is freed (or when `mxl_resident_new`
    /// fails after taking the callbacks). May be NULL.
    pub userdata_free: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
    /// `room_id` -> the room version string, or NOT_FOUND for an unknown room.
    pub room_version: mxl_lookup_fn,
    /// `room_id`, `event_type`, `state_key` -> the current state event as JSON.
    pub state_event: mxl_lookup_fn,
    /// `room_id`, `event_id` -> the event as JSON, if the host has it.
    pub get_event: mxl_lookup_fn,
    /// `room_id` -> the forward extremities as JSON `[["$id", depth], ...]`.
    pub forward_extremities: mxl_lookup_fn,
    /// `room_id` -> the servers with joined members as JSON `["a.example", ...]`.
    pub servers_in_room: mxl_lookup_fn,
    /// `server_name` -> its verify keys as JSON
    /// `{"ed25519:x": {"key": "base64", "valid_until_ts": n, "expired_ts": n}}`; a bare
    /// `"base64"` string is accepted for a key without validity information.
    pub server_keys: mxl_lookup_fn,
    /// Stores an accepted event; return `MXL_CB_OK` only once it is stored.
    pub store_event:
        Option<unsafe extern "C" fn(userdata: *mut c_void, params: *const mxl_store) -> i32>,
    /// The current time in milliseconds since the Unix epoch.
    pub now_ms: Option<unsafe extern "C" fn(userdata: *mut c_void) -> i64>,
    /// A log record: `level` is 1 (error) to 5 (trace); `message` is UTF-8 of `len` bytes,
    /// not NUL-terminated, borrowed for the call.
    pub log: Option<
        unsafe extern "C" fn(userdata: *mut c_void, level: u32, message: *const c_char, len: usize),
    >,
}

/// Options of a resident context.
#[repr(C)]
pub struct mxl_resident_config {
    /// This server's name (NUL-terminated UTF-8). Required.
    pub server_name: *const c_char,
    /// Answer the legacy `PUT /v1/send_leave`.
    pub enable_v1: bool,
    /// Let a server the room's ACL denies still leave.
    pub acl_allows_leave: bool,
}

/// A resident context: immutable after creation and safe to share between threads.
pub struct mxl_resident {
    resident: Resident,
    host: CHost,
}

/// The answer to a make_leave or send_leave request.
pub struct mxl_response {
    inner: resident::Response,
    errcode: CString,
    message: CString,
    event_id: CString,
}

struct CHost {
    cb: mxl_resident_callbacks,
    key_cache: RwLock<HashMap<String, VerifyKey>>,
    event_cache: RwLock<EventCache>,
}

/// Events parsed from `state_event` and `get_event` answers, so that an event the host hands
/// over again byte for byte is not parsed, nor its ID or reference hash computed, again (the
/// auth events and the sender's membership come back on every request about a room). An
/// entry is found by a hash of the query and used only when the host's bytes are identical
/// to the ones it was parsed from, so a lookup's result never depends on the cache.
#[derive(Default)]
struct EventCache {
    entries: HashMap<u64, Arc<CachedEvent>>,
    /// The sum of the entries' `weight`.
    weight: usize,
}

/// One parsed answer, with what has been computed from it so far.
struct CachedEvent {
    raw: Box<[u8]>,
    ev: Arc<Value>,
    /// About how much heap the entry holds: its JSON and its parsed tree.
    weight: usize,
    /// The event's ID, under the room version named first.
    id: OnceLock<(&'static str, String)>,
    /// The event's reference hash, under the room version named first.
    reference: OnceLock<(&'static str, [u8; 32])>,
}

/// Most entries the event cache holds; it is emptied when a new entry would pass this.
const EVENT_CACHE_ENTRIES: usize = 4096;
/// Most heap the event cache holds, counted by [`heap_weight`]; it is emptied when a new
/// entry would pass this, and an entry heavier than a 64th of it is not kept at all.
const EVENT_CACHE_WEIGHT: usize = 32 << 20;

/// About how much heap a parsed value holds, erring high: a parsed tree can be many times
/// its JSON (`{"":0}` is 7 bytes of text and a whole B-tree node), so the cache's bound
/// counts trees, not text.
fn heap_weight(v: &Value) -> usize {
    const VALUE: usize = std::mem::size_of::<Value>();
    const ENTRY: usize = std::mem::size_of::<String>() + VALUE;
    // A B-tree node holds up to 11 entries; count every node as if a third full.
    const NODE: usize = 11 * ENTRY + 64;
    VALUE
        + match v {
            Value::Null | Value::Bool(_) | Value::Int(_) => 0,
            Value::Number(n) => n.len(),
            Value::String(s) => s.capacity(),
            Value::Array(a) => a.capacity() * VALUE + a.iter().map(heap_weight).sum::<usize>(),
            Value::Object(o) => {
                NODE * (1 + o.len() / 4)
                    + o.iter()
                        .map(|(k, v)| k.capacity() + heap_weight(v))
                        .sum::<usize>()
            }
        }
}

// SAFETY: the callbacks' contract (documented on mxl_resident_callbacks) makes them callable
// from any thread, concurrently; the library never touches `userdata` itself.
unsafe impl Send for CHost {}
// SAFETY: as above.
unsafe impl Sync for CHost {}

impl Drop for CHost {
    fn drop(&mut self) {
        if let Some(free) = self.cb.userdata_free {
            // SAFETY: the host gave this finalizer for this userdata; it runs exactly once.
            unsafe { free(self.cb.userdata) };
        }
    }
}

fn cstring(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::invalid("a string handed to a callback contains a NUL byte"))
}

impl CHost {
    fn lookup(
        &self,
        name: &str,
        f: mxl_lookup_fn,
        q: [Option<&str>; 5],
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(f) = f else {
            return Err(Error::host(format!("the {name} callback is not set")));
        };
        // No host can hold an ID with a NUL in it: such a thing does not exist.
        if q.iter().flatten().any(|s| s.contains('\0')) {
            return Ok(None);
        }
        // The query's strings, each NUL-terminated, in one buffer: on the stack when they fit.
        let total: usize = q.iter().flatten().map(|s| s.len() + 1).sum();
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if total <= stack.len() {
            &mut stack
        } else {
            heap.resize(total, 0);
            &mut heap
        };
        let mut starts = [None; 5];
        let mut at = 0;
        for (i, part) in q.iter().enumerate() {
            if let Some(part) = part {
                buf[at..at + part.len()].copy_from_slice(part.as_bytes());
                buf[at + part.len()] = 0;
                starts[i] = Some(at);
                at += part.len() + 1;
            }
        }
        let base = buf.as_ptr();
        // SAFETY: every start is an offset inside `buf`, which outlives the callback.
        let p = |i: usize| starts[i].map_or(std::ptr::null(), |o| unsafe { base.add(o) }.cast());
        let query = mxl_lookup {
            room_id: p(0),
            event_type: p(1),
            state_key: p(2),
            event_id: p(3),
            server_name: p(4),
        };
        let mut out = mxl_out { data: None };
        // SAFETY: the host's callback, called with its own userdata and pointers valid for
        // the call.
        let status = unsafe { f(self.cb.userdata, &query, &mut out) };
        match status {
            MXL_CB_OK => out.data.map(Some).ok_or_else(|| {
                Error::host(format!(
                    "the {name} callback returned OK without calling mxl_out_set"
                ))
            }),
            MXL_CB_NOT_FOUND => Ok(None),
            other => Err(Error::host(format!(
                "the {name} callback failed (status {other})"
            ))),
        }
    }

    fn lookup_json(
        &self,
        name: &str,
        f: mxl_lookup_fn,
        q: [Option<&str>; 5],
    ) -> Result<Option<Value>, Error> {
        match self.lookup(name, f, q)? {
            None => Ok(None),
            Some(bytes) => parse_answer(name, &bytes).map(Some),
        }
    }

    /// A `state_event` or `get_event` lookup: the event, parsed or taken from the cache.
    fn lookup_event(
        &self,
        name: &str,
        f: mxl_lookup_fn,
        q: [Option<&str>; 5],
    ) -> Result<Option<Arc<CachedEvent>>, Error> {
        let Some(bytes) = self.lookup(name, f, q)? else {
            return Ok(None);
        };
        // FNV-1a over the query. A collision costs a parse, never a wrong answer (the bytes
        // are compared), so the slot needs no keyed hash; the map rehashes it with its own.
        let slot = {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            let parts = std::iter::once(Some(name)).chain(q);
            for part in parts {
                for &b in part.unwrap_or("").as_bytes().iter().chain(&[0xff]) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            h
        };
        if let Ok(cache) = self.event_cache.read() {
            if let Some(hit) = cache.entries.get(&slot) {
                if *hit.raw == *bytes {
                    return Ok(Some(Arc::clone(hit)));
                }
            }
        }
        let ev = parse_answer(name, &bytes)?;
        if ev.as_object().is_none() {
            return Err(malformed(name, "the event is not a JSON object"));
        }
        let ev = Arc::new(ev);
        let weight = bytes.len() + heap_weight(&ev);
        let entry = Arc::new(CachedEvent {
            raw: bytes.into_boxed_slice(),
            ev,
            weight,
            id: OnceLock::new(),
            reference: OnceLock::new(),
        });
        if weight <= EVENT_CACHE_WEIGHT / 64 {
            // What the insert pushes out is freed after the lock is released, so that other
            // lookups do not wait while a full cache's trees are dropped.
            let mut evicted = None;
            let mut replaced = None;
            if let Ok(mut cache) = self.event_cache.write() {
                if cache.entries.len() >= EVENT_CACHE_ENTRIES
                    || cache.weight + weight > EVENT_CACHE_WEIGHT
                {
                    evicted = Some(std::mem::take(&mut *cache));
                }
                cache.weight += weight;
                replaced = cache.entries.insert(slot, Arc::clone(&entry));
                if let Some(old) = &replaced {
                    cache.weight -= old.weight;
                }
            }
            drop((evicted, replaced));
        }
        Ok(Some(entry))
    }

    /// The `state_event` callback, through the cache.
    fn cached_state_event(
        &self,
        room_id: &str,
        ty: &str,
        sk: &str,
    ) -> Result<Option<Arc<CachedEvent>>, Error> {
        self.lookup_event(
            "state_event",
            self.cb.state_event,
            [Some(room_id), Some(ty), Some(sk), None, None],
        )
    }

    /// The `get_event` callback, through the cache.
    fn cached_event(
        &self,
        room_id: &str,
        event_id: &str,
    ) -> Result<Option<Arc<CachedEvent>>, Error> {
        self.lookup_event(
            "get_event",
            self.cb.get_event,
            [Some(room_id), None, None, Some(event_id), None],
        )
    }

    fn decode_key(&self, text: &str) -> Result<VerifyKey, Error> {
        if let Some(k) = self
            .key_cache
            .read()
            .ok()
            .and_then(|c| c.get(text).copied())
        {
            return Ok(k);
        }
        let k = VerifyKey::from_b64(text)?;
        if let Ok(mut c) = self.key_cache.write() {
            if c.len() > 4096 {
                c.clear();
            }
            c.insert(text.to_string(), k);
        }
        Ok(k)
    }
}

/// A callback's answer as JSON; malformed JSON is a failure of the host.
fn parse_answer(name: &str, bytes: &[u8]) -> Result<Value, Error> {
    Value::parse(bytes, Mode::Lenient)
        .map_err(|e| Error::host(format!("the {name} callback returned malformed JSON: {e}")))
}

/// What was computed from a cached event under `version`: the remembered value when it was
/// computed under the same room version, else `compute`'s, remembered if it is the first.
fn memo<T: Clone>(
    cell: &OnceLock<(&'static str, T)>,
    version: &RoomVersion,
    compute: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    if let Some((v, value)) = cell.get() {
        if *v == version.id {
            return Ok(value.clone());
        }
    }
    let value = compute()?;
    let _ = cell.set((version.id, value.clone()));
    Ok(value)
}

fn malformed(name: &str, what: &str) -> Error {
    Error::host(format!(
        "the {name} callback returned malformed data: {what}"
    ))
}

impl ResidentHost for CHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.lookup(
            "room_version",
            self.cb.room_version,
            [Some(room_id), None, None, None, None],
        )?
        .map(|b| String::from_utf8(b).map_err(|_| malformed("room_version", "not UTF-8")))
        .transpose()
    }

    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        Ok(self
            .cached_state_event(room_id, ty, sk)?
            .map(|c| Arc::clone(&c.ev)))
    }

    fn state_event_id(
        &self,
        room_id: &str,
        ty: &str,
        sk: &str,
        version: &RoomVersion,
    ) -> Result<Option<String>, Error> {
        self.cached_state_event(room_id, ty, sk)?
            .map(|c| memo(&c.id, version, || resident::stored_event_id(&c.ev, version)))
            .transpose()
    }

    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        Ok(self
            .cached_event(room_id, event_id)?
            .map(|c| Arc::clone(&c.ev)))
    }

    fn event_reference_hash(
        &self,
        room_id: &str,
        event_id: &str,
        version: &RoomVersion,
    ) -> Result<Option<[u8; 32]>, Error> {
        self.cached_event(room_id, event_id)?
            .map(|c| {
                memo(&c.reference, version, || {
                    crate::event::reference_hash(&c.ev, version)
                })
            })
            .transpose()
    }

    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        let v = self
            .lookup_json(
                "forward_extremities",
                self.cb.forward_extremities,
                [Some(room_id), None, None, None, None],
            )?
            .unwrap_or(Value::Array(vec![]));
        let arr = v
            .as_array()
            .ok_or_else(|| malformed("forward_extremities", "not an array"))?;
        arr.iter()
            .map(|e| {
                let pair = e.as_array().filter(|p| p.len() == 2);
                match pair.map(|p| (p[0].as_str(), p[1].as_i64())) {
                    Some((Some(id), Some(depth))) => Ok((id.to_string(), depth)),
                    _ => Err(malformed(
                        "forward_extremities",
                        "entries must be [event_id, depth]",
                    )),
                }
            })
            .collect()
    }

    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        let v = self
            .lookup_json(
                "servers_in_room",
                self.cb.servers_in_room,
                [Some(room_id), None, None, None, None],
            )?
            .unwrap_or(Value::Array(vec![]));
        v.as_array()
            .ok_or_else(|| malformed("servers_in_room", "not an array"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed("servers_in_room", "not a string"))
            })
            .collect()
    }

    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        let Some(v) = self.lookup_json(
            "server_keys",
            self.cb.server_keys,
            [None, None, None, None, Some(server)],
        )?
        else {
            return Ok(vec![]);
        };
        let obj = v
            .as_object()
            .ok_or_else(|| malformed("server_keys", "not an object"))?;
        let mut out = Vec::with_capacity(obj.len());
        for (id, entry) in obj {
            let (text, until, expired) = match entry {
                Value::String(s) => (s.as_str(), None, None),
                Value::Object(m) => (
                    m.get("key")
                        .and_then(Value::as_str)
                        .ok_or_else(|| malformed("server_keys", "key is missing"))?,
                    m.get("valid_until_ts").and_then(Value::as_i64),
                    m.get("expired_ts").and_then(Value::as_i64),
                ),
                _ => {
                    return Err(malformed(
                        "server_keys",
                        "entries must be strings or objects",
                    ))
                }
            };
            let key = self
                .decode_key(text)
                .map_err(|e| malformed("server_keys", &e.message))?;
            out.push(ServerKey {
                key_id: id.clone(),
                key,
                valid_until_ts: until,
                expired_ts: expired,
            });
        }
        Ok(out)
    }

    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        event: &Value,
        soft_failed: bool,
    ) -> Result<(), Error> {
        let Some(f) = self.cb.store_event else {
            return Err(Error::host("the store_event callback is not set"));
        };
        let room = cstring(room_id)?;
        let id = cstring(event_id)?;
        let bytes = event.to_canonical();
        let params = mxl_store {
            room_id: room.as_ptr(),
            event_id: id.as_ptr(),
            event_json: bytes.as_ptr(),
            event_json_len: bytes.len(),
            soft_failed,
        };
        // SAFETY: the host's callback with pointers valid for the call.
        match unsafe { f(self.cb.userdata, &params) } {
            MXL_CB_OK => Ok(()),
            other => Err(Error::host(format!(
                "the store_event callback failed (status {other})"
            ))),
        }
    }

    fn now_ms(&self) -> i64 {
        match self.cb.now_ms {
            // SAFETY: the host's callback.
            Some(f) => unsafe { f(self.cb.userdata) },
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }

    fn log_enabled(&self, _level: LogLevel) -> bool {
        self.cb.log.is_some()
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(f) = self.cb.log {
            // SAFETY: the host's callback with a buffer valid for the call.
            unsafe {
                f(
                    self.cb.userdata,
                    level as u32,
                    message.as_ptr().cast(),
                    message.len(),
                )
            };
        }
    }
}

/// Copies `len` bytes at `data` as a callback's answer. Call it at most once per callback;
/// a second call replaces the first answer. `(NULL, 0)` sets an empty answer.
///
/// `out` is the pointer the callback received; `data` is only read during this call.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_out_set(out: *mut mxl_out, data: *const u8, len: usize) {
    guard_or((), || {
        // SAFETY: the library handed this pointer to the callback that is running.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return;
        };
        // SAFETY: the caller promises `len` readable bytes.
        if let Ok(bytes) = unsafe { slice_arg(data, len, "data") } {
            out.data = Some(bytes.to_vec());
        }
    })
}

/// Creates a resident context for this server.
///
/// `config` and `callbacks` are read during the call; the callbacks and their `userdata`
/// are kept until `mxl_resident_free`, which calls `userdata_free`. On failure
/// `userdata_free` is called before returning, so the host never has to.
///
/// Returns `MXL_RESULT_OK` and sets `*out_resident`, which the caller frees with
/// `mxl_resident_free`.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_resident_new(
    config: *const mxl_resident_config,
    callbacks: *const mxl_resident_callbacks,
    out_resident: *mut *mut mxl_resident,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        if !out_resident.is_null() {
            unsafe { out_resident.write(std::ptr::null_mut()) };
        }
        let callbacks = unsafe { ref_arg(callbacks, "callbacks") }?;
        let host = CHost {
            cb: mxl_resident_callbacks { ..*callbacks },
            key_cache: RwLock::new(HashMap::new()),
            event_cache: RwLock::new(EventCache::default()),
        };
        // From here `host` owns userdata: dropping it on an error path finalizes it.
        let out = unsafe { out_arg(out_resident, "out_resident") }?;
        let config = unsafe { ref_arg(config, "config") }?;
        let server_name = unsafe { str_arg(config.server_name, "config.server_name") }?;
        if !crate::xmatrix::is_valid_server_name(server_name) {
            return Err(Error::invalid(format!(
                "config.server_name {server_name:?} is not a valid server name"
            )));
        }
        let options = ResidentOptions {
            enable_v1: config.enable_v1,
            acl_allows_leave: config.acl_allows_leave,
        };
        *out = Box::into_raw(Box::new(mxl_resident {
            resident: Resident::new(server_name, options),
            host,
        }));
        Ok(())
    })
}

/// Frees a resident context and calls its `userdata_free`. NULL is ignored. No other thread
/// may be using the context.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_resident_free(resident: *mut mxl_resident) {
    guard_or((), || {
        if !resident.is_null() {
            // SAFETY: made by mxl_resident_new and not freed before, by the caller's contract.
            drop(unsafe { Box::from_raw(resident) });
        }
    })
}

fn into_response(inner: resident::Response) -> *mut mxl_response {
    let (errcode, message) = match &inner.error {
        Some(e) => (e.errcode(), e.message.as_str()),
        None => ("", ""),
    };
    let event_id = inner
        .accepted
        .as_ref()
        .map(|a| a.event_id.as_str())
        .unwrap_or("");
    Box::into_raw(Box::new(mxl_response {
        errcode: super::c_string_lossy(errcode),
        message: super::c_string_lossy(message),
        event_id: super::c_string_lossy(event_id),
        inner,
    }))
}

/// Answers `GET /_matrix/federation/v1/make_leave/{room_id}/{user_id}`.
///
/// `room_id` and `user_id` are the path parameters (percent-encoded or not); `origin` is the
/// requesting server as authenticated by its X-Matrix header. Returns `MXL_RESULT_OK` with
/// `*out_response` set for every answer, a refusal included: read its status and body with
/// the `mxl_response_*` functions and free it with `mxl_response_free`. Any other result means
/// an argument was unusable and no response was made.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_resident_make_leave(
    resident: *const mxl_resident,
    room_id: *const c_char,
    user_id: *const c_char,
    origin: *const c_char,
    out_response: *mut *mut mxl_response,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        let out = unsafe { out_arg(out_response, "out_response") }?;
        let r = unsafe { ref_arg(resident, "resident") }?;
        let room_id = unsafe { str_arg(room_id, "room_id") }?;
        let user_id = unsafe { str_arg(user_id, "user_id") }?;
        let origin = unsafe { str_arg(origin, "origin") }?;
        *out = into_response(r.resident.make_leave(&r.host, room_id, user_id, origin));
        Ok(())
    })
}

/// The inputs of `mxl_resident_send_leave`, borrowed for the call.
#[repr(C)]
pub struct mxl_send_leave_params {
    /// The `roomId` path parameter.
    pub room_id: *const c_char,
    /// The `eventId` path parameter.
    pub event_id: *const c_char,
    /// The raw request body.
    pub body: *const u8,
    /// Length of `body`.
    pub body_len: usize,
    /// The requesting server, as authenticated by its X-Matrix header.
    pub origin: *const c_char,
    /// 1 for `PUT /v1/send_leave` (answer `[200, {}]`), 2 for `PUT /v2/send_leave`.
    pub api_version: u32,
}

/// Answers `PUT /_matrix/federation/v{1,2}/send_leave/{room_id}/{event_id}`.
///
/// Returns `MXL_RESULT_OK` with `*out_response` set for every answer, a refusal included. An
/// accepted leave was handed to `store_event` before this returns; `mxl_response_relay_to`
/// lists the servers to send it to.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_resident_send_leave(
    resident: *const mxl_resident,
    params: *const mxl_send_leave_params,
    out_response: *mut *mut mxl_response,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        let out = unsafe { out_arg(out_response, "out_response") }?;
        let r = unsafe { ref_arg(resident, "resident") }?;
        let p = unsafe { ref_arg(params, "params") }?;
        let room_id = unsafe { str_arg(p.room_id, "params.room_id") }?;
        let event_id = unsafe { str_arg(p.event_id, "params.event_id") }?;
        let origin = unsafe { str_arg(p.origin, "params.origin") }?;
        let body = unsafe { slice_arg(p.body, p.body_len, "params.body") }?;
        let api = match p.api_version {
            1 => SendLeaveApi::V1,
            2 => SendLeaveApi::V2,
            n => {
                return Err(Error::invalid(format!(
                    "params.api_version must be 1 or 2, not {n}"
                )))
            }
        };
        *out = into_response(
            r.resident
                .send_leave(&r.host, room_id, event_id, body, origin, api),
        );
        Ok(())
    })
}

/// The HTTP status to answer with. 0 for NULL.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_status(response: *const mxl_response) -> u16 {
    // SAFETY: NULL or a live response, by the caller's contract.
    guard_or(0, || {
        unsafe { response.as_ref() }.map_or(0, |r| r.inner.status)
    })
}

/// The result code: `MXL_RESULT_OK` for a 200, otherwise the refusal's code.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_code(response: *const mxl_response) -> Code {
    guard_or(Code::NullArgument, || {
        // SAFETY: NULL or a live response.
        unsafe { response.as_ref() }.map_or(Code::NullArgument, |r| {
            r.inner.error.as_ref().map_or(Code::Ok, |e| e.code)
        })
    })
}

/// The Matrix errcode of a refusal, or "" for a 200 or a NULL response. Valid until the
/// response is freed.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_errcode(response: *const mxl_response) -> *const c_char {
    // SAFETY: NULL or a live response.
    guard_or(c"".as_ptr(), || {
        unsafe { response.as_ref() }.map_or(c"".as_ptr(), |r| r.errcode.as_ptr())
    })
}

/// The refusal's message, or "" for a 200 or a NULL response. Valid until the response is
/// freed.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_message(response: *const mxl_response) -> *const c_char {
    // SAFETY: NULL or a live response.
    guard_or(c"".as_ptr(), || {
        unsafe { response.as_ref() }.map_or(c"".as_ptr(), |r| r.message.as_ptr())
    })
}

/// The JSON body to send; `*out_len` receives its length. Valid until the response is freed.
/// NULL (and a length of 0) for a NULL response.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_body(
    response: *const mxl_response,
    out_len: *mut usize,
) -> *const u8 {
    guard_or(std::ptr::null(), || {
        // SAFETY: NULL or a live response; `out_len` NULL or writable.
        let r = unsafe { response.as_ref() };
        let (ptr, len) = r.map_or((std::ptr::null(), 0), |r| {
            (r.inner.body.as_ptr(), r.inner.body.len())
        });
        if !out_len.is_null() {
            unsafe { out_len.write(len) };
        }
        ptr
    })
}

/// Whether a send_leave was accepted (then the event was stored, or had been before).
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_accepted(response: *const mxl_response) -> bool {
    // SAFETY: NULL or a live response.
    guard_or(false, || {
        unsafe { response.as_ref() }.is_some_and(|r| r.inner.accepted.is_some())
    })
}

/// The accepted event's ID, or "" when nothing was accepted. Valid until the response is
/// freed.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_event_id(response: *const mxl_response) -> *const c_char {
    // SAFETY: NULL or a live response.
    guard_or(c"".as_ptr(), || {
        unsafe { response.as_ref() }.map_or(c"".as_ptr(), |r| r.event_id.as_ptr())
    })
}

/// Everything about the answer as one JSON object, for hosts that prefer JSON:
/// `{"status", "errcode", "error", "body", "accepted": {"event_id", "event", "redacted",
/// "soft_failed", "duplicate", "relay_to"} | null}`. The caller frees `*out_json` with
/// `mxl_bytes_free`.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_json(
    response: *const mxl_response,
    out_json: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        let out = unsafe { out_arg(out_json, "out_json") }?;
        let r = unsafe { ref_arg(response, "response") }?;
        let inner = &r.inner;
        let mut obj = Object::new();
        obj.insert("status".into(), Value::Int(inner.status.into()));
        let body = Value::parse(&inner.body, Mode::Lenient).unwrap_or(Value::Null);
        obj.insert("body".into(), body);
        if let Some(e) = &inner.error {
            obj.insert("errcode".into(), Value::from(e.errcode()));
            obj.insert("error".into(), Value::from(e.message.as_str()));
        }
        let accepted = match &inner.accepted {
            None => Value::Null,
            Some(a) => json::object([
                ("duplicate", Value::Bool(a.duplicate)),
                ("event", a.event.clone()),
                ("event_id", Value::from(a.event_id.as_str())),
                ("redacted", Value::Bool(a.redacted)),
                (
                    "relay_to",
                    Value::Array(a.relay_to.iter().map(|s| Value::from(s.as_str())).collect()),
                ),
                ("soft_failed", Value::Bool(a.soft_failed)),
            ]),
        };
        obj.insert("accepted".into(), accepted);
        *out = mxl_bytes::into_raw(Value::Object(obj).to_canonical());
        Ok(())
    })
}

/// Frees a response. NULL is ignored.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_response_free(response: *mut mxl_response) {
    guard_or((), || {
        if !response.is_null() {
            // SAFETY: made by this library and not freed before, by the caller's contract.
            drop(unsafe { Box::from_raw(response) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_arguments_are_errors() {
        let mut out: *mut mxl_resident = std::ptr::null_mut();
        let code = unsafe {
            mxl_resident_new(
                std::ptr::null(),
                std::ptr::null(),
                &mut out,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(code, Code::NullArgument);
        let mut resp: *mut mxl_response = std::ptr::null_mut();
        let code = unsafe {
            mxl_resident_make_leave(
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                &mut resp,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(code, Code::NullArgument);
        assert!(resp.is_null());
        unsafe { mxl_response_free(std::ptr::null_mut()) };
        unsafe { mxl_resident_free(std::ptr::null_mut()) };
    }
}
