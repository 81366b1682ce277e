#!/usr/bin/env bash
# Builds Debian packages of edged into dist/: edged_<version>_<arch>.deb for
# ARCHES (default "armhf arm64 amd64").
#
# armhf is built from the GOARM=6 binary: Debian's armhf port assumes ARMv7,
# Raspberry Pi OS's armhf is ARMv6 (Pi Zero, Pi 1), and an ARMv6 binary runs on
# both (ARMv7 and ARMv8 cores in 32-bit mode execute ARMv6 code).
#
# Version: git describe turned into a Debian version (see debver). The
# packages are reproducible: files are root-owned and their mtimes clamped to
# SOURCE_DATE_EPOCH (default: the commit time).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v dpkg-deb >/dev/null || { echo "deb.sh: dpkg-deb missing (apt-get install -y dpkg-dev)" >&2; exit 1; }
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
ARCHES=${ARCHES:-armhf arm64 amd64}
MAINTAINER=${MAINTAINER:-edged maintainers <edged@edgedio.github.io>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# debver turns a git describe string into a Debian version that sorts right:
#   v1.2.0 -> 1.2.0   v1.2.0-rc1 -> 1.2.0~rc1   v1.2.0-5-gabc1234 -> 1.2.0+5.gabc1234
#   abc1234 (no tag) -> 0.0.0+<commits>.gabc1234   a -dirty suffix adds .dirty
debver() {
  local v=${1#v} dirty= n= h= base
  [[ $v == *-dirty ]] && { dirty=1; v=${v%-dirty}; }
  if [[ $v =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} h=${BASH_REMATCH[3]}
  elif [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
    base=0.0.0 n=$(git rev-list --count HEAD 2>/dev/null || echo 0) h=$v
  else
    base=$v
  fi
  base=${base//-/\~}
  [[ $base =~ ^[0-9] ]] || base=0.0.0+$base
  local out=$base
  [ -n "$h" ] && out+="+$n.g$h"
  if [ -n "$dirty" ]; then [[ $out == *+* ]] && out+=.dirty || out+=+dirty; fi
  printf '%s\n' "${out//[^A-Za-z0-9.+~]/.}"
}
DEBVERSION=${DEBVERSION:-$(debver "$VERSION")}

declare -A target=([armhf]=armv6 [arm64]=arm64 [amd64]=amd64)
targets=
for a in $ARCHES; do
  [ -n "${target[$a]:-}" ] || { echo "deb.sh: unknown arch $a (armhf arm64 amd64)" >&2; exit 2; }
  targets+=" ${target[$a]}"
done
VERSION=$VERSION TARGETS=$targets bash scripts/cross/build.sh >/dev/null

tmp=$(mktemp -d /tmp/edged-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for a in $ARCHES; do
  root=$tmp/$a
  bin=dist/linux-${target[$a]}
  install -D -m 0755 "$bin/edged" "$root/usr/bin/edged"
  install -D -m 0755 "$bin/edgectl" "$root/usr/bin/edgectl"
  install -D -m 0644 scripts/cross/deb/edged.service "$root/lib/systemd/system/edged.service"
  install -D -m 0644 configs/edged-pi.yaml "$root/etc/edged/edged.yaml"
  install -d -m 0755 "$root/etc/edged/pipelines"
  install -m 0644 configs/pipelines/*.yaml "$root/etc/edged/pipelines/"
  install -D -m 0644 README.md "$root/usr/share/doc/edged/README.md"
  install -d -m 0755 "$root/DEBIAN"
  install -m 0755 scripts/cross/deb/postinst scripts/cross/deb/prerm scripts/cross/deb/postrm "$root/DEBIAN/"
  (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat >"$root/DEBIAN/control" <<CTRL
Package: edged
Version: $DEBVERSION
Architecture: $a
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: adduser
Section: net
Priority: optional
Homepage: https://github.com/edgedio/edged
Description: edge stream processor for IoT gateways
 edged runs Spark-Streaming-style pipelines (windows, joins, sessions,
 triggers) over MQTT sensor data on Raspberry-Pi-class gateways, with
 exactly-once state in a local database and an HTTP API. This package
 installs the daemon (edged.service, user edged, state in /var/lib/edged),
 edgectl, a gateway config in /etc/edged/edged.yaml and example pipelines.
CTRL
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  deb=dist/edged_${DEBVERSION}_$a.deb
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
  printf '%-7s %10d  %s  %s\n' "$a" "$(stat -c %s "$deb")" "$(sha256sum "$deb" | cut -c1-16)" "$deb"
done
