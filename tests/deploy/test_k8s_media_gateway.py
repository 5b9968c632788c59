"""media-gateway: a StatefulSet on the nodes' network, one replica per node, that keeps what SIP and RTP need.

Its pods announce the node's address in SIP and SDP and take RTP on a port range of the node, so they run
with hostNetwork in a namespace of their own; everything else a Hibiki pod must keep (security context,
probes, resources, Secrets as read-only files) is checked as for the Deployments (test_k8s_manifests).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import (
    K8S,
    MEDIA,
    MEDIA_MODULE,
    MEDIA_NAMESPACE,
    NAMESPACE,
    OVERLAYS,
    Manifest,
    of_kind,
)
from tests.deploy.test_k8s_auth_tls import environment, secret_file_source, settings_class
from tests.deploy.test_k8s_manifests import _container, _image_name, pod_security_problems, probe_problems

Render = Callable[[str], list[Manifest]]
REPO = K8S.parents[1]
GRPC_PORT, HTTP_PORT = 50055, 9105
BOOTSTRAP = "hibiki-kafka-bootstrap.kafka.svc:9092"
# After the drain: gRPC grace (5 s), ending the remaining calls and writing their events (5 s), the last
# consumer batch (15 s), PJSIP hanging up (10 s).
SHUTDOWN_AFTER_DRAIN_SECONDS = 35


def media_objects(objects: list[Manifest]) -> tuple[Manifest, Manifest, dict[str, str]]:
    """The StatefulSet, its governing Service and the data of its ConfigMap."""
    statefulset = of_kind(objects, "StatefulSet")[MEDIA]
    service = of_kind(objects, "Service")[statefulset["spec"]["serviceName"]]
    pod = statefulset["spec"]["template"]["spec"]
    (ref,) = [e["configMapRef"]["name"] for e in _container(pod, "server")["envFrom"]]
    return statefulset, service, of_kind(objects, "ConfigMap")[ref]["data"]


def _field_ref(env: dict[str, Manifest], name: str) -> str | None:
    return env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")


def media_problems(statefulset: Manifest, service: Manifest, config: dict[str, str]) -> list[str]:
    """Everything wrong with the rendered StatefulSet, its Service and configuration; empty when right."""
    problems = []
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    if (
        statefulset["metadata"]["name"] != MEDIA
        or statefulset["metadata"].get("labels", {}).get("app") != MEDIA
    ):
        problems.append("StatefulSet name or `app` label is not media-gateway")
    if spec["selector"].get("matchLabels") != {"app": MEDIA}:
        problems.append("selector is not {app: media-gateway}")
    if spec["template"]["metadata"].get("labels", {}).get("app") != MEDIA:
        problems.append("pod `app` label is not media-gateway")
    try:
        server = _container(pod, "server")
    except KeyError:
        return [*problems, "no container named server"]
    if _image_name(server.get("image", "")) != MEDIA:
        problems.append(f"image {server.get('image')} is not named media-gateway")
    if server.get("command") != ["python", "-m", MEDIA_MODULE]:
        problems.append(f"command is not python -m {MEDIA_MODULE}")
    if pod.get("serviceAccountName") != MEDIA:
        problems.append("serviceAccountName is not media-gateway's own")
    problems += pod_security_problems(pod, server)

    # SIP and RTP on the node's address, one replica per node.
    if pod.get("hostNetwork") is not True:
        problems.append("hostNetwork is not true (RTP takes a port range of the node)")
    if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
        problems.append("dnsPolicy is not ClusterFirstWithHostNet (Kafka and guidance-tts are Services)")
    terms = (
        pod.get("affinity", {})
        .get("podAntiAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    if not any(
        t.get("topologyKey") == "kubernetes.io/hostname"
        and t.get("labelSelector", {}).get("matchLabels") == {"app": MEDIA}
        for t in terms
    ):
        problems.append("no required pod anti-affinity per node (two replicas would share a SIP port)")
    env = {e["name"]: e for e in server.get("env", [])}
    if _field_ref(env, "HIBIKI_MEDIA_INSTANCE_NAME") != "metadata.name":
        problems.append("HIBIKI_MEDIA_INSTANCE_NAME is not the pod name (each replica's consumer group)")
    if _field_ref(env, "HIBIKI_SIP_PUBLIC_ADDRESS") not in ("status.podIP", "status.hostIP"):
        problems.append("HIBIKI_SIP_PUBLIC_ADDRESS is not the pod's (node's) address")
    if _field_ref(env, "HIBIKI_SIP_HOST") not in ("status.podIP", "status.hostIP") and config.get(
        "HIBIKI_SIP_HOST"
    ) not in ("0.0.0.0", "::"):
        problems.append("HIBIKI_SIP_HOST is neither the pod's address nor every address")
    if "secretKeyRef" not in env.get("HIBIKI_DATABASE_URL", {}).get("valueFrom", {}):
        problems.append("HIBIKI_DATABASE_URL does not come from a Secret")
    tenants = config.get("HIBIKI_MEDIA_TENANTS_FILE", "")
    if "HIBIKI_MEDIA_TENANTS" in config or not tenants:
        problems.append("tenants (their guidance tokens are secrets) are not read from a file")
    else:
        secret, key = secret_file_source(pod, server, tenants) or ("", "")
        # A generated Secret (dev) carries a content hash after its name.
        if not re.fullmatch(r"media-gateway-tenants(-[a-z0-9]{10})?", secret) or key != "tenants.json":
            problems.append(f"{tenants} is not key tenants.json of Secret media-gateway-tenants, read-only")

    # Ports: the node's SIP port (UDP and TCP), health and metrics; the same in the configuration.
    ports = {
        (p.get("name"), p.get("protocol", "TCP")): p.get("containerPort") for p in server.get("ports", [])
    }
    sip_port = int(config.get("HIBIKI_SIP_PORT", "5060"))
    wanted = {
        ("grpc", "TCP"): GRPC_PORT,
        ("metrics", "TCP"): HTTP_PORT,
        ("sip", "UDP"): sip_port,
        ("sip-tcp", "TCP"): sip_port,
    }
    for (name, protocol), number in wanted.items():
        if ports.get((name, protocol)) != number:
            problems.append(f"no container port {name} = {number}/{protocol}")
    if config.get("HIBIKI_GRPC_PORT") != str(GRPC_PORT) or config.get("HIBIKI_HTTP_PORT") != str(HTTP_PORT):
        problems.append("HIBIKI_GRPC_PORT / HIBIKI_HTTP_PORT differ from the container ports")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        problems += probe_problems(probe, server.get(probe, {}), False, GRPC_PORT, HTTP_PORT)

    # Shutdown: the drain, then the rest of a graceful stop.
    drain = float(config.get("HIBIKI_MEDIA_DRAIN_SECONDS", "20"))
    if pod.get("terminationGracePeriodSeconds", 30) < drain + SHUTDOWN_AFTER_DRAIN_SECONDS:
        problems.append(
            f"terminationGracePeriodSeconds < drain ({drain:.0f} s) + {SHUTDOWN_AFTER_DRAIN_SECONDS} s"
        )
    if spec.get("podManagementPolicy") != "Parallel":
        problems.append("replicas start one after the other (podManagementPolicy is not Parallel)")

    # The audio cache on its own emptyDir, large enough for the cache and the files it deletes later.
    mounts = {m["mountPath"]: m["name"] for m in server.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    cache = volumes.get(mounts.get(config.get("HIBIKI_DATA_DIR", ""), ""), {}).get("emptyDir")
    if cache is None:
        problems.append("HIBIKI_DATA_DIR (the audio cache) is not an emptyDir")
    else:
        limit = cache.get("sizeLimit", "")
        cache_mb = int(config.get("HIBIKI_MEDIA_AUDIO_CACHE_MB", "256"))
        if not limit.endswith("Mi") or int(limit[:-2]) < 2 * cache_mb:
            problems.append(f"audio cache emptyDir sizeLimit {limit!r} < twice HIBIKI_MEDIA_AUDIO_CACHE_MB")

    # The governing Service: headless, a name per replica, the same named ports.
    if service["spec"].get("clusterIP") != "None":
        problems.append("the governing Service is not headless (calls are never load-balanced by Kubernetes)")
    if service["spec"].get("selector") != {"app": MEDIA}:
        problems.append("Service selector is not {app: media-gateway}")
    service_ports = {
        (p.get("name"), p.get("protocol", "TCP")): p.get("port") for p in service["spec"].get("ports", [])
    }
    if service_ports != wanted:
        problems.append(f"Service ports {service_ports} are not {wanted}")
    return problems


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_statefulset_keeps_node_network_security_probes_and_ports(rendered: Render, target: str) -> None:
    objects = rendered(target)
    statefulset, service, config = media_objects(objects)
    assert media_problems(statefulset, service, config) == []
    account = of_kind(objects, "ServiceAccount")[MEDIA]
    assert account.get("automountServiceAccountToken") is False
    for obj in (statefulset, service, account):
        assert obj["metadata"]["namespace"] == MEDIA_NAMESPACE


REMOVALS = [
    ("spec", "template", "spec", "hostNetwork"),
    ("spec", "template", "spec", "dnsPolicy"),
    ("spec", "template", "spec", "affinity"),
    ("spec", "template", "spec", "terminationGracePeriodSeconds"),
    ("spec", "template", "spec", "securityContext", "runAsNonRoot"),
    ("spec", "template", "spec", "volumes"),
    ("spec", "podManagementPolicy"),
    ("server", "env"),
    ("server", "ports"),
    ("server", "readinessProbe"),
    ("server", "resources", "limits"),
    ("server", "securityContext", "capabilities"),
    ("service", "spec", "clusterIP"),
    ("config", "HIBIKI_MEDIA_TENANTS_FILE"),
    ("config", "HIBIKI_DATA_DIR"),
]


@pytest.mark.parametrize("path", REMOVALS, ids=lambda p: ".".join(p))
def test_removing_a_required_setting_is_caught(rendered: Render, path: tuple[str, ...]) -> None:
    statefulset, service, config = copy.deepcopy(media_objects(rendered("overlays/prod")))
    target: Any = {
        "server": _container(statefulset["spec"]["template"]["spec"], "server"),
        "service": service,
        "config": config,
    }.get(path[0], statefulset)
    keys = path[1:] if path[0] in ("server", "service", "config") else path
    for key in keys[:-1]:
        target = target[key]
    assert keys[-1] in target, f"{'.'.join(path)} is not set in the rendered manifest"
    del target[keys[-1]]
    assert media_problems(statefulset, service, config) != []


def test_inline_tenants_are_caught(rendered: Render) -> None:
    statefulset, service, config = copy.deepcopy(media_objects(rendered("overlays/prod")))
    config["HIBIKI_MEDIA_TENANTS"] = '{"t": {"numbers": [], "guidance_token": "in a ConfigMap"}}'
    assert any("tenants" in p for p in media_problems(statefulset, service, config))


@pytest.mark.parametrize("target", OVERLAYS)
def test_configuration_reaches_kafka_guidance_tts_and_leaves_topics_and_migrations_alone(
    rendered: Render, target: str
) -> None:
    objects = rendered(target)
    _, _, config = media_objects(objects)
    assert config["HIBIKI_SERVICE_NAME"] == MEDIA
    assert config["HIBIKI_KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert config["HIBIKI_KAFKA_CREATE_TOPICS"] == "false"
    assert config["HIBIKI_RUN_MIGRATIONS"] == "false"
    # Prompt audio from guidance-tts' Service, in the other namespace, on its HTTP port.
    tts = of_kind(objects, "Service")["guidance-tts"]
    http = next(p["port"] for p in tts["spec"]["ports"] if p["name"] == "metrics")
    assert config["HIBIKI_GUIDANCE_URL"] == f"http://guidance-tts.{tts['metadata']['namespace']}.svc:{http}"
    assert tts["metadata"]["namespace"] == NAMESPACE
    # Two RTP ports per call must fit in the range.
    assert int(config["HIBIKI_RTP_PORT_RANGE"]) >= 2 * int(config["HIBIKI_MEDIA_MAX_CALLS"])


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_hibiki_variable_is_a_setting_of_media_gateway(rendered: Render, target: str) -> None:
    objects = rendered(target)
    statefulset, _, _ = media_objects(objects)
    server = _container(statefulset["spec"]["template"]["spec"], "server")
    env = environment(server, of_kind(objects, "ConfigMap"))
    fields = settings_class(MEDIA_MODULE).model_fields
    assert [
        n for n in env if n.startswith("HIBIKI_") and n.removeprefix("HIBIKI_").lower() not in fields
    ] == []
    # gRPC serves health only: no JWT or TLS settings (components/jwt-auth and grpc-tls patch Deployments).
    assert [n for n in env if n.startswith(("HIBIKI_AUTH_", "HIBIKI_GRPC_TLS_"))] == []


@pytest.mark.parametrize(("target", "floor"), [("overlays/dev", 1), ("overlays/prod", 2)])
def test_replicas_are_fixed_by_the_overlay_and_drained_one_at_a_time(
    rendered: Render, target: str, floor: int
) -> None:
    objects = rendered(target)
    statefulset, _, _ = media_objects(objects)
    # A fixed count: calls live in the replica that answered, the SIP proxy lists the replicas.
    assert statefulset["spec"]["replicas"] >= floor
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        assert all(o["spec"]["scaleTargetRef"]["name"] != MEDIA for o in of_kind(objects, kind).values())
    budget = of_kind(objects, "PodDisruptionBudget")[MEDIA]
    assert budget["metadata"]["namespace"] == MEDIA_NAMESPACE
    assert budget["spec"]["selector"]["matchLabels"] == {"app": MEDIA}
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_one_migration_job_in_the_media_namespace(rendered: Render, target: str) -> None:
    objects = rendered(target)
    job = of_kind(objects, "Job")[f"{MEDIA}-migrate"]
    statefulset, _, _ = media_objects(objects)
    assert job["metadata"]["namespace"] == MEDIA_NAMESPACE
    assert job["spec"].get("parallelism", 1) == 1 and job["spec"]["podReplacementPolicy"] == "Failed"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "hibiki_runtime.migrate", MEDIA_MODULE]
    assert container["image"] == _container(statefulset["spec"]["template"]["spec"], "server")["image"]
    assert pod_security_problems(pod, container) == []
    assert not pod.get("hostNetwork")  # only the server needs the node's network
    assert job["spec"]["template"]["metadata"]["labels"]["app"] != MEDIA


@pytest.mark.parametrize("target", OVERLAYS)
def test_media_namespace_admits_host_network_and_holds_only_media_gateway(
    rendered: Render, target: str
) -> None:
    objects = rendered(target)
    namespace = of_kind(objects, "Namespace")[MEDIA_NAMESPACE]
    # hostNetwork is refused by `baseline` and `restricted`; the containers meet `restricted` otherwise.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    inside = {o["metadata"]["name"] for o in objects if o["metadata"].get("namespace") == MEDIA_NAMESPACE}
    assert inside and all(name.startswith(MEDIA) for name in inside), inside


def test_dev_generates_media_secrets_in_the_pods_namespace(rendered: Render) -> None:
    objects = rendered("overlays/dev")
    secrets = {
        (s["metadata"]["namespace"], s["metadata"]["name"]) for s in of_kind(objects, "Secret").values()
    }
    statefulset, _, _ = media_objects(objects)
    pod = statefulset["spec"]["template"]["spec"]
    names = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in _container(pod, "server")["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    } | {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert names and {(MEDIA_NAMESPACE, name) for name in names} <= secrets


def test_prod_runs_on_media_nodes_and_lets_them_fetch_audio(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    statefulset, _, _ = media_objects(objects)
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"hibiki.io/media": "true"}
    assert {"key": "hibiki.io/media", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    for target in OVERLAYS:
        policy = of_kind(rendered(target), "NetworkPolicy")["guidance-tts-allow-media-gateway"]
        assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "guidance-tts"}}
        (rule,) = policy["spec"]["ingress"]
        assert [p["port"] for p in rule["ports"]] == ["metrics"]
        blocks = [peer["ipBlock"]["cidr"] for peer in rule["from"] if "ipBlock" in peer]
        # The component's placeholder matches nothing: every overlay sets its nodes' network.
        assert blocks and "192.0.2.0/24" not in blocks, target


def test_dockerfile_exposes_the_configured_ports(rendered: Render) -> None:
    _, _, config = media_objects(rendered("base"))
    text = (REPO / "services" / MEDIA / "Dockerfile").read_text(encoding="utf-8")
    (exposed,) = re.findall(r"^EXPOSE\s+(.+)$", text, re.MULTILINE)
    first_rtp = int(config["HIBIKI_RTP_PORT"])
    last_rtp = first_rtp + int(config["HIBIKI_RTP_PORT_RANGE"]) - 1
    sip = config["HIBIKI_SIP_PORT"]
    assert exposed.split() == [
        config["HIBIKI_GRPC_PORT"],
        config["HIBIKI_HTTP_PORT"],
        f"{sip}/udp",
        f"{sip}/tcp",
        f"{first_rtp}-{last_rtp}/udp",
    ]
    assert "--package hibiki-media-gateway" in text
    assert re.search(r'^CMD \["python", "-m", "hibiki_media_gateway"\]$', text, re.MULTILINE)


def test_readme_names_the_media_secrets_in_their_namespace() -> None:
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    for secret in ("media-gateway-database", "media-gateway-tenants"):
        assert re.search(rf"kubectl -n {MEDIA_NAMESPACE} create secret generic {secret} ", readme), secret
    assert Path(K8S / "overlays" / "dev" / "dev-media-tenants.json").is_file()
