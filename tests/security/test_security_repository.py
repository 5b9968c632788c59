"""Supply chain and secrets: what the repository itself must (not) contain."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = re.compile(
    r"-----BEGIN (?:RSA |EC |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[0-9A-Za-z]{36}"  # GitHub tokens
    r"|xox[abpr]-[0-9A-Za-z-]{10,}"  # Slack tokens
    r"|eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{20,}"  # a signed JWT
)


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_credentials_are_committed() -> None:
    found = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (audio, images)
        found += [f"{path.relative_to(ROOT)}: {m.group(0)[:24]}…" for m in CREDENTIALS.finditer(text)]
    assert found == []


def test_committed_bearer_tokens_are_dev_only_and_say_so() -> None:
    token_files = [p for p in tracked_files() if "token" in p.name and p.suffix == ".json"]
    assert token_files, "expected the dev overlay's token file"
    for path in token_files:
        assert "overlays/dev" in path.as_posix(), f"{path} outside the dev overlay"
        for token in json.loads(path.read_text(encoding="utf-8")):
            assert "not-secret" in token, f"{path}: dev token {token!r} does not say it is public"


def test_every_locked_package_has_hashes() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    unhashed = [
        package["name"]
        for package in lock["package"]
        if "source" in package
        and ("registry" in package["source"] or "url" in package["source"])
        and not all(
            "hash" in artifact for artifact in [*package.get("wheels", []), package.get("sdist", {"hash": 1})]
        )
    ]
    assert unhashed == []


def test_service_images_run_as_a_non_root_user() -> None:
    for dockerfile in sorted(ROOT.glob("services/*/Dockerfile")):
        users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("root", "0"), dockerfile
