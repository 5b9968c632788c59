"""Renders the kustomizations under deploy/k8s once per session with `kubectl kustomize`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"

# service folder → (python module, gRPC port, HTTP port, consumed topics); the folder, image, Deployment name
# and `app` label are this same string.
SERVICES: dict[str, tuple[str, int, int, tuple[str, ...]]] = {
    "guidance-tts": ("hibiki_guidance_tts", 50051, 9101, ()),
    "routing": ("hibiki_routing", 50052, 9102, ("call.events",)),
    "sms-gateway": ("hibiki_sms_gateway", 50053, 9103, ("sms.requests",)),
    "reporting": (
        "hibiki_reporting",
        50054,
        9104,
        ("call.events", "call.actions", "sms.requests", "sms.results"),
    ),
}
# media-gateway: a StatefulSet on the nodes' network, in a namespace of its own (deploy/k8s/README.md,
# "media-gateway"); the folder, image, StatefulSet name and `app` label are this string.
MEDIA = "media-gateway"
MEDIA_MODULE = "hibiki_media_gateway"
NAMESPACE = "hibiki"
MEDIA_NAMESPACE = "hibiki-media"
OVERLAYS = ("overlays/dev", "overlays/prod")
KAFKA = ("kafka/dev", "kafka/topics")
# Everything a user applies, plus the base on its own.
TARGETS = ("base", *OVERLAYS, *KAFKA)

Manifest = dict[str, Any]


def render(target: str) -> list[Manifest]:
    """The objects `kubectl kustomize deploy/k8s/<target>` prints."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/k8s (Debian package `kubectl`, kustomize built in)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {target} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[Manifest]]:
    """render(), cached per target for the session."""
    cache: dict[str, list[Manifest]] = {}

    def get(target: str) -> list[Manifest]:
        if target not in cache:
            cache[target] = render(target)
        return cache[target]

    return get


def of_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
