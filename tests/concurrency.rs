//! One `Resident` shared by eight threads over one thread-safe host: 100,000 mixed
//! make_leave and send_leave calls built from the `leave_auth.json` rooms and cases, good and
//! bad. Every answer must be the one the same request gets single-threaded, every accepted
//! leave must be stored exactly once (later sends are duplicates: 200, `duplicate`, no
//! store), and the run must finish (no deadlock).

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::sync_host::{self, SyncHost};
use matrix_leave::json::Value;
use matrix_leave::keys::ServerKey;
use matrix_leave::resident::{
    percent_decode, LogLevel, Resident, ResidentHost, ResidentOptions, Response, SendLeaveApi,
};
use matrix_leave::Error;

const THREADS: usize = 8;
const CALLS: usize = 100_000;
/// Far more than the run needs (seconds in release mode): reaching it means a deadlock.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
enum Request {
    MakeLeave {
        room_id: String,
        user_id: String,
        origin: String,
    },
    SendLeave {
        case: String,
        room_id: String,
        path_room_id: String,
        path_event_id: String,
        origin: String,
        body: Vec<u8>,
        api: SendLeaveApi,
    },
}

/// What must match between runs: status, errcode, and the body when it is deterministic
/// (a v1/v2 template carries a random event ID).
#[derive(Clone, PartialEq)]
struct Answer {
    status: u16,
    errcode: String,
    body: Option<Vec<u8>>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.as_deref().map(String::from_utf8_lossy);
        write!(f, "{} {} {:.200?}", self.status, self.errcode, body)
    }
}

fn answer(req: &Request, r: &Response) -> Answer {
    let random_body = match req {
        Request::MakeLeave { room_id, .. } => {
            let w = sync_host::world();
            let room_id = percent_decode(room_id, "roomId").unwrap_or_default();
            w.rooms
                .get(&room_id)
                .is_some_and(|room| !room.version.event_id_is_hash())
                && r.status == 200
        }
        Request::SendLeave { .. } => false,
    };
    Answer {
        status: r.status,
        errcode: r
            .error
            .as_ref()
            .map(|e| e.errcode().to_string())
            .unwrap_or_default(),
        body: (!random_body).then(|| r.body.clone()),
    }
}

fn call(resident: &Resident, host: &dyn ResidentHost, req: &Request) -> Response {
    match req {
        Request::MakeLeave {
            room_id,
            user_id,
            origin,
        } => resident.make_leave(host, room_id, user_id, origin),
        Request::SendLeave {
            path_room_id,
            path_event_id,
            origin,
            body,
            api,
            ..
        } => resident.send_leave(host, path_room_id, path_event_id, body, origin, *api),
    }
}

/// Every send_leave case in both API versions, and make_leave for every room with good and
/// bad parameters.
fn request_pool() -> Vec<Request> {
    let mut pool = Vec::new();
    for c in sync_host::send_cases() {
        for api in [SendLeaveApi::V2, SendLeaveApi::V1] {
            pool.push(Request::SendLeave {
                case: c.name.clone(),
                room_id: c.room_id.clone(),
                path_room_id: c.path_room_id.clone(),
                path_event_id: c.path_event_id.clone(),
                origin: c.origin.clone(),
                body: c.body.clone(),
                api,
            });
        }
    }
    let mut rooms: Vec<&String> = sync_host::world().rooms.keys().collect();
    rooms.sort();
    for room in rooms {
        for (user, origin) in [
            ("@user:remote.example", "remote.example"),
            ("@creator:resident.example", "resident.example"),
            ("@user:remote.example", "other.example"),
            ("@nobody:other.example", "other.example"),
        ] {
            pool.push(Request::MakeLeave {
                room_id: room.clone(),
                user_id: user.to_string(),
                origin: origin.to_string(),
            });
        }
        pool.push(Request::MakeLeave {
            room_id: room.replace('!', "%21").replace(':', "%3A"),
            user_id: "%40user%3Aremote.example".into(),
            origin: "remote.example".into(),
        });
    }
    pool.push(Request::MakeLeave {
        room_id: "!unknown:resident.example".into(),
        user_id: "@user:remote.example".into(),
        origin: "remote.example".into(),
    });
    pool
}

