#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""Offline schema check of the Kubernetes manifests, for machines with no cluster.

`kubectl apply --dry-run=client` still needs an API server for its OpenAPI
schema, so this walks every document against the typed models of the
Kubernetes Python client (Debian: python3-kubernetes): each field name must
exist in the model, scalars must have the model's type, and required fields
must be present. It catches misspelt or misplaced fields, which kubectl would
otherwise only report against a live cluster.

Usage: check-manifests.py FILE.yaml...   (or "-" for standard input, e.g.
       kubectl kustomize contrib/kubernetes | check-manifests.py -)
Exit status: 0 clean, 1 problems found, 77 python3-kubernetes not installed.
"""

import re
import sys

import yaml

try:
    import kubernetes.client as k8s
except ImportError:
    print("SKIP: python3-kubernetes is not installed (apt-get install python3-kubernetes)")
    sys.exit(77)

# kind -> model class name, for the API versions these manifests use.
KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
# Fields newer than the client's models; checked as free-form objects.
NEWER_FIELDS = {("V1PodSpec", "hostUsers"), ("V1PodSpec", "resourceClaims")}


def check(value, typ, path, problems):
    """Check value against the client's type string typ ("V1PodSpec", "list[str]", ...)."""
    if value is None:
        return
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            problems.append("%s: expected a list" % path)
            return
        for i, item in enumerate(value):
            check(item, m.group(1), "%s[%d]" % (path, i), problems)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            problems.append("%s: expected a mapping" % path)
            return
        for k, v in value.items():
            check(v, m.group(1), "%s.%s" % (path, k), problems)
        return
    if typ == "str":
        if not isinstance(value, str):
            problems.append("%s: expected a string, got %r" % (path, value))
        return
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append("%s: expected an integer, got %r" % (path, value))
        return
    if typ == "bool":
        if not isinstance(value, bool):
            problems.append("%s: expected true/false, got %r" % (path, value))
        return
    if typ in ("object", "datetime", "date", "float"):
        return
    cls = getattr(k8s, typ, None)
    if cls is None:
        problems.append("%s: unknown model %s" % (path, typ))
        return
    if not isinstance(value, dict):
        problems.append("%s: expected a mapping (%s)" % (path, typ))
        return
    json_to_attr = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        if (typ, key) in NEWER_FIELDS:
            continue
        attr = json_to_attr.get(key)
        if attr is None:
            problems.append("%s: unknown field %r in %s" % (path, key, typ))
            continue
        check(v, cls.openapi_types[attr], "%s.%s" % (path, key), problems)
    # Required fields: the model's constructor refuses None for them.
    try:
        kwargs = {json_to_attr[k]: v for k, v in value.items() if k in json_to_attr}
        cls(**{a: (v if v is not None else None) for a, v in kwargs.items()})
    except ValueError as e:
        problems.append("%s: %s" % (path, e))
    except TypeError:
        pass


def main(argv):
    docs = []
    for name in argv or ["-"]:
        text = sys.stdin.read() if name == "-" else open(name).read()
        for d in yaml.safe_load_all(text):
            if d:
                docs.append((name, d))
    problems = []
    seen = []
    for name, d in docs:
        if d.get("kind") == "Kustomization":
            continue
        key = (d.get("apiVersion"), d.get("kind"))
        model = KINDS.get(key)
        where = "%s: %s/%s" % (name, key[1], (d.get("metadata") or {}).get("name"))
        if model is None:
            problems.append("%s: no model for %s %s" % (where, key[0], key[1]))
            continue
        check(d, model, where, problems)
        seen.append(where)
    for p in problems:
        print("problem: " + p)
    print("%d documents checked, %d problems" % (len(seen), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
