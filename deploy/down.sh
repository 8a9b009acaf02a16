#!/usr/bin/env bash
# Stops the compose deployment and removes its containers, network and volumes (the nodes'
# data: the cluster is gone). Works without deploy/.env.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Compose interpolates the whole file for every command; `down` uses none of the secrets.
export SIEM_RELAY_CLUSTER_SECRET="${SIEM_RELAY_CLUSTER_SECRET:-unused-by-down}"
export SIEM_RELAY_ADMIN_TOKEN="${SIEM_RELAY_ADMIN_TOKEN:-unused-by-down}"
compose down -v --remove-orphans
