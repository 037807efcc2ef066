//! Side-by-side benchmarks of matrix-leave's send_leave and make_leave against ruma,
//! Synapse and the ed25519 floor.
//!
//! `mxl-bench run` generates the inputs (deterministically), starts the Python workers (the
//! binding and Synapse), calibrates every contender, then runs rounds: in each round every
//! contender runs on the same inputs, in an order that rotates from round to round. It prints
//! the medians and the per-round ratios with their medians, and writes the same figures to
//! `<out>/summary.json`. `mxl-bench profile` loops one Rust contender for a profiler.

mod alloc;
mod host;
mod make;
mod ruma_path;
mod stages;
mod worker;
mod world;

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_char;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use matrix_leave::ffi::resident::{
    mxl_resident, mxl_resident_make_leave, mxl_resident_send_leave, mxl_response_body,
    mxl_response_free, mxl_response_status, mxl_send_leave_params,
};
use matrix_leave::resident::{Resident, ResidentOptions, SendLeaveApi};
use matrix_leave::Code;
use serde_json::json;

use crate::host::{ApiHost, CWorld};
use crate::ruma_path::{RumaPdu, RumaWorld};
use crate::worker::Worker;
use crate::world::{Kind, Set, World, ORIGIN, USER};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

// ---- contenders ----------------------------------------------------------------------------

/// Which sets a contender runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    /// Every receive set (small, big, scale).
    Receive,
    /// Small and big sets only (stage breakdowns).
    Detail,
    /// make_leave sets.
    Make,
}

impl Scope {
    fn covers(self, kind: Kind) -> bool {
        match self {
            Scope::Receive => kind != Kind::Make,
            Scope::Detail => matches!(kind, Kind::Small | Kind::Big),
            Scope::Make => kind == Kind::Make,
        }
    }
}

type LocalFn<'a> = Box<dyn FnMut(&Set, usize) -> bool + 'a>;

enum Run<'a> {
    Local(LocalFn<'a>),
    Remote { worker: usize, op: &'static str },
}

struct Contender<'a> {
    id: &'static str,
    scope: Scope,
    run: Run<'a>,
}

