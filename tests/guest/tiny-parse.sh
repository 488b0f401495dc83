#!/usr/bin/env bash
# tiny-parse (suite 'unit'): the seed parsing of the tiny guest's agent
# (scripts/guest/tiny-init, run by busybox ash) on the forms docs/images.md
# promises: phone_home in flow and block style (the block style is what
# src/seed.c writes), quoted values, post lists, $INSTANCE_ID substitution,
# "#va:" / "#tiny:" lines, URL encoding and load-spec validation.
# Needs busybox (scripts/setup.sh --virt); exits 77 without it.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
init=$top/scripts/guest/tiny-init
bb=$(command -v busybox || true)
if [ -z "$bb" ]; then
	echo "tiny-parse: busybox not installed (scripts/setup.sh --virt)" >&2
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# check NAME EXPECTED SHELL-CODE: run CODE in busybox ash with tiny-init's
# functions loaded, compare stdout.
check() {
	local name=$1 want=$2 code=$3 got
	got=$(cd "$work" && TINY_INIT_LIB=1 "$bb" sh -c ". '$init'; $code" 2>&1) || true
	if [ "$got" = "$want" ]; then
		echo "ok - $name"
	else
		echo "not ok - $name"
		printf '  want: %s\n  got:  %s\n' "$want" "$got"
		failed=1
	fi
}

cat >"$work/flow" <<'EOF'
#cloud-config
#va: heartbeat_url=http://10.0.2.2:8470/v1/heartbeat/$INSTANCE_ID/s3cr3t
phone_home: {url: "http://10.0.2.2:8470/v1/checkin/$INSTANCE_ID/s3cr3t", post: [instance_id, hostname], tries: 10}
EOF
cat >"$work/block" <<'EOF'
#cloud-config
# Added by virt-autoscaler (the group's user-data is passed through untouched).
#va: checkin_url=http://10.0.2.2:8470/v1/checkin/i-1/sec
#va: heartbeat_url=http://10.0.2.2:8470/v1/heartbeat/i-1/sec
#va: heartbeat_interval=30
phone_home:
  url: "http://10.0.2.2:8470/v1/checkin/i-1/sec"
  post: [instance_id, hostname]
  tries: 10
runcmd:
  - echo url: not-this-one
EOF
cat >"$work/blocklist" <<'EOF'
phone_home:
  post:
    - instance_id
    - hostname
  url: 'http://10.0.2.2:1/x/${INSTANCE_ID}/t'
EOF
cat >"$work/all" <<'EOF'
phone_home:
  url: http://10.0.2.2:1/a,b
  post: all
EOF
# src/seed.c with the agent: a MIME document, cloud-config then a script
cat >"$work/mime" <<'EOF'
Content-Type: multipart/mixed; boundary="==b=="
MIME-Version: 1.0

--==b==
Content-Type: text/cloud-config; charset="us-ascii"

#cloud-config
#va: heartbeat_url=http://10.0.2.2:8470/v1/heartbeat/i-2/sec
#va: heartbeat_interval=20
phone_home:
  url: "http://10.0.2.2:8470/v1/checkin/i-2/sec"
  post: [instance_id, hostname]
  tries: 10

--==b==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/sh
va_conf() {
	cat <<'VA_CONF_EOF'
{"heartbeat_url": "http://10.0.2.2:8470/v1/heartbeat/i-2/sec", "interval": 20,
VA_CONF_EOF
}
  url: "http://not-this-one"
  post: [not, this]

--==b==--
EOF
printf '#cloud-config\nruncmd: [ls]\n' >"$work/none"
printf 'instance-id: "i-abc"\nlocal-hostname: web-1\n' >"$work/meta"
printf '#cloud-config\n#tiny: heartbeat=2\n#tiny: load_url=http://10.0.2.2:9/load\n' >"$work/user"
tab=$(printf '\t')

check "flow style" "http://10.0.2.2:8470/v1/checkin/\$INSTANCE_ID/s3cr3t${tab}instance_id  hostname" \
	'phone_home_conf flow'
check "block style (src/seed.c)" "http://10.0.2.2:8470/v1/checkin/i-1/sec${tab}instance_id  hostname" \
	'phone_home_conf block'
check "MIME with the agent script (src/seed.c)" \
	"http://10.0.2.2:8470/v1/checkin/i-2/sec${tab}instance_id  hostname" \
	'phone_home_conf mime'
check "MIME: #va: lines" "http://10.0.2.2:8470/v1/heartbeat/i-2/sec 20" \
	'echo $(tag_get va heartbeat_url mime) $(tag_get va heartbeat_interval mime)'
check "block list, single quotes" "http://10.0.2.2:1/x/\${INSTANCE_ID}/t${tab} instance_id hostname" \
	'phone_home_conf blocklist'
check "post: all" "http://10.0.2.2:1/a,b${tab}all" 'phone_home_conf all'
check "no phone_home" "" 'phone_home_conf none'
check "substitution" "http://x/i-1/i-1/t" \
	'subst_instance "http://x/\$INSTANCE_ID/\${INSTANCE_ID}/t" i-1'
check "meta-data quoted" "i-abc web-1" \
	'echo $(yaml_get instance-id meta) $(yaml_get local-hostname meta)'
check "#va: lines" "http://10.0.2.2:8470/v1/heartbeat/i-1/sec 30" \
	'echo $(tag_get va heartbeat_url block) $(tag_get va heartbeat_interval block)'
check "#tiny: lines" "2 http://10.0.2.2:9/load" \
	'echo $(tag_get tiny heartbeat user) $(tag_get tiny load_url user)'
check "urlencode" "web-1.x_y~z%20a%26b%3Dc%2F%C3%A9" 'urlencode "web-1.x_y~z a&b=c/é"'
check "redact keeps no path" "http://10.0.2.2:8470/..." \
	'redact http://10.0.2.2:8470/v1/checkin/i-1/secret'
# Bad load specs are refused before any worker starts (log -> /dev/console
# is not writable here, so only the status is checked).
check "load spec 101% refused" "1" 'log() { :; }; load_set 101%; echo $?'
check "load spec x refused" "1" 'log() { :; }; load_set x; echo $?'
check "load spec 0 accepted" "0" 'log() { :; }; load_set 0; echo $?'
check "mem spec refused" "1" 'log() { :; }; load_apply "0 mem=x"; echo $?'
check "mem 0 and cpu 0 accepted" "0" 'log() { :; }; load_apply " 0%  mem=0 "; echo $?'
check "heartbeat without rps" '{"busy": false}' 'hb_body false'
check "rps reported in the heartbeat" '0 {"busy": true, "metrics": {"requests_per_s": 12.5}}' \
	'log() { :; }; load_apply "0% rps=12.5"; echo "$? $(hb_body true)"'
check "rps 0 is a value" '{"busy": false, "metrics": {"requests_per_s": 0}}' \
	'log() { :; }; load_apply "rps=0"; hb_body false'
for bad in x -1 1.2.3 .5 5. "" 1e3; do
	check "rps '$bad' refused, the last value kept" '1 {"busy": false, "metrics": {"requests_per_s": 4}}' \
		"log() { :; }; load_apply rps=4; load_apply 'rps=$bad'; echo \"\$? \$(hb_body false)\""
done

exit $failed
