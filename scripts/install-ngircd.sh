#!/usr/bin/env bash
# Makes ngIRCd (the IRC server the channel tests talk to) available and prints the command that
# runs it. A system ngircd is used as it is; otherwise Debian's package and the library it needs
# are downloaded with apt-get and unpacked under ~/.cache/clawgate-ngircd (no root, nothing
# installed system-wide). Prints: the path of a wrapper script that runs ngircd.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/clawgate-ngircd"
wrapper="$cache/ngircd"
mkdir -p "$cache"

if command -v ngircd >/dev/null 2>&1; then
  printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v ngircd)" > "$wrapper"
  chmod +x "$wrapper"
  echo "$wrapper"
  exit 0
fi

if [ ! -x "$cache/root/usr/sbin/ngircd" ]; then
  (
    cd "$cache"
    rm -f ./*.deb
    # apt-get download needs no root; the packages land in the current folder. A machine whose
    # package lists were never fetched gets them first (that needs root).
    if ! apt-get download ngircd libident >&2 2>/dev/null; then
      if [ "$(id -u)" = 0 ]; then apt-get update >&2; fi
      apt-get download ngircd libident >&2
    fi
    for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
  )
fi
lib="$cache/root/usr/lib/$(uname -m)-linux-gnu"
cat > "$wrapper" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$cache/root/usr/sbin/ngircd" "\$@"
WRAP
chmod +x "$wrapper"
"$wrapper" --version >/dev/null
echo "$wrapper"