/// Every contender, in the order the tables list them.
fn contenders<'a>(
    world: &'a World,
    api_host: &'a ApiHost<'a>,
    c_res: *const mxl_resident,
    ruma: &'a RumaWorld,
    ruma_prepared: &'a HashMap<String, Vec<RumaPrepared>>,
    workers: &[(usize, &'static str)],
) -> Vec<Contender<'a>> {
    let resident = Resident::new(world::RESIDENT, ResidentOptions::default());
    let vk = world.verify_key;
    let pk = world.public_key;
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
    let dalek3_key = ed25519_dalek_3::VerifyingKey::from_bytes(&pk).unwrap();
    let version = move |s: &Set| world.rooms[s.room].version;
    let mut v: Vec<Contender<'a>> = Vec::new();
    let mut local = |id: &'static str, scope: Scope, f: LocalFn<'a>| {
        v.push(Contender {
            id,
            scope,
            run: Run::Local(f),
        })
    };

    // matrix-leave, whole path.
    let r1 = resident.clone();
    local(
        "ours_rust",
        Scope::Receive,
        Box::new(move |s, i| {
            let room = &world.rooms[s.room];
            let e = &s.events[i];
            let resp = r1.send_leave(
                api_host,
                &room.room_id,
                &e.event_id,
                &e.body,
                ORIGIN,
                SendLeaveApi::V2,
            );
            resp.status == 200
                && resp
                    .accepted
                    .is_some_and(|a| !a.duplicate && !a.soft_failed)
        }),
    );
    local(
        "ours_c",
        Scope::Receive,
        Box::new(move |s, i| c_send_leave(c_res, world, s, i)),
    );
    // matrix-leave, stage by stage.
    local(
        "parse",
        Scope::Detail,
        Box::new(move |s, i| stages::parse(&s.events[i], version(s))),
    );
    local(
        "format",
        Scope::Detail,
        Box::new(move |s, i| stages::format(&s.events[i], version(s))),
    );
    local(
        "canonical",
        Scope::Detail,
        Box::new(move |s, i| stages::canonical(&s.events[i])),
    );
    local(
        "content_hash",
        Scope::Detail,
        Box::new(move |s, i| stages::content_hash(&s.events[i])),
    );
    local(
        "reference_hash",
        Scope::Detail,
        Box::new(move |s, i| stages::reference_hash(&s.events[i], version(s))),
    );
    local(
        "verify",
        Scope::Detail,
        Box::new(move |s, i| stages::verify(&s.events[i], &vk)),
    );
    local(
        "auth",
        Scope::Detail,
        Box::new(move |s, i| stages::auth_rules(&s.events[i], &world.rooms[s.room], version(s))),
    );
    // ruma.
    local(
        "ruma",
        Scope::Receive,
        Box::new(move |s, i| {
            ruma_path::send_leave(ruma, &ruma.rooms[s.room], &s.events[i], ORIGIN).is_ok()
        }),
    );
    local(
        "ruma_parse",
        Scope::Detail,
        Box::new(move |s, i| ruma_path::parse(&s.events[i].body).is_ok()),
    );
    local(
        "ruma_format",
        Scope::Detail,
        Box::new(move |s, i| {
            let p = &ruma_prepared[&s.name][i];
            ruma_state_res::check_pdu_format(&p.obj, &ruma.rooms[s.room].rules.event_format).is_ok()
        }),
    );
    local(
        "ruma_reference_hash",
        Scope::Detail,
        Box::new(move |s, i| {
            let p = &ruma_prepared[&s.name][i];
            ruma_signatures::reference_hash(&p.obj, &ruma.rooms[s.room].rules).is_ok()
        }),
    );
    local(
        "ruma_verify",
        Scope::Detail,
        Box::new(move |s, i| {
            let p = &ruma_prepared[&s.name][i];
            matches!(
                ruma_signatures::verify_event(&ruma.keys, &p.obj, &ruma.rooms[s.room].rules),
                Ok(ruma_signatures::Verified::All)
            )
        }),
    );
    local(
        "ruma_auth",
        Scope::Detail,
        Box::new(move |s, i| {
            let p = &ruma_prepared[&s.name][i];
            let room = &ruma.rooms[s.room];
            let typed = RumaPdu::from_object(&p.obj, p.event_id.clone(), &room.rules);
            typed.is_ok_and(|t| ruma_path::auth(room, &t).is_ok())
        }),
    );
    // The floor.
    local(
        "floor",
        Scope::Receive,
        Box::new(move |s, i| stages::floor(&s.events[i], &pk)),
    );
    local(
        "floor_cached",
        Scope::Receive,
        Box::new(move |s, i| stages::floor_cached(&s.events[i], &dalek_key)),
    );
    local(
        "floor_parse",
        Scope::Detail,
        Box::new(move |s, i| stages::floor_parse(&s.events[i])),
    );
    local(
        "floor_sha2",
        Scope::Detail,
        Box::new(move |s, i| stages::floor_sha2(&s.events[i])),
    );
    local(
        "floor_verify_decode",
        Scope::Detail,
        Box::new(move |s, i| stages::floor_verify_decode(&s.events[i], &pk)),
    );
    local(
        "floor_verify_cached",
        Scope::Detail,
        Box::new(move |s, i| stages::floor_verify_cached(&s.events[i], &dalek_key)),
    );
    local(
        "floor_verify_dalek3",
        Scope::Detail,
        Box::new(move |s, i| stages::floor_verify_v3(&s.events[i], &dalek3_key)),
    );
    // make_leave.
    let r2 = resident.clone();
    local(
        "ml_rust",
        Scope::Make,
        Box::new(move |s, _| {
            let room = &world.rooms[s.room];
            r2.make_leave(api_host, &room.room_id, USER, ORIGIN).status == 200
        }),
    );
    local(
        "ml_c",
        Scope::Make,
        Box::new(move |s, _| c_make_leave(c_res, world, s)),
    );
    let mut counter = 0u64;
    local(
        "bare_template",
        Scope::Make,
        Box::new(move |s, _| !make::bare_template(&world.rooms[s.room], &mut counter).is_empty()),
    );

    for &(worker, op) in workers {
        let (id, scope) = match op {
            "send_leave" => ("ours_py", Scope::Receive),
            "make_leave" => ("ml_py", Scope::Make),
            "pipeline" => ("synapse", Scope::Receive),
            "parse" => ("syn_parse", Scope::Detail),
            "build" => ("syn_build", Scope::Detail),
            "content_hash" => ("syn_content_hash", Scope::Detail),
            "reference_hash" => ("syn_reference_hash", Scope::Detail),
            "verify" => ("syn_verify", Scope::Detail),
            "auth" => ("syn_auth", Scope::Detail),
            _ => continue,
        };
        v.push(Contender {
            id,
            scope,
            run: Run::Remote { worker, op },
        });
    }
    v
}

struct RumaPrepared {
    obj: ruma_common::CanonicalJsonObject,
    event_id: ruma_common::OwnedEventId,
}

fn c_send_leave(r: *const mxl_resident, world: &World, s: &Set, i: usize) -> bool {
    let e = &s.events[i];
    let room = &world.rooms[s.room];
    let params = mxl_send_leave_params {
        room_id: room.room_id_c.as_ptr(),
        event_id: e.event_id_c.as_ptr(),
        body: e.body.as_ptr(),
        body_len: e.body.len(),
        origin: c"remote.example".as_ptr() as *const c_char,
        api_version: 2,
    };
    let mut resp = std::ptr::null_mut();
    // SAFETY: a live context and params valid for the call.
    unsafe {
        let code = mxl_resident_send_leave(r, &params, &mut resp, std::ptr::null_mut());
        let status = mxl_response_status(resp);
        let mut len = 0usize;
        let body = mxl_response_body(resp, &mut len);
        black_box(std::slice::from_raw_parts(body, len));
        mxl_response_free(resp);
        code == Code::Ok && status == 200
    }
}

