#!/usr/bin/env bash
# Create StreamVision's topics before any worker or camera starts (the compose `kafka-init` service).
#
# Why not leave it to the first client: a camera that starts before the workers would auto-create
# images.raw with the broker's default partition count, and the partition count caps how many workers
# can share the load. Names and counts come from the same STREAMVISION_* variables the workers read.
#
# Every topic gets an explicit retention (STREAMVISION_RETENTION_MS / _BYTES; the dead letters and drift
# alerts, which people read, STREAMVISION_DLQ_RETENTION_MS / _BYTES): the same configs the workers and
# `ensure_topics` use (streams/topology.py topic_configs). The tables' changelogs are Faust's, compacted.
#
# An existing topic is never altered: growing it would move keys to other partitions under the
# tables' feet. A topic with fewer partitions than asked for fails this script, so nothing starts on a
# silently smaller topic.
set -euo pipefail

kafka_bin=/opt/kafka/bin
bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
partitions="${STREAMVISION_TOPIC_PARTITIONS:-4}"
replicas="${STREAMVISION_TOPIC_REPLICAS:-1}"
retention_ms="${STREAMVISION_RETENTION_MS:-86400000}"
retention_bytes="${STREAMVISION_RETENTION_BYTES:-8589934592}"
dlq_retention_ms="${STREAMVISION_DLQ_RETENTION_MS:-2592000000}"
dlq_retention_bytes="${STREAMVISION_DLQ_RETENTION_BYTES:-17179869184}"
long_kept=("${STREAMVISION_TOPIC_DLQ:-images.dlq}" "${STREAMVISION_TOPIC_DRIFT_ALERTS:-drift.alerts}")
topics=(
  "${STREAMVISION_TOPIC_RAW:-images.raw}"
  "${STREAMVISION_TOPIC_ENRICHED:-images.enriched}"
  "${STREAMVISION_TOPIC_SHADOW:-images.shadow}"
  "${STREAMVISION_TOPIC_DLQ:-images.dlq}"
  "${STREAMVISION_TOPIC_DRIFT_STATS:-drift.stats}"
  "${STREAMVISION_TOPIC_DRIFT_ALERTS:-drift.alerts}"
  "${STREAMVISION_TOPIC_DRIFT_PARTIALS:-drift.partials}"
)

for topic in "${topics[@]}"; do
  ms="$retention_ms" bytes="$retention_bytes"
  if [[ " ${long_kept[*]} " == *" $topic "* ]]; then
    ms="$dlq_retention_ms" bytes="$dlq_retention_bytes"
  fi
  "$kafka_bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor "$replicas" \
    --config cleanup.policy=delete --config "retention.ms=$ms" --config "retention.bytes=$bytes"
  actual="$("$kafka_bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --describe --topic "$topic" \
    | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1)"
  if [[ -z "$actual" || "$actual" -lt "$partitions" ]]; then
    echo "topic $topic has ${actual:-no} partitions, STREAMVISION_TOPIC_PARTITIONS asks for $partitions" >&2
    exit 1
  fi
  echo "topic $topic: $actual partitions"
done
