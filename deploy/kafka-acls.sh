#!/usr/bin/env bash
# The Kafka ACLs each service needs, and no more, for Apache Kafka's kafka-acls.sh.
# One principal per service lets an operator tell their traffic apart and revoke one
# without the other; deploy/k8s/config.yaml uses one (order-processing) for both, in
# which case give it the union.
#
#   BOOTSTRAP=broker:9093 COMMAND_CONFIG=admin.properties deploy/kafka-acls.sh
#
# Topic and group names are the services' defaults (README, Configuration); change
# them here when you change KAFKA_TOPIC_* or *_CONSUMER_GROUP.
set -euo pipefail
: "${BOOTSTRAP:?the brokers, host:port}"
OMS=${OMS_PRINCIPAL:-User:oms}
INVENTORY=${INVENTORY_PRINCIPAL:-User:inventory}
acls() { kafka-acls.sh --bootstrap-server "$BOOTSTRAP" ${COMMAND_CONFIG:+--command-config "$COMMAND_CONFIG"} --add "$@"; }

# OMS: publishes order events (its outbox relay, an idempotent producer: Write on the
# topic is enough on Kafka 3.0 and later), consumes the inventory's outcomes in its
# group, and parks messages it cannot apply in the outcomes' dead-letter topic.
acls --allow-principal "$OMS" --operation Write --operation Describe --topic oms.order-events
acls --allow-principal "$OMS" --operation Read --operation Describe --topic inventory.order-outcomes
acls --allow-principal "$OMS" --operation Write --operation Describe --topic inventory.order-outcomes.dlq
acls --allow-principal "$OMS" --operation Read --operation Describe --group oms-outcomes

# Inventory: consumes order events in its group, parks what it cannot apply in their
# dead-letter topic, publishes outcomes and stock alerts.
acls --allow-principal "$INVENTORY" --operation Read --operation Describe --topic oms.order-events
acls --allow-principal "$INVENTORY" --operation Write --operation Describe --topic oms.order-events.dlq
acls --allow-principal "$INVENTORY" --operation Write --operation Describe --topic inventory.order-outcomes
acls --allow-principal "$INVENTORY" --operation Write --operation Describe --topic inventory.stock-alerts
acls --allow-principal "$INVENTORY" --operation Read --operation Describe --group inventory-saga

# Optional: let the services create the topics they find missing (with
# KAFKA_PARTITIONS and KAFKA_REPLICATION_FACTOR). Without it, create the five topics
# above beforehand; a service that finds one missing logs once which, answers
# readiness 503 naming it, and waits (no restart needed once it exists).
if [[ ${ALLOW_TOPIC_CREATION:-false} == true ]]; then
  acls --allow-principal "$OMS" --operation Create --topic oms.order-events --topic inventory.order-outcomes \
    --topic inventory.order-outcomes.dlq
  acls --allow-principal "$INVENTORY" --operation Create --topic oms.order-events --topic oms.order-events.dlq \
    --topic inventory.order-outcomes --topic inventory.stock-alerts
fi
