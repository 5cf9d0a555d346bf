"""The publisher's running totals synced into the gateway's Prometheus metrics."""

from __future__ import annotations

from edge.metrics import GatewayMetrics


def _value(metrics: GatewayMetrics, name: str) -> float:
    found = metrics.registry.get_sample_value(name)
    assert found is not None, name
    return found


def test_messages_published_follows_the_publishers_total() -> None:
    metrics = GatewayMetrics()
    metrics.mqtt(True, 0, published_total=10)
    metrics.mqtt(True, 0, published_total=25)
    assert _value(metrics, "towerwatch_edge_messages_published_total") == 25
    # a new publisher (config reload) counts from 0 again: its total is added on
    metrics.mqtt(True, 0, published_total=4)
    assert _value(metrics, "towerwatch_edge_messages_published_total") == 29


def test_without_a_published_total_the_counter_is_left_alone() -> None:
    metrics = GatewayMetrics()
    metrics.mqtt(False, 3)
    assert _value(metrics, "towerwatch_edge_messages_published_total") == 0
    assert _value(metrics, "towerwatch_edge_mqtt_reconnects_total") == 3
    assert _value(metrics, "towerwatch_edge_mqtt_connected") == 0
