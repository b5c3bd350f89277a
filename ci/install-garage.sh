#!/usr/bin/env bash
# Installs Garage (an S3-compatible object store server) for tests/s3.rs.
# Idempotent: reuses `garage` on PATH or ~/.cargo/bin/garage when present,
# otherwise builds it from crates.io (about 15 minutes on 2 cores).
set -euo pipefail

if command -v garage >/dev/null 2>&1; then
  echo "garage: $(command -v garage) ($(garage --version 2>/dev/null | head -1))"
  exit 0
fi
if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
  echo "garage: ${CARGO_HOME:-$HOME/.cargo}/bin/garage"
  exit 0
fi
echo "garage: not found, building it with cargo install (takes a while)"
# Garage's own lockfile, so its dependency versions are the ones it was released with.
cargo install --locked garage
