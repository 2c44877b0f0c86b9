#!/usr/bin/env python3
"""Extract the openAPIV3Schema of each version of a CustomResourceDefinition.

    python3 manifests/tests/crd-schemas/convert.py CRD.yaml... --out manifests/tests/crd-schemas

For every CustomResourceDefinition document in the given files and every served
version, writes `<group>_<kind, lowercase>_<version>.json`: the version's
`openAPIV3Schema` exactly as published, minus `description` annotations (they
are most of the bytes and never affect validation). Keys are sorted so a
regenerated file diffs cleanly.

Only `description` keys of schema nodes are removed: a property that happens to
be named `description` (a key under `properties`) is kept. The Kubernetes rules
that a plain JSON Schema validator does not know (unknown fields are errors,
`nullable`, `x-kubernetes-preserve-unknown-fields`) are applied when the tests
load these files (conftest.py), so the files stay a faithful copy of upstream.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
ONE_SCHEMA = ("items", "not", "additionalItems")
SCHEMA_LIST = ("anyOf", "allOf", "oneOf")
SCHEMA_MAP = ("properties", "patternProperties", "definitions", "$defs")


def strip_descriptions(node):
    """A copy of the schema node without `description` annotations."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ONE_SCHEMA:
            out[key] = strip_descriptions(value)
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = strip_descriptions(value)
        elif key in SCHEMA_LIST:
            out[key] = [strip_descriptions(v) for v in value]
        elif key in SCHEMA_MAP:
            out[key] = {name: strip_descriptions(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def schemas_of(crd: dict):
    """(file name, schema) for every served version of one CRD document."""
    spec = crd["spec"]
    group = spec["group"]
    kind = spec["names"]["kind"].lower()
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            raise SystemExit(f"{crd['metadata']['name']} {version['name']}: no openAPIV3Schema")
        yield f"{group}_{kind}_{version['name']}.json", strip_descriptions(schema)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files as published upstream")
    parser.add_argument("--out", type=Path, required=True, help="directory for the JSON files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in args.crds:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas_of(doc):
                target = args.out / name
                target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
                print(f"{path} -> {target}")
                written += 1
    if written == 0:
        print("no CustomResourceDefinition found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
