#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (not part of CI).
#
#   scripts/fuzz.sh [SECONDS]          # default 60 seconds per target
#   FUZZ_TARGETS="range routing" scripts/fuzz.sh 300
#
# Installs cargo-fuzz if it is missing. Works on a stable toolchain: cargo-fuzz
# passes nightly `-Z` flags, which RUSTC_BOOTSTRAP=1 lets stable accept.
# Exits 1 if any target found a crash (and prints the crash inputs), 2 on a
# build or setup failure, 0 otherwise.
#
# Environment:
#   CARGO_TARGET_DIR  where fuzz builds go (default: fuzz/target); use a
#                     directory other than the main crate's target/ so a fuzz
#                     build never holds its lock.
#   FUZZ_TARGETS      targets to run (default: every target in fuzz/Cargo.toml)
#   FUZZ_SANITIZER    address, none, ... (default: none; the crate forbids
#                     unsafe code, so coverage-guided panics are what we look
#                     for, and an uninstrumented std builds much faster)
#   FUZZ_ARGS         extra libFuzzer arguments, e.g. "-max_len=4096"

set -uo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS]  (a positive number of seconds per target)" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir=$root/fuzz
target_dir=${CARGO_TARGET_DIR:-$fuzz_dir/target}
sanitizer=${FUZZ_SANITIZER:-none}
log_dir=$fuzz_dir/logs
mkdir -p "$log_dir"

if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
# The vendored h2 is a path dependency, so its own `deny(missing_docs)` applies
# to the module it compiles only under `--cfg fuzzing` (which has no docs):
# lints are capped at warnings, as they are for crates from the registry.
export RUSTFLAGS="${RUSTFLAGS:-} --cap-lints warn"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "cannot install cargo-fuzz" >&2; exit 2; }
fi

cd "$root" || exit 2
if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "no fuzz targets found" >&2; exit 2; }

# The same flags for the build and the runs, so that `run` reuses the build.
build_flags=(--sanitizer "$sanitizer" --debug-assertions --target-dir "$target_dir")

echo "== building ${targets[*]} (sanitizer: $sanitizer, target dir: $target_dir)"
for target in "${targets[@]}"; do
    if ! cargo fuzz build "${build_flags[@]}" "$target"; then
        echo "build of fuzz target $target failed" >&2
        exit 2
    fi
done

stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
crashed=()
summary=()
for target in "${targets[@]}"; do
    corpus=$fuzz_dir/corpus/$target
    seeds=$fuzz_dir/seeds/$target
    artifacts=$fuzz_dir/artifacts/$target
    log=$log_dir/$target.log
    mkdir -p "$corpus" "$seeds" "$artifacts"
    libfuzzer_args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -f "$fuzz_dir/dicts/$target.dict" ]; then
        libfuzzer_args+=(-dict="$fuzz_dir/dicts/$target.dict")
    fi
    # shellcheck disable=SC2206 # FUZZ_ARGS is a list of words on purpose.
    libfuzzer_args+=(${FUZZ_ARGS:-})
    echo "== fuzzing $target for ${secs}s (log: ${log#"$root"/})"
    cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "$seeds" -- "${libfuzzer_args[@]}" \
        >"$log" 2>&1
    status=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    new_artifacts=$(find "$artifacts" -type f -newer "$stamp" | sort)
    if [ "$status" -ne 0 ] || [ -n "$new_artifacts" ]; then
        crashed+=("$target")
        result="CRASH (exit $status)"
        echo "!! $target failed; the end of its log:"
        grep -E -m1 -A12 "panicked at|ERROR: libFuzzer|==ERROR" "$log" || tail -n 25 "$log"
        for artifact in $new_artifacts; do
            echo "!! crash input: $artifact"
            od -A d -c "$artifact" | head -n 20
            echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $target $artifact"
            echo "   readable:  RUSTC_BOOTSTRAP=1 cargo fuzz fmt ${build_flags[*]} $target $artifact"
        done
    else
        result=ok
    fi
    summary+=("$(printf '%-12s %-16s execs=%-10s exec/s=%-7s %-22s corpus=%s files, %s bytes' \
        "$target" "$result" "${execs:-?}" "${speed:-?}" "${cov:-cov: ?}" "$files" "$bytes")")
done

echo
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#crashed[@]}" -gt 0 ]; then
    echo "crashes in: ${crashed[*]}; inputs under ${fuzz_dir#"$root"/}/artifacts/<target>/"
    exit 1
fi
echo "no crash"
