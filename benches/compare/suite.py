#!/usr/bin/env python3
"""ferry comparison suite: ferry against restic, borg, rsync (and bupstash when
installed) on the same data, in the same run, alternating, several times.

    python3 benches/compare/suite.py [--quick] [--reps N] [--only DATASET]...

What it does, in order:
  1. installs missing Debian packages (restic, borgbackup, rsync, time; and
     linux-source-6.1/-6.12 unless the trees are already extracted) with
     apt-get, and bupstash (not in Debian) once with `cargo install` into
     /var/tmp/ferry-bench/tools (--no-bupstash to skip);
  2. builds ferry in release (`cargo build --release -p ferry-cli`; a no-op
     when up to date; cargo waits for a build in progress) and copies the
     binary aside so a rebuild during the run cannot change it;
  3. prepares the datasets deterministically under /var/tmp/ferry-bench/data
     (reused when their parameters match; the Linux trees are reused from
     /var/tmp/ferry-compare/data when present);
  4. runs repetitions in repetition-major order (every dataset's first, then
     every dataset's second, ...). A repetition creates fresh repositories
     and caches, then runs every step with every tool in turn (the order
     rotates by one tool per repetition) under GNU `time -v`. A full run
     without --reps has a 28-minute budget: each dataset's first repetition
     always runs, later ones (up to 3) only while the budget has room;
  5. writes BENCHMARKS.json and BENCHMARKS.md (at the repository root for a
     full run; under /var/tmp/ferry-bench/quick for --quick unless --out),
     with the targets of issues 4 and 15 computed from the medians.

How the tools open their repositories: ferry with a key file, as scripts and
watch mode do (issue 15): `ferry store init` gets FERRY_PASSWORD, `ferry key
export` writes the master key into the tool's cache folder, and every later
ferry command (every variant, the memory-scaling run too) runs with
FERRY_KEY_FILE and without FERRY_PASSWORD, so no key derivation is timed and
a fallback to the passphrase would fail; restic and borg with a passphrase
(scrypt, PBKDF2 at every run), bupstash with its key file. After each
dataset's last backup, a read-only step lists the snapshots (`ferry
snapshots`, `restic snapshots`, `borg list`, `bupstash list`).

Datasets (--only takes these names; repeatable or comma-separated):
  history         linux-source-6.1 then linux-source-6.12 at the same path,
                  no-change re-backup, restore of the latest snapshot
  sidebyside      both trees side by side as one tree (fresh repositories)
  smallfiles      200k small files from a seeded generator
  bigfile         one 2 GiB file, mostly incompressible; scattered 4 KiB
                  overwrites, inserts near the start, an append, a backup
                  after each; also the chunk-size study (ferry at 64, 256,
                  1024 and 2048 KiB average chunks on the same edits)
  incompressible  1 GiB of random bytes in 4 files
  memscale        ferry backup and restore peak RSS with the store at 1x, 4x
                  and 16x the size of one backup

Only Python 3.11's standard library is used. Everything the suite creates is
under /var/tmp/ferry-bench; it removes nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path("/var/tmp/ferry-bench")
REUSE = Path("/var/tmp/ferry-compare/data")
DATA = BENCH / "data"
SRC = BENCH / "src"  # per-run sources (hard links, the edited big file), on the host filesystem
WORK = BENCH / "work"  # repositories, caches, restores; moved onto the scratch filesystem when possible
SCRATCH_IMG = BENCH / "scratch.img"
SCRATCH_MNT = BENCH / "scratch"
LOGS = BENCH / "logs"
MiB = 1 << 20
KiB = 1 << 10
PASSWORD = "ferry-bench"
DATASETS = ["history", "sidebyside", "smallfiles", "bigfile", "incompressible", "memscale"]
CHUNK_AVGS_KIB = [64, 256, 1024, 2048]
WITH_BUPSTASH = True
GEN_VERSION = 1  # bump when a generator changes so cached data is rebuilt

# Sizes. --quick scales every dataset down (about 1/16).
FULL = {
    "history_subdir": None,  # whole trees
    "small_count": 200_000,
    "big_mib": 2048,
    "overwrites": 32,
    "append_mib": 8,
    "incompressible_mib": 1024,
    "mem_count": 5000,
    "mem_big_mib": 128,
    # default repetitions per dataset (--reps overrides all)
    "reps": {"history": 3, "sidebyside": 3, "smallfiles": 3, "bigfile": 3, "incompressible": 3},
}
QUICK = {
    "history_subdir": "fs",  # fs/ of both trees (~50 MB each)
    "small_count": 20_000,
    "big_mib": 128,
    "overwrites": 8,
    "append_mib": 1,
    "incompressible_mib": 64,
    "mem_count": 500,
    "mem_big_mib": 8,
    "reps": {"history": 2, "sidebyside": 1, "smallfiles": 2, "bigfile": 2, "incompressible": 2},
}
MEM_FACTORS = [1, 4, 16]
DEFAULT_BUDGET_MIN = 28


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"suite.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def sh(argv, **kw) -> str:
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def first_line(argv) -> str:
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except OSError:
        return "not installed"


def rmtree(p: Path) -> None:
    """Removes p, which must be under BENCH (the suite only removes what it made)."""
    p = Path(p)
    if BENCH not in p.parents:
        raise RuntimeError(f"refusing to remove {p}: not under {BENCH}")
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.exists():
        shutil.rmtree(p)


def dir_bytes(p: Path) -> int:
    """Sum of the apparent sizes of all files under p (like `du -sb`, without folders)."""
    total = 0
    stack = [str(p)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    total += e.stat(follow_symlinks=False).st_size
    return total


def tree_stats(p: Path) -> tuple[int, int, int]:
    """(regular files, symlinks, bytes in regular files) under p."""
    files = links = size = 0
    stack = [str(p)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_symlink():
                    links += 1
                elif e.is_dir():
                    stack.append(e.path)
                elif e.is_file():
                    files += 1
                    size += e.stat().st_size
    return files, links, size


# ---------------------------------------------------------------- setup


def dpkg_installed(pkg: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def apt_install(pkgs: list[str]) -> None:
    missing = [p for p in pkgs if not dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        die(f"missing Debian packages {missing}; run: sudo apt-get install -y {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"apt-get install {' '.join(missing)}")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def build_ferry(no_build: bool) -> Path:
    built = ROOT / "target" / "release" / "ferry"
    if not no_build:
        env = dict(os.environ)
        env.pop("CARGO_TARGET_DIR", None)  # the release binary lives in ./target
        log("cargo build --release -p ferry-cli (waits for a build in progress)")
        r = subprocess.run(["cargo", "build", "--release", "-p", "ferry-cli"], cwd=ROOT, env=env)
        if r.returncode != 0:
            if not built.exists():
                die("cargo build failed and there is no target/release/ferry")
            log("WARNING: cargo build failed; using the existing target/release/ferry")
    if not built.exists():
        die(f"{built} missing (run without --no-build)")
    # Private copy: another engineer's rebuild must not swap the binary mid-run.
    (BENCH / "bin").mkdir(parents=True, exist_ok=True)
    copy = BENCH / "bin" / "ferry"
    shutil.copy2(built, copy)
    return copy


def scratch_mounted() -> bool:
    return any(line.split()[1] == str(SCRATCH_MNT) for line in Path("/proc/mounts").read_text().splitlines())


def unmount_scratch() -> None:
    if scratch_mounted():
        subprocess.run(["umount", str(SCRATCH_MNT)], check=False)
    if SCRATCH_IMG.exists():
        out = subprocess.run(["losetup", "-j", str(SCRATCH_IMG)], stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
        rmtree(SCRATCH_IMG)
    if SCRATCH_MNT.exists() and not scratch_mounted():
        SCRATCH_MNT.rmdir()


def mount_scratch() -> bool:
    """Repositories, caches and restores go on a fresh ext4 in a sparse image
    file, mounted through a loop device with direct I/O and without online
    discard: on a disk mounted with `discard` every unlink of a file with data
    waits for a discard (~0.4 ms here), and the suite deletes millions of
    restored files. Same filesystem type, same disk, for every tool; falls back
    to the plain folder when not root or without losetup/mkfs.ext4."""
    if os.geteuid() != 0 or not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        return False
    unmount_scratch()
    size = min(48 << 30, shutil.disk_usage(BENCH).free - (10 << 30))
    if size < 24 << 30:
        log("WARNING: less than 34 GiB free under /var/tmp; no scratch filesystem")
        return False
    try:
        with open(SCRATCH_IMG, "wb") as f:
            f.truncate(size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", "3000000", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                        str(SCRATCH_IMG)], check=True, stdout=subprocess.DEVNULL)
        dev = sh(["losetup", "--find", "--show", "--direct-io=on", str(SCRATCH_IMG)]).strip()
        SCRATCH_MNT.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", "nodiscard", dev, str(SCRATCH_MNT)], check=True)
        log(f"scratch filesystem: {size >> 30} GiB ext4 on {dev} at {SCRATCH_MNT}")
        return True
    except (subprocess.CalledProcessError, OSError) as e:
        log(f"WARNING: no scratch filesystem ({e}); using {WORK}")
        unmount_scratch()
        return False


def linux_tree(ver: str) -> Path:
    for cand in (REUSE / f"linux-source-{ver}", DATA / f"linux-source-{ver}"):
        if (cand / "Makefile").exists() and (cand / "MAINTAINERS").exists():
            return cand
    tar = Path(f"/usr/src/linux-source-{ver}.tar.xz")
    if not tar.exists():
        apt_install([f"linux-source-{ver}"])
    log(f"extracting {tar}")
    tmp = DATA / f".extract-{ver}"
    rmtree(tmp)
    tmp.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(tmp), "-xf", str(tar)], check=True)
    dst = DATA / f"linux-source-{ver}"
    rmtree(dst)
    (tmp / f"linux-source-{ver}").rename(dst)
    rmtree(tmp)
    return dst


# ---------------------------------------------------------------- generators

_WORDS = (
    "the of and to in is for on with as by at from this that be are was it or an not which have has all "
    "request response error warning user session token cache index block chunk store backup restore file "
    "folder snapshot replica manifest device network disk memory thread worker queue retry timeout value "
    "config update delete insert select where order group count return struct impl fn let mut match"
).split()


def text_bytes(r: random.Random, n: int) -> bytes:
    """n bytes of log- and source-like text (compresses about 3-5x with zstd)."""
    out, size = [], 0
    words = _WORDS
    while size < n:
        k = r.random()
        if k < 0.6:
            line = (
                f"2024-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:"
                f"{r.randrange(60):02d}.{r.randrange(1000):03d}Z host-{r.randrange(64):02d} "
                f"{r.choice(words)}d[{r.randrange(1, 65535)}]: {r.choice(('GET', 'GET', 'PUT', 'POST', 'DELETE'))} "
                f"/api/v{r.randrange(1, 4)}/{r.choice(words)}/{r.randrange(10**6)} {r.choice((200, 200, 200, 204, 304, 404, 500))} "
                f"{r.randrange(100000)} bytes in {r.randrange(2000)} ms\n"
            )
        elif k < 0.9:
            a, b, c = r.choice(words), r.choice(words), r.choice(words)
            line = f"{' ' * (4 * r.randrange(4))}let {a}_{r.randrange(100)} = {b}::{c}({r.randrange(1 << 16)}, \"{r.choice(words)}\");\n"
        else:
            line = " ".join(r.choice(words) for _ in range(r.randrange(4, 16))).capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def stamp_ok(d: Path, params: dict) -> bool:
    try:
        return json.loads((d / ".ferry-bench-params.json").read_text()) == params
    except (OSError, ValueError):
        return False


def generate(d: Path, params: dict, fill) -> Path:
    """Runs fill(tmpdir) unless d already holds data made with the same params."""
    if stamp_ok(d, params):
        return d
    log(f"generating {d.name} {params}")
    t = time.monotonic()
    tmp = d.with_name(d.name + ".tmp")
    rmtree(tmp)
    rmtree(d)
    tmp.mkdir(parents=True)
    fill(tmp)
    (tmp / ".ferry-bench-params.json").write_text(json.dumps(params))
    tmp.rename(d)
    log(f"generated {d.name} in {time.monotonic() - t:.1f}s")
    return d


def gen_small_files(d: Path, count: int, seed: int) -> None:
    """count files of 64 B - 16 KiB (log-uniform, ~2.9 KiB mean): 80% text cut
    from a 16 MiB corpus under a unique header line, 20% random bytes; 100
    files per folder, 20 folders per top folder."""
    r = random.Random(seed)
    corpus = text_bytes(random.Random(seed ^ 0x5EED), 16 * MiB)
    made = set()
    for i in range(count):
        sub = d / f"d{i // 2000:03d}" / f"s{(i // 100) % 20:02d}"
        if sub not in made:
            sub.mkdir(parents=True, exist_ok=True)
            made.add(sub)
        size = int(64 * 256 ** r.random())
        if r.random() < 0.8:
            head = f"// {seed}:{i}\n".encode()
            off = r.randrange(len(corpus) - size)
            data, ext = (head + corpus[off : off + size])[:size], ".txt"
        else:
            data, ext = r.randbytes(size), ".bin"
        with open(sub / f"f{i:06d}{ext}", "wb") as f:
            f.write(data)


def write_random(path: Path, size: int, seed: int) -> None:
    r = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(r.randbytes(n))
            left -= n


def gen_big_file(path: Path, size: int, seed: int) -> None:
    """Mostly incompressible, like a VM image or a media archive: 1 MiB
    segments; 1 in 8 is text, 1 in 16 is zeros, the rest random bytes."""
    r = random.Random(seed)
    with open(path, "wb") as f:
        for k in range((size + MiB - 1) // MiB):
            n = min(MiB, size - k * MiB)
            if k % 8 == 3:
                f.write(text_bytes(r, n))
            elif k % 16 == 7:
                f.write(bytes(n))
            else:
                f.write(r.randbytes(n))


def edit_overwrite(path: Path, n: int, seed: int) -> None:
    """n scattered 4 KiB overwrites at page-aligned offsets (in place)."""
    r = random.Random(seed)
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as f:
        for _ in range(n):
            f.seek(r.randrange(pages) * 4096)
            f.write(r.randbytes(4096))


def edit_insert(path: Path, seed: int) -> None:
    """Three inserts near the start (100 B at 64 KiB+123, 4 KiB at 1 MiB+4567,
    1000 B at 8 MiB+89), written to a new file renamed over the old one, as
    editors do."""
    r = random.Random(seed)
    inserts = [((64 << 10) + 123, r.randbytes(100)), ((1 << 20) + 4567, r.randbytes(4096)), ((8 << 20) + 89, r.randbytes(1000))]
    tmp = path.with_name(path.name + ".new")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        pos = 0
        for at, data in inserts:
            dst.write(src.read(at - pos))
            dst.write(data)
            pos = at
        while chunk := src.read(16 * MiB):
            dst.write(chunk)
    os.replace(tmp, path)


def edit_append(path: Path, n: int, seed: int) -> None:
    with open(path, "ab") as f:
        f.write(text_bytes(random.Random(seed), n))


# ---------------------------------------------------------------- timing


def parse_time_v(text: str) -> dict:
    def get(key, conv=float, default=0):
        m = re.search(r"^\s*" + re.escape(key) + r":\s*(.+)$", text, re.M)
        return conv(m.group(1).strip()) if m else default

    user, sys_ = get("User time (seconds)"), get("System time (seconds)")
    return {
        "user_s": user,
        "sys_s": sys_,
        "cpu_s": round(user + sys_, 2),
        "rss_kib": get("Maximum resident set size (kbytes)", int),
        "exit": get("Exit status", int),
    }


def timed(argv, cwd, env, name: str, ok_codes=(0,)) -> dict:
    """Runs argv under /usr/bin/time -v; returns wall (measured here), CPU, max RSS, stdout."""
    LOGS.mkdir(parents=True, exist_ok=True)
    base = LOGS / name
    os.sync()  # start clean: no tool pays for writing back another tool's dirty pages
    with open(f"{base}.out", "wb") as out, open(f"{base}.err", "wb") as err:
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", f"{base}.time", *map(str, argv)], cwd=cwd, env=env,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        wall = time.monotonic() - t0
    res = parse_time_v(Path(f"{base}.time").read_text())
    if p.returncode not in ok_codes:
        tail = Path(f"{base}.err").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode} (logs {base}.*):\n{tail}")
    res["wall_s"] = round(wall, 3)
    res["rc"] = p.returncode
    res["stdout"] = Path(f"{base}.out").read_text(errors="replace")
    return res


# ---------------------------------------------------------------- tools


class Tool:
    name = "?"
    label = "?"
    peer = True  # counted as a peer in the targets
    restores = True
    lists = True  # has a read-only "list the snapshots" command (the `snapshots` step)

    def __init__(self, home: Path, env: dict):
        self.repo = home / "repo" / self.name
        self.cache = home / "cache" / self.name
        self.env = env
        self.last = None

    def version(self) -> str:
        return "?"

    def init(self) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        self.repo.parent.mkdir(parents=True, exist_ok=True)

    def store_bytes(self) -> int:
        return dir_bytes(self.repo)

    def backup(self, src: Path, step: str, logname: str) -> dict:
        raise NotImplementedError

    def restore(self, target: Path, logname: str) -> tuple[dict, Path]:
        raise NotImplementedError

    def list_snapshots(self, logname: str) -> dict:
        raise NotImplementedError


class Ferry(Tool):
    """`ferry store init` is the only command that gets FERRY_PASSWORD (it
    derives the key family's key with Argon2id); right after it, `ferry key
    export` writes the master key to a file in the tool's cache folder, and
    every later command (backup, restore, snapshots) runs with FERRY_KEY_FILE
    and without FERRY_PASSWORD: no key derivation per run, and a command that
    fell back to the passphrase would fail (no FERRY_PASSWORD, no terminal)."""

    def __init__(self, home, env, exe: Path, avg_kib: int | None = None):
        self.name = "ferry" if avg_kib is None else f"ferry-{avg_kib}k"
        self.label = "ferry" if avg_kib is None else f"ferry {avg_kib} KiB"
        self.peer = False
        self.restores = avg_kib is None
        self.lists = avg_kib is None  # the chunk-size variants need no read-only step
        self.avg_kib = avg_kib
        self.exe = exe
        super().__init__(home, env)
        self.key = self.cache / "ferry.key"
        self.env = dict(env, FERRY_CACHE_DIR=str(self.cache))
        for k in ("FERRY_PASSWORD", "FERRY_PASSWORD_FILE", "FERRY_PASSWORD_COMMAND", "FERRY_KEY_FILE"):
            self.env.pop(k, None)

    def version(self):
        return first_line([self.exe, "--version"])

    def init(self):
        super().init()
        extra = [] if self.avg_kib is None else ["--chunk-avg-kib", str(self.avg_kib)]
        with_pw = dict(self.env, FERRY_PASSWORD=PASSWORD)
        out = sh([self.exe, "--json", "store", "init", self.repo, *extra], env=with_pw, stdin=subprocess.DEVNULL)
        self.chunk_avg = json.loads(out)["chunk_avg"]
        if self.key.exists():  # `key export` never overwrites; the cache folder is fresh per repetition
            self.key.unlink()
        sh([self.exe, "-q", "key", "export", self.repo, self.key], env=with_pw, stdin=subprocess.DEVNULL)
        self.env["FERRY_KEY_FILE"] = str(self.key)
        assert "FERRY_PASSWORD" not in self.env

    def backup(self, src, step, logname):
        r = timed([self.exe, "--json", "backup", src, "--to", self.repo], None, self.env, logname)
        r["reported_added"] = json.loads(r["stdout"]).get("bytes_added")
        return r

    def restore(self, target, logname):
        r = timed([self.exe, "--json", "restore", self.repo, "latest", "--target", target], None, self.env, logname)
        return r, target

    def list_snapshots(self, logname):
        return timed([self.exe, "snapshots", self.repo], None, self.env, logname)


class Restic(Tool):
    name = label = "restic"

    def __init__(self, home, env):
        super().__init__(home, env)
        self.env = dict(env, RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=str(self.cache))

    def version(self):
        return first_line(["restic", "version"])

    def init(self):
        super().init()
        subprocess.run(["restic", "-q", "init", "-r", self.repo], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def backup(self, src, step, logname):
        r = timed(["restic", "-r", self.repo, "backup", "--json", src], None, self.env, logname)
        for line in reversed(r["stdout"].splitlines()):
            if '"summary"' in line:
                r["reported_added"] = json.loads(line).get("data_added")
                break
        return r

    def restore(self, target, logname):
        r = timed(["restic", "-r", self.repo, "restore", "latest", "--target", target], None, self.env, logname)
        return r, None  # restic restores under target/<absolute source path>

    def list_snapshots(self, logname):
        return timed(["restic", "-r", self.repo, "snapshots"], None, self.env, logname)


class Borg(Tool):
    name = "borg"
    label = "borg (zstd,3)"

    def __init__(self, home, env):
        super().__init__(home, env)
        self.env = dict(
            env,
            BORG_PASSPHRASE=PASSWORD,
            BORG_BASE_DIR=str(self.cache),
            BORG_CACHE_DIR=str(self.cache / "cache"),
            BORG_CONFIG_DIR=str(self.cache / "config"),
            BORG_SECURITY_DIR=str(self.cache / "security"),
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
        )

    def version(self):
        return first_line(["borg", "--version"])

    def init(self):
        super().init()
        subprocess.run(["borg", "init", "-e", "repokey-blake2", self.repo], env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def backup(self, src, step, logname):
        # 1 = finished with warnings (e.g. a file changed while read)
        r = timed(["borg", "create", "--json", "--compression", "zstd,3", f"{self.repo}::{step}", src], None, self.env, logname, ok_codes=(0, 1))
        self.last = step
        try:
            r["reported_added"] = json.loads(r["stdout"])["archive"]["stats"]["deduplicated_size"]
        except (ValueError, KeyError):
            pass
        return r

    def restore(self, target, logname):
        target.mkdir(parents=True, exist_ok=True)
        r = timed(["borg", "extract", f"{self.repo}::{self.last}"], target, self.env, logname, ok_codes=(0, 1))
        return r, None

    def list_snapshots(self, logname):
        return timed(["borg", "list", self.repo], None, self.env, logname)


class Rsync(Tool):
    """A plain mirror: `rsync -a --delete`; with delta=True `--no-whole-file`
    (the delta algorithm; rsync's local default copies whole files)."""

    lists = False  # a mirror has no snapshots

    def __init__(self, home, env, delta: bool, name="rsync", label=None):
        self.name = name
        self.label = label or name
        self.delta = delta
        super().__init__(home, env)
        self.repo = home / "repo" / name

    def version(self):
        return first_line(["rsync", "--version"])

    def init(self):
        super().init()
        self.repo.mkdir(parents=True, exist_ok=True)

    def backup(self, src, step, logname):
        extra = ["--no-whole-file"] if self.delta else []
        r = timed(["rsync", "-a", "--delete", "--stats", *extra, f"{src}/", f"{self.repo}/"], None, self.env, logname)

        def stat(key):
            m = re.search(r"^" + re.escape(key) + r":\s*([\d,.]+)", r["stdout"], re.M)
            return int(m.group(1).replace(",", "").replace(".", "")) if m else None

        r["literal"] = stat("Literal data")
        r["sent"] = stat("Total bytes sent")
        r["reported_added"] = r["literal"]
        return r

    def restore(self, target, logname):
        r = timed(["rsync", "-a", f"{self.repo}/", f"{target}/"], None, self.env, logname)
        return r, target


class Bupstash(Tool):
    name = label = "bupstash"

    def __init__(self, home, env, exe: str):
        super().__init__(home, env)
        self.exe = exe
        self.key = self.cache / "bench.key"
        self.env = dict(env, BUPSTASH_REPOSITORY=str(self.repo), BUPSTASH_KEY=str(self.key))

    def version(self):
        return first_line([self.exe, "version"])

    def init(self):
        super().init()
        subprocess.run([self.exe, "init", "-r", self.repo], env=self.env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([self.exe, "new-key", "-o", self.key], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def backup(self, src, step, logname):
        r = timed([self.exe, "put", "--send-log", self.cache / "send.log", f"name={step}", src], None, self.env, logname)
        self.last = r["stdout"].strip().split()[-1]
        return r

    def restore(self, target, logname):
        target.mkdir(parents=True, exist_ok=True)
        r = timed([self.exe, "restore", "--into", target, f"id={self.last}"], None, self.env, logname)
        return r, target

    def list_snapshots(self, logname):
        return timed([self.exe, "list"], None, self.env, logname)


def install_bupstash() -> None:
    """bupstash is not in Debian; `cargo install` it once into /var/tmp/ferry-bench/tools."""
    if bupstash_exe():
        return
    if not shutil.which("cargo"):
        log("no cargo: running without bupstash")
        return
    apt_install(["libsodium-dev", "pkg-config"])
    log("cargo install bupstash 0.12.0 (once, a few minutes)")
    tools = BENCH / "tools"
    env = dict(os.environ, CARGO_TARGET_DIR=str(tools / "target"))
    r = subprocess.run(["cargo", "install", "--locked", "--version", "0.12.0", "--root", str(tools), "bupstash"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rmtree(tools / "target")
    if r.returncode != 0:
        log("WARNING: cargo install bupstash failed: running without bupstash")


def bupstash_exe() -> str | None:
    for c in (shutil.which("bupstash"), str(BENCH / "tools" / "bin" / "bupstash")):
        if c and os.access(c, os.X_OK):
            return c
    return None


_DEFAULT_AVG: list = []


def ferry_default_avg_kib(exe: Path) -> int:
    """The average chunk size of a store made without --chunk-avg-kib."""
    if not _DEFAULT_AVG:
        home = WORK / "probe-default"
        rmtree(home)
        f = Ferry(home, base_env(), exe)
        f.init()
        rmtree(home)
        _DEFAULT_AVG.append(f.chunk_avg // KiB)
    return _DEFAULT_AVG[0]


def base_env() -> dict:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("FERRY_", "RESTIC_", "BORG_", "BUPSTASH_")):
            del env[k]
    return env


def make_tools(home: Path, exe: Path, rsync_label="rsync", extra=()) -> list[Tool]:
    env = base_env()
    tools = [Ferry(home, env, exe), Restic(home, env), Borg(home, env)]
    b = bupstash_exe() if WITH_BUPSTASH else None
    if b:
        tools.append(Bupstash(home, env, b))
    tools.append(Rsync(home, env, delta=False, label=rsync_label))
    return tools + list(extra)


# ---------------------------------------------------------------- running a dataset


class Step:
    def __init__(self, id, label, kind="backup", before=None, edit=False, rebackup=False):
        self.id, self.label, self.kind, self.before = id, label, kind, before
        self.edit, self.rebackup = edit, rebackup


def with_list_step(steps: list[Step]) -> list[Step]:
    """Adds the read-only step right after the last backup: every tool that
    has snapshots lists them (ferry `snapshots`, restic `snapshots`, borg
    `list`, bupstash `list`); timed like the other steps."""
    last = max(i for i, s in enumerate(steps) if s.kind == "backup")
    return steps[: last + 1] + [Step("snapshots", "list snapshots (read-only)", kind="list")] + steps[last + 1 :]


# Restores of trees with at least this many files are kept until the end of
# the repetition (see `Bench.run_rep`).
MANY_FILES = 10_000


def warm_page_cache(root: Path) -> None:
    """Reads every file under root once, so every tool starts from a source
    in the page cache (the suite measures warm runs)."""
    t0 = time.monotonic()
    n = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(dirpath, f), "rb", buffering=0) as fh:
                    while fh.read(1 << 20):
                        pass
                n += 1
            except OSError:
                pass
    log(f"page cache warmed: {n} files under {root} in {time.monotonic() - t0:.1f}s")


def median_spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


class Bench:
    """One dataset: per repetition, fresh repositories and caches; each step's
    `before` runs once, then every tool runs the step, in an order rotated by
    one tool per repetition. Repetitions of different datasets interleave
    (see main), so `prepare` runs before the first and `cleanup` at the end."""

    def __init__(self, name, title, description, reps, tools_for_rep, src: Path, steps_for_rep, prepare=None, cleanup=None):
        self.name, self.title, self.description, self.reps = name, title, description, reps
        self.tools_for_rep, self.src = tools_for_rep, src
        self.steps_for_rep = lambda rep, home: with_list_step(steps_for_rep(rep, home))
        self._prepare, self._cleanup = prepare, cleanup
        self.runs: dict = {}
        self.store: dict = {}
        self.index: dict = {}
        self.labels: dict = {}
        self.order_log: list = []
        self.rep_secs: list = []
        self.chunk_avg: dict = {}
        self.measured_at = None
        self.prepared = False

    def prepare(self):
        if not self.prepared and self._prepare:
            self._prepare()
        if not self.prepared:
            # The first tool of the first repetition must not be the one
            # that reads the source from disk (history's versions wait
            # beside the fixed path: warm their folder).
            warm_page_cache(self.src if self.src.exists() else self.src.parent)
        self.prepared = True

    def cleanup(self):
        if self.prepared and self._cleanup:
            self._cleanup()

    def run_rep(self, rep: int) -> None:
        self.prepare()
        t0 = time.monotonic()
        name, src = self.name, self.src
        home = WORK / name
        rmtree(home)
        home.mkdir(parents=True)
        tools = self.tools_for_rep(home)
        for t in tools:
            t.init()
            self.labels[t.name] = t.label
            if isinstance(t, Ferry):
                self.chunk_avg[t.name] = t.chunk_avg
        steps = self.steps_for_rep(rep, home)
        k = rep % len(tools)
        order = tools[k:] + tools[:k]
        self.order_log.append([t.name for t in order])
        for step in steps:
            if step.before:
                step.before()
            want = tree_stats(src) if step.kind == "restore" else None
            for t in order:
                lname = f"{name}-r{rep}-{step.id}-{t.name}"
                if step.kind == "backup":
                    before = t.store_bytes()
                    r = t.backup(src, step.id, lname)
                    r["store_after"] = t.store_bytes()
                    r["store_growth"] = r["store_after"] - before
                elif step.kind == "list":
                    if not t.lists:
                        continue
                    r = t.list_snapshots(lname)
                else:
                    if not t.restores:
                        continue
                    target = home / "restore" / t.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    r, root = t.restore(target, lname)
                    root = root or target / str(src).lstrip("/")
                    got = tree_stats(root)
                    if want != got:
                        raise RuntimeError(f"{t.name} restore of {name} differs: {got} vs source {want} ({root})")
                    verify_sample(src, root)
                    # A many-file restore stays until the repetition ends:
                    # deleted here, it would slow the next tool's restore
                    # (ext4 will not reuse an inode freed in the last 30 s,
                    # or 5 min while its table is dirty, and scans past each
                    # one: restic's restore of 200k files took 49.9 s after
                    # ferry's was deleted, 17.1 s in an earlier run).
                    if want[0] < MANY_FILES:
                        rmtree(home / "restore")
                r.pop("stdout", None)
                r["rep"] = rep
                self.runs.setdefault(step.id, {}).setdefault(t.name, []).append(r)
                log(f"{name} rep {rep + 1} {step.id:<12} {t.name:<12} {r['wall_s']:7.2f}s  cpu {r['cpu_s']:7.2f}s  rss {r['rss_kib'] / 1024:6.0f} MiB"
                    + (f"  +{r['store_growth'] / MiB:.1f} MiB" if step.kind == "backup" else ""))
        last_backup = [s.id for s in steps if s.kind == "backup"][-1]
        for t in tools:
            self.store.setdefault(t.name, []).append(self.runs[last_backup][t.name][-1]["store_after"])
            if isinstance(t, Ferry):
                self.index.setdefault(t.name, []).append(dir_bytes(t.repo / "index"))
        rmtree(home)
        self.rep_secs.append(round(time.monotonic() - t0, 1))
        self.measured_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        log(f"{name} rep {rep + 1} took {self.rep_secs[-1]:.0f}s")

    def result(self) -> dict:
        steps = self.steps_for_rep(0, WORK / self.name)  # for the metadata only
        summary = {
            s.id: {
                tool: {m: median_spread([r.get(m) for r in rs]) for m in ("wall_s", "cpu_s", "rss_kib", "store_growth", "literal", "sent", "reported_added")}
                for tool, rs in self.runs[s.id].items()
            }
            for s in steps
            if s.id in self.runs
        }
        return {
            "title": self.title,
            "description": self.description,
            "reps": len(self.rep_secs),
            "reps_planned": self.reps,
            "rep_seconds": self.rep_secs,
            "measured_at": self.measured_at,
            "tools": list(self.labels),
            "chunk_avg": self.chunk_avg,
            "labels": self.labels,
            "order": self.order_log,
            "steps": [{"id": s.id, "label": s.label, "kind": s.kind, "edit": s.edit, "rebackup": s.rebackup} for s in steps],
            "runs": self.runs,
            "summary": summary,
            "store_bytes": {t: median_spread(v) for t, v in self.store.items()},
            "index_bytes": {t: median_spread(v) for t, v in self.index.items()},
        }


def same_bytes(a: Path, b: Path, windows: int = 32, window: int = 64 * KiB) -> bool:
    """Whole-file comparison up to 8 MiB; larger files: `windows` seeded windows."""
    size = a.stat().st_size
    if size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if size <= 8 * MiB:
            return fa.read() == fb.read()
        r = random.Random(size)
        for off in [0, size - window] + [r.randrange(size - window) for _ in range(windows)]:
            fa.seek(off)
            fb.seek(off)
            if fa.read(window) != fb.read(window):
                return False
    return True


def verify_sample(src: Path, root: Path, n: int = 1000) -> None:
    """Compares the contents of every k-th regular file (about n of them, sorted
    order) and of every symlink's target string; raises on a difference."""
    files = []
    for d, dirs, names in os.walk(src):
        dirs.sort()
        files += [os.path.join(d, x) for x in sorted(names)]
    step = max(1, len(files) // n)
    for f in files[::step]:
        rel = os.path.relpath(f, src)
        a, b = Path(f), root / rel
        if a.is_symlink():
            ok = b.is_symlink() and os.readlink(a) == os.readlink(b)
        else:
            ok = b.is_file() and not b.is_symlink() and same_bytes(a, b)
        if not ok:
            raise RuntimeError(f"restored {b} differs from {a}")


def link_tree(src: Path, dst: Path) -> None:
    """Hard-linked copy (fast, no extra space; cp -a when links fail)."""
    rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(src), str(dst)], stderr=subprocess.DEVNULL).returncode != 0:
        rmtree(dst)
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


# ---------------------------------------------------------------- datasets


def ds_history(ctx) -> Bench:
    sub = ctx.size["history_subdir"]
    base = SRC / "history"
    src = base / "linux"  # the same path for both versions
    state = {"at": None}

    def prepare():
        trees = [linux_tree("6.1"), linux_tree("6.12")]
        for v, t in zip(("6.1", "6.12"), trees):
            link_tree(t / sub if sub else t, base / f"v{v}")

    def use(v):
        """Moves version v to the fixed path (renames: no copy, file ctimes untouched)."""
        if state["at"]:
            src.rename(base / f"v{state['at']}")
        (base / f"v{v}").rename(src)
        state["at"] = v

    def steps(rep, home):
        return [
            Step("backup-6.1", "backup 6.1", before=lambda: use("6.1")),
            Step("backup-6.12", "backup 6.12 (after 6.1)", before=lambda: use("6.12")),
            Step("rebackup", "no-change re-backup", rebackup=True),
            Step("restore", "restore latest (6.12)", kind="restore"),
        ]

    what = "linux-source-6.1 and -6.12" + (f" ({sub}/ only)" if sub else "")
    return Bench(
        "history", "Source history",
        f"Debian's {what}, backed up one after another at the same path, then again unchanged, then the latest restored.",
        ctx.reps("history"), lambda home: make_tools(home, ctx.ferry), src, steps,
        prepare=prepare, cleanup=lambda: rmtree(base))


def ds_sidebyside(ctx) -> Bench:
    sub = ctx.size["history_subdir"]
    src = SRC / "sidebyside"

    def prepare():
        rmtree(src)
        for t in (linux_tree("6.1"), linux_tree("6.12")):
            link_tree(t / sub if sub else t, src / t.name)

    def steps(rep, home):
        return [Step("backup", "backup both trees"), Step("rebackup", "no-change re-backup", rebackup=True)]

    return Bench(
        "sidebyside", "Source trees side by side",
        "linux-source-6.1 and -6.12" + (f" ({sub}/ only)" if sub else "") + " as two folders of one tree, into fresh repositories.",
        ctx.reps("sidebyside"), lambda home: make_tools(home, ctx.ferry), src, steps,
        prepare=prepare, cleanup=lambda: rmtree(src))


def ds_smallfiles(ctx) -> Bench:
    n = ctx.size["small_count"]
    params = {"gen": GEN_VERSION, "count": n, "seed": 1}
    src = DATA / f"smallfiles-{n}"

    def steps(rep, home):
        return [Step("backup", "backup"), Step("rebackup", "no-change re-backup", rebackup=True), Step("restore", "restore", kind="restore")]

    return Bench(
        "smallfiles", f"{n // 1000}k small files",
        f"{n} files of 64 B-16 KiB (log-uniform, 80% text, 20% random bytes) in {n // 100} folders, from a seeded generator.",
        ctx.reps("smallfiles"), lambda home: make_tools(home, ctx.ferry), src, steps,
        prepare=lambda: generate(src, params, lambda d: gen_small_files(d, n, 1)))


def ds_bigfile(ctx) -> Bench:
    mib = ctx.size["big_mib"]
    params = {"gen": GEN_VERSION, "mib": mib, "seed": 2}
    data = DATA / f"bigfile-{mib}"
    src = SRC / "bigfile"
    f = src / "big.bin"

    def reset():
        rmtree(src)
        src.mkdir(parents=True)
        shutil.copyfile(data / "big.bin", f)

    n, app = ctx.size["overwrites"], ctx.size["append_mib"]

    def steps(rep, home):
        return [
            Step("backup", "backup", before=reset),
            Step("overwrite", f"{n} scattered 4 KiB overwrites", before=lambda: edit_overwrite(f, n, 100 + rep), edit=True),
            Step("insert", "3 inserts near the start", before=lambda: edit_insert(f, 200 + rep), edit=True),
            Step("append", f"{app} MiB appended", before=lambda: edit_append(f, app * MiB, 300 + rep), edit=True),
            Step("rebackup", "no-change re-backup", rebackup=True),
            Step("restore", "restore latest", kind="restore"),
        ]

    def tools(home):
        env = base_env()
        # rsync's local default (--whole-file) would rewrite the whole file at every edit;
        # the delta algorithm is what it offers for edits.
        core = make_tools(home, ctx.ferry, rsync_label="rsync --no-whole-file")
        for t in core:
            if isinstance(t, Rsync):
                t.delta = True
        default = ferry_default_avg_kib(ctx.ferry)
        return core + [Ferry(home, env, ctx.ferry, avg) for avg in CHUNK_AVGS_KIB if avg != default]

    return Bench(
        "bigfile", f"One {mib} MiB file, edited",
        f"One {mib} MiB file in 1 MiB segments (13/16 random, 1/8 log/source text, 1/16 zeros); "
        f"then {n} scattered 4 KiB overwrites, 3 inserts near the start (100 B, 4 KiB, 1000 B), "
        f"{app} MiB of text appended; a backup after each. Edit steps use a fresh seed per repetition.",
        ctx.reps("bigfile"), tools, src, steps,
        prepare=lambda: generate(data, params, lambda d: gen_big_file(d / "big.bin", mib * MiB, 2)),
        cleanup=lambda: rmtree(src))


def ds_incompressible(ctx) -> Bench:
    mib = ctx.size["incompressible_mib"]
    params = {"gen": GEN_VERSION, "mib": mib, "files": 4, "seed": 3}
    src = DATA / f"incompressible-{mib}"

    def fill(d):
        for i in range(4):
            write_random(d / f"random{i}.bin", mib * MiB // 4, 30 + i)

    def steps(rep, home):
        return [Step("backup", "backup"), Step("rebackup", "no-change re-backup", rebackup=True), Step("restore", "restore", kind="restore")]

    return Bench(
        "incompressible", f"{mib} MiB incompressible", f"{mib} MiB of random bytes in 4 files.",
        ctx.reps("incompressible"), lambda home: make_tools(home, ctx.ferry), src, steps,
        prepare=lambda: generate(src, params, fill))


class MemScale:
    """ferry only: 16 distinct variants backed up one after another into one
    store; backup (of the k-th variant) and restore (of the latest snapshot)
    peak RSS when the store holds 1, 4 and 16 variants. One pass."""

    name = "memscale"
    reps = 1

    def __init__(self, ctx):
        self.ctx = ctx
        self.rep_secs: list = []
        self.rows: list = []
        self.backups: list = []

    def cleanup(self):
        pass

    def run_rep(self, rep):
        t0 = time.monotonic()
        count, big = self.ctx.size["mem_count"], self.ctx.size["mem_big_mib"]
        nvar = max(MEM_FACTORS)
        params = {"gen": GEN_VERSION, "count": count, "big_mib": big, "variants": nvar}

        def fill(d):
            for k in range(nvar):
                gen_small_files(d / f"v{k:02d}", count, 1000 + k)
                write_random(d / f"v{k:02d}" / "big.bin", big * MiB, 2000 + k)

        data = generate(DATA / f"memscale-{count}-{big}", params, fill)
        self.count, self.big, self.nvar = count, big, nvar
        self.one = tree_stats(data / "v00")[2]
        home = WORK / "memscale"
        rmtree(home)
        home.mkdir(parents=True)
        ferry = Ferry(home, base_env(), self.ctx.ferry)
        ferry.init()
        try:
            for k in range(1, nvar + 1):
                src = data / f"v{k - 1:02d}"
                b = ferry.backup(src, f"v{k}", f"memscale-backup-{k}")
                b.pop("stdout", None)
                self.backups.append(b)
                if k in MEM_FACTORS:
                    target = home / "restore"
                    r, _ = ferry.restore(target, f"memscale-restore-{k}")
                    r.pop("stdout", None)
                    if tree_stats(src) != tree_stats(target):
                        raise RuntimeError("memscale: ferry restore differs from the source")
                    verify_sample(src, target)
                    rmtree(target)
                    ls = ferry.list_snapshots(f"memscale-snapshots-{k}")
                    ls.pop("stdout", None)
                    self.rows.append({
                        "factor": k, "store_bytes": ferry.store_bytes(), "index_bytes": dir_bytes(ferry.repo / "index"),
                        "cache_bytes": dir_bytes(ferry.cache) - ferry.key.stat().st_size, "backup": b, "restore": r, "snapshots": ls,
                    })
                    log(f"memscale {k:2d}x store {self.rows[-1]['store_bytes'] / MiB:8.1f} MiB  backup rss {b['rss_kib'] / 1024:6.0f} MiB  "
                        f"restore rss {r['rss_kib'] / 1024:6.0f} MiB  snapshots {ls['wall_s'] * 1000:.0f} ms")
        finally:
            rmtree(home)
        self.rep_secs.append(round(time.monotonic() - t0, 1))

    def result(self) -> dict:
        return {
            "title": "Memory scaling (ferry)",
            "description": f"{self.nvar} distinct variants of {self.count} small files + one {self.big} MiB random file "
                           f"(~{self.one / MiB:.0f} MiB each) backed up one after another into one store; at 1x, 4x and 16x: "
                           "the backup that brought the store to that size, then a restore of that latest snapshot, then `ferry snapshots`. "
                           "ferry runs with a key file (FERRY_KEY_FILE), as everywhere in this suite.",
            "measured_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "rep_seconds": self.rep_secs,
            "rows": self.rows,
            "all_backups": self.backups,
        }


RUNNERS = {
    "history": ds_history,
    "sidebyside": ds_sidebyside,
    "smallfiles": ds_smallfiles,
    "bigfile": ds_bigfile,
    "incompressible": ds_incompressible,
    "memscale": MemScale,
}


# ---------------------------------------------------------------- targets


def med(ds, step, tool, metric="wall_s"):
    try:
        return ds["summary"][step][tool][metric]["median"]
    except (KeyError, TypeError):
        return None


def peers_of(ds):
    return [t for t in ds["tools"] if t in ("restic", "borg", "rsync", "bupstash")]


def targets(res: dict) -> list[dict]:
    """Every verdict is computed from the medians in res; nothing is hard-coded."""
    D = res["datasets"]
    out = []

    def add(name, met, detail):
        out.append({"target": name, "met": met, "detail": detail})

    # 1. backup speed on source history
    parts = [(d, s["id"]) for d in ("history", "sidebyside") if d in D for s in D[d]["steps"] if s["kind"] == "backup" and not s["rebackup"]]
    if parts:
        tot = {t: sum(med(D[d], s, t) or 0 for d, s in parts) for t in ("ferry", "restic", "borg")}
        rr, rb = tot["restic"] / tot["ferry"], tot["borg"] / tot["ferry"]
        add("ferry backup >= 2x faster than restic and >= 4x faster than borg on source history",
            rr >= 2 and rb >= 4,
            f"sum of median backup times over {', '.join(f'{d}/{s}' for d, s in parts)}: ferry {tot['ferry']:.1f}s, "
            f"restic {tot['restic']:.1f}s ({rr:.2f}x), borg {tot['borg']:.1f}s ({rb:.2f}x)")
    # 2. restore vs restic
    det, ok = [], True
    for d, ds in D.items():
        for s in ds.get("steps", []):
            if s["kind"] == "restore" and med(ds, s["id"], "ferry") and med(ds, s["id"], "restic"):
                ratio = med(ds, s["id"], "restic") / med(ds, s["id"], "ferry")
                ok &= ratio >= 2
                det.append(f"{d}: {ratio:.2f}x")
    if det:
        add("restore >= 2x faster than restic", ok, "restic time / ferry time: " + ", ".join(det))
    # 3. no-change re-backup vs fastest peer
    det, ok = [], True
    for d, ds in D.items():
        for s in ds.get("steps", []):
            if s["rebackup"]:
                f = med(ds, s["id"], "ferry")
                peers = {t: med(ds, s["id"], t) for t in peers_of(ds) if med(ds, s["id"], t) is not None}
                best = min(peers, key=peers.get)
                ok &= f <= peers[best]
                det.append(f"{d}: ferry {f:.2f}s vs {best} {peers[best]:.2f}s")
    if det:
        add("no-change re-backup at least as fast as the fastest peer", ok, "; ".join(det))
    # 4. store size vs the smallest peer store (restic, borg, bupstash; a mirror has no history)
    det, ok = [], True
    for d, ds in D.items():
        sb = ds.get("store_bytes", {})
        peers = {t: sb[t]["median"] for t in ("restic", "borg", "bupstash") if t in sb}
        if "ferry" in sb and peers:
            best = min(peers, key=peers.get)
            f = sb["ferry"]["median"]
            ok &= f <= peers[best]
            det.append(f"{d}: ferry {f / MiB:.1f} MiB vs {best} {peers[best] / MiB:.1f} MiB")
    if det:
        add("store no larger than the smallest peer's (restic, borg, bupstash)", ok, "; ".join(det))
    # 5. peak RSS below every peer's, and flat with store size
    det, ok, ok_stores = [], True, True
    for d, ds in D.items():
        if "summary" not in ds:
            continue
        peak = {}
        for s in ds["steps"]:
            for t in ["ferry", *peers_of(ds)]:
                v = med(ds, s["id"], t, "rss_kib")
                if v is not None:
                    peak[t] = max(peak.get(t, 0), v)
        if "ferry" in peak:
            others = {t: v for t, v in peak.items() if t != "ferry"}
            ok &= all(peak["ferry"] < v for v in others.values())
            ok_stores &= all(peak["ferry"] < v for t, v in others.items() if t != "rsync")
            det.append(f"{d}: ferry {peak['ferry'] / 1024:.0f}, " + ", ".join(f"{t} {v / 1024:.0f}" for t, v in others.items()))
    if det:
        add("peak RSS below every peer's", ok, "highest median peak RSS over the steps, MiB; " + "; ".join(det))
        add("(informative) peak RSS below every backup tool's (restic, borg, bupstash; rsync left out)", ok_stores,
            "same numbers as the row above")
    if "memscale" in D and D["memscale"]["rows"]:
        rows = D["memscale"]["rows"]
        flat = True
        det = []
        for op in ("backup", "restore"):
            v = [r[op]["rss_kib"] for r in rows]
            ratio = max(v) / min(v)
            flat &= ratio <= 1.25
            det.append(f"{op} " + " / ".join(f"{r['factor']}x {r[op]['rss_kib'] / 1024:.0f}" for r in rows) + f" MiB (max/min {ratio:.2f})")
        add("peak RSS flat with store size (max/min <= 1.25 over 1x, 4x, 16x)", flat, "; ".join(det))
    # 6. edit bytes vs rsync
    if "bigfile" in D:
        ds = D["bigfile"]
        det, ok = [], True
        for s in ds["steps"]:
            if s["edit"]:
                f, r = med(ds, s["id"], "ferry", "store_growth"), med(ds, s["id"], "rsync", "literal")
                if f is not None and r:
                    ok &= f <= 2 * r
                    det.append(f"{s['id']}: ferry +{f / KiB:.0f} KiB vs rsync literal {r / KiB:.0f} KiB ({f / r:.1f}x)")
        if det:
            add("edit bytes within 2x of rsync's", ok, "ferry store growth vs rsync --no-whole-file Literal data; " + "; ".join(det))
    for t in out:
        t["issue"] = 4
    return out + targets_issue15(res)


MANY_FILE_BACKUPS = [("history", "backup-6.1"), ("sidebyside", "backup"), ("smallfiles", "backup")]


def targets_issue15(res: dict) -> list[dict]:
    """Issue 15's targets, ferry with a key file, as ratios of this run's
    medians. A target with no numbers in this run is reported as not met."""
    D = res["datasets"]
    out = []

    def add(name, met, detail):
        out.append({"target": name, "met": bool(met), "detail": detail, "issue": 15})

    def ratios(pairs, peer):
        """[(label, ferry s, peer s)] for the (dataset, step) pairs where both were measured."""
        got = []
        for d, s in pairs:
            if d in D and "summary" in D[d]:
                f, o = med(D[d], s, "ferry"), med(D[d], s, peer)
                if f is not None and o:
                    got.append((f"{d}/{s}", f, o))
        return got

    def ratio_row(name, pairs, limits, what):
        det, ok = [], True
        for peer, lim in limits:
            got = ratios(pairs, peer)
            if not got:
                ok = False
                det.append(f"no {peer} numbers in this run")
                continue
            for lab, f, o in got:
                ok &= f <= lim * o
            det.append(f"ferry / {peer} (<= {lim}): " + ", ".join(f"{lab} {f:.2f}s / {o:.2f}s = {f / o:.3f}x" for lab, f, o in got))
        add(name, ok and bool(pairs), f"{what}; " + "; ".join(det) if pairs else f"no {what} in this run")

    # 1. backup of a many-file tree
    ratio_row("backup of a many-file tree <= 0.5x restic's time and <= 0.25x borg's",
              [(d, s) for d, s in MANY_FILE_BACKUPS if d in D], [("restic", 0.5), ("borg", 0.25)],
              "median wall time of the first backup of each many-file tree (history: 6.1 into an empty repository, "
              "sidebyside, smallfiles); every one must meet it")
    # 2. restore vs restic
    ratio_row("restore <= 0.5x restic's time",
              [(d, s["id"]) for d, ds in D.items() for s in ds.get("steps", []) if s["kind"] == "restore"], [("restic", 0.5)],
              "median wall time of every restore step")
    # 3. no-change re-backup vs bupstash
    ratio_row("no-change re-backup with a key file <= 0.5x bupstash's time",
              [(d, s["id"]) for d, ds in D.items() for s in ds.get("steps", []) if s["rebackup"]], [("bupstash", 0.5)],
              "median wall time of every no-change re-backup (bupstash opens its repository with its key file too)")
    # 4. read-only commands
    det, worst = [], None
    for d, ds in D.items():
        v = med(ds, "snapshots", "ferry") if "summary" in ds else None
        if v is not None:
            worst = max(worst or 0, v)
            others = ", ".join(f"{t} {med(ds, 'snapshots', t) * 1000:.0f}" for t in peers_of(ds) if med(ds, "snapshots", t) is not None)
            det.append(f"{d} {v * 1000:.0f}" + (f" ({others})" if others else ""))
    for r in D.get("memscale", {}).get("rows", []):
        if r.get("snapshots"):
            worst = max(worst or 0, r["snapshots"]["wall_s"])
            det.append(f"memscale {r['factor']}x {r['snapshots']['wall_s'] * 1000:.0f}")
    add("read-only commands with a key file (`ferry snapshots`) <= 50 ms", worst is not None and worst <= 0.050,
        ("median wall ms of `ferry snapshots` after each dataset's last backup (in parentheses the peers' list commands, "
         f"for context; memscale: one run at each store size); highest {worst * 1000:.0f} ms: " + "; ".join(det))
        if det else "no `ferry snapshots` step in this run")
    # 5a. peak RSS of backup and restore
    det, worst = [], None
    for d, ds in D.items():
        if "summary" not in ds:
            continue
        for kind in ("backup", "restore"):
            v = [med(ds, s["id"], "ferry", "rss_kib") for s in ds["steps"] if s["kind"] == kind]
            v = [x for x in v if x is not None]
            if v:
                worst = max(worst or 0, max(v))
                det.append(f"{d} {kind} {max(v) / 1024:.1f}")
    for r in D.get("memscale", {}).get("rows", []):
        for kind in ("backup", "restore"):
            worst = max(worst or 0, r[kind]["rss_kib"])
        det.append(f"memscale {r['factor']}x backup {r['backup']['rss_kib'] / 1024:.1f}, restore {r['restore']['rss_kib'] / 1024:.1f}")
    add("peak RSS with a key file <= 32 MiB for backup and restore", worst is not None and worst <= 32 * KiB,
        (f"highest median peak RSS, MiB, over each dataset's backup steps (re-backups included) and restore steps; highest "
         f"{worst / 1024:.1f} MiB: " + "; ".join(det) + ". Push and pull are measured elsewhere, by benches/compare/rss_growth.sh")
        if det else "no ferry backup or restore in this run")
    # 5b. peak RSS growth with the store 16x
    rows = {r["factor"]: r for r in D.get("memscale", {}).get("rows", [])}
    lo, hi = min(MEM_FACTORS), max(MEM_FACTORS)
    if lo in rows and hi in rows:
        det, ok = [], True
        for kind in ("backup", "restore"):
            a, b = rows[lo][kind]["rss_kib"], rows[hi][kind]["rss_kib"]
            ok &= b <= 1.10 * a
            det.append(f"{kind} {a / 1024:.1f} -> {b / 1024:.1f} MiB ({(b / a - 1) * 100:+.0f}%)")
        add(f"peak RSS with a key file <= +10% when the store grows {hi // lo}x", ok,
            f"memscale, store at {lo}x vs {hi}x (one run each): " + "; ".join(det))
    else:
        add("peak RSS with a key file <= +10% when the store grows 16x", False, "no memscale 1x and 16x figures in this run")
    # 6. store size vs the smallest peer on source history
    sb = D.get("history", {}).get("store_bytes", {})
    peers = {t: sb[t]["median"] for t in ("restic", "borg", "bupstash") if t in sb and sb[t]}
    if "ferry" in sb and sb["ferry"] and peers:
        best = min(peers, key=peers.get)
        f = sb["ferry"]["median"]
        add("store <= 0.9x the smallest peer's (restic, borg, bupstash) on source history", f <= 0.9 * peers[best],
            f"history, repository after the last backup: ferry {f / MiB:.1f} MiB vs {best} {peers[best] / MiB:.1f} MiB = {f / peers[best]:.3f}x "
            "(" + ", ".join(f"{t} {v / MiB:.1f}" for t, v in peers.items()) + ")")
    else:
        add("store <= 0.9x the smallest peer's (restic, borg, bupstash) on source history", False, "no history store sizes in this run")
    return out


# ---------------------------------------------------------------- report


def fs(x):
    return "–" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def cell(ms, scale=1.0, fmt=fs):
    if not ms:
        return "–"
    if ms["n"] > 1 and ms["max"] != ms["min"]:
        return f"{fmt(ms['median'] / scale)} ({fmt(ms['min'] / scale)}–{fmt(ms['max'] / scale)})"
    return fmt(ms["median"] / scale)


def mib(x):
    return "–" if x is None else (f"{x:.1f}" if abs(x) >= 1 or x == 0 else f"{x:.3f}")


def render_dataset(name, ds) -> list[str]:
    reps = f"{ds['reps']} repetition(s)"
    if ds.get("reps_planned", ds["reps"]) > ds["reps"]:
        reps += f" of {ds['reps_planned']} planned (the time budget left no room for more)"
    L = [f"### {ds['title']}", "", ds["description"] + f" {reps}, {', '.join(f'{x:.0f}' for x in ds['rep_seconds'])} s each; measured {ds['measured_at']}.", ""]
    tools = [t for t in ds["tools"] if not t.startswith("ferry-")]
    L.append("| step | metric | " + " | ".join(ds["labels"][t] for t in tools) + " |")
    L.append("|---|---|" + "---|" * len(tools))
    for s in ds["steps"]:
        sm = ds["summary"].get(s["id"], {})
        metrics = [("wall s", "wall_s", 1, fs), ("CPU s", "cpu_s", 1, fs), ("peak RSS MiB", "rss_kib", 1024, mib)]
        if s["kind"] == "backup":
            metrics.append(("added MiB", "store_growth", MiB, mib))
        for i, (lab, key, sc, fmt) in enumerate(metrics):
            row = []
            for t in tools:
                ms = sm.get(t, {}).get(key)
                if key == "store_growth" and t.startswith("rsync"):
                    ms = sm.get(t, {}).get("literal")
                row.append(cell(ms, sc, fmt))
            L.append(f"| {s['label'] if i == 0 else ''} | {lab} | " + " | ".join(row) + " |")
    L.append("| **store / copy** | MiB | " + " | ".join(cell(ds["store_bytes"].get(t), MiB, mib) for t in tools) + " |")
    L.append("")
    return L


def render_chunks(ds) -> list[str]:
    fer = [t for t in ds["tools"] if t.startswith("ferry")]
    avg_of = ds["chunk_avg"]
    fer.sort(key=lambda t: avg_of[t])
    edits = [s for s in ds["steps"] if s["edit"]]
    L = [
        "### Chunk-size study",
        "",
        f"ferry at {len(fer)} average chunk sizes (min = avg/4, max = 4 x avg; `ferry store init --chunk-avg-kib`) on the "
        f"\"{ds['title']}\" dataset, in the same runs and on the same edits as the table above "
        "(medians over the repetitions; the chunker is keyed per store, so edit costs vary between repetitions). "
        "\"index\" is the store's `index/` folder.",
        "",
        "| avg chunk | backup s | peak RSS MiB | store MiB | index KiB | index per TB stored | " + " | ".join(f"{s['label']}: added KiB" for s in edits) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(edits),
    ]
    for t in fer:
        avg = f"{avg_of[t] // KiB} KiB" + (" (default)" if t == "ferry" else "")
        rss = max(med(ds, s["id"], t, "rss_kib") or 0 for s in ds["steps"] if s["kind"] == "backup")
        per_tb = ds["index_bytes"][t]["median"] / ds["store_bytes"][t]["median"] * 1e12
        row = [avg, cell(ds["summary"]["backup"][t]["wall_s"]), mib(rss / 1024), cell(ds["store_bytes"][t], MiB, mib),
               cell(ds["index_bytes"].get(t), KiB, mib), f"{per_tb / (1 << 30):.2f} GiB"]
        row += [cell(ds["summary"][s["id"]][t]["store_growth"], KiB, mib) for s in edits]
        L.append("| " + " | ".join(row) + " |")
    if "rsync" in ds["tools"]:
        row = ["rsync --no-whole-file (Literal data)", "", "", "", "", ""] + [cell(ds["summary"][s["id"]]["rsync"]["literal"], KiB, mib) for s in edits]
        L.append("| " + " | ".join(row) + " |")
    # Computed observations, not a decision.
    within = []
    for t in fer:
        ok = all((med(ds, s["id"], t, "store_growth") or 0) <= 2 * (med(ds, s["id"], "rsync", "literal") or 0) for s in edits)
        if ok:
            within.append(t)
    smallest_store = min(fer, key=lambda t: ds["store_bytes"][t]["median"])
    kib = lambda t: f"{avg_of[t] // KiB} KiB"  # noqa: E731
    L += ["", f"Computed: average chunk sizes whose edit bytes are within 2x of rsync's on every edit: "
          f"{', '.join(map(kib, within)) or 'none'}; smallest store: {kib(smallest_store)}; "
          f"lowest backup peak RSS: {kib(min(fer, key=lambda t: max(med(ds, s['id'], t, 'rss_kib') or 0 for s in ds['steps'] if s['kind'] == 'backup')))}. "
          "The default lives in `store/src/chunker.rs` (`ChunkerParams::DEFAULT`).", ""]
    return L


def render_memscale(ms) -> list[str]:
    L = [f"### {ms['title']}", "", ms["description"] + f" Measured {ms['measured_at']}.", "",
         "| store holds | store MiB | index KiB | cache MiB | backup s | backup peak RSS MiB | restore s | restore peak RSS MiB "
         "| snapshots ms | snapshots peak RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ms["rows"]:
        ls = r.get("snapshots")
        L.append(f"| {r['factor']}x | {r['store_bytes'] / MiB:.1f} | {r['index_bytes'] / KiB:.1f} | {r['cache_bytes'] / MiB:.1f} | "
                 f"{fs(r['backup']['wall_s'])} | {r['backup']['rss_kib'] / 1024:.1f} | {fs(r['restore']['wall_s'])} | {r['restore']['rss_kib'] / 1024:.1f} | "
                 + (f"{ls['wall_s'] * 1000:.0f} | {ls['rss_kib'] / 1024:.1f} |" if ls else "– | – |"))
    if ms.get("all_backups"):
        L += ["", "Peak RSS of every backup in order (MiB): " + ", ".join(f"{b['rss_kib'] / 1024:.0f}" for b in ms["all_backups"]) + "."]
    L.append("")
    return L


def render(res: dict) -> str:
    m = res["meta"]
    L = [
        "# ferry benchmarks",
        "",
        f"Generated by `{m['command']}` (see README, \"Benchmarks\"); do not edit by hand. Raw numbers, every run: "
        "[`BENCHMARKS.json`](BENCHMARKS.json).",
        "",
        f"- date: {m['date']}; total run time {m['runtime_s'] / 60:.1f} min ({m['size']} size)",
        f"- machine: {m['machine']['cpu']}, {m['machine']['nproc']} cores, {m['machine']['mem_gib']:.1f} GiB RAM, "
        f"kernel {m['machine']['kernel']}, {m['machine']['os']}; load average at start {m['loadavg_start']}, at end {m['loadavg_end']}",
        "- tools: " + "; ".join(f"{v}" for v in m["versions"].values()),
        f"- ferry build: {m['ferry_rev']}",
        "",
        f"Method: each tool writes to a local folder on {m.get('work_fs', 'the same disk')}, with its own cache folder and default settings except "
        "borg's `--compression zstd,3` (ferry, restic and borg then all compress with zstd and encrypt with authentication: "
        "ferry XChaCha20-Poly1305, restic AES-256-CTR + Poly1305, borg `repokey-blake2`). How each opens its repository: ferry "
        "with a key file (`ferry key export` right after `ferry store init`, then every command with `FERRY_KEY_FILE` and without "
        "`FERRY_PASSWORD`: no key derivation per run), restic with its passphrase (scrypt at every run), borg with its passphrase "
        "(`repokey`: PBKDF2 at every run), bupstash with its key file (`bupstash new-key`, no passphrase). ferry, restic and bupstash use both "
        "cores, borg is single-threaded. Every repetition starts from empty repositories and caches; within a step the tools run "
        "one after another, and the order rotates by one tool per repetition. Source data is in the page cache (every file is read once before a dataset's first repetition: warm runs; "
        "caches are not dropped on this shared machine). Cells are median (min–max) over the repetitions. wall s is elapsed "
        "time, CPU s is user + system, peak RSS is `time -v`'s maximum resident set size (it includes restic's scrypt; "
        "ferry derives no key after `store init`). \"list snapshots\" is each tool's read-only listing after the last backup "
        "(`ferry snapshots`, `restic snapshots`, `borg list`, `bupstash list`). \"added\" is the growth of the repository's folder; for rsync it is the "
        "Literal data of `--stats` (what it had to copy). \"store / copy\" is the repository after the last backup; rsync's is a "
        "plain mirror of the latest version only. Restores are checked (file count and bytes for every tool; full "
        "comparison of about 1000 files spread over each restored tree, sampled windows of files over 8 MiB).",
        "",
        "## Targets",
        "",
        "Computed from the tables below by `suite.py`: issue 4's targets, then issue 15's.",
        "",
    ]
    for issue, head in ((4, "Issue 4's targets."), (15, "Issue 15's targets: ferry with a key file, measured in this run, as ratios of the medians.")):
        rows = [t for t in res["targets"] if t.get("issue", 4) == issue]
        if not rows:
            continue
        L += [head, "", "| target | met | from the numbers |", "|---|---|---|"]
        for t in rows:
            L.append(f"| {t['target']} | {'yes' if t['met'] else '**no**'} | {t['detail']} |")
        L.append("")
    L += ["## Results", ""]
    for name in DATASETS:
        ds = res["datasets"].get(name)
        if not ds:
            continue
        if name == "memscale":
            L += render_memscale(ds)
        else:
            L += render_dataset(name, ds)
            if name == "bigfile":
                L += render_chunks(ds)
    return "\n".join(L).rstrip() + "\n"


# ---------------------------------------------------------------- main


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    osname = "?"
    try:
        osname = dict(l.split("=", 1) for l in Path("/etc/os-release").read_text().splitlines() if "=" in l).get("PRETTY_NAME", "?").strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "mem_gib": mem / (1 << 30), "kernel": platform.release(), "os": osname}


def ferry_rev() -> str:
    try:
        rev = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
        dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "store", "sync", "cli", "Cargo.toml", "Cargo.lock"]).strip()
        return rev + (" + uncommitted changes in store/sync/cli" if dirty else "")
    except (subprocess.CalledProcessError, OSError):
        return "?"


class Ctx:
    def __init__(self, args, ferry):
        self.size = QUICK if args.quick else FULL
        self.args = args
        self.ferry = ferry

    def reps(self, name):
        return self.args.reps or self.size["reps"][name]


def kept_remote_section(md: Path) -> str:
    """The section remote.py writes (ssh and S3, between its markers), kept when BENCHMARKS.md is rewritten."""
    try:
        old = md.read_text()
    except OSError:
        return ""
    a, b = old.find("<!-- remote.py: begin"), old.find("<!-- remote.py: end -->")
    return "\n" + old[a : b + len("<!-- remote.py: end -->")] + "\n" if 0 <= a < b else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every dataset about 1/16 size, fewer repetitions (a few minutes)")
    ap.add_argument("--reps", type=int, help="repetitions per dataset (default: up to 3 within the time budget; quick: 2, 1 for sidebyside)")
    ap.add_argument("--budget-min", type=float, help=f"time budget in minutes for the whole run: repetitions after each dataset's first are "
                    f"skipped when they would not fit (default {DEFAULT_BUDGET_MIN} for a full run without --reps; 0 = none)")
    ap.add_argument("--only", action="append", help=f"run only these datasets ({', '.join(DATASETS)}); repeatable or comma-separated")
    ap.add_argument("--out", type=Path, help="folder for BENCHMARKS.md/.json (default: repository root; --quick: /var/tmp/ferry-bench/quick)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/ferry as it is")
    ap.add_argument("--no-bupstash", action="store_true", help="leave bupstash out (not installed, not run)")
    ap.add_argument("--no-scratch", action="store_true", help="keep repositories and restores on /var/tmp's filesystem "
                    "instead of a loop-mounted scratch ext4")
    args = ap.parse_args()
    only = [x for o in (args.only or []) for x in o.split(",") if x] or DATASETS
    for o in only:
        if o not in DATASETS:
            ap.error(f"unknown dataset {o!r}; choose from {', '.join(DATASETS)}")
    out = args.out or (BENCH / "quick" if args.quick else ROOT)

    t0 = time.monotonic()
    load0 = [round(x, 2) for x in os.getloadavg()]
    BENCH.mkdir(parents=True, exist_ok=True)
    (BENCH / "README").write_text("Made by ferry's benches/compare/suite.py; everything here can be deleted.\n")
    apt_install(["restic", "borgbackup", "rsync", "time"])
    if not args.no_bupstash:
        install_bupstash()
    global WITH_BUPSTASH
    WITH_BUPSTASH = not args.no_bupstash
    exe = build_ferry(args.no_build)
    rmtree(LOGS)
    rmtree(SRC)
    rmtree(BENCH / "work")
    global WORK
    work_fs = "the host filesystem"
    if not args.no_scratch and mount_scratch():
        WORK = SCRATCH_MNT / "work"
        work_fs = ("a scratch ext4 without online discard on a loop device (direct I/O) backed by a file in /var/tmp "
                   "(this disk's ext4 is mounted with `discard`, which makes deleting restored trees cost minutes)")
    rmtree(WORK)
    ctx = Ctx(args, exe)

    res = {"datasets": {}}
    # With --only, keep the other datasets' earlier results (each is dated).
    prev = out / "BENCHMARKS.json"
    if args.only and prev.exists():
        try:
            old = json.loads(prev.read_text())
            if old.get("meta", {}).get("size") == ("quick" if args.quick else "default"):
                res["datasets"] = {k: v for k, v in old.get("datasets", {}).items() if k not in only}
        except ValueError:
            pass
    # Repetition-major order: every dataset's first repetition, then every
    # dataset's second, ... A later repetition runs only when the time budget
    # still has room for it (estimated from that dataset's slowest repetition).
    budget = args.budget_min if args.budget_min is not None else (None if (args.reps or args.quick) else DEFAULT_BUDGET_MIN)
    deadline = t0 + budget * 60 if budget else None
    benches = [RUNNERS[n](ctx) for n in only]
    try:
        for rep in range(max(b.reps for b in benches)):
            for b in benches:
                if rep >= b.reps:
                    continue
                if rep > 0 and deadline:
                    need, left = max(b.rep_secs) * 1.1 + 30, deadline - time.monotonic()
                    if need > left:
                        log(f"{b.name}: no repetition {rep + 1} (needs ~{need:.0f}s, {max(left, 0):.0f}s left of the {budget}-minute budget)")
                        continue
                log(f"== {b.name} repetition {rep + 1} of {b.reps}")
                b.run_rep(rep)
    finally:
        for b in benches:
            b.cleanup()
        rmtree(WORK)
        rmtree(SRC)
        unmount_scratch()
    for b in benches:
        res["datasets"][b.name] = b.result()

    cmd = "python3 benches/compare/suite.py" + (" --quick" if args.quick else "") + (f" --reps {args.reps}" if args.reps else "") + \
        "".join(f" --only {o}" for o in (only if args.only else []))
    probe = make_tools(BENCH / "probe", exe)
    res["meta"] = {
        "command": cmd,
        "size": "quick" if args.quick else "default",
        "sizes": {k: v for k, v in ctx.size.items()},
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runtime_s": round(time.monotonic() - t0, 1),
        "machine": machine(),
        "loadavg_start": load0,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "versions": {t.name: t.version() for t in probe},
        "ferry_rev": ferry_rev(),
        "work_fs": work_fs,
    }
    res["targets"] = targets(res)
    out.mkdir(parents=True, exist_ok=True)
    (out / "BENCHMARKS.json").write_text(json.dumps(res, indent=1, sort_keys=False) + "\n")
    (out / "BENCHMARKS.md").write_text(render(res) + kept_remote_section(out / "BENCHMARKS.md"))
    log(f"wrote {out / 'BENCHMARKS.md'} and BENCHMARKS.json in {(time.monotonic() - t0) / 60:.1f} min")
    for t in res["targets"]:
        log(f"target (issue {t.get('issue', 4)}) {'MET ' if t['met'] else 'MISSED'}: {t['target']}")


if __name__ == "__main__":
    main()
