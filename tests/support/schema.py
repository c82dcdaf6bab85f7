"""The shipped aether.v1 JSON Schema, loaded as a package resource (as an
installed package would ship it), and validators for one frame."""

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator


@cache
def v1_schema() -> dict[str, Any]:
    text = resources.files("aether_compat").joinpath("schema/aether.v1.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def validator(definition: str | None = None) -> Draft202012Validator:
    """A validator for every frame, or only for one `$defs` entry
    (`serverFrame`, `clientFrame`, `server.sent`, ...)."""
    schema = v1_schema()
    if definition is not None:
        schema = {**schema, "oneOf": [{"$ref": f"#/$defs/{definition}"}]}
    return Draft202012Validator(schema)


def assert_server_frames(frames: list[str]) -> set[str]:
    """Every frame is a valid server frame; returns the types seen."""
    check = validator("serverFrame")
    for text in frames:
        data = json.loads(text)
        errors = [error.message for error in check.iter_errors(data)]
        assert not errors, (text, errors)
    return {json.loads(text)["type"] for text in frames}
