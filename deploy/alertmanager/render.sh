#!/bin/sh
# render.sh TEMPLATE OUT: writes Alertmanager's configuration from TEMPLATE
# with each ${TASKQUEUE_ALERT_*} replaced by the environment's value, or by a
# placeholder when unset (Alertmanager then starts, and a delivery to that
# receiver fails visibly). POSIX sh and sed only: it runs in the
# prom/alertmanager image (busybox).
set -eu
template=$1
out=$2
script=
for name in SMTP_HOST:smtp.invalid:587 EMAIL_FROM:alertmanager@taskqueue.invalid SMTP_USER: SMTP_PASSWORD: \
	SLACK_WEBHOOK_URL:https://hooks.slack.invalid/unset SLACK_CHANNEL:#taskqueue-alerts \
	PAGERDUTY_ROUTING_KEY:unset EMAIL_TO:oncall@taskqueue.invalid; do
	var=TASKQUEUE_ALERT_${name%%:*}
	default=${name#*:}
	eval "value=\${$var:-$default}"
	# Escape what sed's replacement and the YAML double-quoted string treat specially.
	value=$(printf '%s' "$value" | sed -e 's/[\\"]/\\\\&/g' -e 's/[&|]/\\&/g')
	script="$script s|\${$var}|$value|g;"
done
sed -e "$script" "$template" > "$out"
if grep -q '\${TASKQUEUE_ALERT_' "$out"; then
	echo "render.sh: $out still names a setting render.sh does not know:" >&2
	grep -n '\${TASKQUEUE_ALERT_' "$out" >&2
	exit 1
fi