fn c_make_leave(r: *const mxl_resident, world: &World, s: &Set) -> bool {
    let room = &world.rooms[s.room];
    let mut resp = std::ptr::null_mut();
    // SAFETY: a live context and NUL-terminated strings.
    unsafe {
        let code = mxl_resident_make_leave(
            r,
            room.room_id_c.as_ptr(),
            c"@user:remote.example".as_ptr(),
            c"remote.example".as_ptr(),
            &mut resp,
            std::ptr::null_mut(),
        );
        let status = mxl_response_status(resp);
        let mut len = 0usize;
        let body = mxl_response_body(resp, &mut len);
        black_box(std::slice::from_raw_parts(body, len));
        mxl_response_free(resp);
        code == Code::Ok && status == 200
    }
}

// ---- measuring -----------------------------------------------------------------------------

/// Runs a local contender over a set `reps` times; nanoseconds per call. Fails if any call
/// did not succeed.
fn time_local(f: &mut LocalFn<'_>, set: &Set, reps: usize) -> Result<f64, String> {
    let calls = set.calls();
    let mut ok = true;
    let t = Instant::now();
    for _ in 0..reps {
        for i in 0..calls {
            ok &= black_box(f(set, i));
        }
    }
    let ns = t.elapsed().as_nanos() as f64;
    if ok {
        Ok(ns / (reps * calls) as f64)
    } else {
        Err(format!("a call on {} failed", set.name))
    }
}

fn time_one(
    c: &mut Contender<'_>,
    workers: &mut [Worker],
    set: &Set,
    reps: usize,
) -> Result<f64, String> {
    match &mut c.run {
        Run::Local(f) => time_local(f, set, reps),
        Run::Remote { worker, op } => workers[*worker].time(op, &set.name, reps),
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// Ratios reported per round: (name, numerator, denominator).
const RATIOS: &[(&str, &str, &str)] = &[
    ("ours/floor", "ours_rust", "floor"),
    ("ours/floor_cached", "ours_rust", "floor_cached"),
    ("ruma/ours", "ruma", "ours_rust"),
    ("synapse/ours", "synapse", "ours_rust"),
    ("c/rust", "ours_c", "ours_rust"),
    ("py/rust", "ours_py", "ours_rust"),
    ("synapse/py", "synapse", "ours_py"),
    ("ml_c/bare", "ml_c", "bare_template"),
    ("ml_rust/bare", "ml_rust", "bare_template"),
    ("ml_py/bare", "ml_py", "bare_template"),
];

// ---- options -------------------------------------------------------------------------------

struct Options {
    rounds: usize,
    target_ms: f64,
    quick: bool,
    out: PathBuf,
    python: Option<String>,
    synapse_python: Option<String>,
    lib: Option<String>,
    bindings: PathBuf,
    scripts: PathBuf,
    sets: Option<String>,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        rounds: 15,
        target_ms: 8.0,
        quick: false,
        out: manifest_dir().join("../target/bench"),
        python: Some("python3".into()),
        synapse_python: None,
        lib: None,
        bindings: manifest_dir().join("../bindings/python"),
        scripts: manifest_dir().join("python"),
        sets: None,
    };
    let mut rounds_set = false;
    let mut target_set = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--rounds" => {
                o.rounds = val().parse().unwrap_or_else(|_| usage("--rounds N"));
                rounds_set = true;
            }
            "--target-ms" => {
                o.target_ms = val().parse().unwrap_or_else(|_| usage("--target-ms X"));
                target_set = true;
            }
            "--quick" => o.quick = true,
            "--out" => o.out = PathBuf::from(val()),
            "--python" => o.python = Some(val()),
            "--no-python" => o.python = None,
            "--synapse-python" => o.synapse_python = Some(val()).filter(|s| !s.is_empty()),
            "--no-synapse" => o.synapse_python = None,
            "--lib" => o.lib = Some(val()),
            "--bindings" => o.bindings = PathBuf::from(val()),
            "--scripts" => o.scripts = PathBuf::from(val()),
            "--sets" => o.sets = Some(val()),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if o.quick {
        if !rounds_set {
            o.rounds = 3;
        }
        if !target_set {
            o.target_ms = 2.0;
        }
    }
    o
}

fn usage(msg: &str) -> ! {
    eprintln!("mxl-bench: {msg}");
    eprintln!(
        "usage: mxl-bench run [--rounds N] [--target-ms X] [--quick] [--out DIR] [--python PY | --no-python]\n\
         \x20                    [--synapse-python PY | --no-synapse] [--lib libmatrix_leave.so] [--sets SUBSTR]\n\
         \x20      mxl-bench profile CONTENDER SET [SECONDS | --passes N]\n\
         \x20      mxl-bench backend"
    );
    std::process::exit(2)
}

