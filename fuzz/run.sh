#!/bin/sh
# Runs the fuzz targets one after another, each for SECONDS, and summarises what they found.
#
#   fuzz/run.sh SECONDS [TARGET...]      (default: every target of `cargo fuzz list`)
#
# Stable toolchain: the targets are built with `--sanitizer none` (the address sanitizer
# needs a nightly -Z flag; the targets only call safe Rust). `-a` keeps debug assertions and
# overflow checks on. libFuzzer runs in fork mode with one worker and keeps going after a
# crash, so one known bug does not stop a long run; every crash is saved under
# fuzz/artifacts/TARGET/, and the new ones are listed at the end grouped by panic message.
# Logs go to fuzz/logs/TARGET.log. Exits 1 when any target produced a new artifact.
set -eu
cd "$(dirname "$0")"
secs=${1:-600}
[ $# -gt 0 ] && shift
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
flags="--sanitizer none -a"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
python3 seed_corpora.py 2>/dev/null
cargo fuzz build $flags
targets=${*:-$(cargo fuzz list)}
bin_dir=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
status=0
for t in $targets; do
    mkdir -p "artifacts/$t"
    ls "artifacts/$t" | sort >"logs/$t.before"
    start=$(date +%s)
    cargo fuzz run $flags "$t" -- -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -max_total_time="$secs" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 >"logs/$t.log" 2>&1 || true
    took=$(($(date +%s) - start))
    last=$(grep -E '^#[0-9]+:' "logs/$t.log" | tail -n 1 || true)
    execs=$(printf '%s' "$last" | sed -E 's/^#([0-9]+):.*/\1/')
    corp=$(printf '%s' "$last" | sed -E 's/.* corp: ([0-9]+).*/\1/')
    new=$(ls "artifacts/$t" | sort | comm -13 "logs/$t.before" -)
    rm -f "logs/$t.before"
    n=$(printf '%s' "$new" | grep -c . || true)
    echo "$t: ${took}s, ${execs:-?} executions, corpus ${corp:-?}, $n new artifacts"
    # One line per distinct panic message: how many artifacts, and the smallest of them.
    for a in $new; do
        why=$("$bin_dir/$t" "artifacts/$t/$a" 2>&1 | grep -A1 -m1 'panicked at' | tail -n 1 || true)
        printf '%s\t%s\t%s\n' "${why:-(no panic message: timeout or out of memory?)}" \
            "$(wc -c <"artifacts/$t/$a")" "$a"
    done | sort -t "$(printf '\t')" -k1,1 -k2,2n | awk -F '\t' '
        $1 != last { if (last != "") printf "    %d x %s\n        smallest: %s (%d bytes)\n", n, last, first, size;
                     last = $1; n = 0; first = $3; size = $2 }
        { n++ }
        END { if (last != "") printf "    %d x %s\n        smallest: %s (%d bytes)\n", n, last, first, size }'
    [ "$n" -gt 0 ] && status=1
done
exit $status
