#!/bin/sh
# The package install test, run by xtask's install_test module inside `unshare --mount --net`:
# a writable overlay over the cached minimal Debian root (no Rust, no network), `dpkg -i` of the
# package, then what an operator would try, then `dpkg -r` and `dpkg -P`, and finally a look at
# what the package left in the overlay. Every check prints one line; the first failure stops.
# Environment: ROOTFS, DEB, VERSION, and the installed paths P_* (from package::paths).
set -eu

work=$(mktemp -d /tmp/synguard-install-test.XXXXXX)
mkdir "$work/upper" "$work/work" "$work/root"
R=$work/root
cleanup() {
	umount -R "$R" 2>/dev/null || true
	umount -R "$work/service/root" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$work/upper,workdir=$work/work" "$R"
mount -t proc proc "$R/proc"

in_root() {
	chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
ok() { echo "install test: ok: $*"; }
fail() {
	echo "install test: FAILED: $*" >&2
	exit 1
}

in_root sh -c '! command -v cargo && ! command -v rustc && ! command -v rustup' >/dev/null ||
	fail "the root has a Rust toolchain"
ok "the root has no cargo, rustc or rustup and no network"

cp "$DEB" "$R/tmp/synguard.deb"
in_root dpkg -i /tmp/synguard.deb >"$work/dpkg-i.log" 2>&1 || {
	cat "$work/dpkg-i.log" >&2
	fail "dpkg -i"
}
ok "dpkg -i $(basename "$DEB")"

# dpkg --verify checks nothing without md5sums: make sure there are some.
sums=$(wc -l <"$R/var/lib/dpkg/info/synguard.md5sums" 2>/dev/null || echo 0)
[ "$sums" -gt 0 ] || fail "the package has no md5sums"
in_root dpkg --verify synguard || fail "dpkg --verify synguard reports changed files"
ok "dpkg --verify: all $sums installed files match their md5sums"

v=$(in_root synguard --version)
[ "$v" = "synguard $VERSION" ] || fail "synguard --version printed '$v', expected 'synguard $VERSION'"
ok "synguard --version: $v"

in_root man --nh --nj -P cat synguard 2>/dev/null | grep -q "SYN-flood protection in XDP" ||
	fail "man synguard does not show the description"
in_root man --nh --nj -P cat synguard-run 2>/dev/null | grep -q -- "--syn-threshold" ||
	fail "man synguard-run does not list --syn-threshold"
ok "man synguard and man synguard-run render ($(ls "$R/$P_MAN_DIR" | grep -c '^synguard') pages in /$P_MAN_DIR)"

in_root bash -c ". /$P_BASH && complete -p synguard" | grep -q -- "-F _synguard" ||
	fail "the bash completion does not register for synguard"
head -n 1 "$R/$P_ZSH" | grep -q "^#compdef synguard" || fail "/$P_ZSH is not a zsh completion"
grep -q "^complete -c synguard" "$R/$P_FISH" || fail "/$P_FISH is not a fish completion"
ok "completions: bash registers _synguard, /$P_ZSH, /$P_FISH"

in_root synguard config validate "/$P_CONFIG" >/dev/null || fail "the shipped configuration is invalid"
in_root dpkg-query -W -f='${Conffiles}\n' synguard | grep -q "^ /$P_CONFIG " ||
	fail "/$P_CONFIG is not a conffile"
ok "/$P_CONFIG is a conffile and validates"

wants=$R/etc/systemd/system/multi-user.target.wants/synguard.service
# deb-systemd-helper links through /lib on a merged-/usr system: check where the link leads.
target=$(readlink "$wants" || true)
[ -n "$target" ] && [ "$R$target" -ef "$R/$P_UNIT" ] || fail "the service is not enabled ($wants)"
ok "synguard.service enabled (multi-user.target.wants)"

in_root systemd-analyze verify "/$P_UNIT" >"$work/verify.log" 2>&1 || {
	cat "$work/verify.log" >&2
	fail "systemd-analyze verify"
}
ok "systemd-analyze verify of the installed unit: no complaints"

score=$(in_root systemd-analyze security --offline=yes --no-pager "/$P_UNIT" 2>/dev/null |
	sed -n 's/.*Overall exposure level for synguard.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "systemd-analyze security printed no exposure level"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "exposure level $score is above 3.0"
ok "systemd-analyze security exposure level: $score (at most 3.0)"

in_root dpkg -r synguard >/dev/null 2>&1 || fail "dpkg -r"
for p in "$P_BINARY" "$P_UNIT" "$P_BASH" "$P_ZSH" "$P_FISH" "$P_MAN_DIR/synguard.8.gz"; do
	[ ! -e "$R/$p" ] || fail "/$p is still there after dpkg -r"
done
[ -e "$R/$P_CONFIG" ] || fail "dpkg -r removed the conffile /$P_CONFIG"
in_root dpkg-query -W -f='${db:Status-Abbrev}\n' synguard | grep -q '^rc' ||
	fail "after dpkg -r the package is not in state rc"
ok "dpkg -r: binary, unit, man pages and completions gone, configuration kept (state rc)"

in_root dpkg -P synguard >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e "$R/etc/synguard" ] || fail "/etc/synguard is still there after dpkg -P"
[ ! -L "$wants" ] && [ ! -L "$R/etc/systemd/system/synguard.service" ] ||
	fail "enablement or mask symlinks left after dpkg -P"
# What the whole install/remove/purge cycle left in the overlay, apart from dpkg's and man-db's
# own records and the runtime state systemd-analyze wrote under /run: new files, links, or
# directories the root did not have before.
left=$(cd "$work/upper" && find . ! -type d ! -type c | grep -Ev '^\./(var/lib/dpkg|var/log|var/cache/(man|debconf)|tmp|run)/' || true)
for d in $(cd "$work/upper" && find . -type d ! -path './run/*'); do
	[ -d "$ROOTFS/$d" ] || left="$left $d"
done
[ -z "$left" ] || fail "left behind after dpkg -P: $left"
ok "dpkg -P: configuration and enablement gone, nothing left outside dpkg's own records"

# The service under a real systemd: a second overlay of the same root, the package installed in
# it, booted as a container (systemd-nspawn) in this test's own network namespace, where the
# test's veth pair stands in for the NIC. Its own overlay, because booting leaves systemd's state
# behind, which the leftover check above must not see.
S=$work/service/root
mkdir -p "$work/service/upper" "$work/service/work" "$S"
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$work/service/upper,workdir=$work/service/work" "$S"
cp "$DEB" "$S/tmp/synguard.deb"
chroot "$S" dpkg -i /tmp/synguard.deb >/dev/null 2>&1 || fail "dpkg -i in the service root"
cat >"$S/$P_CONFIG" <<EOC
interfaces = ["sgt0"]
ports = [80]
mode = "always"
EOC
# systemd mounts no BPF filesystem in a container; on a host it does.
cat >"$S/etc/systemd/system/test-bpffs.service" <<EOC
[Unit]
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/mount -t bpf -o mode=700 bpffs /sys/fs/bpf
EOC
ln -s /etc/systemd/system/test-bpffs.service "$S/etc/systemd/system/sysinit.target.wants/"
systemd-nspawn --boot --directory="$S" --machine=synguard-test --register=no --keep-unit \
	--network-namespace-path=/proc/self/ns/net --system-call-filter=bpf \
	--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN,CAP_SYS_ADMIN </dev/null >"$work/console.log" 2>&1 &
nspawn=$!
stop_container() {
	kill -TERM "$nspawn" 2>/dev/null || true
	wait "$nspawn" 2>/dev/null || true
}
trap 'stop_container; cleanup' EXIT
# Polls a condition every 0.2 s for up to $2 seconds.
wait_for() {
	n=$(($2 * 5))
	while ! eval "$1" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.2
	done
}
leader() { pgrep -P "$nspawn" | head -n 1; }
in_c() { nsenter -t "$(leader)" -a "$@"; }
prop() { in_c systemctl show synguard -p "$1" --value; }
xdp_id() { ip -d link show sgt0 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
wait_for '[ -n "$(leader)" ] && [ "$(prop NRestarts)" -ge 1 ]' 40 || {
	tail -n 30 "$work/console.log" >&2
	fail "synguard did not start and retry without its interface"
}
ok "service: no interface yet, synguard exits and systemd retries ($(prop NRestarts) restarts)"

ip link add sgt0 type veth peer name sgt1
ip link set sgt0 up
ip link set sgt1 up
wait_for '[ "$(prop ActiveState)" = active ]' 15 || {
	in_c journalctl -u synguard -n 20 --no-pager >&2
	fail "synguard did not become active once its interface appeared"
}
# Type=notify: active only after READY=1, which follows the attach.
prog=$(xdp_id)
[ -n "$prog" ] || fail "active without an XDP program on sgt0"
status=$(prop StatusText)
[ "$status" = "guarding sgt0 on ports 80 (cookies always)" ] || fail "StatusText is '$status'"
ok "service: active once sgt0 appeared, XDP program $prog attached, status '$status'"

pid=$(prop MainPID)
in_c systemctl reload synguard || fail "systemctl reload"
wait_for 'in_c journalctl -u synguard --no-pager -o cat | grep -q "^Reloaded synguard.service"' 10 ||
	fail "the reload did not finish"
[ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ] || fail "reload restarted synguard"
ok "service: systemctl reload applied, same process"

in_c systemctl kill --kill-who=main --signal=SIGUSR1 synguard
wait_for '[ "$(prop MainPID)" != "$pid" ] && [ "$(prop ActiveState)" = active ]' 15 ||
	fail "no new synguard after the SIGUSR1 hand-over"
new=$(xdp_id)
[ -n "$new" ] && [ "$new" != "$prog" ] || fail "after the hand-over the program is '$new' (was $prog)"
ok "service: SIGUSR1 handed over to a new process, program $prog replaced by $new"

in_c dpkg -r synguard >"$work/dpkg-r.log" 2>&1 || {
	cat "$work/dpkg-r.log" >&2
	fail "dpkg -r with the service running"
}
[ "$(prop ActiveState)" != active ] || fail "dpkg -r left synguard running"
[ -z "$(xdp_id)" ] || fail "dpkg -r left the XDP program on sgt0"
ok "dpkg -r with the service running: stopped, XDP program detached"
stop_container
trap cleanup EXIT
ip link del sgt0