// ---- environment facts ---------------------------------------------------------------------

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Which ed25519 and SHA-256 code runs on this CPU.
///
/// curve25519-dalek picks its backend at run time with cpufeatures among the code it was
/// compiled with. matrix-leave and ruma-signatures share curve25519-dalek 5, which this
/// repository's `.cargo/config.toml` builds with its AVX-512 IFMA code beside the AVX2 code;
/// matrix-leave reports its choice itself (`keys::ed25519_backend`). The floor's
/// ed25519-dalek 2 (curve25519-dalek 4) compiles AVX-512 IFMA only on nightly Rust, so on
/// stable it runs AVX2. sha2 0.10 and 0.11 use SHA-NI when present. A profile of
/// `mxl-bench profile verify small-v10` shows the chosen code (`...spec_avx512ifma_avx512vl::
/// mul` or `...spec_avx2::mul`).
fn backend_info() -> serde_json::Value {
    let ours = matrix_leave::keys::ed25519_backend();
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let ifma = std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl");
        let sha = std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1");
        let nightly = option_env!("RUSTC_BOOTSTRAP").is_some();
        let floor = if ifma && nightly {
            "avx512ifma"
        } else if avx2 {
            "avx2"
        } else {
            "serial (u64)"
        };
        json!({
            "cpu": cpu_model(),
            "cpu_avx2": avx2,
            "cpu_avx512ifma": ifma,
            "cpu_sha_ni": sha,
            "curve25519_dalek_runtime_backend": ours,
            "curve25519_dalek_5_runtime_backend (ruma)": ours,
            "curve25519_dalek_4_runtime_backend (floor)": floor,
            "sha2_backend": if sha { "x86 SHA-NI" } else { "software" },
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        json!({"cpu": cpu_model(), "curve25519_dalek_runtime_backend": ours})
    }
}

// ---- main ----------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(parse_options(&args[1..])),
        Some("profile") => profile(&args[1..]),
        Some("backend") => println!("{}", serde_json::to_string_pretty(&backend_info()).unwrap()),
        _ => usage("no command"),
    }
}

fn vectors_dir() -> PathBuf {
    manifest_dir().join("../tests/vectors")
}

fn prepare_ruma(world: &World, ruma: &RumaWorld) -> HashMap<String, Vec<RumaPrepared>> {
    world
        .sets
        .iter()
        .map(|s| {
            let rules = &ruma.rooms[s.room].rules;
            let v = s
                .events
                .iter()
                .map(|e| {
                    let obj = ruma_path::parse(&e.body).unwrap();
                    let id = ruma_path::event_id(&obj, rules).unwrap();
                    assert_eq!(id, e.event_id, "ruma event id for {}", s.name);
                    RumaPrepared {
                        obj,
                        event_id: ruma_common::EventId::parse(id).unwrap(),
                    }
                })
                .collect();
            (s.name.clone(), v)
        })
        .collect()
}

/// Loops one Rust contender on one set, for a profiler: for SECONDS, or exactly N passes
/// over the set with `--passes N` (for callgrind; collect only `mxl_bench::profiled_passes`
/// with `--toggle-collect=mxl_bench::profiled_passes` to leave out the input generation).
fn profile(args: &[String]) {
    let (Some(id), Some(set_name)) = (args.first(), args.get(1)) else {
        usage("profile CONTENDER SET [SECONDS | --passes N]")
    };
    let (seconds, passes) = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--passes"), Some(n)) => (0.0, n.parse().unwrap_or_else(|_| usage("--passes N"))),
        (Some(s), _) => (s.parse().unwrap_or_else(|_| usage("SECONDS")), 0usize),
        (None, _) => (5.0, 0),
    };
    let world = World::generate(&vectors_dir(), false);
    let api_host = ApiHost::new(&world);
    let cworld = CWorld::new(&world);
    let c_res = host::c_resident(&cworld);
    let ruma = RumaWorld::new(&world);
    let prepared = prepare_ruma(&world, &ruma);
    let mut cs = contenders(&world, &api_host, c_res, &ruma, &prepared, &[]);
    let c = cs
        .iter_mut()
        .find(|c| c.id == id.as_str())
        .unwrap_or_else(|| usage(&format!("no Rust contender {id}")));
    let set = world
        .sets
        .iter()
        .find(|s| s.name == *set_name)
        .unwrap_or_else(|| usage(&format!("no set {set_name}")));
    let Run::Local(f) = &mut c.run else {
        unreachable!()
    };
    // One warm-up pass, outside what is collected.
    time_local(f, set, 1).unwrap();
    let t = Instant::now();
    let mut calls = 0usize;
    if passes > 0 {
        profiled_passes(f, set, passes);
        calls = passes * set.calls();
    } else {
        while t.elapsed().as_secs_f64() < seconds {
            profiled_passes(f, set, 1);
            calls += set.calls();
        }
    }
    eprintln!(
        "{id} on {set_name}: {calls} calls, {:.2} µs per call",
        t.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
}

