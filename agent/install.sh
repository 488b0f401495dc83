# The rest of the vendor-data script that installs virt-autoscaler-agent
# (agent/install.sh in the virt-autoscaler sources; src/seed.c puts the
# functions va_conf and va_agent above it). cloud-init runs it once per
# instance (its scripts-vendor module), before phone_home.
#
# It writes the agent, its configuration (mode 0600: the heartbeat URL
# holds the instance's secret) and, with systemd, a service enabled for
# every boot; without systemd, a cloud-init per-boot script that starts the
# agent in the background. VA_AGENT_ROOT (tests only) puts every path under
# another directory; VA_AGENT_INIT=none forces the path without systemd.
set -eu
umask 022
root=${VA_AGENT_ROOT:-}
lib=$root/usr/local/lib/virt-autoscaler
etc=$root/etc/virt-autoscaler
conf=$etc/agent.conf
say() { echo "virt-autoscaler-agent install: $*" >&2; }

py=$(command -v python3 || command -v python3.12 || command -v python3.11 ||
	command -v python3.9 || command -v python3.6 || true)
if [ -z "$py" ]; then
	say "no python3 found: no heartbeats will be sent"
	exit 1
fi

mkdir -p "$lib" "$etc" "$root/run/virt-autoscaler"
va_agent >"$lib/agent.new"
chmod 0755 "$lib/agent.new"
mv -f "$lib/agent.new" "$lib/virt-autoscaler-agent"
# The configuration is created 0600 (umask 077), never wider for a moment.
rm -f "$conf.new"
(umask 077 && va_conf "$root" >"$conf.new")
chmod 0600 "$conf.new"
mv -f "$conf.new" "$conf"

# cloud-init logs the phone_home URL, which holds this instance's secret,
# to a log it created world-readable before version 23.1.2 (Debian 12 has
# 22.4): root and group adm only. (phone_home runs after this script.)
for f in /var/log/cloud-init.log /var/log/cloud-init-output.log; do
	if [ -f "$root$f" ]; then
		chmod o-rwx "$root$f"
	fi
done

if [ "${VA_AGENT_INIT:-}" != none ] && [ -d "$root/run/systemd/system" ] &&
	command -v systemctl >/dev/null 2>&1; then
	unit=$root/etc/systemd/system/virt-autoscaler-agent.service
	mkdir -p "$(dirname "$unit")" "$root/etc/tmpfiles.d"
	# /run/virt-autoscaler at every boot, for the application's status
	# file; an application that runs as another user gives the directory
	# to itself with its own /etc/tmpfiles.d/virt-autoscaler-agent.conf.
	if [ ! -e "$root/etc/tmpfiles.d/virt-autoscaler-agent.conf" ]; then
		echo "d /run/virt-autoscaler 0755 root root -" \
			>"$root/etc/tmpfiles.d/virt-autoscaler-agent.conf"
	fi
	cat >"$unit" <<VA_UNIT_EOF
[Unit]
Description=virt-autoscaler guest agent (heartbeats to the autoscaler)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$py $lib/virt-autoscaler-agent $conf
Restart=always
RestartSec=5s
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
VA_UNIT_EOF
	systemctl daemon-reload
	systemctl enable virt-autoscaler-agent.service
	# --no-block: cloud-init itself runs as a systemd unit
	systemctl start --no-block virt-autoscaler-agent.service
	say "installed as virt-autoscaler-agent.service"
else
	perboot=$root/var/lib/cloud/scripts/per-boot
	mkdir -p "$perboot"
	cat >"$perboot/virt-autoscaler-agent" <<VA_BOOT_EOF
#!/bin/sh
# virt-autoscaler-agent at every boot (no systemd); the agent's lock makes a
# second start exit.
mkdir -p $root/run/virt-autoscaler
cd /
(umask 077; nohup $py $lib/virt-autoscaler-agent $conf \
	>>$root/var/log/virt-autoscaler-agent.log 2>&1 </dev/null &)
VA_BOOT_EOF
	chmod 0755 "$perboot/virt-autoscaler-agent"
	mkdir -p "$root/var/log"
	# cloud-init runs the per-boot scripts after this one, but start it now
	# in case this boot's per-boot stage is already over.
	"$perboot/virt-autoscaler-agent"
	say "installed as a cloud-init per-boot script (no systemd)"
fi
