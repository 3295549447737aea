#!/usr/bin/env bash
# Makes Synapse (the Matrix homeserver the channel tests talk to) available: matrix-synapse from
# PyPI in a virtualenv under ~/.cache/clawgate-synapse, made once. Prints the virtualenv's python.
set -euo pipefail
VERSION=1.163.2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/clawgate-synapse"
python="$cache/venv/bin/python"
if ! "$python" -c "import synapse, sys; sys.exit(0 if synapse.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  rm -rf "$cache/venv"
  mkdir -p "$cache"
  python3 -m venv "$cache/venv" >&2
  "$cache/venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$VERSION" >&2
fi
echo "$python"
