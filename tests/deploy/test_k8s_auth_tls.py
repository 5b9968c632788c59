"""Production verifies signed JWTs and serves mutual TLS on gRPC with files from mounted Secrets."""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import PurePosixPath

import pytest
from hibiki_runtime.settings import ServiceSettings

from tests.deploy.conftest import K8S, OVERLAYS, SERVICES, Manifest, of_kind

Render = Callable[[str], list[Manifest]]

# Without both, JWT authentication refuses to start (hibiki_runtime.auth.JwtAuthenticator).
JWT_CLAIMS = ("HIBIKI_AUTH_JWT_ISSUER", "HIBIKI_AUTH_JWT_AUDIENCE")
SECURITY_PREFIXES = ("HIBIKI_AUTH_JWT_", "HIBIKI_GRPC_TLS_")


def secret_files(folder: str) -> dict[str, tuple[str, str]]:
    """Each file setting of a production server → the (Secret, key) the file must come from."""
    return {
        "HIBIKI_AUTH_JWT_JWKS_FILE": ("hibiki-jwt", "jwks.json"),
        # Certificate and key from the same kubernetes.io/tls Secret, the service's own.
        "HIBIKI_GRPC_TLS_CERT_FILE": (f"{folder}-grpc-tls", "tls.crt"),
        "HIBIKI_GRPC_TLS_KEY_FILE": (f"{folder}-grpc-tls", "tls.key"),
        "HIBIKI_GRPC_TLS_CLIENT_CA_FILE": ("hibiki-grpc-client-ca", "ca.crt"),
    }


def server(deployment: Manifest) -> Manifest:
    container: Manifest
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    return container


def environment(container: Manifest, config_maps: dict[str, Manifest]) -> dict[str, str | None]:
    """The variables the container gets; None for values from Secrets or from a missing ConfigMap key."""
    values: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values |= config_maps.get(source["configMapRef"]["name"], {}).get("data", {})
    for variable in container.get("env", []):
        ref = variable.get("valueFrom", {}).get("configMapKeyRef")
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        elif ref is not None:
            values[variable["name"]] = config_maps.get(ref["name"], {}).get("data", {}).get(ref["key"])
        else:
            values[variable["name"]] = None
    return values


def secret_file_source(pod: Manifest, container: Manifest, path: str) -> tuple[str, str] | None:
    """The (Secret, key) that file `path` is, through a read-only Secret volume mount; else None."""
    file = PurePosixPath(path)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if (
            PurePosixPath(mount["mountPath"]) != file.parent
            or not mount.get("readOnly")
            or "subPath" in mount
        ):
            continue
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None:
            continue
        items = secret.get("items")
        # Without items every key of the Secret becomes a file of the same name.
        keys = {item["path"]: item["key"] for item in items} if items is not None else {file.name: file.name}
        if file.name in keys:
            return secret["secretName"], keys[file.name]
    return None


def auth_tls_problems(deployment: Manifest, folder: str, config_maps: dict[str, Manifest]) -> list[str]:
    """What keeps a production server from verifying JWTs and serving mutual TLS; empty when nothing does."""
    pod = deployment["spec"]["template"]["spec"]
    container = server(deployment)
    env = environment(container, config_maps)
    problems = [f"{variable} has no value" for variable in JWT_CLAIMS if not env.get(variable)]
    for variable, (secret, key) in secret_files(folder).items():
        path = env.get(variable)
        if not path:
            problems.append(f"{variable} is not set")
        elif (source := secret_file_source(pod, container, path)) != (secret, key):
            problems.append(
                f"{variable}={path} is not key {key} of Secret {secret} mounted read-only (it is {source})"
            )
    return problems


@pytest.mark.parametrize("folder", SERVICES)
def test_prod_servers_verify_jwts_and_serve_mutual_tls_from_mounted_secrets(
    rendered: Render, folder: str
) -> None:
    objects = rendered("overlays/prod")
    deployment = of_kind(objects, "Deployment")[folder]
    assert auth_tls_problems(deployment, folder, of_kind(objects, "ConfigMap")) == []


def _mount(deployment: Manifest, name: str) -> Manifest:
    mount: Manifest
    (mount,) = [m for m in server(deployment)["volumeMounts"] if m["name"] == name]
    return mount


def _volume(deployment: Manifest, name: str) -> Manifest:
    volume: Manifest
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return volume


def _drop(items: list[Manifest], name: str) -> None:
    items[:] = [item for item in items if item["name"] != name]


def _set_env(deployment: Manifest, name: str, value: str) -> None:
    (variable,) = [v for v in server(deployment)["env"] if v["name"] == name]
    variable["value"] = value


def _drop_claims(config_maps: dict[str, Manifest]) -> None:
    for name in [n for n in config_maps if n.startswith("hibiki-jwt-claims")]:
        del config_maps[name]


