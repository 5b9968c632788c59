"""Every kustomization under deploy/k8s renders, validates offline and keeps what operators rely on."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.conftest import (
    K8S,
    MEDIA,
    MEDIA_NAMESPACE,
    NAMESPACE,
    OVERLAYS,
    SERVICES,
    TARGETS,
    Manifest,
    of_kind,
)

# The oldest Kubernetes the manifests target (preStop `sleep`, podReplacementPolicy, matchLabelKeys) and the
# newest schema set kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
CRD_SCHEMAS = K8S / "schemas"

Render = Callable[[str], list[Manifest]]


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """Our schema of a custom resource (deploy/k8s/schemas), None for kinds kubernetes-validate knows."""
    group, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / f"{group}-{version}-{kind.lower()}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_kubernetes_or_crd_schemas(rendered: Render, target: str) -> None:
    errors = []
    for obj in rendered(target):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        schema = crd_schema(obj["apiVersion"], obj["kind"])
        try:
            if schema is not None:
                jsonschema.Draft202012Validator(schema).validate(obj)
            else:
                for version in KUBERNETES_VERSIONS:
                    kubernetes_validate.validate(obj, version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            errors.append(f"{name}: {getattr(error, 'message', error)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{name}: no schema for {obj['apiVersion']}; add one to {CRD_SCHEMAS.relative_to(K8S)}/"
            )
    assert not errors, "\n".join(errors)


def test_every_service_folder_is_in_the_base() -> None:
    folders = {p.name for p in (K8S / "base").iterdir() if p.is_dir()}
    assert folders == {*SERVICES, MEDIA}


# --- the settings every Deployment must keep -------------------------------------------------------------


def hibiki_deployments(objects: list[Manifest]) -> dict[str, Manifest]:
    """The services' Deployments (dev helpers such as the SMSC simulator are not part of Hibiki)."""
    return {
        name: d
        for name, d in of_kind(objects, "Deployment").items()
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "hibiki"
    }


def _container(pod: Manifest, name: str) -> Manifest:
    containers = {c["name"]: c for c in pod["containers"]}
    return containers[name]


