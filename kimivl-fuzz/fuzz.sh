#!/usr/bin/env bash
# Real fuzzing (docs/fuzzing.md): each target in turn for a fixed time, coverage-guided by Jazzer/libFuzzer.
#
#   kimivl-fuzz/fuzz.sh [-t DURATION] [TARGET...]      e.g.  kimivl-fuzz/fuzz.sh -t 10m SafetensorsFuzzTest#header
#
# Coverage comes from kimivl's own classes (JAZZER_INSTRUMENT, default dev.kimivl.**; add com.fasterxml.jackson.** to
# steer through the JSON parser too, at some cost in speed).
# Each target's @Timeout is the per-input limit: JUnit enforces it per seed when the build replays the corpus; while
# fuzzing, Jazzer hands it to libFuzzer (-timeout) and JUnit's own timeouts are switched off (they would time the
# whole session).
# DURATION is Jazzer's max_duration per target (30s, 3m, 1h; default 3m); without TARGET every target runs.
# Jazzer fuzzes one @FuzzTest per JVM, so each target is one Maven run. A finding stops its target and is written
# as crash-<sha1> into kimivl-fuzz/src/test/resources/dev/kimivl/fuzz/<Class>Inputs/<method>/, where the normal build
# replays it from then on: fix the bug, keep the file (commit it), and rerun. The corpus the fuzzer grows lives in
# kimivl-fuzz/.cifuzz-corpus/ (not committed; it carries coverage from one run to the next).
# The per-target summary (executions, coverage, corpus) is libFuzzer's last "#N DONE cov: ..." line, kept in
# kimivl-fuzz/<target dir>/fuzz-logs/<target>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
duration=3m
if [[ "${1:-}" == "-t" ]]; then duration="$2"; shift 2; fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(SafetensorsFuzzTest#file SafetensorsFuzzTest#header SafetensorsFuzzTest#index SafetensorsFuzzTest#config
           GgufFuzzTest#file GgufFuzzTest#textHeader GgufFuzzTest#mixedHeader GgufFuzzTest#mmprojHeader NativeBoundaryFuzzTest#matrix
           ImageFuzzTest#image TokenizerFuzzTest#tiktokenFile TokenizerFuzzTest#tokenizerConfig TokenizerFuzzTest#roundTrip
           TokenizerFuzzTest#decodeIds ChatRequestFuzzTest#body)
fi
source scripts/jdk.sh
target_dir="${KIMIVL_TARGET:-target}"
logs="kimivl-fuzz/$target_dir/fuzz-logs"
mkdir -p "$logs"
status=0
for t in "${targets[@]}"; do
  log="$logs/${t/\#/.}.log"
  echo "== $t for $duration (log: $log)"
  JAZZER_FUZZ=1 JAZZER_MAX_DURATION="$duration" JAZZER_INSTRUMENT="${JAZZER_INSTRUMENT:-dev.kimivl.**}" nice -n 10 mvn -B -q -o -Dkimivl.target="$target_dir" -pl kimivl-fuzz -am verify \
      -Dtest="$t" -Dsurefire.failIfNoSpecifiedTests=false -Djunit.jupiter.execution.timeout.mode=disabled >"$log" 2>&1
  rc=$?
  grep -a -E '^#[0-9]+\s+(DONE|pulse)' "$log" | tail -1
  grep -a -m1 -E 'FuzzTestFinding|ERROR: libFuzzer' "$log" || true
  if [[ $rc -ne 0 ]]; then echo "   FINDING or failure in $t (exit $rc): see $log"; status=1; fi
done
exit $status
