"""docs/asyncapi.yaml is valid YAML and documents exactly the event catalogue, each with its JSON Schema."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.events import CATALOGUE, SCHEMA_DIR

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_the_asyncapi_document_lists_every_event_with_its_schema() -> None:
    document = yaml.safe_load(DOC.read_text())
    messages = document["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(CATALOGUE)
    for message in messages.values():
        ref = message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
        assert (DOC.parent / ref).resolve() == (SCHEMA_DIR / f"{message['name']}.json").resolve()
    channels = {c["address"] for c in document["channels"].values()}
    assert channels == set(CATALOGUE)
    sent = {op["channel"]["$ref"].rsplit("/", 1)[-1] for op in document["operations"].values()}
    assert sent == set(document["channels"])
