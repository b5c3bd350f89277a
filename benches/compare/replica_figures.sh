#!/usr/bin/env bash
# Figures for replicas (issue 5) and sync (issue 6), one run on one machine.
#  1. On a 1 GiB folder: bytes written and wall time for (a) a 4 KiB
#     overwrite in the middle of a 256 MiB file, (b) a 1-byte insert at its
#     start, (c) renaming a 100 MiB file into another folder, (d) an
#     editor-style save (temp file renamed over the original); ferry push
#     vs `rsync -a --stats` to a plain copy (default whole-file and
#     --no-whole-file) vs restic backup.
#  2. One sync round of 3 replicas through one store, 1 GiB folder, 1% of
#     the files changed on each replica.
# Usage: benches/compare/replica_figures.sh   (prints Markdown)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORK:-/var/tmp/ferry-replica-figures}
FERRY=${FERRY:-$here/target/release/ferry}
export FERRY_PASSWORD=bench RESTIC_PASSWORD=bench FERRY_CACHE_DIR=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
command -v rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
[ -x "$FERRY" ] || (cd "$here" && cargo build --release -p ferry-cli)
rm -rf "$W"; mkdir -p "$W"
det() ( set +o pipefail; openssl enc -aes-128-ctr -K "$(printf '%032x' "$1")" -iv 0 -nosalt -pbkdf2 -pass pass:x </dev/zero 2>/dev/null | head -c "$2" )
K="--kdf-memory-kib 65536 --kdf-iterations 3"
F="$W/laptop"; mkdir -p "$F/big" "$F/media" "$F/src"
det 1 $((256<<20)) > "$F/big/disk.img"
det 2 $((100<<20)) > "$F/media/video.mp4"
for i in $(seq 1 1300); do det $((100+i)) $((512<<10)) > "$F/src/file$i.dat"; done
"$FERRY" -q init "$F" $K
"$FERRY" -q -C "$F" store init "$W/stick" --like . $K
restic init -q -r "$W/restic" >/dev/null
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
"$FERRY" -q -C "$F" push "$W/stick"; restic -q -r "$W/restic" backup "$F" --exclude "$F/.ferry" >/dev/null
rsync -a --exclude .ferry "$F/" "$W/copy-whole/"; rsync -a --exclude .ferry "$F/" "$W/copy-delta/"
size() { du -sb "$1" | cut -f1; }
echo "| step | ferry push bytes | ferry s | rsync bytes sent (whole-file) | rsync bytes sent (--no-whole-file) | restic added bytes | restic s |"
echo "|---|---|---|---|---|---|---|"
step() {
  local name=$1
  local b0=$(size "$W/stick") r0=$(size "$W/restic")
  local tf=$(t "$FERRY" -q -C "$F" push "$W/stick")
  local b1=$(size "$W/stick")
  local rw=$(rsync -a --stats --exclude .ferry "$F/" "$W/copy-whole/" | awk -F': ' '/Total bytes sent/{gsub(",","",$2); print $2}')
  local rd=$(rsync -a --no-whole-file --stats --exclude .ferry "$F/" "$W/copy-delta/" | awk -F': ' '/Total bytes sent/{gsub(",","",$2); print $2}')
  local tr=$(t restic -q -r "$W/restic" backup "$F" --exclude "$F/.ferry")
  local r1=$(size "$W/restic")
  echo "| $name | $((b1-b0)) | $tf | $rw | $rd | $((r1-r0)) | $tr |"
}
python3 - "$F/big/disk.img" <<'PY'
import sys; f=open(sys.argv[1],'r+b'); f.seek(128<<20); f.write(b'\x55'*4096)
PY
step "(a) 4 KiB overwrite mid 256 MiB file"
python3 - "$F/big/disk.img" <<'PY'
import sys,os; p=sys.argv[1]; d=open(p,'rb').read(); open(p+'.new','wb').write(b'!'+d); os.replace(p+'.new',p)
PY
step "(b) 1-byte insert at start"
mkdir -p "$F/archive"; mv "$F/media/video.mp4" "$F/archive/video.mp4"
step "(c) rename 100 MiB file to another folder"
cp "$F/src/file7.dat" "$F/src/.file7.swp"; mv "$F/src/.file7.swp" "$F/src/file7.dat"
step "(d) editor-style save (temp + rename)"
echo
# Sync round: three replicas, each changes 1% of the files (13 of 1300), then each syncs once.
"$FERRY" -q clone "$W/stick" "$W/r2" $K; "$FERRY" -q clone "$W/stick" "$W/r3" $K
"$FERRY" -q -C "$F" sync "$W/stick"
RANDOM=42; k=0
for r in "$F" "$W/r2" "$W/r3"; do
  k=$((k+1))
  for i in $(seq 1 13); do n=$(( (RANDOM % 1300) + 1 )); det $((5000+100*k+i)) $((512<<10)) > "$r/src/file$n.dat"; done
done
echo "| sync round (3 replicas, 1 GiB, 1% changed each) | wall s | bytes written to store | bytes read from store |"
echo "|---|---|---|---|"
for r in "$F" "$W/r2" "$W/r3" "$F" "$W/r2"; do
  b0=$(size "$W/stick")
  s=$(date +%s.%N); out=$("$FERRY" -C "$r" sync "$W/stick" --json); e=$(date +%s.%N)
  b1=$(size "$W/stick")
  fs=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_from_store"])')
  echo "| $(basename "$r") | $(echo "$e - $s" | bc) | $((b1-b0)) | $fs |"
done
diff -r -x .ferry "$F" "$W/r2" >/dev/null && diff -r -x .ferry "$F" "$W/r3" >/dev/null && echo && echo "all three replicas identical after the round: yes"
