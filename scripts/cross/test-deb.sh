#!/usr/bin/env bash
# CI test of the amd64 Debian package on this machine (root, no systemd):
# build, dpkg -i, check the installed files, run edged as edged.service would
# (user edged, the packaged config, /var/lib/edged as StateDirectory= makes
# it), wait for /readyz, SIGTERM, expect exit 0, then dpkg -r (data and user
# kept) and dpkg -P (both gone). Idempotent: a leftover edged package is
# purged first, and the package is purged at the end (KEEP=1 leaves it
# installed when a check fails, for a look around).
#   DEADLINE=30 scripts/cross/test-deb.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s.%N)
DEADLINE=${DEADLINE:-30} # seconds for readiness and for the drain on SIGTERM
[ "$(id -u)" = 0 ] || { echo "test-deb: must run as root (dpkg -i)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || apt-get install -y dpkg-dev
fail() { echo "test-deb: FAIL: $*" >&2; [ -s "${log:-/dev/null}" ] && sed 's/^/  edged| /' "$log" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }
installed() { dpkg-query -W -f='${db:Status-Status}' edged 2>/dev/null | grep -qx installed; }
known() { dpkg-query -W edged >/dev/null 2>&1; }

tmp=$(mktemp -d /tmp/edged-test-deb.XXXXXX)
chmod 0755 "$tmp"
log=$tmp/edged.log
runpid= edpid=
cleanup() {
  set +e
  [ -n "$edpid" ] && kill -KILL "$edpid" 2>/dev/null
  [ -n "$runpid" ] && wait "$runpid" 2>/dev/null
  if [ -z "${KEEP:-}" ] && known; then dpkg -P edged >/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if known; then echo "test-deb: purging a leftover edged package"; dpkg -P edged >/dev/null; fi

out=$(ARCHES=amd64 bash scripts/cross/deb.sh)
deb=$(awk '{print $4}' <<<"$out")
[ -f "$deb" ] || fail "deb.sh printed no package: $out"
dpkg-deb --info "$deb" >/dev/null && dpkg-deb --contents "$deb" >/dev/null || fail "dpkg-deb cannot read $deb"
ok "built $deb"

dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i"; }
installed || fail "dpkg -i: package not installed"
ok "dpkg -i"

# Installed files, owners and modes.
check_stat() { # path want-owner:group want-mode
  local got
  got=$(stat -c '%U:%G %a' "$1" 2>/dev/null) || fail "$1 missing"
  [ "$got" = "$2 $3" ] || fail "$1: got $got; want $2 $3"
}
for f in /usr/bin/edged /usr/bin/edgectl; do check_stat "$f" root:root 755; done
check_stat /lib/systemd/system/edged.service root:root 644
check_stat /etc/edged/edged.yaml root:edged 640
check_stat /etc/edged/pipelines edged:edged 755
check_stat /var/lib/edged edged:edged 750
for p in configs/pipelines/*.yaml; do cmp -s "$p" "/etc/edged/pipelines/${p##*/}" || fail "/etc/edged/pipelines/${p##*/} differs from $p"; done
getent passwd edged | grep -q ':/var/lib/edged:/usr/sbin/nologin$' || fail "user edged: got $(getent passwd edged); want home /var/lib/edged, shell nologin"
[ "$(id -gn edged)" = edged ] || fail "user edged: primary group $(id -gn edged); want edged"
grep -qx /etc/edged/edged.yaml /var/lib/dpkg/info/edged.conffiles || fail "edged.yaml is not a conffile"
unit=/lib/systemd/system/edged.service
for kv in 'User=edged' 'Restart=on-failure' 'StateDirectory=edged' 'ProtectSystem=strict' 'ProtectHome=yes' \
  'PrivateTmp=yes' 'NoNewPrivileges=yes' 'ExecStart=/usr/bin/edged run -c /etc/edged/edged.yaml' \
  'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$kv" "$unit" || fail "$unit: no line $kv"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log" >&2; fail "systemd-analyze verify"; }
  ok "systemd-analyze verify"
fi
v=$(/usr/bin/edged version) && e=$(/usr/bin/edgectl version) || fail "version"
ok "files, owners, modes, user, conffiles, unit ($v, $e)"

# The packaged config as the unit's user.
runuser -u edged -- /usr/bin/edged -check-config -c /etc/edged/edged.yaml >"$tmp/check.log" 2>&1 ||
  { cat "$tmp/check.log" >&2; fail "edged -check-config as edged"; }
ok "$(cat "$tmp/check.log")"

# Ports: the packaged ones when free, else free ones (the MQTT listen address
# has no flag, so then a copy of the config with another port is used).
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
freeport() { local p; for p in $(shuf -i 20000-60000 -n 50); do busy "$p" || { echo "$p"; return; }; done; fail "no free port"; }
api=8080; busy $api && api=$(freeport)
conf=/etc/edged/edged.yaml
if busy 1883; then
  mq=$(freeport)
  conf=$tmp/edged.yaml
  sed "s/^  listen: \":1883\"/  listen: \"127.0.0.1:$mq\"/" /etc/edged/edged.yaml >"$conf"
  chgrp edged "$conf" && chmod 0640 "$conf"
  echo "test-deb: 1883 busy: the embedded broker gets $mq (config copy $conf)"
fi

# Start as the unit would. StateDirectory= would create /var/lib/edged
# edged:edged 0750: the same as postinst, done again here.
install -d -m 0750 -o edged -g edged /var/lib/edged
( cd / && exec runuser -u edged -- /usr/bin/edged run -c "$conf" --api "127.0.0.1:$api" ) >"$log" 2>&1 &
runpid=$!
# runuser stays the parent of edged; signals go to edged itself, as systemd
# sends them to the main process.
end=$(($(date +%s) + DEADLINE))
while [ -z "$edpid" ]; do
  edpid=$(pgrep -P "$runpid" -u edged || true)
  [ "$(date +%s)" -lt "$end" ] || fail "edged did not start"
  kill -0 "$runpid" 2>/dev/null || fail "runuser exited early"
  [ -n "$edpid" ] || sleep 0.05
done
until curl -fsS -o /dev/null "http://127.0.0.1:$api/readyz" 2>/dev/null; do
  kill -0 "$edpid" 2>/dev/null || fail "edged exited before it was ready"
  [ "$(date +%s)" -lt "$end" ] || fail "not ready within ${DEADLINE}s"
  sleep 0.1
done
ready=$(date +%s.%N)
ok "ready on 127.0.0.1:$api after $(awk -v a="$start" -v b="$ready" 'BEGIN{printf "%.1f", b-a}')s since the test began"
n=$(curl -fsS "http://127.0.0.1:$api/api/v1/pipelines" | grep -o '"name"' | wc -l)
[ "$n" -ge 4 ] || fail "/api/v1/pipelines: got $n pipelines; want the 4 packaged ones"
[ "$(stat -c %U /var/lib/edged/edged.db 2>/dev/null)" = edged ] || fail "/var/lib/edged/edged.db missing or not owned by edged"
ok "$n pipelines running, database in /var/lib/edged owned by edged"

kill -TERM "$edpid"
end=$(($(date +%s) + DEADLINE))
while kill -0 "$edpid" 2>/dev/null; do
  [ "$(date +%s)" -lt "$end" ] || fail "edged did not exit within ${DEADLINE}s of SIGTERM"
  sleep 0.05
done
rc=0; wait "$runpid" || rc=$?
runpid= edpid=
[ "$rc" = 0 ] || fail "edged exit status after SIGTERM: got $rc; want 0"
ok "SIGTERM: exit 0"

dpkg -r edged >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -r"; }
[ ! -e /usr/bin/edged ] && [ ! -e /lib/systemd/system/edged.service ] || fail "dpkg -r left binaries or the unit"
[ -f /var/lib/edged/edged.db ] || fail "dpkg -r deleted the data"
[ -f /etc/edged/edged.yaml ] || fail "dpkg -r deleted the conffile"
getent passwd edged >/dev/null || fail "dpkg -r deleted user edged"
ok "dpkg -r: binaries gone; data, config and user kept"

dpkg -P edged >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -P"; }
[ ! -e /var/lib/edged ] || fail "dpkg -P left /var/lib/edged"
[ ! -e /etc/edged ] || fail "dpkg -P left /etc/edged: $(find /etc/edged)"
! getent passwd edged >/dev/null || fail "dpkg -P left user edged"
! getent group edged >/dev/null || fail "dpkg -P left group edged"
known && fail "dpkg -P: package still known to dpkg"
ok "dpkg -P: data, config, user and group gone"
echo "test-deb: PASS in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
