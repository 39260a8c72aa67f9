#!/usr/bin/env bash
# The broker paused under load: scripts/probes/pause_under_load.sh broker, under the
# name the figures in docs/benchmarks.md were taken with.
#
#   scripts/probes/broker_pause.sh [ORDERS [RATE [PAUSE_AT [PAUSE_SECS]]]]   # default 25000 250 30 30
exec "$(dirname "$0")/pause_under_load.sh" broker "$@"
