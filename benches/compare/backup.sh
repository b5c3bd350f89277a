#!/usr/bin/env bash
# Side-by-side backup comparison: ferry, restic and borg on the same data,
# in one run. Backs up each dataset in turn into one repository per tool,
# then re-backs up the last one unchanged, then restores it.
# Usage: benches/compare/backup.sh DATASET_DIR... (default: Debian's linux-source 6.1 and 6.12)
# Output: a Markdown table on stdout; raw `time -v` logs under $WORK/logs.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/var/tmp/ferry-compare}
FERRY=${FERRY:-$here/target/release/ferry}
export FERRY_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export FERRY_CACHE_DIR=$WORK/cache/ferry RESTIC_CACHE_DIR=$WORK/cache/restic BORG_CACHE_DIR=$WORK/cache/borg BORG_CONFIG_DIR=$WORK/cache/borg-config

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need restic restic; need borg borgbackup; need /usr/bin/time time
[ -x "$FERRY" ] || (cd "$here" && cargo build --release -p ferry-cli)

if [ $# -eq 0 ]; then
  for v in 6.1 6.12; do
    need true "linux-source-$v"
    [ -f /usr/src/linux-source-$v.tar.xz ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-$v >/dev/null
    [ -d "$WORK/data/linux-source-$v" ] || { mkdir -p "$WORK/data"; tar -C "$WORK/data" -xf /usr/src/linux-source-$v.tar.xz; }
    set -- "$@" "$WORK/data/linux-source-$v"
  done
fi

rm -rf "$WORK/repo" "$WORK/cache" "$WORK/restore" "$WORK/logs"; mkdir -p "$WORK/repo" "$WORK/logs" "$WORK/cache"
sync

# run TOOL STEP CMD...: times CMD, records wall seconds and peak RSS (KiB).
declare -A WALL RSS
run() {
  local tool=$1 step=$2; shift 2
  local log="$WORK/logs/$tool-$step.log"
  /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1 || { echo "$tool $step failed, see $log" >&2; tail -5 "$log" >&2; exit 1; }
  WALL[$tool,$step]=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log.time")
  RSS[$tool,$step]=$(awk -F': ' '/Maximum resident set size/{print $2}' "$log.time")
}

"$FERRY" -q store init "$WORK/repo/ferry" >/dev/null
restic init -q -r "$WORK/repo/restic" >/dev/null
borg init -e repokey-blake2 "$WORK/repo/borg" >/dev/null 2>&1

i=0
for d in "$@"; do
  i=$((i+1))
  # Same path for every dataset, as when one folder is backed up over time.
  rm -rf "$WORK/src"; cp -al "$d" "$WORK/src" 2>/dev/null || cp -a "$d" "$WORK/src"
  run ferry "backup$i" "$FERRY" -q backup "$WORK/src" --to "$WORK/repo/ferry"
  run restic "backup$i" restic -q -r "$WORK/repo/restic" backup "$WORK/src"
  run borg "backup$i" borg create --compression zstd,3 "$WORK/repo/borg::b$i" "$WORK/src"
done
run ferry rebackup "$FERRY" -q backup "$WORK/src" --to "$WORK/repo/ferry"
run restic rebackup restic -q -r "$WORK/repo/restic" backup "$WORK/src"
run borg rebackup borg create --compression zstd,3 "$WORK/repo/borg::again" "$WORK/src"

run ferry restore "$FERRY" -q restore "$WORK/repo/ferry" latest --target "$WORK/restore/ferry"
run restic restore restic -q -r "$WORK/repo/restic" restore latest --target "$WORK/restore/restic"
mkdir -p "$WORK/restore/borg"; run borg restore bash -c "cd '$WORK/restore/borg' && borg extract '$WORK/repo/borg::again'"
diff -rq "$WORK/src" "$WORK/restore/ferry" >/dev/null || { echo "ferry restore differs from the source" >&2; exit 1; }

size() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
echo "| tool | $(for j in $(seq 1 $i); do printf 'backup %s (s) | ' $j; done)re-backup (s) | restore (s) | store (MiB) | peak RSS backup (MiB) | peak RSS restore (MiB) |"
echo "|---|$(for j in $(seq 1 $i); do printf -- '---|'; done)---|---|---|---|---|"
for t in ferry restic borg; do
  peak=0; for j in $(seq 1 $i) ; do r=${RSS[$t,backup$j]}; [ "$r" -gt "$peak" ] && peak=$r; done
  printf '| %s | ' "$t"
  for j in $(seq 1 $i); do printf '%s | ' "${WALL[$t,backup$j]}"; done
  printf '%s | %s | %s | %s | %s |\n' "${WALL[$t,rebackup]}" "${WALL[$t,restore]}" "$(mib "$(size "$WORK/repo/$t")")" "$(mib $((peak*1024)))" "$(mib $((${RSS[$t,restore]}*1024)))"
done
echo
echo "versions: ferry $("$FERRY" --version | cut -d' ' -f2), $(restic version | cut -d' ' -f1-2), $(borg --version); $(nproc) cores; datasets: $*"
