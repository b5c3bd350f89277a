#!/usr/bin/env bash
# Peak RSS with a key file as a store grows 16x (issue 15). Into one store
# (of a replica's key family): a first backup and a restore of a 4000-file
# text tree (~150 MiB), `snapshots`, and a push from a replica whose tree is
# replaced whole by another such tree, and its pull into a second replica
# that held the tree before; then 15 backups of 4000 new 16 KiB random
# files each (the block count and the store grow about 16x); then the same
# steps again with new trees of the same shape. RSS is `/usr/bin/time`'s maximum resident set size;
# times are printed but are not the point (run it alone for them).
# Usage: benches/compare/rss_growth.sh   (prints Markdown; FERRY=path)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORK:-/var/tmp/ferry-rss-growth}
FERRY=${FERRY:-$here/target/release/ferry}
[ -x "$FERRY" ] || (cd "$here" && cargo build --release -p ferry-cli)
rm -rf "$W"; mkdir -p "$W"; cd "$W"
export FERRY_CACHE_DIR=$W/cache
python3 - "$W" <<'EOF'
import os, random, sys
w = sys.argv[1]
random.seed(1)
words = [''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(random.randint(2, 10))) for _ in range(5000)]
def text_tree(root, seed):
    r = random.Random(seed)
    for i in range(4000):
        d = f"{root}/d{i % 50:02}"
        os.makedirs(d, exist_ok=True)
        size, out, total = int(2 ** r.uniform(8, 18)), [], 0
        while total < size:
            line = ' '.join(r.choice(words) for _ in range(r.randint(3, 12))) + '\n'
            out.append(line)
            total += len(line)
        open(f"{d}/f{i:05}.txt", 'w').write(''.join(out))
for n in (1, 2, 3, 4, 5):
    text_tree(f"{w}/src{n}", n)
for k in range(15):
    for i in range(4000):
        d = f"{w}/grow{k:02}/d{i % 50:02}"
        os.makedirs(d, exist_ok=True)
        open(f"{d}/g{i:05}.bin", 'wb').write(os.urandom(16 << 10))
EOF
mkdir rep
FERRY_PASSWORD=bench "$FERRY" -q init rep
FERRY_PASSWORD=bench "$FERRY" -q store init ./st --like rep
FERRY_PASSWORD=bench "$FERRY" -q key export ./st ./key 2>/dev/null
export FERRY_KEY_FILE=$W/key
(cd rep && "$FERRY" -q push ../st)
# A new replica is locked by a passphrase of its own, even with a key file.
FERRY_PASSWORD=bench "$FERRY" -q clone ./st rep2
m() { /usr/bin/time -f "%M %e" "$@" 2>&1 >/dev/null | tail -1; }
mib() { echo "scale=1; $1 / 1024" | bc; }
row() { set -- $2 "$1"; echo "| $3 | $(mib "$1") | $2 |"; }
# The replica's tree becomes srcN's, whole (old files gone, new ones in).
fill() { find rep -mindepth 1 -maxdepth 1 ! -name .ferry -exec rm -rf {} +; cp -r "$1"/. rep/; }
b1=$(m "$FERRY" -q backup src1 --to ./st); r1=$(m "$FERRY" -q restore ./st latest --target r1); s1=$(m "$FERRY" -q snapshots ./st)
fill src3; (cd rep && "$FERRY" -q push ../st); (cd rep2 && "$FERRY" -q pull ../st)
fill src4; p1=$(cd rep && m "$FERRY" -q push ../st); l1=$(cd rep2 && m "$FERRY" -q pull ../st)
cmp -s rep/d00/f00000.txt rep2/d00/f00000.txt || { echo "pull did not bring the pushed tree" >&2; exit 1; }
size1=$(du -sm st | cut -f1)
for k in $(seq -w 0 14); do "$FERRY" -q backup "grow$k" --to ./st; done
b16=$(m "$FERRY" -q backup src2 --to ./st); r16=$(m "$FERRY" -q restore ./st latest --target r2); s16=$(m "$FERRY" -q snapshots ./st)
fill src5; p16=$(cd rep && m "$FERRY" -q push ../st); l16=$(cd rep2 && m "$FERRY" -q pull ../st)
cmp -s rep/d00/f00000.txt rep2/d00/f00000.txt || { echo "pull did not bring the pushed tree" >&2; exit 1; }
size16=$(du -sm st | cut -f1)
cat <<EOT
Machine: $(nproc) cores; ferry $(git -C "$here" rev-parse --short HEAD) ($FERRY); key file (no KDF). Store $size1 MiB, then $size16 MiB.

| step | peak RSS MiB | seconds |
|---|---|---|
$(row "first backup, store 1x" "$b1")
$(row "restore, store 1x" "$r1")
$(row "snapshots, store 1x" "$s1")
$(row "push of a replica's tree replaced whole, store 1x" "$p1")
$(row "pull of it into another replica, store 1x" "$l1")
$(row "first backup of a like tree, store 16x" "$b16")
$(row "restore of it, store 16x" "$r16")
$(row "snapshots, store 16x" "$s16")
$(row "push of a replica's tree replaced whole, store 16x" "$p16")
$(row "pull of it, store 16x" "$l16")
EOT
