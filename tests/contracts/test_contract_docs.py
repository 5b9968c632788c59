"""The contracts document themselves: every proto element has a comment (buf lint's COMMENTS rules), and the
generated API reference and AsyncAPI document (docs/api/, written by `make proto`) are current and valid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hibiki_runtime import contract_docs, events

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
DOCS = ROOT / "docs" / "api"
ASYNCAPI_SCHEMA = ROOT / ".tools/asyncapi-schema/node_modules/@asyncapi/specs/schemas/3.0.0.json"
COMMENT_RULES = {
    "COMMENT_ENUM",
    "COMMENT_ENUM_VALUE",
    "COMMENT_FIELD",
    "COMMENT_MESSAGE",
    "COMMENT_ONEOF",
    "COMMENT_RPC",
    "COMMENT_SERVICE",
}


def _buf() -> str:
    found = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert found, "buf is missing: run `make install` (buf-bin is a dev dependency)"
    return found


def _comment_violations(proto_dir: Path) -> list[str]:
    """What `buf lint` (with the module's buf.yaml) reports under the COMMENTS rules."""
    result = subprocess.run(
        [_buf(), "lint", str(proto_dir), "--error-format=json"], capture_output=True, text=True, check=False
    )
    found = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0 or found, f"buf lint failed: {result.stderr}"
    comments = [v for v in found if v["type"] in COMMENT_RULES]
    return [f"{v['path']}:{v['start_line']}: {v['message']} ({v['type']})" for v in comments]


def test_buf_lint_enables_the_comments_rules() -> None:
    config = yaml.safe_load((PROTO / "buf.yaml").read_text())
    assert "COMMENTS" in config["lint"]["use"], "proto/buf.yaml must lint with the COMMENTS category"


def test_every_rpc_message_field_and_enum_value_has_a_comment() -> None:
    violations = _comment_violations(PROTO)
    assert not violations, "add a comment to:\n" + "\n".join(violations)


def test_an_element_without_a_comment_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy)
    envelope = copy / "hibiki/common/v1/envelope.proto"
    text = envelope.read_text()
    documented = "  // Tenant that owns the event;"
    assert documented in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(documented))
    end = start
    while lines[end + 1].lstrip().startswith("//"):
        end += 1
    envelope.write_text("\n".join(lines[:start] + lines[end + 1 :]) + "\n")
    violations = _comment_violations(copy)
    assert any("tenant_id" in v and "COMMENT_FIELD" in v for v in violations), violations


def test_generated_docs_match_proto_and_the_runtime() -> None:
    problems = contract_docs.stale_docs(PROTO, DOCS)
    assert not problems, "docs/api is stale; run `make proto` and commit:\n" + "\n".join(problems)


def test_a_changed_comment_makes_the_docs_stale(tmp_path: Path) -> None:
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy)
    envelope = copy / "hibiki/common/v1/envelope.proto"
    envelope.write_text(envelope.read_text().replace("// Tenant that owns the event;", "// Owner;", 1))
    docs = tmp_path / "docs" / "api"
    docs.mkdir(parents=True)
    for name, text in contract_docs.render(PROTO, DOCS).items():
        (docs / name).write_text(text, encoding="utf-8")
    assert contract_docs.stale_docs(copy, docs) == [f"differs: {docs / 'hibiki.common.v1.md'}"]


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / contract_docs.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    return document


def test_asyncapi_document_describes_every_topic_and_its_dlq_twin() -> None:
    document = _asyncapi()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(events.ALL_TOPICS)
    messages = document["components"]["messages"]
    for topic, message_type in events.TOPIC_MESSAGES.items():
        message = messages[message_type.DESCRIPTOR.name]
        assert message["x-protobuf-message"] == message_type.DESCRIPTOR.full_name
        proto_file = (DOCS / message["payload"]["schema"]["$ref"]).resolve()
        assert proto_file.is_file() and proto_file.is_relative_to(PROTO)
        key_field = events.TOPIC_KEYS[topic]
        assert key_field in message_type.DESCRIPTOR.fields_by_name
        assert f"`{key_field}`" in message["bindings"]["kafka"]["key"]["description"]
        headers = document["components"]["schemas"][message["headers"]["$ref"].rsplit("/", 1)[-1]]
        assert headers["properties"]["schema"]["enum"], topic
        assert f"{message_type.DESCRIPTOR.name}DeadLetter" in messages


def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    if not ASYNCAPI_SCHEMA.is_file():
        pytest.fail("the AsyncAPI JSON Schema is not installed: run scripts/install-asyncapi-schema.sh")
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resources(
        (uri, Resource.from_contents(part, default_specification=DRAFT7))
        for uri, part in schema["definitions"].items()
    )
    validator = Draft7Validator(schema, registry=registry)
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, "\n".join(errors)
    broken = json.loads(json.dumps(document))
    broken["channels"]["callEvents"]["address"] = 5
    assert list(validator.iter_errors(broken)), "the validator must catch an invalid document"
