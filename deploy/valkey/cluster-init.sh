#!/bin/sh
# Joins the Valkey nodes in $VALKEY_NODES (space-separated `host` or `host:port`; the first one is asked
# whether a cluster exists) into one cluster with $VALKEY_CLUSTER_REPLICAS replicas per master, once: does
# nothing when they already form a cluster. Needs valkey-cli and getent.
set -eu
: "${VALKEY_NODES:?names of the nodes, separated by spaces}"
REPLICAS="${VALKEY_CLUSTER_REPLICAS:-1}"

host_of() { case "$1" in *:*) echo "${1%:*}" ;; *) echo "$1" ;; esac; }
port_of() { case "$1" in *:*) echo "${1##*:}" ;; *) echo "${VALKEY_PORT:-6379}" ;; esac; }

addresses=""
for node in $VALKEY_NODES; do
  host="$(host_of "$node")"
  port="$(port_of "$node")"
  until valkey-cli -h "$host" -p "$port" ping >/dev/null 2>&1; do sleep 1; done
  # CLUSTER MEET takes IP addresses, not names
  ip="$(getent ahostsv4 "$host" | awk '{ print $1; exit }')"
  addresses="$addresses $ip:$port"
done

seed="${VALKEY_NODES%% *}"
info() { valkey-cli -h "$(host_of "$seed")" -p "$(port_of "$seed")" cluster info | tr -d '\r'; }
known="$(info | sed -n 's/^cluster_known_nodes://p')"
if [ "${known:-1}" -gt 1 ]; then
  echo "the nodes already form a cluster ($known nodes known to $seed)"
  exit 0
fi

# shellcheck disable=SC2086 # one argument per address
valkey-cli --cluster create $addresses --cluster-replicas "$REPLICAS" --cluster-yes
until info | grep -qx 'cluster_state:ok'; do sleep 1; done
echo "cluster formed: $VALKEY_NODES"
