#!/usr/bin/env bash
# Figures for `ferry mount` (issue 13), one run on one machine, all stores
# in local folders:
#  1. Sequential read of a 1 GiB file (incompressible): `ferry restore`;
#     `cat` through `ferry mount` cold (empty block cache), again in the
#     same mount (kernel page cache), and after a remount (block cache
#     warm); `restic mount`; `rclone mount --vfs-cache-mode full` of the
#     plain folder. The block cache quota is 2 GiB, so the remount finds the
#     whole file cached (the default 1 GiB would hold only part of it).
#  2. `ls -lR` of a snapshot of 30,000 files in 300 folders: `ferry mount`
#     vs `restic mount` (each freshly mounted).
# Usage: benches/compare/mount_figures.sh   (prints Markdown; SIZE_MIB=1024)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORK:-/var/tmp/ferry-mount-figures}
FERRY=${FERRY:-$here/target/release/ferry}
SIZE_MIB=${SIZE_MIB:-1024}
export FERRY_PASSWORD=bench RESTIC_PASSWORD=bench FERRY_CACHE_DIR=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
for tool in restic rclone fusermount3; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq "$([ $tool = fusermount3 ] && echo fuse3 || echo $tool)" >/dev/null; }
done
[ -x "$FERRY" ] || (cd "$here" && cargo build --release -p ferry-cli)
for m in "$W"/mnt-*; do fusermount3 -u -z "$m" 2>/dev/null || true; done
rm -rf "$W"; mkdir -p "$W"
det() ( set +o pipefail; openssl enc -aes-128-ctr -K "$(printf '%032x' "$1")" -iv 0 -nosalt -pbkdf2 -pass pass:x </dev/zero 2>/dev/null | head -c "$2" )
now() { date +%s.%N; }
secs() { printf '%.3f' "$(echo "$2 - $1" | bc)"; }
mibs() { echo "scale=0; $SIZE_MIB / $1" | bc; }
wait_for() { for _ in $(seq 1 600); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }

K="--kdf-memory-kib 65536 --kdf-iterations 3"
B="$W/big"; mkdir -p "$B"
det 1 $((SIZE_MIB << 20)) > "$B/file.bin"
M="$W/many"
python3 - "$M" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(300):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:03}.txt", "w") as fh:
            fh.write(f"file {d} {f}\n" * 10)
EOF
"$FERRY" -q store init "$W/store" $K
"$FERRY" -q backup "$B" --to "$W/store"
"$FERRY" -q store init "$W/store-many" $K
"$FERRY" -q backup "$M" --to "$W/store-many"
restic init -q -r "$W/restic" >/dev/null
restic backup -q -r "$W/restic" "$B" >/dev/null
restic init -q -r "$W/restic-many" >/dev/null
restic backup -q -r "$W/restic-many" "$M" >/dev/null

# Every timed step starts with the disk idle: what the step before wrote
# (or deleted: this disk's ext4 discards online) is flushed first, so no
# step pays for another's writeback. The restored copy stays until the end.
settle() { sync; sleep 1; }

# 1. Sequential read of the big file.
settle
s=$(now); "$FERRY" -q restore "$W/store" latest --target "$W/restored"; e=$(now); t_restore=$(secs $s $e)
settle
mkdir -p "$W/mnt-ferry"
"$FERRY" -q mount "$W/store" "$W/mnt-ferry" --cache-size 2GiB & fp=$!
wait_for "$W/mnt-ferry/latest/file.bin"
s=$(now); cat "$W/mnt-ferry/latest/file.bin" > /dev/null; e=$(now); t_cold=$(secs $s $e)
s=$(now); cat "$W/mnt-ferry/latest/file.bin" > /dev/null; e=$(now); t_page=$(secs $s $e)
kill -TERM $fp; wait $fp
"$FERRY" -q mount "$W/store" "$W/mnt-ferry" --cache-size 2GiB & fp=$!
wait_for "$W/mnt-ferry/latest/file.bin"
settle
s=$(now); cat "$W/mnt-ferry/latest/file.bin" > /dev/null; e=$(now); t_blockcache=$(secs $s $e)
kill -TERM $fp; wait $fp
mkdir -p "$W/mnt-restic"
restic mount -q -r "$W/restic" "$W/mnt-restic" >/dev/null 2>&1 & rp=$!
wait_for "$W/mnt-restic/snapshots/latest/$B/file.bin"
settle
s=$(now); cat "$W/mnt-restic/snapshots/latest/$B/file.bin" > /dev/null; e=$(now); t_restic=$(secs $s $e)
kill -INT $rp; wait $rp || true
mkdir -p "$W/mnt-rclone"
rclone mount --vfs-cache-mode full --cache-dir "$W/rclone-cache" "$B" "$W/mnt-rclone" >/dev/null 2>&1 & cp=$!
wait_for "$W/mnt-rclone/file.bin"
settle
s=$(now); cat "$W/mnt-rclone/file.bin" > /dev/null; e=$(now); t_rclone=$(secs $s $e)
kill -INT $cp; wait $cp || true

# 2. ls -lR of 30,000 entries.
"$FERRY" -q mount "$W/store-many" "$W/mnt-ferry" & fp=$!
wait_for "$W/mnt-ferry/latest"
s=$(now); n_ferry=$(ls -lR "$W/mnt-ferry/latest" | wc -l); e=$(now); t_ls_ferry=$(secs $s $e)
kill -TERM $fp; wait $fp
restic mount -q -r "$W/restic-many" "$W/mnt-restic" >/dev/null 2>&1 & rp=$!
wait_for "$W/mnt-restic/snapshots/latest/$M"
s=$(now); n_restic=$(ls -lR "$W/mnt-restic/snapshots/latest/$M" | wc -l); e=$(now); t_ls_restic=$(secs $s $e)
kill -INT $rp; wait $rp || true

cat <<EOF
Machine: $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); ferry $(git -C "$here" rev-parse --short HEAD) ($FERRY); $(restic version | cut -d' ' -f1-2); $(rclone version | head -1).
Stores in local folders under $W (in the page cache: warm source, as in the suite).

| ${SIZE_MIB} MiB file, sequential read | seconds | MiB/s |
|---|---|---|
| ferry restore | $t_restore | $(mibs $t_restore) |
| ferry mount, cold (empty block cache) | $t_cold | $(mibs $t_cold) |
| ferry mount, read again (kernel page cache) | $t_page | $(mibs $t_page) |
| ferry mount, remounted (block cache warm) | $t_blockcache | $(mibs $t_blockcache) |
| restic mount | $t_restic | $(mibs $t_restic) |
| rclone mount --vfs-cache-mode full (plain folder) | $t_rclone | $(mibs $t_rclone) |

| \`ls -lR\` of a snapshot of 30,000 files in 300 folders | seconds | lines |
|---|---|---|
| ferry mount | $t_ls_ferry | $n_ferry |
| restic mount | $t_ls_restic | $n_restic |
EOF
rm -rf "$W"