#[inline(never)]
fn profiled_passes(f: &mut LocalFn<'_>, set: &Set, passes: usize) {
    time_local(f, set, passes).unwrap();
}

fn run(o: Options) {
    let started = Instant::now();
    let load_start = loadavg();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if load_start
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0)
        > 0.5
    {
        eprintln!("warning: load average {load_start} on {cores} cores: the figures will be noisy");
    }
    std::fs::create_dir_all(&o.out).unwrap();
    eprintln!("generating inputs ...");
    let mut world = World::generate(&vectors_dir(), o.quick);
    if let Some(filter) = &o.sets {
        world.sets.retain(|s| s.name.contains(filter.as_str()));
    }
    let inputs = o.out.join("inputs.json");
    std::fs::write(&inputs, serde_json::to_vec(&world.to_json()).unwrap()).unwrap();

    // Workers.
    let mut workers: Vec<Worker> = vec![];
    let mut remote_ops: Vec<(usize, &'static str)> = vec![];
    if let Some(py) = &o.python {
        let mut env = vec![("PYTHONPATH", o.bindings.display().to_string())];
        if let Some(lib) = &o.lib {
            env.push(("MATRIX_LEAVE_LIBRARY", lib.clone()));
        }
        match Worker::start(
            "binding",
            py,
            &o.scripts.join("binding_worker.py"),
            &inputs,
            &env,
        ) {
            Ok(w) => {
                let idx = workers.len();
                workers.push(w);
                remote_ops.push((idx, "send_leave"));
                remote_ops.push((idx, "make_leave"));
            }
            Err(e) => eprintln!("warning: no Python binding figures: {e}"),
        }
    }
    if let Some(py) = &o.synapse_python {
        match Worker::start(
            "synapse",
            py,
            &o.scripts.join("synapse_worker.py"),
            &inputs,
            &[],
        ) {
            Ok(w) => {
                let idx = workers.len();
                workers.push(w);
                for op in [
                    "pipeline",
                    "parse",
                    "build",
                    "content_hash",
                    "reference_hash",
                    "verify",
                    "auth",
                ] {
                    remote_ops.push((idx, op));
                }
            }
            Err(e) => eprintln!("warning: no Synapse figures: {e}"),
        }
    }

    let api_host = ApiHost::new(&world);
    let cworld = CWorld::new(&world);
    let c_res = host::c_resident(&cworld);
    let ruma = RumaWorld::new(&world);
    let prepared = prepare_ruma(&world, &ruma);
    let mut cs = contenders(&world, &api_host, c_res, &ruma, &prepared, &remote_ops);

    // Calibration: each contender once over each set (every call must succeed), then a
    // repetition count that makes one measurement last about target_ms.
    eprintln!("calibrating ...");
    let target_ns = o.target_ms * 1e6;
    let mut reps: HashMap<(usize, usize), usize> = HashMap::new();
    let mut failures = vec![];
    for (si, set) in world.sets.iter().enumerate() {
        for (ci, c) in cs.iter_mut().enumerate() {
            if !c.scope.covers(set.kind) {
                continue;
            }
            let r =
                time_one(c, &mut workers, set, 1).and_then(|_| time_one(c, &mut workers, set, 1));
            match r {
                Ok(ns) => {
                    let pass = ns * set.calls() as f64;
                    let n = (target_ns / pass.max(1.0)).ceil().clamp(1.0, 1e6) as usize;
                    reps.insert((si, ci), n);
                }
                Err(e) => failures.push(format!("{} on {}: {e}", c.id, set.name)),
            }
        }
    }
    for f in &failures {
        eprintln!("warning: dropped: {f}");
    }

    // Rounds.
    let mut samples: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for round in 0..o.rounds {
        let t = Instant::now();
        for (si, set) in world.sets.iter().enumerate() {
            let mut order: Vec<usize> = (0..cs.len())
                .filter(|ci| reps.contains_key(&(si, *ci)))
                .collect();
            let k = round % order.len().max(1);
            order.rotate_left(k);
            for ci in order {
                let n = reps[&(si, ci)];
                match time_one(&mut cs[ci], &mut workers, set, n) {
                    Ok(ns) => samples.entry((si, ci)).or_default().push(ns),
                    Err(e) => {
                        // Keeps the rounds aligned for the per-round ratios.
                        samples.entry((si, ci)).or_default().push(f64::NAN);
                        eprintln!("warning: {} on {} round {round}: {e}", cs[ci].id, set.name)
                    }
                }
            }
        }
        eprintln!(
            "round {}/{} done in {:.1} s",
            round + 1,
            o.rounds,
            t.elapsed().as_secs_f64()
        );
    }

    // Memory: one call each, after the rounds, on the set's median-sized event.
    eprintln!("measuring memory ...");
    let mut memory: HashMap<(usize, usize), serde_json::Value> = HashMap::new();
    for (si, set) in world.sets.iter().enumerate() {
        let idx = median_index(set);
        for (ci, c) in cs.iter_mut().enumerate() {
            if !reps.contains_key(&(si, ci)) {
                continue;
            }
            let m = match &mut c.run {
                Run::Local(f) => {
                    let (ok, u) = alloc::measure(|| f(set, idx));
                    json!({"ok": ok, "peak_bytes": u.peak_bytes, "allocs": u.allocs, "alloc_bytes": u.alloc_bytes})
                }
                Run::Remote { worker, op } => {
                    if !matches!(*op, "send_leave" | "make_leave" | "pipeline") {
                        continue;
                    }
                    match workers[*worker]
                        .call(json!({"cmd": "mem", "op": op, "set": set.name, "index": idx}))
                    {
                        Ok(r) => r,
                        Err(e) => json!({"error": e}),
                    }
                }
            };
            memory.insert((si, ci), m);
        }
    }

    let mut summary = summarize(&o, &world, &cs, &samples, &memory, &workers, started);
    summary["meta"]["load_average_start"] = json!(load_start);
    summary["meta"]["cores"] = json!(cores);
    let path = o.out.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    print_tables(&summary);
    println!(
        "\nwrote {} ({:.0} s in all)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

fn median_index(set: &Set) -> usize {
    if set.events.is_empty() {
        return 0;
    }
    let mut idx: Vec<usize> = (0..set.events.len()).collect();
    idx.sort_by_key(|&i| set.events[i].body.len());
    idx[idx.len() / 2]
}

fn summarize(
    o: &Options,
    world: &World,
    cs: &[Contender<'_>],
    samples: &BTreeMap<(usize, usize), Vec<f64>>,
    memory: &HashMap<(usize, usize), serde_json::Value>,
    workers: &[Worker],
    started: Instant,
) -> serde_json::Value {
    let mut sets = vec![];
    for (si, set) in world.sets.iter().enumerate() {
        let mut by_id: BTreeMap<&str, &Vec<f64>> = BTreeMap::new();
        let mut contenders = serde_json::Map::new();
        for (ci, c) in cs.iter().enumerate() {
            let Some(xs) = samples.get(&(si, ci)) else {
                continue;
            };
            by_id.insert(c.id, xs);
            let (lo, hi) = min_max(xs);
            contenders.insert(
                c.id.to_string(),
                json!({
                    "median_us": median(xs) / 1e3,
                    "min_us": lo / 1e3,
                    "max_us": hi / 1e3,
                    "rounds_us": xs.iter().map(|x| if x.is_finite() { json!(x / 1e3) } else { json!(null) }).collect::<Vec<_>>(),
                    "memory": memory.get(&(si, ci)),
                }),
            );
        }
        let mut ratios = serde_json::Map::new();
        for (name, num, den) in RATIOS {
            let (Some(a), Some(b)) = (by_id.get(num), by_id.get(den)) else {
                continue;
            };
            let per_round: Vec<f64> = a.iter().zip(b.iter()).map(|(x, y)| x / y).collect();
            let (lo, hi) = min_max(&per_round);
            ratios.insert(
                name.to_string(),
                json!({
                    "median": median(&per_round),
                    "min": lo,
                    "max": hi,
                    "rounds": per_round.iter().map(|x| if x.is_finite() { json!(x) } else { json!(null) }).collect::<Vec<_>>(),
                }),
            );
        }
        sets.push(json!({
            "name": set.name,
            "kind": set.kind.as_str(),
            "room_version": set.version(world).id,
            "events": set.events.len(),
            "median_bytes": set.median_bytes(),
            "min_bytes": set.events.iter().map(|e| e.body.len()).min(),
            "max_bytes": set.events.iter().map(|e| e.body.len()).max(),
            "contenders": contenders,
            "ratios": ratios,
        }));
    }
    let goals = evaluate_goals(&sets);
    json!({
        "meta": {
            "rounds": o.rounds,
            "target_ms_per_measurement": o.target_ms,
            "quick": o.quick,
            "seconds": started.elapsed().as_secs_f64(),
            "unit": "microseconds per call (median over rounds; each round's figure is the mean over reps x the set's events)",
            "backend": backend_info(),
            "workers": workers.iter().map(|w| (w.name.clone(), w.info.clone())).collect::<BTreeMap<_, _>>(),
            "crates": {
                "ruma-signatures": "0.22.1", "ruma-common": "0.20.2", "ruma-state-res": "0.18.0",
                "ed25519-dalek (matrix-leave, floor)": "2 (curve25519-dalek 4)",
                "ed25519-dalek (ruma-signatures)": "3 (curve25519-dalek 5)",
            },
            "load_average": loadavg(),
            "rustc": std::process::Command::new("rustc").arg("-V").output().ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        },
        "sets": sets,
        "goals": goals,
    })
}

fn ratio_median(set: &serde_json::Value, name: &str) -> Option<f64> {
    set["ratios"][name]["median"].as_f64()
}

fn evaluate_goals(sets: &[serde_json::Value]) -> serde_json::Value {
    let mut out = vec![];
    let mut check = |goal: &str, set: &serde_json::Value, ratio: &str, ok: fn(f64) -> bool| {
        if let Some(r) = ratio_median(set, ratio) {
            out.push(json!({"goal": goal, "set": set["name"], "ratio": ratio, "median": r, "met": ok(r)}));
        }
    };
    for s in sets {
        match s["kind"].as_str() {
            Some("small") => {
                check("ours <= floor on small events", s, "ours/floor", |r| {
                    r <= 1.0
                });
                check(
                    "ours <= floor (cached key) on small events",
                    s,
                    "ours/floor_cached",
                    |r| r <= 1.0,
                );
            }
            Some("big") => {
                check("ours <= 1.2x floor near 64 KiB", s, "ours/floor", |r| {
                    r <= 1.2
                });
                check(
                    "ours <= 1.2x floor (cached key) near 64 KiB",
                    s,
                    "ours/floor_cached",
                    |r| r <= 1.2,
                );
            }
            Some("make_leave") => {
                check(
                    "make_leave through the C ABI <= 1.2x a bare template",
                    s,
                    "ml_c/bare",
                    |r| r <= 1.2,
                );
            }
            _ => {}
        }
        if matches!(s["kind"].as_str(), Some("small" | "big")) {
            check(">= 1.3x faster than ruma", s, "ruma/ours", |r| r >= 1.3);
            check(">= 5.5x faster than Synapse", s, "synapse/ours", |r| {
                r >= 5.5
            });
        }
    }
    json!(out)
}

// ---- tables --------------------------------------------------------------------------------

fn us(set: &serde_json::Value, id: &str) -> String {
    match set["contenders"][id]["median_us"].as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

fn ratio(set: &serde_json::Value, name: &str) -> String {
    let r = &set["ratios"][name];
    match (r["median"].as_f64(), r["min"].as_f64(), r["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.2} [{lo:.2}-{hi:.2}]"),
        _ => "-".into(),
    }
}

fn row(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(i, (c, w))| {
            if i == 0 {
                format!("{c:<w$}")
            } else {
                format!("{c:>w$}")
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn table(title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    println!("\n{title}");
    println!(
        "{}",
        row(
            &head.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &widths
        )
    );
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for r in rows {
        println!("{}", row(&r, &widths));
    }
}

fn kb(set: &serde_json::Value, id: &str) -> String {
    let m = &set["contenders"][id]["memory"];
    if let Some(p) = m["peak_bytes"].as_u64() {
        format!("{:.1}/{}", p as f64 / 1024.0, m["allocs"])
    } else if let Some(p) = m["tracemalloc_peak"].as_u64() {
        format!("{:.1} py", p as f64 / 1024.0)
    } else {
        "-".into()
    }
}

fn print_tables(s: &serde_json::Value) {
    let sets = s["sets"].as_array().unwrap();
    let b = &s["meta"]["backend"];
    println!(
        "\nmatrix-leave benchmarks: {} rounds, {} ms per measurement; CPU {}; ed25519 {} (ours and ruma, curve25519-dalek 5), {} (floor, curve25519-dalek 4); SHA-256 {}; load {} at the start, {} at the end",
        s["meta"]["rounds"],
        s["meta"]["target_ms_per_measurement"],
        b["cpu"].as_str().unwrap_or("?"),
        b["curve25519_dalek_runtime_backend"].as_str().unwrap_or("?"),
        b["curve25519_dalek_4_runtime_backend (floor)"]
            .as_str()
            .unwrap_or("?"),
        b["sha2_backend"].as_str().unwrap_or("?"),
        s["meta"]["load_average_start"].as_str().unwrap_or("?"),
        s["meta"]["load_average"].as_str().unwrap_or("?"),
    );
    let recv = |kinds: &[&str]| -> Vec<&serde_json::Value> {
        sets.iter()
            .filter(|x| kinds.contains(&x["kind"].as_str().unwrap_or("")))
            .collect()
    };
    let size = |x: &serde_json::Value| format!("{}", x["median_bytes"]);
    table(
        "send_leave, µs per event (median of rounds); ratios: median of per-round ratios [min-max]",
        &[
            "set",
            "bytes",
            "ours",
            "ours C",
            "ours py",
            "ruma",
            "synapse",
            "floor",
            "floor(ck)",
            "ours/floor",
            "ours/floor(ck)",
            "ruma/ours",
            "synapse/ours",
        ],
        recv(&["small", "big", "scale"])
            .into_iter()
            .map(|x| {
                vec![
                    x["name"].as_str().unwrap().to_string(),
                    size(x),
                    us(x, "ours_rust"),
                    us(x, "ours_c"),
                    us(x, "ours_py"),
                    us(x, "ruma"),
                    us(x, "synapse"),
                    us(x, "floor"),
                    us(x, "floor_cached"),
                    ratio(x, "ours/floor"),
                    ratio(x, "ours/floor_cached"),
                    ratio(x, "ruma/ours"),
                    ratio(x, "synapse/ours"),
                ]
            })
            .collect(),
    );
    table(
        "binding overhead: ratios to the Rust API (median [min-max])",
        &["set", "C/rust", "py/rust", "synapse/py"],
        recv(&["small", "big", "scale"])
            .into_iter()
            .map(|x| {
                vec![
                    x["name"].as_str().unwrap().to_string(),
                    ratio(x, "c/rust"),
                    ratio(x, "py/rust"),
                    ratio(x, "synapse/py"),
                ]
            })
            .collect(),
    );
    table(
        "matrix-leave stages, µs per event (each from the previous stage's output)",
        &[
            "set",
            "parse",
            "format",
            "canonical",
            "content hash",
            "redact+ref hash",
            "verify",
            "auth",
            "sum",
            "send_leave",
        ],
        recv(&["small", "big"])
            .into_iter()
            .map(|x| {
                let ids = [
                    "parse",
                    "format",
                    "canonical",
                    "content_hash",
                    "reference_hash",
                    "verify",
                    "auth",
                ];
                let sum: f64 = ids
                    .iter()
                    .filter(|id| **id != "canonical")
                    .filter_map(|id| x["contenders"][*id]["median_us"].as_f64())
                    .sum();
                let mut r = vec![x["name"].as_str().unwrap().to_string()];
                r.extend(ids.iter().map(|id| us(x, id)));
                r.push(format!("{sum:.1}"));
                r.push(us(x, "ours_rust"));
                r
            })
            .collect(),
    );
    table(
        "ruma, Synapse and floor stages, µs per event",
        &[
            "set",
            "r.parse",
            "r.format",
            "r.ref hash",
            "r.verify+hash",
            "r.auth",
            "s.parse",
            "s.build",
            "s.content",
            "s.ref hash",
            "s.redact+verify",
            "s.auth",
            "f.parse",
            "f.2×sha256",
            "f.verify",
            "f.verify(ck)",
            "f.verify dalek3(ck)",
        ],
        recv(&["small", "big"])
            .into_iter()
            .map(|x| {
                let mut r = vec![x["name"].as_str().unwrap().to_string()];
                for id in [
                    "ruma_parse",
                    "ruma_format",
                    "ruma_reference_hash",
                    "ruma_verify",
                    "ruma_auth",
                    "syn_parse",
                    "syn_build",
                    "syn_content_hash",
                    "syn_reference_hash",
                    "syn_verify",
                    "syn_auth",
                    "floor_parse",
                    "floor_sha2",
                    "floor_verify_decode",
                    "floor_verify_cached",
                    "floor_verify_dalek3",
                ] {
                    r.push(us(x, id));
                }
                r
            })
            .collect(),
    );
    table(
        "make_leave, µs per template",
        &[
            "room",
            "ours",
            "ours C",
            "ours py",
            "bare template",
            "C/bare",
            "rust/bare",
            "py/bare",
        ],
        recv(&["make_leave"])
            .into_iter()
            .map(|x| {
                vec![
                    x["name"].as_str().unwrap().to_string(),
                    us(x, "ml_rust"),
                    us(x, "ml_c"),
                    us(x, "ml_py"),
                    us(x, "bare_template"),
                    ratio(x, "ml_c/bare"),
                    ratio(x, "ml_rust/bare"),
                    ratio(x, "ml_py/bare"),
                ]
            })
            .collect(),
    );
    table(
        "memory per call on the median event: Rust = peak heap KiB / allocations (counting allocator); py = tracemalloc peak KiB (Python heap only)",
        &["set", "ours", "ours C", "ruma", "floor", "floor(ck)", "ours py", "synapse"],
        sets.iter()
            .map(|x| {
                let ids: &[&str] = if x["kind"] == "make_leave" {
                    &["ml_rust", "ml_c", "bare_template", "-", "-", "ml_py", "-"]
                } else {
                    &["ours_rust", "ours_c", "ruma", "floor", "floor_cached", "ours_py", "synapse"]
                };
                let mut r = vec![x["name"].as_str().unwrap().to_string()];
                r.extend(ids.iter().map(|id| kb(x, id)));
                r
            })
            .collect(),
    );
    println!("\n(make_leave rows in the memory table: ours, ours C, bare template, -, -, ours py)");
    println!("\ngoals (median of per-round ratios):");
    for g in s["goals"].as_array().unwrap() {
        println!(
            "  {:<4} {:<52} {:<14} {:<18} {:.2}",
            if g["met"] == true { "met" } else { "MISS" },
            g["goal"].as_str().unwrap(),
            g["set"].as_str().unwrap(),
            g["ratio"].as_str().unwrap(),
            g["median"].as_f64().unwrap()
        );
    }
}