def _image_name(image: str) -> str:
    """registry.example.com/hibiki/routing:0.1.0 → routing."""
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def pod_security_problems(pod: Manifest, container: Manifest) -> list[str]:
    """What the restricted Pod Security Standard (plus a read-only root filesystem) needs and is missing."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    sc = container.get("securityContext", {})
    # Set on the pod and on the container: each level guards the other against a later edit.
    if sc.get("runAsNonRoot") is not True or pod_sc.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true on the pod and the container")
    if pod_sc.get("runAsUser", sc.get("runAsUser")) in (None, 0):
        problems.append("no non-zero runAsUser (the image's USER is not checked by Kubernetes)")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append("capabilities.drop is not [ALL]")
    if sc.get("capabilities", {}).get("add"):
        problems.append("capabilities are added")
    if sc.get("privileged"):
        problems.append("privileged")
    for level, context in (("pod", pod_sc), ("container", sc)):
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{level} seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        problems.append("/tmp is not a writable emptyDir")
    if {"name": "HOME", "value": "/tmp"} not in container.get("env", []):
        problems.append("HOME is not /tmp (caches under $HOME need a writable directory)")
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not container.get("resources", {}).get(kind, {}).get(resource):
                problems.append(f"no {kind}.{resource}")
    return problems


CLEARTEXT_HTTP2 = "kubernetes.io/h2c"


def probe_problems(
    probe: str, handler: Manifest, grpc_tls: bool, grpc_port: int, http_port: int
) -> list[str]:
    """gRPC health on plaintext gRPC; HTTP /healthz once gRPC speaks TLS (kubelet's gRPC probe can't)."""
    if not grpc_tls:
        if handler.get("grpc", {}).get("port") != grpc_port:
            return [f"{probe} is not a gRPC health probe on {grpc_port}"]
        return []
    http = handler.get("httpGet", {})
    if "grpc" in handler or http.get("path") != "/healthz" or http.get("port") not in ("metrics", http_port):
        return [f"{probe} is not an HTTP /healthz probe on {http_port} (gRPC speaks TLS, kubelet can't)"]
    return []


def deployment_problems(deployment: Manifest, service: Manifest, folder: str) -> list[str]:
    """Everything wrong with one rendered Deployment and its Service; empty when it is as it should be."""
    module, grpc_port, http_port, _ = SERVICES[folder]
    problems = []
    name = deployment["metadata"]["name"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    if name != folder:
        problems.append(f"Deployment name {name} is not the folder name {folder}")
    if deployment["metadata"].get("labels", {}).get("app") != folder:
        problems.append("Deployment `app` label is not the folder name")
    if spec["selector"].get("matchLabels") != {"app": folder}:
        problems.append("selector is not {app: <folder>}")
    if spec["template"]["metadata"].get("labels", {}).get("app") != folder:
        problems.append("pod `app` label is not the folder name")
    try:
        server = _container(pod, "server")
    except KeyError:
        return [*problems, "no container named server"]
    if _image_name(server.get("image", "")) != folder:
        problems.append(f"image {server.get('image')} is not named after the folder")
    if server.get("command") != ["python", "-m", module]:
        problems.append(f"command is not python -m {module}")
    problems += pod_security_problems(pod, server)
    if pod.get("serviceAccountName") != folder:
        problems.append("serviceAccountName is not the service's own")
    ports = {p.get("name"): p.get("containerPort") for p in server.get("ports", [])}
    if ports.get("grpc") != grpc_port:
        problems.append(f"no container port named grpc = {grpc_port}")
    if ports.get("metrics") != http_port:
        problems.append(f"no container port named metrics = {http_port}")
    env = {e["name"]: e for e in server.get("env", [])}
    grpc_tls = "HIBIKI_GRPC_TLS_CERT_FILE" in env
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        problems += probe_problems(probe, server.get(probe, {}), grpc_tls, grpc_port, http_port)
    if pod.get("terminationGracePeriodSeconds", 30) < 45:
        problems.append("terminationGracePeriodSeconds < 45 (gRPC grace + consumer drain + preStop)")
    if "sleep" not in server.get("lifecycle", {}).get("preStop", {}):
        problems.append("no preStop pause before shutdown")
    spread = pod.get("topologySpreadConstraints", [])
    keys = {
        c["topologyKey"] for c in spread if c.get("labelSelector", {}).get("matchLabels") == {"app": folder}
    }
    if keys != {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}:
        problems.append("topologySpreadConstraints do not spread the app over zones and nodes")
    if spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") != 0:
        problems.append("a rolling update may take a ready pod away before its replacement is ready")
    if "secretKeyRef" not in env.get("HIBIKI_DATABASE_URL", {}).get("valueFrom", {}):
        problems.append("HIBIKI_DATABASE_URL does not come from a Secret")
    service_ports = {p.get("name"): p for p in service["spec"].get("ports", [])}
    if service["spec"].get("selector") != {"app": folder}:
        problems.append("Service selector is not {app: <folder>}")
    for port_name, number in (("grpc", grpc_port), ("metrics", http_port)):
        port = service_ports.get(port_name, {})
        if port.get("port") != number or port.get("targetPort") not in (port_name, number):
            problems.append(f"Service has no port named {port_name} = {number}")
    if grpc_tls and service_ports.get("grpc", {}).get("appProtocol") == CLEARTEXT_HTTP2:
        problems.append(f"Service announces the TLS gRPC port as cleartext ({CLEARTEXT_HTTP2})")
    return problems


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
@pytest.mark.parametrize("folder", SERVICES)
def test_deployment_keeps_names_security_probes_resources_and_ports(
    rendered: Render, target: str, folder: str
) -> None:
    objects = rendered(target)
    deployment = of_kind(objects, "Deployment")[folder]
    service = of_kind(objects, "Service")[folder]
    assert deployment_problems(deployment, service, folder) == []
    account = of_kind(objects, "ServiceAccount")[folder]
    assert account.get("automountServiceAccountToken") is False


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_hibiki_deployments_are_exactly_the_four_services(rendered: Render, target: str) -> None:
    assert set(hibiki_deployments(rendered(target))) == set(SERVICES)


@pytest.mark.parametrize("folder", SERVICES)
def test_configuration_leaves_topics_to_strimzi_and_migrations_to_the_job(
    rendered: Render, folder: str
) -> None:
    _, grpc_port, http_port, _ = SERVICES[folder]
    objects = rendered("overlays/prod")
    pod = of_kind(objects, "Deployment")[folder]["spec"]["template"]["spec"]
    (ref,) = [e["configMapRef"]["name"] for e in _container(pod, "server")["envFrom"]]
    data = of_kind(objects, "ConfigMap")[ref]["data"]
    assert data["HIBIKI_SERVICE_NAME"] == folder
    assert data["HIBIKI_GRPC_PORT"] == str(grpc_port)
    assert data["HIBIKI_HTTP_PORT"] == str(http_port)
    assert data["HIBIKI_KAFKA_CREATE_TOPICS"] == "false"
    assert data["HIBIKI_RUN_MIGRATIONS"] == "false"
    mounts = {m["mountPath"] for m in _container(pod, "server")["volumeMounts"]}
    assert str(Path(data["HIBIKI_AUTH_TOKENS_FILE"]).parent) in mounts


# Each of these removals must be reported by deployment_problems: the checks above really guard the settings.
REMOVALS = [
    ("spec", "template", "spec", "securityContext", "runAsNonRoot"),
    ("spec", "template", "spec", "securityContext", "runAsUser"),
    ("spec", "template", "spec", "securityContext", "seccompProfile"),
    ("spec", "template", "spec", "automountServiceAccountToken"),
    ("spec", "template", "spec", "terminationGracePeriodSeconds"),
    ("spec", "template", "spec", "topologySpreadConstraints"),
    ("spec", "template", "spec", "volumes"),
    ("server", "securityContext", "readOnlyRootFilesystem"),
    ("server", "securityContext", "allowPrivilegeEscalation"),
    ("server", "securityContext", "capabilities"),
    ("server", "securityContext", "runAsNonRoot"),
    ("server", "securityContext", "seccompProfile"),
    ("server", "startupProbe"),
    ("server", "readinessProbe"),
    ("server", "livenessProbe"),
    ("server", "resources", "limits"),
    ("server", "resources", "requests"),
    ("server", "ports"),
    ("server", "env"),
    ("server", "lifecycle"),
    ("spec", "strategy"),
    ("metadata", "labels", "app"),
    ("service", "spec", "ports"),
]


@pytest.mark.parametrize("path", REMOVALS, ids=lambda p: ".".join(p))
def test_removing_a_required_setting_is_caught(rendered: Render, path: tuple[str, ...]) -> None:
    objects = rendered("overlays/prod")
    deployment = copy.deepcopy(of_kind(objects, "Deployment")["routing"])
    service = copy.deepcopy(of_kind(objects, "Service")["routing"])
    if path[0] == "server":
        target: Any = _container(deployment["spec"]["template"]["spec"], "server")
    elif path[0] == "service":
        target = service
    else:
        target = deployment
    keys = path[1:] if path[0] in ("server", "service") else path
    for key in keys[:-1]:
        target = target[key]
    assert keys[-1] in target, f"{'.'.join(path)} is not set in the rendered manifest"
    del target[keys[-1]]
    assert deployment_problems(deployment, service, "routing") != []


def test_a_wrong_image_name_is_caught(rendered: Render) -> None:
    deployment = copy.deepcopy(of_kind(rendered("overlays/prod"), "Deployment")["routing"])
    service = of_kind(rendered("overlays/prod"), "Service")["routing"]
    _container(deployment["spec"]["template"]["spec"], "server")["image"] = "registry.example.com/x/router:1"
    assert any("image" in p for p in deployment_problems(deployment, service, "routing"))


def test_a_grpc_probe_on_the_tls_port_is_caught(rendered: Render) -> None:
    deployment = copy.deepcopy(of_kind(rendered("overlays/prod"), "Deployment")["routing"])
    service = of_kind(rendered("overlays/prod"), "Service")["routing"]
    _container(deployment["spec"]["template"]["spec"], "server")["readinessProbe"] = {"grpc": {"port": 50052}}
    assert any("readinessProbe" in p for p in deployment_problems(deployment, service, "routing"))


def test_a_tls_port_announced_as_cleartext_is_caught(rendered: Render) -> None:
    deployment = of_kind(rendered("overlays/prod"), "Deployment")["routing"]
    service = copy.deepcopy(of_kind(rendered("overlays/prod"), "Service")["routing"])
    service["spec"]["ports"][0]["appProtocol"] = CLEARTEXT_HTTP2
    assert any(CLEARTEXT_HTTP2 in p for p in deployment_problems(deployment, service, "routing"))


# --- migrations: one Job per service, never every replica ------------------------------------------------


@pytest.mark.parametrize("target", ["base", *OVERLAYS])
@pytest.mark.parametrize("folder", SERVICES)
def test_one_migration_job_per_service_runs_the_runtime_migrate_command(
    rendered: Render, target: str, folder: str
) -> None:
    module = SERVICES[folder][0]
    objects = rendered(target)
    job = of_kind(objects, "Job")[f"{folder}-migrate"]
    deployment = of_kind(objects, "Deployment")[folder]
    spec = job["spec"]
    assert spec.get("parallelism", 1) == 1 and spec.get("completions", 1) == 1
    assert spec.get("podReplacementPolicy") == "Failed"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "hibiki_runtime.migrate", module]
    assert container["image"] == _container(deployment["spec"]["template"]["spec"], "server")["image"]
    assert pod_security_problems(pod, container) == []
    # The Job's pods must never receive the service's traffic.
    assert spec["template"]["metadata"]["labels"]["app"] != folder
    assert not any(
        c["name"] == "migrate" for c in deployment["spec"]["template"]["spec"].get("initContainers", [])
    )


# --- overlays: scaling, disruption budgets, secrets, images ---------------------------------------------


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_deployment_is_autoscaled_by_exactly_one_owner(rendered: Render, target: str) -> None:
    objects = rendered(target)
    owners: dict[str, list[str]] = {name: [] for name in SERVICES}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler").values():
        owners[hpa["spec"]["scaleTargetRef"]["name"]].append(f"HPA {hpa['metadata']['name']}")
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for scaled in of_kind(objects, "ScaledObject").values():
        owners[scaled["spec"]["scaleTargetRef"]["name"]].append(f"ScaledObject {scaled['metadata']['name']}")
    assert all(len(found) == 1 for found in owners.values()), owners
    # The autoscaler owns the replica count: a Deployment that sets it would be reset by every apply.
    for deployment in hibiki_deployments(objects).values():
        assert "replicas" not in deployment["spec"]


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(rendered: Render, target: str) -> None:
    budgets = of_kind(rendered(target), "PodDisruptionBudget")
    for folder in SERVICES:
        spec = budgets[folder]["spec"]
        assert spec["selector"]["matchLabels"] == {"app": folder}
        assert "maxUnavailable" in spec or "minAvailable" in spec


def test_prod_keeps_at_least_two_replicas_of_every_service(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    floors = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
        for h in of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    floors |= {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"]["minReplicaCount"]
        for s in of_kind(objects, "ScaledObject").values()
    }
    assert all(floors[name] >= 2 for name in SERVICES), floors


@pytest.mark.parametrize("target", OVERLAYS)
def test_images_carry_a_tag(rendered: Render, target: str) -> None:
    for kind in ("Deployment", "StatefulSet", "Job"):
        for obj in of_kind(rendered(target), kind).values():
            for container in obj["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_prod_ships_no_secret_and_reads_the_database_url_from_one(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    assert of_kind(objects, "Secret") == {}
    for folder in SERVICES:
        pod = of_kind(objects, "Deployment")[folder]["spec"]["template"]["spec"]
        env = {e["name"]: e for e in _container(pod, "server")["env"]}
        assert env["HIBIKI_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": f"{folder}-database",
            "key": "url",
        }


def test_dev_generates_the_secrets_its_pods_reference(rendered: Render) -> None:
    objects = rendered("overlays/dev")
    secrets = of_kind(objects, "Secret")
    for kind in ("Deployment", "Job", "StatefulSet"):
        for obj in of_kind(objects, kind).values():
            pod = obj["spec"]["template"]["spec"]
            for container in pod["containers"]:
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] in secrets, ref
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in secrets, volume


@pytest.mark.parametrize("target", OVERLAYS)
def test_namespace_enforces_the_restricted_pod_security_standard(rendered: Render, target: str) -> None:
    namespaces = of_kind(rendered(target), "Namespace")
    assert set(namespaces) == {NAMESPACE, MEDIA_NAMESPACE}
    assert namespaces[NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Only media-gateway's objects (its pods use the node's network) are outside the restricted namespace;
    # test_k8s_media_gateway checks that its containers meet every other rule of `restricted`.
    for obj in rendered(target):
        if obj["kind"] != "Namespace":
            name = obj["metadata"]["name"]
            expected = MEDIA_NAMESPACE if name.startswith(MEDIA) else NAMESPACE
            assert obj["metadata"].get("namespace") == expected, name
