#!/bin/sh
# Run one libFuzzer harness for a fixed time and print what it reached.
#
#   tests/fuzz/run.sh FUZZDIR SECONDS NAME MAX_LEN [LIBFUZZER_FLAG...]
#
# FUZZDIR is $(BUILD)/fuzz (the harness binary FUZZDIR/fuzz_NAME). The
# working corpus FUZZDIR/corpus/NAME is seeded from tests/fuzz/corpus/NAME
# (never from tests/fuzz/regress: a known crash would stop the run at
# once), crashes go to FUZZDIR/crashes/NAME/, the whole log to
# FUZZDIR/logs/NAME.log. Exit status: libFuzzer's (non-zero on a crash).
set -u
dir=$1 secs=$2 name=$3 max_len=$4
shift 4
bin=$dir/fuzz_$name
corpus=$dir/corpus/$name
crashes=$dir/crashes/$name
log=$dir/logs/$name.log
mkdir -p "$corpus" "$crashes" "$dir/logs"
# Seeds by content hash, like libFuzzer names its own corpus files, so a
# seed edited in the tree is added again instead of hiding behind its name.
for f in tests/fuzz/corpus/"$name"/*; do
    [ -f "$f" ] || continue
    h=$(sha1sum "$f" | cut -c1-40)
    [ -f "$corpus/$h" ] || cp "$f" "$corpus/$h"
done
dict=
[ -f "tests/fuzz/$name.dict" ] && dict=-dict=tests/fuzz/$name.dict
before=$(ls "$crashes" | wc -l)
echo "fuzz $name: ${secs}s, -max_len=$max_len $* (log: $log)"
"$bin" -max_total_time="$secs" -max_len="$max_len" -artifact_prefix="$crashes/" \
    -print_final_stats=1 $dict "$@" "$corpus" >"$log" 2>&1
rc=$?
# The last status line ("#N ... cov: C ft: F corp: ...") holds the coverage
# reached; fork mode prints "#N: cov: ..." instead.
last=$(grep -E '^#[0-9]+:?[[:space:]]' "$log" | grep ' cov: ' | tail -n 1)
execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n 1 | awk '{print $2}')
[ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -nE 's/^#([0-9]+).*/\1/p')
cov=$(printf '%s\n' "$last" | sed -nE 's/.* cov: ([0-9]+).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
corp=$(ls "$corpus" | wc -l)
after=$(ls "$crashes" | wc -l)
echo "fuzz $name: ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus $corp files," \
     "$((after - before)) new crash file(s) in $crashes (exit $rc)"
if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR: |SUMMARY: |FUZZ ORACLE' "$log" | head -n 5 | sed 's/^/    /'
fi
exit "$rc"
