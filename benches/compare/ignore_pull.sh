#!/usr/bin/env bash
# What a `.ferryignore` costs a pull: a 20,000-file folder (200 folders of
# 100 small files and one x.log), pushed, cloned, then 20 one-file pushes
# (so a snapshot has ancestors to read for its effective tree, format-spec
# §15.6); then, three times, one more one-file push and a timed pull of it
# in the clone. Once with `.ferryignore` = `*.log`, once without.
# Usage: benches/compare/ignore_pull.sh   (release build; prints one line per pull)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
F=${FERRY:-$here/target/release/ferry}
W=${WORK:-/var/tmp/ferry-ignore-pull}
export FERRY_PASSWORD=bench FERRY_CACHE_DIR=$W/cache
kdf=(--kdf-memory-kib 64 --kdf-iterations 1)
for rules in with without; do
  rm -rf "$W/$rules"; mkdir -p "$W/$rules/a"; cd "$W/$rules/a"
  RULES=$rules python3 - <<'PY'
import os
for d in range(200):
    os.makedirs(f"d{d:03}", exist_ok=True)
    for f in range(100):
        open(f"d{d:03}/f{f:03}.txt", "w").write(f"file {d} {f}\n" * 3)
    open(f"d{d:03}/x.log", "w").write("log\n")
if os.environ["RULES"] == "with":
    open(".ferryignore", "w").write("*.log\n")
PY
  "$F" -q init "${kdf[@]}" .
  "$F" -q store init "$W/$rules/st" --like . "${kdf[@]}"
  "$F" -q push "$W/$rules/st"
  "$F" -q clone "$W/$rules/st" "$W/$rules/b" "${kdf[@]}"
  for i in $(seq 1 20); do echo "edit $i" >> d000/f000.txt; "$F" -q push "$W/$rules/st"; done
  "$F" -q -C "$W/$rules/b" pull "$W/$rules/st"
  for i in 1 2 3; do
    echo "timed $i" >> d000/f000.txt; "$F" -q push "$W/$rules/st"
    /usr/bin/time -f "$rules rules: one-file pull %e s, peak RSS %M KiB" "$F" -q -C "$W/$rules/b" pull "$W/$rules/st"
  done
done
