#!/usr/bin/env bash
# Installs what the end-to-end tests need that a bare Debian lacks, and
# nothing when it is already there (safe to run again).
#
# - /usr/sbin/sshd (Debian's openssh-server) for tests/ssh.rs, which runs
#   its own sshd on 127.0.0.1 with a config in a temp folder. The system
#   service is neither enabled nor started here.
# - setpriv (util-linux) drops root for the permission tests.
# - script (bsdutils) runs ferry on a pseudo-terminal for the prompt tests.
# - fusermount3 (Debian's fuse3) for tests/mount.rs: `ferry mount` mounts
#   through /dev/fuse and unmounts non-root mounts with fusermount3.
# - chromium (Debian's) for tests/center.rs: the Sync Center page loaded
#   and clicked in headless Chromium (DevTools protocol), plus a
#   screenshot; a font so that the screenshot shows text.
set -euo pipefail

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
# `script` gives tests/cli_conventions.rs a pseudo-terminal for the prompt tests.
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Never start services from package scripts (a container has no init;
  # a developer machine keeps its own sshd settings).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  [ -z "$made_policy" ] || rm -f "$policy"
fi

# sshd refuses to start without its privilege separation folder.
if [ "$(id -u)" = 0 ]; then
  mkdir -p /run/sshd
fi
echo "install-test-deps: sshd $([ -x /usr/sbin/sshd ] && echo present || echo MISSING), setpriv $(command -v setpriv >/dev/null && echo present || echo MISSING), fusermount3 $(command -v fusermount3 >/dev/null && echo present || echo MISSING), /dev/fuse $([ -c /dev/fuse ] && echo present || echo MISSING), chromium $(command -v chromium >/dev/null && echo present || echo MISSING)"