Mutation = Callable[[Manifest, dict[str, Manifest]], None]
MUTATIONS: dict[str, Mutation] = {
    "jwt mount removed": lambda d, _: _drop(server(d)["volumeMounts"], "jwt-keys"),
    "tls volume removed": lambda d, _: _drop(d["spec"]["template"]["spec"]["volumes"], "grpc-tls"),
    "client CA volume removed": lambda d, _: _drop(
        d["spec"]["template"]["spec"]["volumes"], "grpc-client-ca"
    ),
    "client CA mount writable": lambda d, _: _mount(d, "grpc-client-ca").update(readOnly=False),
    "another service's certificate": lambda d, _: _volume(d, "grpc-tls")["secret"].update(
        secretName="sms-gateway-grpc-tls"
    ),
    "jwks key renamed": lambda d, _: _volume(d, "jwt-keys")["secret"].update(
        items=[{"key": "keys.json", "path": "jwks.json"}]
    ),
    "jwt volume from a ConfigMap": lambda d, _: _volume(d, "jwt-keys").update(
        secret=None, configMap={"name": "hibiki-jwt"}
    ),
    "tls key setting removed": lambda d, _: _drop(server(d)["env"], "HIBIKI_GRPC_TLS_KEY_FILE"),
    "certificate outside the mount": lambda d, _: _set_env(d, "HIBIKI_GRPC_TLS_CERT_FILE", "/etc/tls.crt"),
    "claims ConfigMap missing": lambda _, maps: _drop_claims(maps),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_missing_mount_or_secret_reference_is_caught(rendered: Render, mutation: str) -> None:
    objects = rendered("overlays/prod")
    deployment = copy.deepcopy(of_kind(objects, "Deployment")["routing"])
    config_maps = copy.deepcopy(of_kind(objects, "ConfigMap"))
    MUTATIONS[mutation](deployment, config_maps)
    assert auth_tls_problems(deployment, "routing", config_maps) != []


def test_dev_keeps_static_tokens_and_plaintext_grpc(rendered: Render) -> None:
    objects = rendered("overlays/dev")
    config_maps = of_kind(objects, "ConfigMap")
    for folder in SERVICES:
        env = environment(server(of_kind(objects, "Deployment")[folder]), config_maps)
        assert [name for name in env if name.startswith(SECURITY_PREFIXES)] == [], folder
        assert env["HIBIKI_AUTH_TOKENS_FILE"], folder


# --- every Secret production needs is documented where operators look -----------------------------------


def referenced_secrets(objects: list[Manifest]) -> set[str]:
    """The Secrets the pods read, with `<service>` for names every service has its own of."""
    names: set[str] = set()
    for kind in ("Deployment", "Job", "StatefulSet"):
        for obj in of_kind(objects, kind).values():
            pod = obj["spec"]["template"]["spec"]
            for container in pod["containers"] + pod.get("initContainers", []):
                names |= {
                    e["valueFrom"]["secretKeyRef"]["name"]
                    for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})
                }
                names |= {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
            names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if v.get("secret")}
    suffixes = {n.removeprefix(f"{f}-") for n in names for f in SERVICES if n.startswith(f"{f}-")}
    per_service = {s for s in suffixes if all(f"{f}-{s}" in names for f in SERVICES)}
    own = {f"{f}-{s}" for f in SERVICES for s in per_service}
    return (names - own) | {f"<service>-{s}" for s in per_service}


def test_prod_documents_every_secret_its_pods_read(rendered: Render) -> None:
    needed = referenced_secrets(rendered("overlays/prod"))
    assert {"hibiki-jwt", "<service>-grpc-tls", "hibiki-grpc-client-ca"} <= needed
    overlay = (K8S / "overlays" / "prod" / "kustomization.yaml").read_text()
    header = overlay[: overlay.index("apiVersion:")]
    assert needed <= set(re.findall(r"^#   (\S+) ", header, re.MULTILINE))
    # README commands: `kubectl -n hibiki create secret <type> <name>`, `$s` in the loop over the services.
    readme = (K8S / "README.md").read_text()
    created = {
        name.replace("$s", "<service>"): kind
        for kind, name in re.findall(r"create secret (\S+) (\S+)", readme)
    }
    assert needed <= set(created)
    assert created["<service>-grpc-tls"] == "tls"


# --- the variables are settings the services really read ------------------------------------------------


def settings_class(module: str) -> type[ServiceSettings]:
    settings = importlib.import_module(f"{module}.settings")
    (found,) = [
        cls
        for _, cls in inspect.getmembers(settings, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls.__module__ == settings.__name__
    ]
    return found


@pytest.mark.parametrize("target", OVERLAYS)
@pytest.mark.parametrize("folder", SERVICES)
def test_every_hibiki_variable_is_a_setting_of_the_service(
    rendered: Render, target: str, folder: str
) -> None:
    # The settings ignore unknown variables, so a misspelt one would silently leave a feature off.
    objects = rendered(target)
    env = environment(server(of_kind(objects, "Deployment")[folder]), of_kind(objects, "ConfigMap"))
    fields = settings_class(SERVICES[folder][0]).model_fields
    assert [
        n for n in env if n.startswith("HIBIKI_") and n.removeprefix("HIBIKI_").lower() not in fields
    ] == []
