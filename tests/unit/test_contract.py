"""The typed contract (issue 15, item 3): docs/schema/*.json and docs/asyncapi.yaml are
what `riskgate contract --write docs/` generates from the models (a drift fails the
build), and the AsyncAPI document holds together: version 3.0.0, one channel per
stream with the {portfolio} parameter, every reference resolving to a schema file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from consumers.bus import contract
from consumers.bus.keys import Keys
from consumers.cli.main import main
from tests.builders import ROOT

DOCS = ROOT / "docs"


def test_contract_when_regenerated_then_identical_to_the_checked_in_files() -> None:
    """The files in docs/ are exactly what the models generate (else: run
    `riskgate contract --write docs/` and commit the result)."""
    assert contract.drift(DOCS) == []
    assert main(["contract", "--check", str(DOCS)]) == 0


def test_contract_check_when_a_file_drifted_then_exit_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand edit, a missing file or a stray schema is drift: `--check` exits 1 and
    names each; `--write` puts it right."""
    docs = tmp_path / "docs"
    assert main(["contract", "--write", str(docs)]) == 0
    decision = docs / "schema" / "Decision.json"
    decision.write_text(decision.read_text().replace('"approved"', '"accepted"'))
    (docs / "schema" / "Fill.json").unlink()
    (docs / "schema" / "Old.json").write_text("{}")
    capsys.readouterr()
    assert main(["contract", "--check", str(docs)]) == 1
    err = capsys.readouterr().err
    assert "3 files differ" in err
    for name in ("schema/Decision.json", "schema/Fill.json", "schema/Old.json"):
        assert name in err
    (docs / "schema" / "Old.json").unlink()
    assert main(["contract", "--write", str(docs)]) == 0
    assert contract.drift(docs) == []


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_asyncapi_when_read_then_version_3_with_a_channel_per_stream(
    asyncapi: dict[str, Any],
) -> None:
    """asyncapi: 3.0.0; one channel per stream of the protocol, addressed as its key
    with the portfolio's hash tag as the {portfolio} parameter."""
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] and asyncapi["info"]["version"]
    streams = [key.rsplit(":", 1)[1] for key in Keys("x").streams()]
    assert sorted(asyncapi["channels"]) == sorted(streams)
    for name, channel in asyncapi["channels"].items():
        assert channel["address"] == f"riskgate:{{portfolio}}:{name}"
        param = _pointer(asyncapi, channel["parameters"]["portfolio"]["$ref"])
        assert "{main}" in param["description"]


def test_asyncapi_when_references_followed_then_each_reaches_a_schema_file(
    asyncapi: dict[str, Any],
) -> None:
    """Every channel message resolves to a component message whose payload is a schema
    file that exists and is a valid JSON Schema; every operation names its channel and a
    subset of that channel's messages."""
    seen = set()
    for channel in asyncapi["channels"].values():
        for name, ref in channel["messages"].items():
            message = _pointer(asyncapi, ref["$ref"])
            assert message["name"] == name and message["contentType"] == "application/json"
            payload = message["payload"]
            assert payload["schemaFormat"] == contract.SCHEMA_FORMAT
            path = DOCS / payload["schema"]["$ref"]
            schema = json.loads(path.read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["title"] == name
            seen.add(path.name)
    assert seen | {"PortfolioEvent.json"} == {p.name for p in (DOCS / "schema").glob("*.json")}
    for op_id, op in asyncapi["operations"].items():
        assert op["action"] in ("send", "receive"), op_id
        channel = _pointer(asyncapi, op["channel"]["$ref"])
        for ref in op["messages"]:
            assert _pointer(asyncapi, ref["$ref"]) in channel["messages"].values()


def test_asyncapi_when_a_reference_breaks_then_the_check_above_catches_it(
    asyncapi: dict[str, Any], tmp_path: Path
) -> None:
    """The resolution check can fail: a renamed schema file is a dangling reference."""
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    (copy / "schema" / "Decision.json").rename(copy / "schema" / "Verdict.json")
    message = asyncapi["components"]["messages"]["Decision"]
    with pytest.raises(FileNotFoundError):
        (copy / message["payload"]["schema"]["$ref"]).read_text()
    assert "schema/Decision.json" in contract.drift(copy)