/// A short name for a request, for failure messages.
fn describe(req: &Request) -> String {
    match req {
        Request::MakeLeave {
            room_id,
            user_id,
            origin,
        } => format!("make_leave {room_id} {user_id} from {origin}"),
        Request::SendLeave { case, api, .. } => format!("send_leave {api:?} {case}"),
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Outcome {
    index: usize,
    answer: Answer,
    accepted: Option<(String, bool)>,
}

#[test]
fn eight_threads_share_one_resident() {
    let resident = Arc::new(Resident::new(
        "resident.example",
        ResidentOptions::default(),
    ));
    let pool = Arc::new(request_pool());

    // Single-threaded answers: on a fresh host (nothing stored), and once every good leave
    // is stored. The second only differs where a request shares its event ID with a good
    // leave and is answered as a duplicate before any check that would refuse it.
    let start = Instant::now();
    let fresh: Vec<Answer> = pool
        .iter()
        .map(|r| answer(r, &call(&resident, &SyncHost::new(), r)))
        .collect();
    let warm = SyncHost::new();
    for r in pool.iter() {
        call(&resident, &warm, r);
    }
    let after: Vec<Answer> = pool
        .iter()
        .map(|r| answer(r, &call(&resident, &warm, r)))
        .collect();
    let good_ids: std::collections::BTreeSet<(String, String)> = warm
        .store_calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| (c.room_id.clone(), c.event_id.clone()))
        .collect();
    assert_eq!(
        good_ids.len(),
        warm.store_count(),
        "single-threaded, a leave was stored twice"
    );
    let differ: Vec<String> = (0..pool.len())
        .filter(|&i| fresh[i] != after[i])
        .map(|i| format!("{}: {:?} then {:?}", describe(&pool[i]), fresh[i], after[i]))
        .collect();
    let single = start.elapsed();
    assert!(
        good_ids.len() >= 20,
        "too few good leaves: {}",
        good_ids.len()
    );

    // The shared run.
    let host = Arc::new(SyncHost::new());
    let (tx, rx) = mpsc::channel();
    {
        let (resident, pool, host) = (resident.clone(), pool.clone(), host.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (resident, pool, host) = (resident.clone(), pool.clone(), host.clone());
                    std::thread::spawn(move || {
                        let mut state = 0x2545_f491_4f6c_dd1d ^ ((t as u64 + 1) << 20);
                        let mut out = Vec::with_capacity(CALLS / THREADS);
                        for _ in 0..CALLS / THREADS {
                            let index = (xorshift(&mut state) % pool.len() as u64) as usize;
                            let req = &pool[index];
                            let r = call(&resident, &*host, req);
                            let accepted = r
                                .accepted
                                .as_ref()
                                .map(|a| (a.event_id.clone(), a.duplicate));
                            out.push(Outcome {
                                index,
                                answer: answer(req, &r),
                                accepted,
                            });
                        }
                        out
                    })
                })
                .collect();
            let outcomes: Vec<Outcome> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("a worker thread panicked"))
                .collect();
            let _ = tx.send((outcomes, start.elapsed()));
        });
    }
    let (outcomes, shared) = rx
        .recv_timeout(DEADLINE)
        .expect("the threads did not finish in time: deadlock?");
    assert_eq!(outcomes.len(), CALLS);

    let mut failures = Vec::new();
    let mut first_stores: HashMap<(String, String), usize> = HashMap::new();
    let mut duplicates = 0;
    let mut as_after = 0;
    for o in &outcomes {
        let req = &pool[o.index];
        if o.answer != fresh[o.index] {
            if o.answer == after[o.index] {
                as_after += 1;
            } else if failures.len() < 20 {
                failures.push(format!(
                    "{}: got {:?}, single-threaded {:?}",
                    describe(req),
                    o.answer,
                    fresh[o.index]
                ));
            }
        }
        if let (Request::SendLeave { room_id, .. }, Some((id, dup))) = (req, &o.accepted) {
            if *dup {
                duplicates += 1;
            } else {
                *first_stores
                    .entry((room_id.clone(), id.clone()))
                    .or_default() += 1;
            }
        }
    }
    let calls = host.store_calls.lock().unwrap().clone();
    let mut per_id: HashMap<(String, String), usize> = HashMap::new();
    for c in &calls {
        *per_id
            .entry((c.room_id.clone(), c.event_id.clone()))
            .or_default() += 1;
    }
    // The library reports a store exactly when the host stored: per event, the answers
    // that say "newly stored" match the store calls.
    for (id, n) in &per_id {
        if first_stores.get(id) != Some(n) {
            failures.push(format!(
                "{id:?} stored {n} times, answered as newly stored {:?} times",
                first_stores.get(id)
            ));
        }
    }
    for (id, n) in &first_stores {
        if !per_id.contains_key(id) {
            failures.push(format!(
                "{id:?} answered as newly stored {n} times, never stored"
            ));
        }
    }
    let raced: Vec<String> = per_id
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(id, n)| format!("{id:?} stored {n} times"))
        .collect();
    failures.extend(raced);
    let stored: std::collections::BTreeSet<_> = per_id.keys().cloned().collect();
    let asked_good: std::collections::BTreeSet<_> = outcomes
        .iter()
        .filter_map(|o| match &pool[o.index] {
            Request::SendLeave { room_id, .. } if fresh[o.index].status == 200 => o
                .accepted
                .as_ref()
                .map(|(id, _)| (room_id.clone(), id.clone())),
            _ => None,
        })
        .collect();
    if stored != asked_good {
        failures.push(format!(
            "stored {} leaves, but {} distinct good leaves were sent",
            stored.len(),
            asked_good.len()
        ));
    }
    println!(
        "concurrency: {} distinct requests ({} answered differently once their leave is \
         stored); single-threaded reference {:?}; {CALLS} calls on {THREADS} threads in {:?} \
         ({:.0} calls/s); {} distinct leaves stored, {duplicates} duplicates, {as_after} \
         answers of the stored-leave kind",
        pool.len(),
        differ.len(),
        single,
        shared,
        CALLS as f64 / shared.as_secs_f64(),
        stored.len(),
    );
    println!("{}", differ.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A host that makes two sends of the same leave meet after both looked the event up and
/// before either stores it, the window in which a concurrent duplicate is not yet visible.
struct MeetBeforeStore {
    inner: SyncHost,
    barrier: Barrier,
}

impl ResidentHost for MeetBeforeStore {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.inner.room_version(room_id)
    }
    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        self.inner.state_event(room_id, ty, sk)
    }
    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        self.inner.event(room_id, event_id)
    }
    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        self.inner.forward_extremities(room_id)
    }
    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        self.inner.servers_in_room(room_id)
    }
    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        // Called after the duplicate check and before the store.
        self.barrier.wait();
        self.inner.server_keys(server)
    }
    fn store_event(&self, room_id: &str, id: &str, ev: &Value, soft: bool) -> Result<(), Error> {
        self.inner.store_event(room_id, id, ev, soft)
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message)
    }
}

/// Two concurrent sends of one good leave: one store, one duplicate. The first duplicate
/// check (`event`) and the store are separate host calls with the signature and auth checks
/// in between, so both sends pass that check here before either stores; the library must
/// still store the leave once.
#[test]
fn concurrent_sends_of_one_leave_store_it_once() {
    let case = sync_host::send_cases()
        .into_iter()
        .find(|c| c.name == "v10_self_leave_prior_invite")
        .unwrap();
    let host = MeetBeforeStore {
        inner: SyncHost::new(),
        barrier: Barrier::new(2),
    };
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let answers: Vec<Response> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    resident.send_leave(
                        &host,
                        &case.path_room_id,
                        &case.path_event_id,
                        &case.body,
                        &case.origin,
                        SendLeaveApi::V2,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|r| r.status == 200));
    let new = answers
        .iter()
        .filter(|r| !r.accepted.as_ref().unwrap().duplicate)
        .count();
    assert_eq!(
        (host.inner.store_count(), new),
        (1, 1),
        "stores and answers reporting a new store"
    );
}
