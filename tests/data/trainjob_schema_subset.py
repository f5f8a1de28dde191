"""Make tests/data/kubeflow-trainer-v2.3.0-trainjob.schema.json: the part of Kubeflow Trainer
v2.3.0's TrainJob CRD (manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml at tag v2.3.0 of
kubeflow/trainer) that cluster/lexalign-trainjob.yaml touches. For every object the manifest
uses it keeps the names and types of all the object's fields (so an unknown field is detected),
the required ones, enums, int-or-string and additionalProperties; deeper levels only where the
manifest goes.

    python3 tests/data/trainjob_schema_subset.py CRD.yaml cluster/lexalign-trainjob.yaml \
        > tests/data/kubeflow-trainer-v2.3.0-trainjob.schema.json
"""

import json
import sys

import yaml

KEEP = ("type", "required", "enum", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def shallow(schema):
    out = {k: schema[k] for k in KEEP if k in schema}
    if "anyOf" in schema and "type" not in out:
        out["x-kubernetes-int-or-string"] = True
    return out


def trim(schema, value):
    out = shallow(schema)
    if isinstance(value, dict) and "properties" in schema:
        out["properties"] = {
            name: (trim(sub, value[name]) if name in value else shallow(sub))
            for name, sub in schema["properties"].items()
        }
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        add = schema["additionalProperties"]
        out["additionalProperties"] = trim(add, next(iter(value.values()), None))
    if isinstance(value, list) and "items" in schema:
        merged = {}
        for item in value:
            if isinstance(item, dict):
                merged.update(item)
        out["items"] = trim(schema["items"], merged if merged else (value[0] if value else None))
    return out


crd = yaml.safe_load(open(sys.argv[1]))
manifest = yaml.safe_load(open(sys.argv[2]))
version = crd["spec"]["versions"][0]
root = version["schema"]["openAPIV3Schema"]
doc = {
    "source": "kubeflow/trainer v2.3.0 manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml",
    "group": crd["spec"]["group"],
    "version": version["name"],
    "kind": crd["spec"]["names"]["kind"],
    "schema": trim(root, manifest),
}
json.dump(doc, sys.stdout, indent=1, sort_keys=True)
print()
