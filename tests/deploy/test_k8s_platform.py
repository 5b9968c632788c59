"""Kafka topics (Strimzi), KEDA scaling, NetworkPolicies and monitoring agree with the services' code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hibiki_runtime.events import ALL_TOPICS, DLQ_SUFFIX

from tests.deploy.conftest import KAFKA, MEDIA, MEDIA_NAMESPACE, NAMESPACE, SERVICES, Manifest, of_kind

Render = Callable[[str], list[Manifest]]
BOOTSTRAP = "hibiki-kafka-bootstrap.kafka.svc:9092"


def topics(objects: list[Manifest]) -> dict[str, Manifest]:
    """KafkaTopic resources by Kafka topic name (spec.topicName, else metadata.name)."""
    return {
        t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(objects, "KafkaTopic").values()
    }


@pytest.mark.parametrize("target", KAFKA)
def test_every_topic_and_dlq_the_services_use_has_a_kafka_topic(rendered: Render, target: str) -> None:
    found = topics(rendered(target))
    assert set(found) == set(ALL_TOPICS)
    for name, topic in found.items():
        assert "." not in topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "hibiki"
        assert topic["metadata"]["namespace"] == "kafka"
        config = topic["spec"]["config"]
        assert int(config["retention.ms"]) >= 7 * 24 * 3600 * 1000, name
        assert config["cleanup.policy"] == "delete"


def test_production_topics_survive_a_broker_loss(rendered: Render) -> None:
    for name, topic in topics(rendered("kafka/topics")).items():
        assert topic["spec"]["replicas"] == 3, name
        assert int(topic["spec"]["config"]["min.insync.replicas"]) == 2, name


def test_dev_topics_fit_the_single_broker(rendered: Render) -> None:
    objects = rendered("kafka/dev")
    (pool,) = of_kind(objects, "KafkaNodePool").values()
    brokers = pool["spec"]["replicas"]
    for topic in topics(objects).values():
        assert topic["spec"]["replicas"] <= brokers
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
    (kafka,) = of_kind(objects, "Kafka").values()
    assert kafka["metadata"]["name"] == "hibiki"
    assert {"name": "plain", "port": 9092, "type": "internal", "tls": False} in kafka["spec"]["kafka"][
        "listeners"
    ]
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_dlq_topics_keep_dead_letters_longer_than_their_source(rendered: Render) -> None:
    found = topics(rendered("kafka/topics"))
    for name in ALL_TOPICS:
        if name.endswith(DLQ_SUFFIX):
            source = found[name.removesuffix(DLQ_SUFFIX)]["spec"]["config"]["retention.ms"]
            assert int(found[name]["spec"]["config"]["retention.ms"]) > int(source)


def test_services_and_keda_use_the_strimzi_bootstrap_address(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    service_configs = [
        config
        for config in of_kind(objects, "ConfigMap").values()
        if config["metadata"].get("labels", {}).get("app") in SERVICES
    ]
    assert len(service_configs) == len(SERVICES)
    for config in service_configs:
        assert config["data"]["HIBIKI_KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
    for scaled in of_kind(objects, "ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "kafka":
                assert trigger["metadata"]["bootstrapServers"] == BOOTSTRAP


@pytest.mark.parametrize("folder", [name for name, spec in SERVICES.items() if spec[3]])
def test_consumers_scale_on_the_lag_of_their_group_and_never_past_the_partitions(
    rendered: Render, folder: str
) -> None:
    consumed = SERVICES[folder][3]
    scaled = of_kind(rendered("overlays/prod"), "ScaledObject")[folder]
    assert scaled["spec"]["scaleTargetRef"]["name"] == folder
    kafka_triggers = [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
    assert {t["topic"] for t in kafka_triggers} == set(consumed)
    assert {t["consumerGroup"] for t in kafka_triggers} == {f"hibiki-{folder}"}
    # A replica past the largest partition count of the group's topics would get no partition at all.
    partitions = max(topics(rendered("kafka/topics"))[t]["spec"]["partitions"] for t in consumed)
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    assert any(t["type"] == "cpu" for t in scaled["spec"]["triggers"])


@pytest.mark.parametrize("folder", [name for name, spec in SERVICES.items() if spec[3]])
def test_dev_cpu_autoscaling_never_exceeds_the_partitions(rendered: Render, folder: str) -> None:
    hpa = of_kind(rendered("overlays/dev"), "HorizontalPodAutoscaler")[folder]
    partitions = max(topics(rendered("kafka/dev"))[t]["spec"]["partitions"] for t in SERVICES[folder][3])
    assert hpa["spec"]["maxReplicas"] <= partitions


@pytest.mark.parametrize("target", ["overlays/dev", "overlays/prod"])
def test_network_policies_deny_by_default_and_open_only_the_needed_ports(
    rendered: Render, target: str
) -> None:
    policies = of_kind(rendered(target), "NetworkPolicy")
    deny = policies["hibiki-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "hibiki"}}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    egress_ports = {
        port["port"]
        for p in policies.values()
        for rule in p["spec"].get("egress", [])
        for port in rule["ports"]
    }
    assert egress_ports == {53, 9092, 5432, 2775}
    ingress_ports = {
        port["port"]
        for p in policies.values()
        for rule in p["spec"].get("ingress", [])
        for port in rule["ports"]
    }
    # Named ports: the same policy serves the four services' different port numbers.
    assert ingress_ports == {"grpc", "metrics"}


def test_prometheus_scrapes_the_metrics_port_of_every_service(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    (monitor,) = of_kind(objects, "ServiceMonitor").values()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    namespaces = (
        monitor["spec"].get("namespaceSelector", {}).get("matchNames", [monitor["metadata"]["namespace"]])
    )
    selected = {
        name
        for name, service in of_kind(objects, "Service").items()
        if monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        and service["metadata"]["namespace"] in namespaces
    }
    assert selected == {*SERVICES, MEDIA}
    assert set(namespaces) == {NAMESPACE, MEDIA_NAMESPACE}
    (rules,) = of_kind(objects, "PrometheusRule").values()
    assert rules["spec"]["groups"][0]["rules"]
