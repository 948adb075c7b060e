#!/bin/sh
# Re-records the files in this folder with the real perf of the machine it runs on (see README.md).
# Locales are compiled into a private directory (LOCPATH), nothing system-wide changes.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
loc=$(mktemp -d)
for l in de_DE fr_FR en_IN; do localedef -i "$l" -f UTF-8 "$loc/$l.UTF-8"; done
export LOCPATH="$loc"
# ~190k page faults and >1 s of task-clock, so counts reach the thousands separators.
work='python3 -c "b=bytearray(700*1024*1024); import time; t=time.process_time()
while time.process_time()-t<1.1: pass"'
ev=task-clock,page-faults,cycles
for l in de_DE fr_FR en_IN; do
  LC_ALL=$l.UTF-8 perf stat -e $ev -- sh -c "$work" 2>"$out/perf-stat-human-$l.txt"
  LC_ALL=$l.UTF-8 perf stat -x';' -e $ev -- sh -c "$work" 2>"$out/perf-stat-x-semicolon-$l.csv"
done
LC_ALL=de_DE.UTF-8 perf stat -j -e $ev -- sh -c "$work" 2>"$out/perf-stat-j-de_DE.jsonl"
LC_ALL=de_DE.UTF-8 perf stat -x, -e $ev -- sh -c "$work" 2>"$out/perf-stat-x-comma-de_DE.csv"
LC_ALL=de_DE.UTF-8 perf stat -I 400 --summary -e $ev -- sh -c "$work" 2>"$out/perf-stat-I-summary-human-de_DE.txt"
LC_ALL=C perf stat -I 400 --summary -x, -e $ev -- sh -c "$work" 2>"$out/perf-stat-I-summary-x.csv"
LC_ALL=C perf stat -I 400 --summary --no-csv-summary -x, -e $ev -- sh -c "$work" 2>"$out/perf-stat-I-summary-no-csv-summary-x.csv"
LC_ALL=C perf stat -I 400 --summary -e $ev -- sh -c "$work" 2>"$out/perf-stat-I-summary-human.txt"
LC_ALL=C perf stat -I 400 --summary -j -e $ev -- sh -c "$work" 2>"$out/perf-stat-I-summary-j.jsonl"
# Three runs appended to one log without -o/--append, so no "# started on" line separates them.
: >"$out/perf-stat-x-three-runs-pasted.csv"
for i in 1 2 3; do LC_ALL=C perf stat -x, -e $ev -- sh -c "$work" 2>>"$out/perf-stat-x-three-runs-pasted.csv"; done
perf --version >"$out/perf-version.txt"
rm -rf "$loc"
