#!/usr/bin/env python3
"""Checks of the deployment manifests (knative/, keda/), the container image (Dockerfile) and
the operations files (deploy/), run by tests/system/manifests.rs with the test virtualenv.

    check.py schemas        every manifest against the upstream schemas, strictly, with
                            independent validators (see validate_all)
    check.py negative       the validators reject an unknown field, a wrong type, an unknown kind
    check.py agreement      manifests agree with the code and with each other
    check.py image          Dockerfile and .dockerignore agree with the workspace and manifests
    check.py observability  Grafana dashboard and Prometheus rules use metrics that exist
    check.py derive-schemas (re)writes schemas/kubernetes/v1.31.0-derived/ (the kinds the
                            shared schema set lacks, from kubernetes-validate)

    check.py facts          runs the workspace's binaries once and records what they say
                            (beside the file TODO_EVENTS_CODE_FACTS names)

Every check prints what it checked and ends with one line "N passed, M failed"; the exit status
is 1 when anything failed. Facts about the code (variables read, defaults, health paths,
subcommands, flags, topics, groups, metrics, build inputs) are what the code does, never its
source text, and never written here, so the checks follow the code when it changes: the
functions' answers, `/metrics` and library facts that tests/system/manifests.rs writes to the file
TODO_EVENTS_CODE_FACTS names, and what the binaries say (`--help` of every command, the
variables each command looks up under TODO_EVENTS_ENV_TRACE, cargo's dep-info of each binary).
Run them with `cargo test --test system manifests::`, which provides all of that.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SCHEMAS = HERE / "schemas"
CORE_DIR = SCHEMAS / "kubernetes" / "v1.31.0-standalone-strict"
DERIVED_DIR = SCHEMAS / "kubernetes" / "v1.31.0-derived"
CRD_DIR = SCHEMAS / "crds"
K8S_VERSION = "1.31.0"
MANIFEST_DIRS = ("knative", "keda")
# Files that must be byte-identical in knative/ and keda/. secret.template.yaml is not: each
# directory has its own Kafka identities (the Secrets both have must be identical, checked apart).
SHARED_FILES = ("serviceaccount.yaml", "config.yaml", "scheduler-cron.yaml", "migrate.yaml")
NAMESPACED_CORE = {"ConfigMap", "Secret", "ServiceAccount", "Deployment", "Job", "CronJob", "Service",
                   "NetworkPolicy", "PodDisruptionBudget"}
# Kinds without a namespace: kustomize's `namespace` leaves them alone.
CLUSTER_SCOPED = {"Namespace", "ClusterRoleBinding", "ClusterRole"}
# Schemas the shared set lacks, derived from kubernetes-validate (`check.py derive-schemas`).
DERIVED_SCHEMAS = ("namespace-v1.json", "clusterrolebinding-rbac-v1.json")


# ---------------------------------------------------------------- reporting


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.quiet = quiet

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed.append(f"{what}: {detail}" if detail else what)
            if not self.quiet:
                print(f"FAIL {what}" + (f": {detail}" if detail else ""))
        return ok

    def finish(self, title: str) -> int:
        print(f"{title}: {self.passed} passed, {len(self.failed)} failed")
        return 1 if self.failed else 0


# ---------------------------------------------------------------- YAML


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (the API server would keep only one)."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml_docs(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]


def manifest_files(directory: str) -> list[Path]:
    return sorted(p for p in (ROOT / directory).glob("*.yaml") if p.name != "kustomization.yaml")


def all_manifests() -> list[tuple[str, dict]]:
    """(label, document) of every Kubernetes object in knative/ and keda/."""
    out = []
    for d in MANIFEST_DIRS:
        for path in manifest_files(d):
            for i, doc in enumerate(load_yaml_docs(path)):
                out.append((f"{d}/{path.name}#{i} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return out


# ---------------------------------------------------------------- schema store


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


class Schemas:
    """Upstream schemas copied into tests/system/manifests/schemas (see its README.md)."""

    def __init__(self) -> None:
        self.core: dict[tuple[str, str], dict] = {}
        self.crd: dict[tuple[str, str], dict] = {}
        core_files = sorted(CORE_DIR.glob("*.json")) + sorted(DERIVED_DIR.glob("*.json"))
        for path in core_files:
            schema = json.loads(path.read_text())
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                self.core[(api_version(gvk["group"], gvk["version"]), gvk["kind"])] = schema
        self.object_meta = json.loads((CORE_DIR / "configmap-v1.json").read_text())["properties"]["metadata"]
        for path in sorted(CRD_DIR.rglob("*.yaml")):
            for doc in load_yaml_docs(path):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if version.get("served"):
                        key = (api_version(spec["group"], version["name"]), spec["names"]["kind"])
                        self.crd[key] = version["schema"]["openAPIV3Schema"]

    def kind_of(self, doc: dict) -> str | None:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in self.core:
            return "core"
        if key in self.crd:
            return "crd"
        return None


# ------------------------------------------------- validator A: jsonschema on the schema files


def crd_to_json_schema(s: dict) -> dict:
    """A CRD's structural OpenAPI v3 schema as a strict JSON Schema: objects accept only the
    fields they declare (what the API server's strict field validation enforces), except where
    the schema says x-kubernetes-preserve-unknown-fields or declares additionalProperties."""
    out: dict = {}
    t = s.get("type")
    if s.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif t:
        out["type"] = [t, "null"] if s.get("nullable") else t
    for k in ("enum", "required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
              "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties",
              "maxProperties", "format"):
        if k in s:
            out[k] = s[k]
    if t == "array" and "minLength" in s:
        del out["minLength"]  # a no-op upstream (minLength on an array)
    if "properties" in s:
        out["properties"] = {k: crd_to_json_schema(v) for k, v in s["properties"].items()}
    if "items" in s:
        out["items"] = crd_to_json_schema(s["items"])
    for k in ("allOf", "anyOf", "oneOf"):
        if k in s:
            out.setdefault("allOf", []).append({k: [crd_to_json_schema(x) for x in s[k]]})
    if "additionalProperties" in s:
        a = s["additionalProperties"]
        out["additionalProperties"] = a if isinstance(a, bool) else crd_to_json_schema(a)
    elif t == "object" and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if s.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    return out


def crd_root_schema(openapi: dict, api_version_: str, kind: str, object_meta: dict) -> dict:
    root = crd_to_json_schema(openapi)
    props = root.setdefault("properties", {})
    # The API server adds these to every custom resource, with ObjectMeta's own schema.
    props["apiVersion"] = {"type": "string", "enum": [api_version_]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props["metadata"] = object_meta
    root["additionalProperties"] = False
    root["required"] = sorted(set(root.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return root


class ValidatorA:
    name = "A: jsonschema on the upstream schema files"

    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas
        self.cache: dict = {}

    def errors(self, doc: dict) -> list[str]:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in self.cache:
            if key in self.schemas.core:
                schema = self.schemas.core[key]
            elif key in self.schemas.crd:
                schema = crd_root_schema(self.schemas.crd[key], key[0], key[1], self.schemas.object_meta)
            else:
                return [f"unknown kind {key[1]!r} in apiVersion {key[0]!r}: no schema"]
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            cls.check_schema(schema)
            self.cache[key] = cls(schema)
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in self.cache[key].iter_errors(doc)
        ]


# ------------------------------------------ validator B: kubernetes-validate (core kinds)


class ValidatorB:
    name = f"B: kubernetes-validate (PyPI), Kubernetes {K8S_VERSION}, strict"

    def __init__(self) -> None:
        import kubernetes_validate  # noqa: F401  (a missing package fails the test)

        self.kv = kubernetes_validate

    def errors(self, doc: dict) -> list[str]:
        try:
            self.kv.validate(copy.deepcopy(doc), K8S_VERSION, strict=True)
            return []
        except self.kv.utils.ValidationError as e:
            return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
        except self.kv.utils.SchemaNotFoundError as e:
            return [f"unknown kind: {e.message}"]


# ------------------------ validator C: the CRD's structural schema, walked as the API server does


DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                            r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# metav1.ObjectMeta fields (k8s.io/apimachinery/pkg/apis/meta/v1/types.go) a manifest may write.
OBJECT_META_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences"}


class ValidatorC:
    """An independent implementation for custom resources: walks the object along the CRD's
    openAPIV3Schema itself (no JSON Schema library), with the API server's rules: declared
    fields only unless x-kubernetes-preserve-unknown-fields or additionalProperties, the
    OpenAPI types (integer is not boolean, int-or-string), nullable, enum, required, and
    metadata checked like ObjectMeta (names, label keys and values)."""

    name = "C: own structural walk of the CRD schemas"

    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas

    def errors(self, doc: dict) -> list[str]:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in self.schemas.crd:
            return [f"no CustomResourceDefinition serves kind {key[1]!r} in {key[0]!r}"]
        errs: list[str] = []
        self.walk(doc, self.schemas.crd[key], "", errs, root=True)
        return errs

    def meta(self, meta, path: str, errs: list[str]) -> None:
        if not isinstance(meta, dict):
            errs.append(f"{path}: must be an object")
            return
        for k, v in meta.items():
            if k not in OBJECT_META_FIELDS:
                errs.append(f"{path}.{k}: unknown field")
        name = meta.get("name")
        if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            errs.append(f"{path}.name: {name!r} is not a DNS-1123 subdomain")
        if "namespace" in meta and not isinstance(meta["namespace"], str):
            errs.append(f"{path}.namespace: must be a string")
        for field in ("labels", "annotations"):
            m = meta.get(field, {})
            if not isinstance(m, dict):
                errs.append(f"{path}.{field}: must be a map")
                continue
            for k, v in m.items():
                if not isinstance(k, str) or not QUALIFIED_NAME.match(k):
                    errs.append(f"{path}.{field}: key {k!r} is not a qualified name")
                if not isinstance(v, str):
                    errs.append(f"{path}.{field}.{k}: {v!r} must be a string")
                elif field == "labels" and (len(v) > 63 or not LABEL_VALUE.match(v)):
                    errs.append(f"{path}.labels.{k}: {v!r} is not a label value")

    def walk(self, value, s: dict, path: str, errs: list[str], root: bool = False) -> None:
        where = path or "<root>"
        if value is None:
            if not s.get("nullable"):
                errs.append(f"{where}: null is not allowed")
            return
        if s.get("x-kubernetes-int-or-string"):
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                errs.append(f"{where}: {value!r} must be an integer or a string")
                return
        else:
            t = s.get("type")
            ok = {
                None: True,
                "object": isinstance(value, dict),
                "array": isinstance(value, list),
                "string": isinstance(value, str),
                "boolean": isinstance(value, bool),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            }.get(t, False)
            if not ok:
                errs.append(f"{where}: {value!r} is not of type {t}")
                return
        if "enum" in s and value not in s["enum"]:
            errs.append(f"{where}: {value!r} is not one of {s['enum']}")
        if isinstance(value, str):
            if "maxLength" in s and len(value) > s["maxLength"]:
                errs.append(f"{where}: longer than {s['maxLength']}")
            if "minLength" in s and len(value) < s["minLength"]:
                errs.append(f"{where}: shorter than {s['minLength']}")
            if "pattern" in s and not re.search(s["pattern"], value):
                errs.append(f"{where}: does not match {s['pattern']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in s and value < s["minimum"]:
                errs.append(f"{where}: below {s['minimum']}")
            if "maximum" in s and value > s["maximum"]:
                errs.append(f"{where}: above {s['maximum']}")
        if isinstance(value, dict):
            props = dict(s.get("properties", {}))
            if root:
                props["apiVersion"] = {"type": "string"}
                props["kind"] = {"type": "string"}
            for r in s.get("required", []):
                if r not in value:
                    errs.append(f"{where}: missing required field {r!r}")
            extra = s.get("additionalProperties")
            keep_unknown = s.get("x-kubernetes-preserve-unknown-fields") or s.get("x-kubernetes-embedded-resource")
            for k, v in value.items():
                sub = f"{path}.{k}" if path else k
                if root and k == "metadata":
                    self.meta(v, sub, errs)
                elif k in props:
                    self.walk(v, props[k], sub, errs)
                elif isinstance(extra, dict):
                    self.walk(v, extra, sub, errs)
                elif extra is True or keep_unknown:
                    continue
                else:
                    errs.append(f"{sub}: unknown field")
        if isinstance(value, list):
            if "maxItems" in s and len(value) > s["maxItems"]:
                errs.append(f"{where}: more than {s['maxItems']} items")
            if "minItems" in s and len(value) < s["minItems"]:
                errs.append(f"{where}: fewer than {s['minItems']} items")
            for i, item in enumerate(value):
                self.walk(item, s.get("items", {}), f"{path}[{i}]", errs)


# ---------------------------------------------------------------- kustomization


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "labels", "commonAnnotations"}
IMAGE_KEYS = {"name", "newName", "newTag", "digest"}


def kustomization_errors(directory: str) -> list[str]:
    """The subset of kustomize's Kustomization these files use, checked strictly, plus what
    `kubectl apply -k` needs: every resource file exists and every manifest is listed
    (except *.template.yaml, which are applied by hand)."""
    errs = []
    k = load_yaml_docs(ROOT / directory / "kustomization.yaml")[0]
    for key in k:
        if key not in KUSTOMIZATION_KEYS:
            errs.append(f"unknown field {key!r}")
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        errs.append("apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
    if not isinstance(k.get("namespace"), str):
        errs.append("namespace must be a string")
    resources = k.get("resources")
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        errs.append("resources must be a list of file names")
        resources = []
    for r in resources:
        if not (ROOT / directory / r).is_file():
            errs.append(f"resource {r} does not exist")
    if len(set(resources)) != len(resources):
        errs.append("a resource is listed twice")
    expected = {p.name for p in manifest_files(directory) if not p.name.endswith(".template.yaml")}
    for missing in sorted(expected - set(resources)):
        errs.append(f"{missing} is not listed in resources")
    for image in k.get("images", []):
        if not isinstance(image, dict) or set(image) - IMAGE_KEYS or not isinstance(image.get("name"), str):
            errs.append(f"bad images entry {image!r}")
        elif not all(isinstance(v, str) for v in image.values()):
            errs.append(f"images entry values must be strings: {image!r}")
    return errs


def kustomize_render(directory: str) -> list[dict]:
    """What `kubectl apply -k` sends for the fields these kustomizations use: the namespace
    set on every namespaced object and image references rewritten by `images`."""
    k = load_yaml_docs(ROOT / directory / "kustomization.yaml")[0]
    images = {i["name"]: i for i in k.get("images", [])}
    out = []
    for r in k["resources"]:
        for doc in load_yaml_docs(ROOT / directory / r):
            doc = copy.deepcopy(doc)
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
            for c in containers(doc):
                name, tag = split_image(c["image"])
                if name in images:
                    i = images[name]
                    new = i.get("newName", name)
                    c["image"] = f"{new}@{i['digest']}" if "digest" in i else f"{new}:{i.get('newTag', tag)}"
            out.append(doc)
    return out


# ---------------------------------------------------------------- helpers on objects


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in ("Job", "Deployment") or (kind == "Service" and doc["apiVersion"].startswith("serving.knative.dev")):
        return doc["spec"]["template"]["spec"]
    return None


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return (spec.get("containers", []) + spec.get("initContainers", [])) if spec else []


def split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        return image.split("@", 1)[0], ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
        return name, tag
    return image, "latest"


# ---------------------------------------------------------------- schemas


def validate_all(report: Report, docs: list[tuple[str, dict]], schemas: Schemas) -> None:
    a, b, c = ValidatorA(schemas), ValidatorB(), ValidatorC(schemas)
    for label, doc in docs:
        kind = schemas.kind_of(doc)
        report.check(kind is not None, f"{label}: known kind", f"{doc.get('apiVersion')} {doc.get('kind')}")
        validators = [a, b] if kind == "core" else [a, c] if kind == "crd" else [a, b, c]
        for v in validators:
            errs = v.errors(doc)
            report.check(not errs, f"{label}: {v.name}", "; ".join(errs[:5]))


def derived_schema_from_kubernetes_validate(file: str) -> dict:
    """A Kubernetes v1.31 schema of kubernetes-validate (strict; `file` is its name there,
    e.g. namespace-v1.json), with its $refs into _definitions.json inlined: the standalone form
    of the files in v1.31.0-standalone-strict."""
    import importlib.resources

    base = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / "v1.31.0-local-strict"
    schema = json.loads((base / file).read_text())
    defs = json.loads((base / "_definitions.json").read_text())["$defs"]

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].split("#/$defs/", 1)[1]
                merged = {k: v for k, v in node.items() if k != "$ref"}
                resolved = inline(copy.deepcopy(defs[name]))
                resolved.update(merged)
                return resolved
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(x) for x in node]
        return node

    out = inline(schema)
    out.pop("$id", None)
    return out


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def kubectl_kustomize(directory: str) -> list[dict] | None:
    """The real kustomize's output (kubectl's built-in kustomize, offline), or None when
    kubectl is not installed."""
    import shutil
    import subprocess

    if shutil.which("kubectl") is None:
        return None
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / directory)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"kubectl kustomize {directory} failed: {out.stderr}")
    return [d for d in yaml.load_all(out.stdout, Loader=StrictLoader) if d is not None]


def cmd_schemas() -> int:
    report = Report()
    schemas = Schemas()
    for file in DERIVED_SCHEMAS:
        stored = json.loads((DERIVED_DIR / file).read_text())
        report.check(stored == derived_schema_from_kubernetes_validate(file),
                     f"schemas/kubernetes/v1.31.0-derived/{file} is kubernetes-validate's, inlined",
                     "run `check.py derive-schemas`")
    docs = all_manifests()
    report.check(len(docs) >= 20, "manifests found", str(len(docs)))
    validate_all(report, docs, schemas)
    for d in MANIFEST_DIRS:
        errs = kustomization_errors(d)
        report.check(not errs, f"{d}/kustomization.yaml", "; ".join(errs))
        if not errs:
            ours = kustomize_render(d)
            rendered = [(f"{d} (rendered) {x['kind']}/{x['metadata']['name']}", x) for x in ours]
            validate_all(report, rendered, schemas)
            real = kubectl_kustomize(d)
            if real is None:
                report.check(not in_ci(), f"{d}: kubectl kustomize (kubectl is required under CI=true)")
                print(f"note: kubectl not installed, {d} not rendered by kustomize itself")
            else:
                key = lambda x: (x["kind"], x["metadata"]["name"])  # noqa: E731
                report.check(sorted(map(key, real)) == sorted(map(key, ours)),
                             f"{d}: kubectl kustomize renders the listed objects")
                report.check(sorted(real, key=key) == sorted(ours, key=key),
                             f"{d}: kubectl kustomize output equals the expected rendering")
                validate_all(report, [(f"{d} (kubectl kustomize) {x['kind']}/{x['metadata']['name']}", x)
                                      for x in real], schemas)
    counts: dict[str, int] = {}
    for _, doc in docs:
        counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
    print("validated kinds: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
    return report.finish("schemas")


# ---------------------------------------------------------------- negative


def find_doc(docs, kind: str, api_prefix: str = "") -> dict:
    for _, doc in docs:
        if doc["kind"] == kind and doc["apiVersion"].startswith(api_prefix):
            return copy.deepcopy(doc)
    raise SystemExit(f"no {kind} manifest to mutate")


def cmd_negative() -> int:
    report = Report()
    schemas = Schemas()
    a, b, c = ValidatorA(schemas), ValidatorB(), ValidatorC(schemas)
    docs = all_manifests()
    cases = []

    def case(what, kind, api, mutate, validators):
        doc = find_doc(docs, kind, api)
        mutate(doc)
        cases.append((what, doc, validators))

    def ctr(doc):
        return pod_spec(doc)["containers"][0]

    # Unknown fields, at the top, deep inside, in metadata, and a misspelt one.
    case("unknown field in a Deployment container", "Deployment", "apps/",
         lambda d: ctr(d).update(imagePullPolicyy="Always"), [a, b])
    case("unknown field in a CronJob job template", "CronJob", "batch/",
         lambda d: d["spec"]["jobTemplate"]["spec"].update(retries=3), [a, b])
    case("unknown top-level field in a ConfigMap", "ConfigMap", "v1",
         lambda d: d.update(spec={"x": "y"}), [a, b])
    case("unknown field in Namespace metadata", "Namespace", "v1",
         lambda d: d["metadata"].update(label={"a": "b"}), [a, b])
    case("unknown field in a Knative Service container", "Service", "serving.knative.dev/",
         lambda d: ctr(d).update(livenessProbes={}), [a, c])
    case("unknown field in a KafkaSource spec", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"].update(deadLetterSink={"uri": "http://x"}), [a, c])
    case("unknown field in KafkaSource delivery", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"]["delivery"].update(retries=3), [a, c])
    case("unknown field in a KafkaSink spec", "KafkaSink", "eventing.knative.dev/",
         lambda d: d["spec"].update(partitions=3), [a, c])
    case("unknown field in a ScaledObject spec", "ScaledObject", "keda.sh/",
         lambda d: d["spec"].update(minReplicas=0), [a, c])
    case("unknown field in TriggerAuthentication", "TriggerAuthentication", "keda.sh/",
         lambda d: d["spec"]["secretTargetRef"][0].update(secret="x"), [a, c])
    case("unknown field in custom resource metadata", "ScaledObject", "keda.sh/",
         lambda d: d["metadata"].update(annotation={}), [a, c])
    case("unknown field in a NetworkPolicy ingress rule", "NetworkPolicy", "networking.k8s.io/",
         lambda d: d["spec"].update(ingress=[{"froms": []}]), [a, b])
    case("unknown field in a PodDisruptionBudget spec", "PodDisruptionBudget", "policy/",
         lambda d: d["spec"].update(minAvailible=1), [a, b])
    case("unknown field in a ClusterRoleBinding subject", "ClusterRoleBinding", "rbac.authorization.k8s.io/",
         lambda d: d["subjects"][0].update(namespaces=["todo-events"]), [a, b])
    # Wrong types.
    case("a list where a PodDisruptionBudget wants an int or a string", "PodDisruptionBudget", "policy/",
         lambda d: d["spec"].update(maxUnavailable=[1]), [a, b])
    case("a string where a NetworkPolicy wants a list of policy types", "NetworkPolicy", "networking.k8s.io/",
         lambda d: d["spec"].update(policyTypes="Ingress"), [a, b])
    case("string replicas count in a Deployment", "Deployment", "apps/",
         lambda d: d["spec"].update(replicas="2"), [a, b])
    case("number in a ConfigMap's data", "ConfigMap", "v1",
         lambda d: d["data"].update(DATABASE_MAX_CONNECTIONS=5), [a, b])
    case("string activeDeadlineSeconds in a Job", "Job", "batch/",
         lambda d: d["spec"].update(activeDeadlineSeconds="600"), [a, b])
    case("string containerConcurrency in a Knative Service", "Service", "serving.knative.dev/",
         lambda d: d["spec"]["template"]["spec"].update(containerConcurrency="20"), [a, c])
    case("unquoted number as a Knative annotation", "Service", "serving.knative.dev/",
         lambda d: d["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": 0}),
         [a, c])
    case("a topic string where KafkaSource wants a list", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"].update(topics="reminders"), [a, c])
    case("string retry count in KafkaSource delivery", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"]["delivery"].update(retry="8"), [a, c])
    case("string maxReplicaCount in a ScaledObject", "ScaledObject", "keda.sh/",
         lambda d: d["spec"].update(maxReplicaCount="6"), [a, c])
    case("number in a ScaledObject trigger's metadata", "ScaledObject", "keda.sh/",
         lambda d: d["spec"]["triggers"][0]["metadata"].update(lagThreshold=20), [a, c])
    case("KafkaSink contentMode outside its enum", "KafkaSink", "eventing.knative.dev/",
         lambda d: d["spec"].update(contentMode="batch"), [a, c])
    case("a string where KafkaSource net.tls.enable wants a boolean", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"]["net"]["tls"].update(enable="true"), [a, c])
    case("a Secret name where KafkaSource net.sasl.user wants a secretKeyRef", "KafkaSource", "sources.knative.dev/",
         lambda d: d["spec"]["net"]["sasl"].update(user="todo-events-kafka-sources"), [a, c])
    case("a list where a ClusterRoleBinding wants one roleRef", "ClusterRoleBinding", "rbac.authorization.k8s.io/",
         lambda d: d.update(roleRef=[d["roleRef"]]), [a, b])
    # Unknown kinds and versions.
    case("unknown kind", "KafkaSource", "sources.knative.dev/", lambda d: d.update(kind="KafkaSourze"), [a, b, c])
    case("unknown core kind", "ConfigMap", "v1", lambda d: d.update(kind="ConfigMapp"), [a, b, c])
    case("known kind in an unknown version", "Service", "serving.knative.dev/",
         lambda d: d.update(apiVersion="serving.knative.dev/v2"), [a, b, c])
    case("known kind in the wrong group", "ScaledObject", "keda.sh/",
         lambda d: d.update(apiVersion="keda.k8s.io/v1alpha1"), [a, b, c])

    for what, doc, validators in cases:
        for v in validators:
            errs = v.errors(doc)
            report.check(bool(errs), f"{v.name} rejects {what}", "accepted")
            if errs:
                print(f"ok   {v.name} rejects {what}: {errs[0]}")
    # And the unmutated documents pass, so the rejections above are the mutations' doing.
    for kind, api in (("Deployment", "apps/"), ("Service", "serving.knative.dev/"), ("KafkaSource", "sources."),
                      ("NetworkPolicy", "networking.k8s.io/"), ("PodDisruptionBudget", "policy/"),
                      ("ClusterRoleBinding", "rbac.authorization.k8s.io/")):
        doc = find_doc(docs, kind, api)
        for v in ([a, b] if schemas.kind_of(doc) == "core" else [a, c]):
            report.check(not v.errors(doc), f"{v.name} accepts the unmutated {kind}")
    # The agreement checks catch drift between manifests and code, too.
    code = Code()
    objs: dict = {}
    for path in manifest_files("keda"):
        for doc in load_yaml_docs(path):
            objs.setdefault(doc["kind"], []).append(doc)
    configmaps = {o["metadata"]["name"]: o for o in objs["ConfigMap"]}
    secrets = {o["metadata"]["name"]: o for o in objs["Secret"]}

    def drift(what, name, mutate):
        doc = copy.deepcopy(next(o for k in ("Deployment", "CronJob") for o in objs[k] if o["metadata"]["name"] == name))
        c = pod_spec(doc)["containers"][0]
        mutate(c)
        r = Report(quiet=True)
        check_container(r, code, "mutated", c, pod_spec(doc), False, configmaps, secrets, objs, 6)
        if report.check(bool(r.failed), f"agreement check catches {what}", "not caught"):
            print(f"ok   agreement check catches {what}: {r.failed[0][:160]}")

    drift("a variable the code does not read", "notify", lambda c: c["env"].append({"name": "SMTP_PASSWORD", "value": "x"}))
    drift("a variable of another binary", "recur", lambda c: c["env"].append({"name": "MAILER", "value": "smtp"}))
    drift("a missing required variable", "notify", lambda c: c["envFrom"].pop(0))
    drift("a subcommand that does not exist", "recur", lambda c: c.update(args=["consumer"]))
    drift("a flag that does not exist", "scheduler-cron", lambda c: c.update(args=["--for", "50s", "--interval", "2s"]))
    drift("--every not shorter than --for", "scheduler-cron", lambda c: c.update(args=["--for", "70s", "--every", "70s"]))
    drift("a binary that does not exist", "notify", lambda c: c.update(command=["/usr/local/bin/notifier"]))
    drift("a probe on a path the code does not serve", "recur",
          lambda c: c["readinessProbe"]["httpGet"].update(path="/healthz"))
    drift("a port the code does not listen on", "notify", lambda c: c["ports"][0].update(containerPort=9090))
    drift("a writable root filesystem", "notify", lambda c: c["securityContext"].update(readOnlyRootFilesystem=False))
    negative_rules(report, code)
    # Duplicate keys are refused while reading.
    try:
        yaml.load("a: 1\na: 2\n", Loader=StrictLoader)
        report.check(False, "duplicate YAML keys are rejected")
    except yaml.YAMLError:
        report.check(True, "duplicate YAML keys are rejected")
    return report.finish("negative")


def negative_rules(report: Report, code: "Code") -> None:
    """The rules on the CronJob's timing, the KafkaSources, the Knative probes, the
    NetworkPolicies and the PodDisruptionBudgets catch mutated copies of the manifests (and
    pass the originals)."""
    per_dir = load_per_dir()
    partitions = int(re.search(r"--partitions (\d+)", read("docs/DEPLOYMENT.md")).group(1))

    def caught(what: str, run) -> None:
        r = Report(quiet=True)
        run(r)
        if report.check(bool(r.failed), f"rule catches {what}", "not caught"):
            print(f"ok   rule catches {what}: {r.failed[0][:160]}")

    def originals_pass(what: str, run) -> None:
        r = Report(quiet=True)
        run(r)
        report.check(not r.failed, f"rule passes the unmutated {what}", "; ".join(r.failed[:3]))

    # CronJob timing.
    cron = per_dir["keda"]["CronJob"][0]

    def cron_case(what, mutate):
        doc = copy.deepcopy(cron)
        mutate(doc)
        caught(what, lambda r: [r.check(ok, rule, detail) for ok, rule, detail in cron_timing_rules(doc)])

    def cron_args(args):
        return lambda doc: pod_spec(doc)["containers"][0].update(args=args)

    originals_pass("CronJob timing", lambda r: [r.check(ok, rule, d) for ok, rule, d in cron_timing_rules(cron)])
    cron_case("runs that stop within their minute (seconds unpolled until the next run is up)",
              cron_args(["--for", "50s", "--every", "500ms"]))
    cron_case("--for plus the last publish beyond activeDeadlineSeconds", cron_args(["--for", "90s", "--every", "500ms"]))
    cron_case("overlapping runs with concurrencyPolicy Forbid", lambda doc: doc["spec"].update(concurrencyPolicy="Forbid"))
    cron_case("activeDeadlineSeconds that lets three runs overlap",
              lambda doc: doc["spec"]["jobTemplate"]["spec"].update(activeDeadlineSeconds=130))

    # KafkaSources.
    kn = per_dir["knative"]
    services = {o["metadata"]["name"]: o for o in kn.get("Service", []) if o["apiVersion"].startswith("serving.")}
    sinks = {o["metadata"]["name"]: o for o in kn.get("KafkaSink", [])}
    base_config = next(o for o in kn["ConfigMap"] if o["metadata"]["name"] == "todo-events-config")["data"]
    brokers = base_config["KAFKA_BROKERS"].split(",")

    def source_case(what, mutate, pd=None):
        src = copy.deepcopy(kn["KafkaSource"][0])
        mutate(src)
        caught(what, lambda r: check_kafka_source(r, code, "knative", src, services, sinks, base_config, brokers,
                                                  pd or per_dir, partitions))

    originals_pass("KafkaSources", lambda r: [check_kafka_source(r, code, "knative", src, services, sinks, base_config,
                                                                 brokers, per_dir, partitions)
                                              for src in kn["KafkaSource"]])
    source_case("the delivery.order annotation on a KafkaSource (read only for Triggers)",
                lambda x: x["metadata"]["annotations"].update({"kafka.eventing.knative.dev/delivery.order": "ordered"}))
    source_case("an activation-lag-threshold annotation (never reaches KEDA)",
                lambda x: x["metadata"]["annotations"].update(
                    {"autoscaling.eventing.knative.dev/activation-lag-threshold": "0"}))
    source_case("ordered delivery (an event in backoff holds its partition)", lambda x: x["spec"].update(ordering="ordered"))
    source_case("ordering left to the default (ordered)", lambda x: x["spec"].pop("ordering"))
    source_case("retries that outlast the scheduler's republishing",
                lambda x: x["spec"]["delivery"].update(retry=8, backoffDelay="PT2S"))
    keda_other = copy.deepcopy(per_dir)
    for dep in keda_other["keda"]["Deployment"]:
        for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if e["name"] == "KAFKA_RETRY":
                e["value"] = "3"
    source_case("a consumer-mode retry count that differs from the KafkaSource's", lambda x: None, keda_other)

    # Knative probes.
    svc = next(iter(services.values()))

    def probe_case(what, mutate):
        doc = copy.deepcopy(svc)
        mutate(pod_spec(doc)["containers"][0])
        caught(what, lambda r: check_knative_probes(r, doc["metadata"]["name"], doc))

    originals_pass("Knative probes", lambda r: [check_knative_probes(r, n, x) for n, x in services.items()])
    probe_case("a readiness periodSeconds on a Knative Service (no fast start-up probing)",
               lambda c: c["readinessProbe"].update(periodSeconds=5))
    probe_case("a Knative Service without a liveness probe", lambda c: c.pop("livenessProbe"))

    # NetworkPolicies and PodDisruptionBudgets.
    def objs_case(what, d, mutate, check):
        objs = copy.deepcopy(per_dir[d])
        mutate(objs)
        caught(what, lambda r: check(r, d, objs))

    def named(objs, kind, name):
        return next(o for o in objs[kind] if o["metadata"]["name"] == name)

    for d in MANIFEST_DIRS:
        originals_pass(f"{d} NetworkPolicies", lambda r, d=d: check_network_policies(r, d, per_dir[d]))
        originals_pass(f"{d} egress NetworkPolicies", lambda r, d=d: check_network_egress(r, d, per_dir[d]))
        originals_pass(f"{d} PodDisruptionBudgets", lambda r, d=d: check_disruption_budgets(r, d, per_dir[d]))

    def eventing_only(objs):
        np = named(objs, "NetworkPolicy", "functions-ingress")
        np["spec"]["ingress"] = [r for r in np["spec"]["ingress"]
                                 if r["from"][0].get("namespaceSelector", {}).get("matchLabels", {})
                                 .get(NS_NAME_LABEL) == KNATIVE_EVENTING_NS]

    objs_case("a knative/ NetworkPolicy admitting knative-eventing only (the activator and gateway shut out)",
              "knative", eventing_only, check_network_policies)
    objs_case("a knative/ NetworkPolicy without the gateway namespace", "knative",
              lambda o: named(o, "NetworkPolicy", "functions-ingress")["spec"].update(
                  ingress=[r for r in named(o, "NetworkPolicy", "functions-ingress")["spec"]["ingress"]
                           if r["from"][0].get("namespaceSelector", {}).get("matchLabels", {}).get(NS_NAME_LABEL)
                           in (KNATIVE_SERVING_NS, KNATIVE_EVENTING_NS, "monitoring")]),
              check_network_policies)
    objs_case("a keda/ NetworkPolicy admitting another namespace", "keda",
              lambda o: named(o, "NetworkPolicy", "consumers-ingress")["spec"]["ingress"].append(
                  {"from": [{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: KNATIVE_EVENTING_NS}}}],
                   "ports": [{"port": 8080, "protocol": "TCP"}]}),
              check_network_policies)
    objs_case("a rule admitting every source", "keda",
              lambda o: named(o, "NetworkPolicy", "consumers-ingress")["spec"]["ingress"][0].pop("from"),
              check_network_policies)
    objs_case("no default-deny NetworkPolicy", "keda",
              lambda o: o["NetworkPolicy"].remove(named(o, "NetworkPolicy", "default-deny-ingress")),
              check_network_policies)
    objs_case("a NetworkPolicy that selects no consumer (Prometheus cannot scrape)", "keda",
              lambda o: named(o, "NetworkPolicy", "consumers-ingress")["spec"]["podSelector"]["matchLabels"].update(
                  {"app.kubernetes.io/component": "consumers"}),
              check_network_policies)
    def internet(objs, version):
        return next(t["ipBlock"] for r in named(objs, "NetworkPolicy", "notify-egress")["spec"]["egress"]
                    for t in r["to"] if "ipBlock" in t and (":" in t["ipBlock"]["cidr"]) == (version == 6)
                    and t["ipBlock"].get("except"))

    for d in MANIFEST_DIRS:
        objs_case(f"{d}: notify's internet rule without the 10.0.0.0/8 exception", d,
                  lambda o: internet(o, 4)["except"].remove("10.0.0.0/8"), check_network_egress)
        objs_case(f"{d}: notify's IPv6 internet rule without the 6to4 exception", d,
                  lambda o: internet(o, 6)["except"].remove("2002::/16"), check_network_egress)
        objs_case(f"{d}: notify's internet rule on every port", d,
                  lambda o: [r.pop("ports") for r in named(o, "NetworkPolicy", "notify-egress")["spec"]["egress"]],
                  check_network_egress)
        objs_case(f"{d}: the internet opened to every pod (recur, the scheduler, the migration)", d,
                  lambda o: named(o, "NetworkPolicy", "notify-egress")["spec"]["podSelector"]["matchLabels"].pop(
                      "app.kubernetes.io/name"), check_network_egress)
        objs_case(f"{d}: DNS over UDP only (large answers fall back to TCP)", d,
                  lambda o: named(o, "NetworkPolicy", "todo-events-egress")["spec"]["egress"][0].update(
                      ports=[{"port": 53, "protocol": "UDP"}]), check_network_egress)
        objs_case(f"{d}: no egress policy for the pods (PostgreSQL, Kafka, DNS unfenced)", d,
                  lambda o: o["NetworkPolicy"].remove(named(o, "NetworkPolicy", "todo-events-egress")),
                  check_network_egress)
        objs_case(f"{d}: Kafka's namespace not the one of KAFKA_BROKERS", d,
                  lambda o: named(o, "NetworkPolicy", "todo-events-egress")["spec"]["egress"][2]["to"][0]
                  ["namespaceSelector"]["matchLabels"].update({NS_NAME_LABEL: "strimzi"}), check_network_egress)
    # Authentication (knative/) and where the functions listen.
    for d in MANIFEST_DIRS:
        originals_pass(f"{d} authentication", lambda r, d=d: check_authentication(r, d, per_dir[d]))
        originals_pass(f"{d} listen addresses", lambda r, d=d: check_listen_address(r, d, per_dir[d]))
        originals_pass(f"{d} Kafka security", lambda r, d=d: check_kafka_security(r, d, per_dir[d]))
        # Plaintext is a choice the checks allow when every place says it.
        originals_pass(f"{d} Kafka security and egress with plaintext chosen everywhere (docs/DEPLOYMENT.md)",
                       lambda r, d=d: (check_kafka_security(r, d, plaintext_variant(per_dir[d])),
                                       check_network_egress(r, d, plaintext_variant(per_dir[d]))))

    def source(o, name):
        return named(o, "KafkaSource", name)

    def function_env(o, name):
        return pod_spec(named(o, "Service", name))["containers"][0]["env"]

    def set_env(env, var, value):
        next(e for e in env if e["name"] == var)["value"] = value

    def configmap(o):
        return named(o, "ConfigMap", "todo-events-config")["data"]

    def container(o, kind, name):
        return pod_spec(named(o, kind, name))["containers"][0]

    def with_env_ref(c, var, secret):
        next(e for e in c["env"] if e["name"] == var)["valueFrom"]["secretKeyRef"]["name"] = secret

    objs_case("a KafkaSource without spec.sink.audience (the dispatcher sends no token)", "knative",
              lambda o: source(o, "reminders")["spec"]["sink"].pop("audience"), check_authentication)
    objs_case("a KafkaSource audience that is not its function's OIDC_AUDIENCE", "knative",
              lambda o: source(o, "reminders")["spec"]["sink"].update(audience="todo-events/recur"),
              check_authentication)
    objs_case("OIDC_ALLOWED_SUBJECTS naming the other source's service account", "knative",
              lambda o: set_env(function_env(o, "notify"), "OIDC_ALLOWED_SUBJECTS",
                                "system:serviceaccount:todo-events:task-events-oidc-sources.knative.dev-kafkasource"),
              check_authentication)
    objs_case("OIDC_ALLOWED_SUBJECTS with a subject beside the source's", "knative",
              lambda o: set_env(function_env(o, "recur"), "OIDC_ALLOWED_SUBJECTS",
                                next(e["value"] for e in function_env(o, "recur") if e["name"] == "OIDC_ALLOWED_SUBJECTS")
                                + ",system:serviceaccount:todo-events:default"),
              check_authentication)
    objs_case("a KafkaSource renamed (its service account, hence the subject, changes)", "knative",
              lambda o: source(o, "task-events")["metadata"].update(name="task-events-v2"), check_authentication)
    objs_case("a KafkaSource name kmeta.ChildName would hash (the subject cannot be computed)", "knative",
              lambda o: source(o, "task-events")["metadata"].update(name="todo-events-recurring-task-occurrences"),
              check_authentication)
    objs_case("a Knative Service that checks no caller (no OIDC_* settings)", "knative",
              lambda o: pod_spec(named(o, "Service", "recur"))["containers"][0].pop("env"), check_authentication)
    objs_case("two functions with one audience", "knative",
              lambda o: (set_env(function_env(o, "recur"), "OIDC_AUDIENCE", "todo-events/notify"),
                         source(o, "task-events")["spec"]["sink"].update(audience="todo-events/notify")),
              check_authentication)
    objs_case("a function without its service account token (it cannot read the issuer's keys)", "knative",
              lambda o: pod_spec(named(o, "Service", "notify")).update(automountServiceAccountToken=False),
              check_authentication)
    objs_case("a function on the token-less service account", "knative",
              lambda o: pod_spec(named(o, "Service", "notify")).update(serviceAccountName="todo-events"),
              check_authentication)
    objs_case("the functions' service account not bound to the issuer discovery role", "knative",
              lambda o: o.pop("ClusterRoleBinding"), check_authentication)
    objs_case("a binding that grants another role", "knative",
              lambda o: o["ClusterRoleBinding"][0]["roleRef"].update(name="view"), check_authentication)
    objs_case("the scheduler with a service account token", "knative",
              lambda o: pod_spec(named(o, "CronJob", "scheduler-cron")).update(automountServiceAccountToken=True),
              check_authentication)
    objs_case("the migration Job on the functions' service account", "knative",
              lambda o: pod_spec(named(o, "Job", "todo-events-migrate")).update(serviceAccountName="todo-events-functions",
                                                                               automountServiceAccountToken=False),
              check_authentication)
    objs_case("a function that cannot reach the API server (the issuer's keys)", "knative",
              lambda o: named(o, "NetworkPolicy", "functions-egress-apiserver")["spec"]["podSelector"]["matchLabels"]
              .update({"app.kubernetes.io/component": "functions"}), check_network_egress)
    objs_case("functions listening on loopback only (probes and Prometheus shut out)", "keda",
              lambda o: configmap(o).update(LISTEN_ADDRESS="127.0.0.1"), check_listen_address)
    objs_case("no LISTEN_ADDRESS (the programs' loopback default)", "knative",
              lambda o: configmap(o).pop("LISTEN_ADDRESS"), check_listen_address)
    # Kafka security.
    objs_case("the ConfigMap alone switched to plaintext (sources, sinks, KEDA still on TLS and SASL)", "knative",
              lambda o: configmap(o).update(KAFKA_SECURITY_PROTOCOL="plaintext"), check_kafka_security)
    objs_case("the ConfigMap alone switched to plaintext (keda/)", "keda",
              lambda o: configmap(o).update(KAFKA_SECURITY_PROTOCOL="plaintext"), check_kafka_security)
    objs_case("a ScaledObject trigger without TLS", "keda",
              lambda o: named(o, "ScaledObject", "notify")["spec"]["triggers"][0]["metadata"].update(tls="disable"),
              check_kafka_security)
    objs_case("a ScaledObject trigger with SASL/PLAIN against SCRAM-SHA-512", "keda",
              lambda o: named(o, "ScaledObject", "recur")["spec"]["triggers"][0]["metadata"].update(sasl="plaintext"),
              check_kafka_security)
    objs_case("a TriggerAuthentication reading another consumer's identity", "keda",
              lambda o: [r.update(name="todo-events-kafka-recur")
                         for r in named(o, "TriggerAuthentication", "todo-events-kafka-notify")["spec"]["secretTargetRef"]],
              check_kafka_security)
    objs_case("a TriggerAuthentication without the CA", "keda",
              lambda o: named(o, "TriggerAuthentication", "todo-events-kafka-recur")["spec"]["secretTargetRef"].pop(),
              check_kafka_security)
    objs_case("a consumer using the scheduler's identity (it could publish events)", "keda",
              lambda o: [with_env_ref(container(o, "Deployment", "notify"), v, "todo-events-kafka-scheduler")
                         for v in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")],
              check_kafka_security)
    objs_case("the scheduler's user and password from two identities", "keda",
              lambda o: with_env_ref(container(o, "CronJob", "scheduler-cron"), "KAFKA_SASL_PASSWORD",
                                     "todo-events-kafka-notify"), check_kafka_security)
    objs_case("the scheduler without its CA mount", "keda",
              lambda o: container(o, "CronJob", "scheduler-cron").pop("volumeMounts"), check_kafka_security)
    objs_case("the CA volume projecting the whole Secret (the password on disk)", "keda",
              lambda o: pod_spec(named(o, "Deployment", "recur"))["volumes"][0]["secret"].pop("items"),
              check_kafka_security)
    objs_case("a writable CA mount", "keda",
              lambda o: container(o, "Deployment", "notify")["volumeMounts"][0].update(readOnly=False),
              check_kafka_security)
    objs_case("an identity Secret whose protocol disagrees (SASL_PLAINTEXT)", "keda",
              lambda o: named(o, "Secret", "todo-events-kafka-recur")["stringData"].update(protocol="SASL_PLAINTEXT"),
              check_kafka_security)
    objs_case("a KafkaSource without TLS", "knative",
              lambda o: source(o, "reminders")["spec"]["net"].pop("tls"), check_kafka_security)
    objs_case("a KafkaSource without net.sasl.type (SASL/PLAIN)", "knative",
              lambda o: source(o, "task-events")["spec"]["net"]["sasl"].pop("type"), check_kafka_security)
    objs_case("a KafkaSource on the scheduler's identity (it could publish events)", "knative",
              lambda o: [source(o, "reminders")["spec"]["net"][k][f]["secretKeyRef"].update(name="todo-events-kafka-scheduler")
                         for k, fs in (("sasl", ("user", "password", "type")), ("tls", ("caCert",))) for f in fs],
              check_kafka_security)
    objs_case("a KafkaSink without auth", "knative",
              lambda o: named(o, "KafkaSink", "task-events-dlq")["spec"].pop("auth"), check_kafka_security)
    objs_case("a PodDisruptionBudget with minAvailable (blocks drains at 1 replica)", "keda",
              lambda o: named(o, "PodDisruptionBudget", "notify")["spec"].update(minAvailable=1),
              check_disruption_budgets)
    # Histogram buckets against the targets and alert thresholds.
    buckets = histogram_buckets(code)
    rules = [r for g in load_yaml_docs(ROOT / "deploy/prometheus/todo-events-alerts.yaml")[0]["groups"] for r in g["rules"]]
    timeouts = [o["spec"]["template"]["spec"].get("timeoutSeconds", 300) for o in services.values()]

    def bucket_case(what, mutate_buckets=lambda b: None, extra_rules=()):
        b = copy.deepcopy(buckets)
        mutate_buckets(b)
        caught(what, lambda r: [r.check(ok, rule, d) for ok, rule, d in bucket_rules(b, rules + list(extra_rules), timeouts)])

    originals_pass("histogram buckets", lambda r: [r.check(ok, rule, d) for ok, rule, d in bucket_rules(buckets, rules, timeouts)])
    bucket_case("lateness buckets without a bound at the 1.5 s target",
                lambda b: b["todo_events_event_lateness_seconds"].remove(1.5))
    bucket_case("handling buckets that end before notify's timeout (10 s < 120 s)",
                lambda b: b.update(todo_events_event_handling_seconds=[x for x in b["todo_events_event_handling_seconds"]
                                                                      if x <= 10]))
    bucket_case("an alert threshold between two bucket bounds", extra_rules=[{
        "alert": "Mutated", "expr": "histogram_quantile(0.99, sum by (le) (rate(todo_events_event_lateness_seconds_bucket[5m]))) > 1.2"}])
    objs_case("a PodDisruptionBudget that selects no consumer", "keda",
              lambda o: named(o, "PodDisruptionBudget", "recur")["spec"]["selector"]["matchLabels"].update(
                  {"app.kubernetes.io/name": "recurr"}),
              check_disruption_budgets)


# ---------------------------------------------------------------- facts from the code


def read(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


class Workspace:
    def __init__(self) -> None:
        root = tomllib.loads(read("Cargo.toml"))
        self.ws_deps = root["workspace"]["dependencies"]
        self.packages: dict[str, dict] = {}
        for member in root["workspace"]["members"]:
            d = (ROOT / member).resolve()
            manifest = tomllib.loads((d / "Cargo.toml").read_text())
            self.packages[manifest["package"]["name"]] = {"dir": d, "manifest": manifest}
        self.rust_version = root["workspace"]["package"]["rust-version"]
        # binary name -> package name
        self.binaries: dict[str, str] = {}
        for name, p in self.packages.items():
            d, m = p["dir"], p["manifest"]
            # Development tools (the benchmarks) say `[package.metadata.todo-events] deployed = false`.
            if not m.get("package", {}).get("metadata", {}).get("todo-events", {}).get("deployed", True):
                continue
            if (d / "src/main.rs").exists() and m.get("package", {}).get("autobins", True):
                self.binaries[name] = name
            for b in (d / "src/bin").glob("*.rs") if (d / "src/bin").is_dir() else []:
                self.binaries[b.stem] = name
            for b in m.get("bin", []):
                self.binaries[b["name"]] = name

    def path_deps(self, package: str) -> set[str]:
        """The package and its workspace dependencies, transitively (no dev-dependencies)."""
        seen, todo = set(), [package]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for dep, spec in self.packages[name]["manifest"].get("dependencies", {}).items():
                if isinstance(spec, dict) and spec.get("workspace"):
                    spec = self.ws_deps.get(dep, {})
                if isinstance(spec, dict) and "path" in spec and dep in self.packages:
                    todo.append(dep)
        return seen


FACTS_ENV = "TODO_EVENTS_CODE_FACTS"


def code_facts_path() -> Path:
    path = os.environ.get(FACTS_ENV)
    if not path:
        sys.exit(f"{FACTS_ENV} is not set: these checks learn the code's facts from tests/system/manifests.rs; "
                 "run them with `cargo test --test system manifests::`")
    return Path(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_help(text: str) -> dict:
    """clap's --help: {"subcommands": [...], "flags": {--flag: takes a value}, "subcommand_required": bool}."""
    usage = re.search(r"^Usage: \S+(.*)$", text, re.M).group(1)
    out = {"subcommands": [], "flags": {}, "subcommand_required": "<COMMAND>" in usage}
    section = None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
        elif section == "Commands" and (m := re.match(r"^  (\S+)", line)) and m.group(1) != "help":
            out["subcommands"].append(m.group(1))
        elif section == "Options" and (m := re.match(r"^\s+(?:-\w, )?(--[\w-]+)( <[^>]+>| \[<[^>]+>\])?", line)):
            if m.group(1) not in ("--help", "--version"):
                out["flags"][m.group(1)] = m.group(2) is not None
    return out


def traced_run(program: Path, args: list[str], work: Path) -> dict:
    """Runs `program args` with a complete configuration that takes every branch which reads more
    (SMTP mailer, Kafka, trace export) and TODO_EVENTS_ENV_TRACE; stops it once it has read its
    configuration. Returns its lookups (one dict per lookup) and what it printed."""
    work.mkdir(parents=True)
    trace = work / "trace.jsonl"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TODO_EVENTS_ENV_TRACE": str(trace),
        "DATABASE_URL": f"sqlite://{work}/db.sqlite",
        "RUN_MIGRATIONS": "true",
        "PORT": str(free_port()),
        "NOTIFY_PORT": str(free_port()),
        "RECUR_PORT": str(free_port()),
        "OUTBOX_DIR": str(work / "outbox"),
        "MAILER": "smtp",
        "SMTP_URL": f"smtp://127.0.0.1:{free_port()}?tls=none",
        "KAFKA_BROKERS": f"127.0.0.1:{free_port()}",
        "KAFKA_DELIVERY_TIMEOUT": "1s",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1/traces",
    }
    log = (work / "output").open("wb")
    proc = subprocess.Popen([str(program), *args], env=env, cwd=work, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    start, size, stable_since = time.monotonic(), -1, time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 30:
        now_size = trace.stat().st_size if trace.exists() else -1
        if now_size != size:
            size, stable_since = now_size, time.monotonic()
        # Configuration is read at start: a trace that stopped growing for a second is complete.
        elif size > 0 and time.monotonic() - stable_since > 1.0 and time.monotonic() - start > 2.0:
            break
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    lookups = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return {"args": args, "lookups": lookups, "output": (work / "output").read_text(errors="replace")[-2000:]}


def cmd_facts() -> int:
    """What the binaries say about themselves, once for all the checks: the --help of every
    command and the variables every command looks up."""
    code = json.loads(code_facts_path().read_text())
    bins = Path(code["binaries_dir"])
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for binary in sorted(Workspace().binaries):
            program = bins / binary
            run = lambda *a: subprocess.run([str(program), *a], capture_output=True, text=True, check=True).stdout  # noqa: E731
            top = run("--help")
            helps = {"": top}
            for sub in parse_help(top)["subcommands"]:
                helps[sub] = run(sub, "--help")
            modes = ([[]] if not parse_help(top)["subcommand_required"] else []) + \
                [[sub] for sub in parse_help(top)["subcommands"]]
            runs = [traced_run(program, mode, Path(tmp) / binary / (mode[0] if mode else "-")) for mode in modes]
            out[binary] = {"help": helps, "runs": runs}
            print(f"{binary}: {len(helps)} help texts, {len(runs)} runs, "
                  f"{len({lk['name'] for r in runs for lk in r['lookups']})} variables looked up")
    code_facts_path().with_name("binaries.json").write_text(json.dumps(out, indent=1))
    return 0


CONDITIONAL_MESSAGE = re.compile(r"^([A-Z][A-Z0-9_]*) is not set: ([A-Z][A-Z0-9_]*)=(\w+)")


def prometheus_series(text: str) -> tuple[dict[str, set[str]], dict[str, list[float]]]:
    """Series (sample name -> label names) and histogram bucket bounds of a /metrics text."""
    series: dict[str, set[str]] = {}
    bounds: dict[str, set[float]] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? ", line)
        if not m or line.startswith("#"):
            continue
        name, labels = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        series.setdefault(name, set()).update(labels)
        if name.endswith("_bucket") and labels.get("le") != "+Inf":
            bounds.setdefault(name[: -len("_bucket")], set()).add(float(labels["le"]))
    return series, {k: sorted(v) for k, v in bounds.items()}


class Code:
    """What the code does and says about configuration, HTTP, Kafka, metrics and its command
    lines: tests/system/manifests.rs's facts and the binaries' own statements (check.py facts)."""

    def __init__(self) -> None:
        self.ws = Workspace()
        path = code_facts_path()
        facts = json.loads(path.read_text())
        self.facts = facts
        binaries = json.loads(path.with_name("binaries.json").read_text())
        missing = set(self.ws.binaries) - set(binaries)
        if missing:
            sys.exit(f"no facts for the binaries {sorted(missing)}: run `check.py facts` again")
        self.reads: dict[str, set[str]] = {}
        self.required: dict[str, set[str]] = {}
        self.conditional: dict[str, set[tuple[str, str, str]]] = {}
        self.kafka_required: set[str] = set()
        defaults: dict[str, str] = {}
        for binary in self.ws.binaries:
            reads, req, cond = set(), set(), set()
            for run in binaries[binary]["runs"]:
                for lookup in run["lookups"]:
                    reads.add(lookup["name"])
                    if lookup["default"] is not None:
                        defaults[lookup["name"]] = lookup["default"]
                    if lookup["required"]:
                        req.add(lookup["name"])
                        if m := CONDITIONAL_MESSAGE.match(lookup["required"]):
                            cond.add(m.groups())
                        elif run["args"][:1] in (["consume"], ["replay-dead-letters"]):
                            self.kafka_required.add(lookup["name"])
            self.reads[binary], self.required[binary], self.conditional[binary] = reads, req, cond
        self.default_port = int(defaults["PORT"])
        self.republish_after = float(re.search(r"\(([\d.]+)s\)$", defaults["SCHEDULER_REPUBLISH_AFTER"]).group(1))
        self.health = {p for f in facts["functions"].values() for p, status in f["health"].items()
                       if p.startswith("/health/") and status == 200}
        self.functions: dict[str, dict] = {
            name: {"binary": name, "topic_var": f["topic_var"], "topic_default": f["topic_default"]}
            for name, f in facts["functions"].items()}
        self.dlq_suffix = facts["dead_letter_topic_of_t"].removeprefix("t")
        self.offset_reset = facts["consumer_offset_reset"]
        self.commands: dict[str, dict] = {}
        for binary in self.ws.binaries:
            helps = binaries[binary]["help"]
            top = parse_help(helps[""])
            self.commands[binary] = {
                "flags": top["flags"],
                "subcommands": {sub: parse_help(helps[sub])["flags"] for sub in top["subcommands"]},
                "subcommand_required": top["subcommand_required"],
            }
        self.build_inputs = {binary: build_inputs(self.ws, Path(facts["binaries_dir"]), binary)
                             for binary in self.ws.binaries}


def build_inputs(ws: Workspace, bins: Path, binary: str) -> set[Path] | None:
    """Every file cargo read to build `binary`, from its dep-info files: the binary's own (the
    deps/ file the binary is a hard link of) and those of the libraries of its package's
    workspace dependencies. None when cargo left no dep-info for the binary."""
    exe = bins / binary
    deps = bins / "deps"
    if not exe.exists():
        return None
    own = [f.with_suffix(".d") for f in deps.glob(binary.replace("-", "_") + "-*")
           if not f.suffix and f.stat().st_ino == exe.stat().st_ino]
    if not own or not own[0].exists():
        return None
    files = own
    for package in ws.path_deps(ws.binaries[binary]):
        lib = package.replace("-", "_")
        files += [d for d in deps.glob(f"{lib}-*.d")
                  if any(ln.startswith(str(deps / f"lib{lib}-")) and ln.split(":")[0].endswith(".rlib")
                         for ln in d.read_text().splitlines())]
    out = set()
    for d in files:
        # The first line: "<dep-info file>: <input> <input> …" (spaces in names escaped).
        first = d.read_text().split("\n", 1)[0].split(": ", 1)
        if len(first) == 2:
            for item in re.split(r"(?<!\\) ", first[1].strip()):
                if item:
                    out.add((ROOT / item.replace("\\ ", " ")).resolve())
    return out


# ---------------------------------------------------------------- agreement


DURATION = re.compile(r"^(\d+(ms|s|m|h|d))+$")


def seconds(d: str) -> float:
    total = 0.0
    for n, unit in re.findall(r"(\d+)(ms|s|m|h|d)", d):
        total += int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def load_per_dir() -> dict[str, dict[str, list[dict]]]:
    """directory -> kind -> the objects of that kind in the directory's manifests."""
    per_dir: dict = {d: {} for d in MANIFEST_DIRS}
    for d in MANIFEST_DIRS:
        for path in manifest_files(d):
            for doc in load_yaml_docs(path):
                per_dir[d].setdefault(doc["kind"], []).append(doc)
    return per_dir


def cmd_agreement() -> int:
    report = Report()
    code = Code()
    print(f"binaries: {sorted(code.ws.binaries)}; health paths: {sorted(code.health)}; "
          f"default PORT {code.default_port}; functions: {code.functions}")
    report.check(code.health == {"/health/readiness", "/health/liveness"}, "the code serves both health paths",
                 str(code.health))
    report.check(all(code.reads[b] for b in code.ws.binaries), "variables found for every binary")
    partitions = int(re.search(r"--partitions (\d+)", read("docs/DEPLOYMENT.md")).group(1))
    per_dir = load_per_dir()

    for d in MANIFEST_DIRS:
        objs = per_dir[d]
        by_name = lambda kind: {o["metadata"]["name"]: o for o in objs.get(kind, [])}  # noqa: E731
        configmaps, secrets = by_name("ConfigMap"), by_name("Secret")
        kust = load_yaml_docs(ROOT / d / "kustomization.yaml")[0]
        ns = kust["namespace"]
        base_config = configmaps["todo-events-config"]["data"]
        brokers = base_config["KAFKA_BROKERS"].split(",")

        # Every namespaced object in the kustomization's namespace; the Namespace is that one;
        # cluster-scoped objects name none.
        for kind, items in objs.items():
            for o in items:
                if kind == "Namespace":
                    report.check(o["metadata"]["name"] == ns, f"{d}: Namespace is {ns}")
                elif kind in CLUSTER_SCOPED:
                    report.check("namespace" not in o["metadata"], f"{d}: {kind}/{o['metadata']['name']} names no namespace")
                else:
                    report.check(o["metadata"].get("namespace") == ns, f"{d}: {kind}/{o['metadata']['name']} in {ns}")

        # Secret templates hold placeholders only.
        for name, s in secrets.items():
            report.check("data" not in s, f"{d}: Secret {name} uses stringData (readable placeholders)")
            for k, v in s.get("stringData", {}).items():
                if "protocol" in s.get("stringData", {}) and k in KAFKA_SECRET_SETTINGS:
                    continue  # a Kafka identity's settings and user name (check_kafka_security)
                secret_part = re.search(r"://([^@/]*)@", v or "")
                ok = v == "" or "CHANGE-ME" in v and (secret_part is None or "CHANGE-ME" in secret_part.group(1))
                report.check(ok, f"{d}: Secret {name}.{k} is a placeholder, not a credential", repr(v))

        workloads = []
        for kind in ("Deployment", "Job", "CronJob", "Service"):
            for o in objs.get(kind, []):
                if pod_spec(o) is not None:
                    workloads.append(o)
        for o in workloads:
            label = f"{d}: {o['kind']}/{o['metadata']['name']}"
            knative = o["apiVersion"].startswith("serving.knative.dev")
            spec = pod_spec(o)
            for c in spec["containers"]:
                check_container(report, code, label, c, spec, knative, configmaps, secrets, per_dir[d], partitions)

        # Knative path.
        services = {o["metadata"]["name"]: o for o in objs.get("Service", []) if o["apiVersion"].startswith("serving.")}
        sinks = by_name("KafkaSink")
        for src in objs.get("KafkaSource", []):
            check_kafka_source(report, code, d, src, services, sinks, base_config, brokers, per_dir, partitions)
        if d == "knative":
            report.check(len(objs.get("KafkaSource", [])) == len(code.functions), "knative: a KafkaSource per topic")
            crds = Schemas().crd
            for kind in ("Service", "KafkaSource", "KafkaSink"):
                for o in objs.get(kind, []):
                    gated = feature_gated_fields(o, crds.get((o["apiVersion"], kind), {}))
                    report.check(not gated, f"knative: {kind}/{o['metadata']['name']} uses no feature-flagged field",
                                 ", ".join(gated))
            for name, svc in services.items():
                t = svc["spec"]["template"]
                report.check(svc["metadata"].get("labels", {}).get("networking.knative.dev/visibility") == "cluster-local",
                             f"knative: Service/{name} is cluster-local")
                report.check(t["spec"].get("containerConcurrency", 0) > 0, f"knative: Service/{name} containerConcurrency")
                a = t["metadata"].get("annotations", {})
                report.check(a.get("autoscaling.knative.dev/min-scale") == "0", f"knative: Service/{name} scales to zero")
                report.check(int(a.get("autoscaling.knative.dev/max-scale", "0")) > 0, f"knative: Service/{name} max-scale")
                check_knative_probes(report, name, svc)

        # KEDA path.
        deployments = by_name("Deployment")
        for so in objs.get("ScaledObject", []):
            label = f"{d}: ScaledObject/{so['metadata']['name']}"
            spec = so["spec"]
            ref = spec["scaleTargetRef"]
            dep = deployments.get(ref["name"])
            report.check(ref.get("kind", "Deployment") == "Deployment" and ref.get("apiVersion", "apps/v1") == "apps/v1"
                         and dep is not None, f"{label}: target is a Deployment of this directory", str(ref))
            report.check(spec.get("minReplicaCount") == 0, f"{label}: minReplicaCount 0")
            report.check(1 <= spec.get("maxReplicaCount", 100) <= partitions,
                         f"{label}: maxReplicaCount <= {partitions} partitions", str(spec.get("maxReplicaCount")))
            if dep is None:
                continue
            c = dep["spec"]["template"]["spec"]["containers"][0]
            binary = os.path.basename(c["command"][0])
            fn = next(n for n, f in code.functions.items() if f["binary"] == binary)
            env = effective_env(c, per_dir[d])
            group = env.get("KAFKA_GROUP") or fn
            topic = env.get(code.functions[fn]["topic_var"]) or code.functions[fn]["topic_default"]
            kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
            report.check(len(kafka) == 1, f"{label}: one kafka trigger")
            for t in kafka:
                m = t["metadata"]
                report.check(m.get("consumerGroup") == group, f"{label}: consumerGroup is the Deployment's", m.get("consumerGroup"))
                report.check(m.get("topic") == topic, f"{label}: topic {topic}", m.get("topic"))
                report.check(m.get("bootstrapServers", "").split(",") == (env.get("KAFKA_BROKERS") or "").split(","),
                             f"{label}: bootstrapServers == the Deployment's KAFKA_BROKERS")
                report.check(m.get("offsetResetPolicy") == code.offset_reset,
                             f"{label}: offsetResetPolicy {code.offset_reset} like the consumer")
                report.check(int(m.get("lagThreshold", "0")) > 0 and int(m.get("activationLagThreshold", "-1")) >= 0,
                             f"{label}: lagThreshold and activationLagThreshold")
                # sasl/tls and the TriggerAuthentication: check_kafka_security.
        if d == "keda":
            report.check(sorted(so["spec"]["scaleTargetRef"]["name"] for so in objs.get("ScaledObject", []))
                         == sorted(deployments), "keda: a ScaledObject per Deployment")
            report.check(len(deployments) == len(code.functions), "keda: a consumer Deployment per function")

        check_network_policies(report, d, objs)
        check_network_egress(report, d, objs)
        check_disruption_budgets(report, d, objs)
        check_authentication(report, d, objs)
        check_listen_address(report, d, objs)
        check_kafka_security(report, d, objs)

    # The two directories share these files byte for byte, and the Secrets both have.
    for f in SHARED_FILES:
        report.check(read(f"knative/{f}") == read(f"keda/{f}"), f"knative/{f} == keda/{f}")
    secrets_of = {d: {o["metadata"]["name"]: o for o in per_dir[d].get("Secret", [])} for d in MANIFEST_DIRS}
    for name in sorted(set(secrets_of["knative"]) & set(secrets_of["keda"])):
        report.check(secrets_of["knative"][name] == secrets_of["keda"][name], f"Secret {name} is the same in knative/ and keda/")
    return report.finish("agreement")


def iso_seconds(d: str) -> float | None:
    """Seconds of an ISO 8601 duration of the form PT<n>S (what the manifests write)."""
    m = re.match(r"^PT(\d+(?:\.\d+)?)S$", d or "")
    return float(m.group(1)) if m else None


def retry_waits(retry: int, delay: float) -> list[float]:
    """The KafkaSource dispatcher's waits with backoffPolicy exponential: backoffDelay x 2^n
    before retry n, n from 1 (eventing-kafka-broker data-plane/dispatcher/.../impl/http/
    WebClientCloudEventSender.java, computeRetryPolicy: delay * Math.round(Math.pow(2, retryCount)),
    retryCount starting at 1)."""
    return [delay * 2 ** n for n in range(1, retry + 1)]


# Annotations a KafkaSource does not read (eventing-kafka-broker control-plane): delivery.order
# is read only for Broker Triggers (pkg/reconciler/trigger/trigger.go); activation-lag-threshold
# is copied to the ConsumerGroup and never reaches the KEDA trigger (pkg/autoscaler/keda/keda.go).
KAFKA_SOURCE_INERT_ANNOTATIONS = {
    "kafka.eventing.knative.dev/delivery.order": "read only for Broker Triggers; a KafkaSource takes spec.ordering",
    "autoscaling.eventing.knative.dev/activation-lag-threshold": "never reaches the generated KEDA trigger",
}


def check_kafka_source(report, code, d, src, services, sinks, base_config, brokers, per_dir, partitions) -> None:
    label = f"{d}: KafkaSource/{src['metadata']['name']}"
    spec, ann = src["spec"], src["metadata"].get("annotations", {})
    ref = spec["sink"]["ref"]
    svc = services.get(ref["name"])
    report.check(ref["kind"] == "Service" and ref["apiVersion"] == "serving.knative.dev/v1" and svc is not None,
                 f"{label}: sink is a Knative Service of this directory", str(ref))
    if svc is None:
        return
    binary = os.path.basename(svc["spec"]["template"]["spec"]["containers"][0]["command"][0])
    fn = next(n for n, f in code.functions.items() if f["binary"] == binary)
    topic = base_config.get(code.functions[fn]["topic_var"], code.functions[fn]["topic_default"])
    report.check(spec["topics"] == [topic], f"{label}: topic is {fn}'s ({topic})", str(spec["topics"]))
    report.check(spec["bootstrapServers"] == brokers, f"{label}: bootstrapServers == KAFKA_BROKERS")
    report.check(spec.get("consumerGroup") == consumer_group(code, per_dir, fn),
                 f"{label}: consumerGroup is {fn}'s consumer-mode group",
                 f"{spec.get('consumerGroup')} vs {consumer_group(code, per_dir, fn)}")
    # latest, not the consumers' earliest: only for latest does the Kafka controller commit the
    # end of every partition before placing consumers (control-plane/pkg/reconciler/
    # consumergroup/consumergroup.go, reconcileInitialOffset), and without committed offsets
    # the KEDA trigger it generates reads each partition as lag 1, so a fresh installation
    # never scales to zero (docs/DEPLOYMENT.md "Rehearsed", fresh installation).
    report.check(spec.get("initialOffset") == "latest",
                 f"{label}: initialOffset latest (the controller initialises the group's offsets)",
                 repr(spec.get("initialOffset")))
    # Unordered, written out (the default is ordered: control-plane/pkg/apis/sources/v1/
    # kafka_defaults.go). Ordered delivery keeps one event in flight per partition through all
    # its retries, so an event in backoff stops its partition; the effects are idempotent and
    # need no per-user order.
    report.check(spec.get("ordering") == "unordered",
                 f"{label}: spec.ordering unordered, explicitly (an event in backoff must not hold its partition)",
                 repr(spec.get("ordering")))
    for key, why in KAFKA_SOURCE_INERT_ANNOTATIONS.items():
        report.check(key not in ann, f"{label}: no {key} annotation ({why})")
    delivery = spec.get("delivery", {})
    delay = iso_seconds(delivery.get("backoffDelay", ""))
    retry = delivery.get("retry", 0)
    report.check(delivery.get("backoffPolicy") == "exponential" and isinstance(retry, int) and retry > 0
                 and delay is not None and delay > 0,
                 f"{label}: retries with exponential backoff", str(delivery))
    if delay is not None and isinstance(retry, int):
        waits = retry_waits(retry, delay)
        # A dead-lettered item is republished by the scheduler after SCHEDULER_REPUBLISH_AFTER:
        # the retries must be over well before (else the republished copy races the retries).
        report.check(sum(waits) < code.republish_after / 2,
                     f"{label}: retries ({'+'.join(f'{w:g}' for w in waits)} = {sum(waits):g} s) end long before "
                     f"the scheduler republishes ({code.republish_after:g} s)")
        # keda/'s consumer of the same function waits the same schedule (KAFKA_RETRY, KAFKA_BACKOFF_DELAY).
        for dep in per_dir["keda"].get("Deployment", []):
            c = dep["spec"]["template"]["spec"]["containers"][0]
            if os.path.basename(c["command"][0]) != binary:
                continue
            env = effective_env(c, per_dir["keda"])
            report.check(env.get("KAFKA_RETRY") == str(retry)
                         and seconds(env.get("KAFKA_BACKOFF_DELAY") or "0s") == delay,
                         f"{label}: keda/ Deployment/{dep['metadata']['name']} retries the same way "
                         f"(KAFKA_RETRY={retry}, KAFKA_BACKOFF_DELAY={delay:g}s)",
                         f"KAFKA_RETRY={env.get('KAFKA_RETRY')!r}, KAFKA_BACKOFF_DELAY={env.get('KAFKA_BACKOFF_DELAY')!r}")
    dls = delivery.get("deadLetterSink", {}).get("ref", {})
    sink = sinks.get(dls.get("name"))
    report.check(dls.get("kind") == "KafkaSink" and dls.get("apiVersion") == "eventing.knative.dev/v1alpha1"
                 and sink is not None, f"{label}: dead-letter sink is a KafkaSink of this directory", str(dls))
    if sink is not None:
        report.check(sink["spec"]["topic"] == topic + code.dlq_suffix,
                     f"{label}: dead letters go to {topic}{code.dlq_suffix}", sink["spec"]["topic"])
        report.check(sink["spec"]["bootstrapServers"] == brokers, f"KafkaSink/{dls['name']}: bootstrapServers")
    # The annotations the Kafka controller passes on to the ScaledObject it generates
    # (control-plane/pkg/autoscaler/keda/resources.go, keda.go).
    expect = {
        "autoscaling.eventing.knative.dev/class": lambda v: v == "keda.autoscaling.knative.dev",
        "autoscaling.eventing.knative.dev/min-scale": lambda v: v == "0",
        "autoscaling.eventing.knative.dev/max-scale": lambda v: 1 <= int(v) <= partitions,
        "autoscaling.eventing.knative.dev/lag-threshold": lambda v: int(v) > 0,
        "autoscaling.eventing.knative.dev/polling-interval": lambda v: int(v) > 0,
        "autoscaling.eventing.knative.dev/cooldown-period": lambda v: int(v) > 0,
    }
    for key, ok in expect.items():
        report.check(key in ann and ok(ann[key]), f"{label}: {key}", repr(ann.get(key)))


def plaintext_variant(objs: dict) -> dict:
    """A copy of one directory's objects with plaintext Kafka chosen, every place changed that
    docs/DEPLOYMENT.md "Kafka security" lists: the ConfigMap (protocol, no mechanism, no CA
    file, the plaintext port), our containers (no credentials, no CA volume), the KafkaSources
    (no net), the KafkaSinks (no auth), the ScaledObjects (sasl none, tls disable, no
    authenticationRef), the egress policy (the plaintext port). The checks must pass it."""
    objs = copy.deepcopy(objs)

    def plain(servers: str) -> str:
        return ",".join(b.rsplit(":", 1)[0] + ":9092" for b in servers.split(","))

    config = next(o for o in objs["ConfigMap"] if o["metadata"]["name"] == "todo-events-config")["data"]
    config["KAFKA_SECURITY_PROTOCOL"] = "plaintext"
    for k in ("KAFKA_SASL_MECHANISM", "KAFKA_SSL_CA_LOCATION"):
        config.pop(k, None)
    config["KAFKA_BROKERS"] = plain(config["KAFKA_BROKERS"])
    for o in pod_workloads(objs):
        spec = pod_spec(o)
        for c in spec["containers"]:
            c["env"] = [e for e in c.get("env", []) if e["name"] not in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")]
            c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != "kafka-ca"]
        spec["volumes"] = [v for v in spec.get("volumes", []) if v["name"] != "kafka-ca"]
    for src in objs.get("KafkaSource", []):
        src["spec"].pop("net", None)
        src["spec"]["bootstrapServers"] = [plain(b) for b in src["spec"]["bootstrapServers"]]
    for sink in objs.get("KafkaSink", []):
        sink["spec"].pop("auth", None)
        sink["spec"]["bootstrapServers"] = [plain(b) for b in sink["spec"]["bootstrapServers"]]
    for so in objs.get("ScaledObject", []):
        for t in so["spec"]["triggers"]:
            t.pop("authenticationRef", None)
            t["metadata"].update(sasl="none", tls="disable", bootstrapServers=plain(t["metadata"]["bootstrapServers"]))
    objs.pop("TriggerAuthentication", None)
    objs["Secret"] = [o for o in objs.get("Secret", []) if "protocol" not in o.get("stringData", {})]
    for np in objs.get("NetworkPolicy", []):
        for rule in np["spec"].get("egress", []):
            for port in rule.get("ports", []):
                if port.get("port") == 9093:
                    port["port"] = 9092
    return objs


# ---------------------------------------------------------------- authentication


# Knative Eventing's OIDC sender identity (docs/DEPLOYMENT.md "Authentication"). A source's
# dispatcher sends a token of the source's own service account, whose name knative/eventing
# pkg/auth/serviceaccount.go (GetOIDCServiceAccountNameForResource) makes as
# kmeta.ChildName(<name>, "-oidc-<group>-<kind>"), lower-cased; ChildName keeps parent + suffix
# when it fits in 63 characters and hashes it otherwise (knative.dev/pkg kmeta/names.go).
KMETA_LONGEST = 63
# What the functions' service account may do: read the issuer's discovery document and keys
# (kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
ISSUER_DISCOVERY_ROLE = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "system:service-account-issuer-discovery"}


def oidc_subject(namespace: str, name: str, api_version: str, kind: str) -> str | None:
    """The `sub` of the tokens a source's dispatcher sends; None when kmeta.ChildName would
    hash the name (longer than 63 characters with the suffix), which is not computed here."""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    child = name + f"-oidc-{group}-{kind}"
    if len(child) > KMETA_LONGEST:
        return None
    return f"system:serviceaccount:{namespace}:{child.lower()}"


def pod_workloads(objs: dict) -> list[dict]:
    return [o for kind in ("Deployment", "Job", "CronJob", "Service") for o in objs.get(kind, []) if pod_spec(o)]


def dir_namespace(d: str) -> str:
    return load_yaml_docs(ROOT / d / "kustomization.yaml")[0]["namespace"]


def check_authentication(report, d: str, objs: dict) -> None:
    """Who may post events: every Knative Service checks the OIDC token of the KafkaSource that
    feeds it (its audience is the source's spec.sink.audience, its only allowed subject the
    source's service account, computed from the source's name as Knative Eventing names it);
    the functions that check tokens mount their service account's token, bound to the issuer
    discovery role and nothing else; every other pod mounts no token."""
    ns = dir_namespace(d)
    accounts = {o["metadata"]["name"]: o for o in objs.get("ServiceAccount", [])}
    bindings = objs.get("ClusterRoleBinding", []) + objs.get("RoleBinding", [])
    for b in bindings:
        blabel = f"{d}: {b['kind']}/{b['metadata']['name']}"
        report.check(b.get("roleRef") == ISSUER_DISCOVERY_ROLE,
                     f"{blabel}: grants {ISSUER_DISCOVERY_ROLE['name']} and nothing else", str(b.get("roleRef")))
        for sub in b.get("subjects", []):
            report.check(sub.get("kind") == "ServiceAccount" and sub.get("namespace") == ns
                         and sub.get("name") in accounts,
                         f"{blabel}: binds a service account of this directory", str(sub))
    discovery_bound = {s["name"] for b in bindings if b.get("roleRef") == ISSUER_DISCOVERY_ROLE
                       for s in b.get("subjects", []) if s.get("kind") == "ServiceAccount" and s.get("namespace") == ns}
    for o in pod_workloads(objs):
        label = f"{d}: {o['kind']}/{o['metadata']['name']}"
        spec = pod_spec(o)
        env = effective_env(spec["containers"][0], objs)
        sa = spec.get("serviceAccountName", "default")
        report.check(sa in accounts, f"{label}: its service account {sa} is one of this directory")
        # The OIDC check reads the issuer's keys with the pod's own token unless told another file.
        needs_token = bool(env.get("OIDC_AUDIENCE")) and not env.get("OIDC_TOKEN_FILE")
        if needs_token:
            report.check(spec.get("automountServiceAccountToken") is True,
                         f"{label}: mounts its service account token (the OIDC check reads the issuer's keys with it)",
                         repr(spec.get("automountServiceAccountToken")))
            report.check(sa in discovery_bound,
                         f"{label}: its service account {sa} is bound to {ISSUER_DISCOVERY_ROLE['name']}")
        else:
            report.check(spec.get("automountServiceAccountToken") is False,
                         f"{label}: no service account token (it does not talk to the Kubernetes API)")
            report.check(sa not in discovery_bound, f"{label}: runs as a service account without API rights", sa)
    services = {o["metadata"]["name"]: o for o in objs.get("Service", []) if o["apiVersion"].startswith("serving.")}
    function_env = {name: effective_env(pod_spec(svc)["containers"][0], objs) for name, svc in services.items()}
    for name, env in function_env.items():
        report.check(bool(env.get("OIDC_AUDIENCE")) and bool(env.get("OIDC_ALLOWED_SUBJECTS")),
                     f"{d}: Service/{name} checks who posts events (OIDC_AUDIENCE, OIDC_ALLOWED_SUBJECTS)")
    audiences = [env.get("OIDC_AUDIENCE") for env in function_env.values()]
    report.check(len(audiences) == len(set(audiences)), f"{d}: each function has an audience of its own", str(audiences))
    for src in objs.get("KafkaSource", []):
        label = f"{d}: KafkaSource/{src['metadata']['name']}"
        sink = src["spec"].get("sink", {})
        env = function_env.get(sink.get("ref", {}).get("name"))
        if env is None:
            continue  # check_kafka_source says so
        fn = sink["ref"]["name"]
        audience = sink.get("audience")
        # Knative Serving publishes no audience for a Service (knative/serving
        # pkg/reconciler/route/route.go sets only the URL): without spec.sink.audience the
        # dispatcher sends no token (eventing-kafka-broker WebClientCloudEventSender.java).
        report.check(bool(audience), f"{label}: spec.sink.audience is set (without it the dispatcher sends no token)")
        report.check(audience == env.get("OIDC_AUDIENCE"), f"{label}: spec.sink.audience is {fn}'s OIDC_AUDIENCE",
                     f"{audience!r} vs {env.get('OIDC_AUDIENCE')!r}")
        subject = oidc_subject(src["metadata"].get("namespace", ns), src["metadata"]["name"], src["apiVersion"], src["kind"])
        report.check(subject is not None,
                     f"{label}: its service account's name is computable (name and suffix within {KMETA_LONGEST} "
                     "characters; longer ones kmeta.ChildName hashes, which this check does not: shorten the name)")
        if subject is not None:
            allowed = [x.strip() for x in env.get("OIDC_ALLOWED_SUBJECTS", "").split(",") if x.strip()]
            report.check(allowed == [subject], f"{label}: {fn}'s OIDC_ALLOWED_SUBJECTS is exactly the source's {subject}",
                         str(allowed))


def check_listen_address(report, d: str, objs: dict) -> None:
    """Every container that serves a port listens beyond loopback (the programs' default), or
    the kubelet's probes and Prometheus could not reach it."""
    for o in pod_workloads(objs):
        for c in pod_spec(o)["containers"]:
            if c.get("ports"):
                env = effective_env(c, objs)
                report.check(env.get("LISTEN_ADDRESS") in ("0.0.0.0", "::"),
                             f"{d}: {o['kind']}/{o['metadata']['name']} container {c['name']}: LISTEN_ADDRESS is every "
                             "address (its port is reached on the pod's IP; the default is loopback)",
                             repr(env.get("LISTEN_ADDRESS")))


# ---------------------------------------------------------------- Kafka security


# A Kafka identity's Secret, in the format the Kafka extension reads (eventing-kafka-broker
# control-plane/pkg/security/secret.go): settings and the user name, not credentials.
KAFKA_SECRET_SETTINGS = {"protocol", "sasl.mechanism", "user"}
# KEDA's kafka scaler's sasl values (kedacore/keda pkg/scalers/kafka_scaler.go).
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def kafka_client(c: dict) -> bool:
    """Whether this container talks to Kafka: the scheduler, and the functions' Kafka commands."""
    binary = os.path.basename((c.get("command") or [""])[0])
    return binary == "scheduler-cron" or (c.get("args") or [""])[0] in ("consume", "replay-dead-letters")


def secret_key_ref(c: dict, var: str) -> tuple[str, str] | None:
    for e in c.get("env", []):
        r = e.get("valueFrom", {}).get("secretKeyRef")
        if e["name"] == var and r:
            return r.get("name"), r.get("key")
    return None


def mounted_secret_file(c: dict, spec: dict, path: str) -> tuple[dict | None, tuple[str, str] | None, list[str]]:
    """The volume mount holding `path`, the (Secret, key) the file is, and every key that
    Secret volume projects."""
    for vm in c.get("volumeMounts", []):
        root = vm["mountPath"].rstrip("/") + "/"
        if not path.startswith(root):
            continue
        rel = path[len(root):]
        vol = next((v for v in spec.get("volumes", []) if v["name"] == vm["name"]), {})
        sec = vol.get("secret")
        if sec is None:
            return vm, None, []
        items = sec.get("items")
        keys = [i["key"] for i in items] if items else ["*"]
        key = next((i["key"] for i in items if i["path"] == rel), None) if items else rel
        return vm, ((sec.get("secretName"), key) if key else None), keys
    return None, None, []


def check_kafka_security(report, d: str, objs: dict) -> None:
    """Everything that talks to Kafka says what KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_MECHANISM
    say (config.yaml): our containers (credentials from their identity's Secret, the CA mounted
    read-only at KAFKA_SSL_CA_LOCATION from the same Secret, nothing else of it on disk), the
    identity Secrets (protocol, sasl.mechanism), the KafkaSources' spec.net, the KafkaSinks'
    spec.auth, the ScaledObjects' sasl/tls and their TriggerAuthentications (the consumer's own
    identity and CA). Each program has its own identity and only the scheduler's may publish."""
    config = next(o for o in objs["ConfigMap"] if o["metadata"]["name"] == "todo-events-config")["data"]
    proto = (config.get("KAFKA_SECURITY_PROTOCOL") or "plaintext").lower()
    mech = (config.get("KAFKA_SASL_MECHANISM") or "").upper()
    sasl, tls = proto.startswith("sasl"), proto in ("ssl", "sasl_ssl")
    secrets = {o["metadata"]["name"]: o.get("stringData", {}) for o in objs.get("Secret", [])}

    def has(ref) -> bool:
        return bool(ref) and ref[1] in secrets.get(ref[0], {})

    for name, data in secrets.items():
        if "protocol" not in data:
            continue
        label = f"{d}: Secret {name} (a Kafka identity)"
        report.check(data["protocol"] == proto.upper(), f"{label}: protocol is KAFKA_SECURITY_PROTOCOL ({proto.upper()})",
                     data["protocol"])
        if sasl:
            report.check(data.get("sasl.mechanism") == mech, f"{label}: sasl.mechanism is KAFKA_SASL_MECHANISM ({mech})",
                         repr(data.get("sasl.mechanism")))
            report.check(bool(data.get("user")) and "password" in data, f"{label}: a user and a password")
        if tls:
            report.check("ca.crt" in data, f"{label}: ca.crt (the CA of the brokers' certificates)")

    # identity (Secret name) -> who uses it
    users: dict[str, set[str]] = {}
    publishers: set[str] = set()
    deployment_identity: dict[str, tuple] = {}
    for o in pod_workloads(objs):
        spec = pod_spec(o)
        for c in spec["containers"]:
            if not kafka_client(c):
                continue
            label = f"{d}: {o['kind']}/{o['metadata']['name']} container {c['name']}"
            env = effective_env(c, objs)
            user, password = secret_key_ref(c, "KAFKA_SASL_USERNAME"), secret_key_ref(c, "KAFKA_SASL_PASSWORD")
            c_proto = (env.get("KAFKA_SECURITY_PROTOCOL") or "plaintext").lower()
            report.check(c_proto == proto and (env.get("KAFKA_SASL_MECHANISM") or "").upper() == mech,
                         f"{label}: the ConfigMap's KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_MECHANISM")
            identity = None
            if sasl:
                report.check(has(user) and has(password) and user[0] == password[0]
                             and user[1] == "user" and password[1] == "password",
                             f"{label}: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are user and password of one "
                             "identity's Secret (env valueFrom)", f"{user} {password}")
                identity = user[0] if user else None
            else:
                report.check(not env.get("KAFKA_SASL_USERNAME") and not env.get("KAFKA_SASL_PASSWORD"),
                             f"{label}: no SASL credentials with {proto}")
            ca = env.get("KAFKA_SSL_CA_LOCATION")
            ca_ref = None
            if tls:
                report.check(bool(ca), f"{label}: KAFKA_SSL_CA_LOCATION is set ({proto})")
                if ca:
                    vm, ca_ref, keys = mounted_secret_file(c, spec, ca)
                    report.check(vm is not None and vm.get("readOnly") is True,
                                 f"{label}: {ca} is on a read-only volume mount")
                    report.check(has(ca_ref), f"{label}: {ca} is a key of a Secret of this directory", str(ca_ref))
                    report.check(keys == [ca_ref[1] if ca_ref else None],
                                 f"{label}: the volume holds the CA alone (the password stays off the filesystem)",
                                 str(keys))
                    if identity and ca_ref:
                        report.check(ca_ref[0] == identity, f"{label}: the CA comes from its identity's Secret",
                                     f"{ca_ref[0]} vs {identity}")
            else:
                report.check(not ca, f"{label}: no KAFKA_SSL_CA_LOCATION with {proto} (no CA is mounted)")
            if identity:
                users.setdefault(identity, set()).add(label)
                if os.path.basename(c["command"][0]) == "scheduler-cron":
                    publishers.add(identity)
            if o["kind"] == "Deployment":
                deployment_identity[o["metadata"]["name"]] = (user, password, ca_ref)

    for src in objs.get("KafkaSource", []):
        label = f"{d}: KafkaSource/{src['metadata']['name']}"
        net = src["spec"].get("net", {})
        s_, t_ = net.get("sasl", {}), net.get("tls", {})
        report.check(bool(s_.get("enable")) == sasl and bool(t_.get("enable")) == tls,
                     f"{label}: net.sasl.enable / net.tls.enable say {proto}",
                     f"{s_.get('enable')}/{t_.get('enable')}")

        def ref(x):
            r = (x or {}).get("secretKeyRef")
            return (r.get("name"), r.get("key")) if r else None

        refs = {}
        if sasl:
            for f in ("user", "password", "type"):
                refs[f] = ref(s_.get(f))
                report.check(has(refs[f]), f"{label}: net.sasl.{f} is a key of a Secret of this directory", str(refs[f]))
            # The mechanism: without type the client says SASL/PLAIN (control-plane/pkg/security/
            # secret.go), and the KEDA trigger the controller makes reads it from the same key
            # (control-plane/pkg/autoscaler/keda/keda.go, retrieveSaslTypeIfPresent).
            t = refs["type"]
            report.check(has(t) and secrets[t[0]][t[1]] == mech, f"{label}: net.sasl.type's key holds {mech}",
                         repr(secrets.get(t[0], {}).get(t[1]) if t else None))
        if tls:
            refs["caCert"] = ref(t_.get("caCert"))
            report.check(has(refs["caCert"]), f"{label}: net.tls.caCert is a key of a Secret of this directory",
                         str(refs["caCert"]))
        names = {r[0] for r in refs.values() if r}
        report.check(len(names) <= 1, f"{label}: one identity for every credential", str(sorted(names)))
        for n in names:
            users.setdefault(n, set()).add(label)
    for sink in objs.get("KafkaSink", []):
        label = f"{d}: KafkaSink/{sink['metadata']['name']}"
        name = sink["spec"].get("auth", {}).get("secret", {}).get("ref", {}).get("name")
        if sasl or tls:
            report.check(name in secrets and "protocol" in secrets.get(name, {}),
                         f"{label}: spec.auth.secret.ref is a Kafka identity's Secret ({proto} needs it)", repr(name))
        else:
            report.check(name is None or secrets.get(name, {}).get("protocol") == "PLAINTEXT",
                         f"{label}: no credentials, or a PLAINTEXT Secret, with {proto}", repr(name))
        if name:
            users.setdefault(name, set()).add(label)
    auths = {o["metadata"]["name"]: o for o in objs.get("TriggerAuthentication", [])}
    for so in objs.get("ScaledObject", []):
        label = f"{d}: ScaledObject/{so['metadata']['name']}"
        user, password, ca_ref = deployment_identity.get(so["spec"]["scaleTargetRef"]["name"], (None, None, None))
        for t in [t for t in so["spec"].get("triggers", []) if t["type"] == "kafka"]:
            m = t["metadata"]
            want_sasl = KEDA_SASL.get(mech, "?") if sasl else "none"
            want_tls = "enable" if tls else "disable"
            report.check(m.get("sasl", "none") == want_sasl and m.get("tls", "disable") == want_tls,
                         f"{label}: sasl/tls match KAFKA_SECURITY_PROTOCOL={proto} ({want_sasl}/{want_tls})",
                         f"{m.get('sasl')}/{m.get('tls')}")
            auth = auths.get(t.get("authenticationRef", {}).get("name"))
            if not (sasl or tls) and "authenticationRef" not in t:
                continue  # plaintext: nothing to authenticate with
            report.check(auth is not None, f"{label}: authenticationRef is a TriggerAuthentication of this directory")
            if auth is None:
                continue
            params = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"].get("secretTargetRef", [])}
            for p_, r in params.items():
                report.check(has(r), f"{label}: TriggerAuthentication/{auth['metadata']['name']} {p_} is a key of a "
                                     "Secret of this directory", str(r))
            if sasl:
                report.check(params.get("username") == user and params.get("password") == password,
                             f"{label}: KEDA reads the lag as the consumer's own identity (the Secret keys of its "
                             "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)",
                             f"{params.get('username')} {params.get('password')} vs {user} {password}")
            if tls:
                report.check(params.get("ca") == ca_ref, f"{label}: KEDA trusts the CA its consumer mounts",
                             f"{params.get('ca')} vs {ca_ref}")
            for r in params.values():
                users.setdefault(r[0], set()).add(label)
    # Least privilege: only the scheduler's identity may publish, and nothing else uses it.
    for identity in sorted(publishers):
        others = sorted(u for u in users.get(identity, set()) if "CronJob/" not in u)
        report.check(not others, f"{d}: the scheduler's Kafka identity {identity} is its own (only it may publish)",
                     str(others))
    if sasl:
        report.check(bool(publishers), f"{d}: the scheduler has a Kafka identity")


def check_knative_probes(report, name, svc) -> None:
    """Knative runs the readiness probe in queue-proxy; with periodSeconds unset (0) it polls
    every 50 ms from the container's start until the probe passes (knative/serving
    pkg/queue/readiness/probe.go, shouldProbeAggressively), which is what makes a cold start
    fast. A periodSeconds turns that off; timeoutSeconds and failureThreshold are refused
    without it (pkg/apis/serving/k8s_validation.go, validateReadinessProbe)."""
    for c in svc["spec"]["template"]["spec"]["containers"]:
        r = c.get("readinessProbe", {})
        set_ = sorted(k for k in ("periodSeconds", "timeoutSeconds", "failureThreshold") if k in r)
        report.check(not set_, f"knative: Service/{name} readiness probe keeps Knative's start-up probing "
                               "(no periodSeconds, timeoutSeconds, failureThreshold)", ", ".join(set_))
        report.check("livenessProbe" in c, f"knative: Service/{name} has a liveness probe")


# Who calls a Knative Service's pods (knative/serving): the activator, on queue-proxy's port
# (pkg/networking/constants.go: BackendHTTPPort 8012; 8013 for h2c), and the autoscaler, which
# scrapes queue-proxy's metrics (AutoscalingQueueMetricsPort 9090;
# pkg/autoscaler/metrics/stats_scraper.go), both in knative-serving; the networking layer's
# gateway, on 8012, when the activator is not in the path. The KafkaSource dispatcher
# (knative-eventing) reaches the pods through those.
QUEUE_PROXY_PORT = 8012
AUTOSCALER_METRICS_PORT = 9090
KNATIVE_SERVING_NS = "knative-serving"
KNATIVE_EVENTING_NS = "knative-eventing"
NS_NAME_LABEL = "kubernetes.io/metadata.name"


def template_labels(o: dict) -> dict:
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return o["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        op, key, values = e["operator"], e["key"], e.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def ingress_peers(policies: list[dict], labels: dict) -> list[dict]:
    """What the NetworkPolicies selecting pods with these labels admit: one entry per source,
    {"namespace": name | "*" (any) | None (this namespace) | "ipBlock", "pods": the source
    pods' matchLabels or None (any pod), "ports": set of ports or {"*"}}."""
    out = []
    for np in policies:
        spec = np["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]) or not selects(spec.get("podSelector"), labels):
            continue
        for rule in spec.get("ingress", []):
            ports = {p.get("port", "*") for p in rule.get("ports", [])} or {"*"}
            for f in rule.get("from") or [{"namespaceSelector": {}}]:
                if "ipBlock" in f:
                    out.append({"namespace": "ipBlock", "pods": None, "ports": ports})
                    continue
                nss = f.get("namespaceSelector")
                ns = None if nss is None else nss.get("matchLabels", {}).get(NS_NAME_LABEL, "*")
                pods = f.get("podSelector")
                out.append({"namespace": ns, "pods": (pods or {}).get("matchLabels") or None, "ports": ports})
    return out


def check_network_policies(report, d: str, objs: dict) -> None:
    """The NetworkPolicies admit what really calls the functions, and nothing else."""
    policies = objs.get("NetworkPolicy", [])
    report.check(any(np["spec"].get("podSelector") in ({}, {"matchLabels": {}}) and not np["spec"].get("ingress")
                     and "Ingress" in np["spec"].get("policyTypes", [])
                     for np in policies),
                 f"{d}: a NetworkPolicy denies all ingress not admitted otherwise (podSelector {{}}, no rules)")
    for np in policies:
        for i, rule in enumerate(np["spec"].get("ingress", [])):
            report.check(bool(rule.get("from")) and bool(rule.get("ports")),
                         f"{d}: NetworkPolicy/{np['metadata']['name']} rule {i} names its sources and ports")
    functions = [o for o in objs.get("Service", []) if o["apiVersion"].startswith("serving.")] if d == "knative" \
        else objs.get("Deployment", [])
    for o in functions:
        label = f"{d}: {o['kind']}/{o['metadata']['name']}"
        peers = ingress_peers(policies, template_labels(o))
        ann = o["spec"]["template"]["metadata"].get("annotations", {})
        prom_port = int(ann.get("prometheus.io/port", "0"))
        prometheus = [p for p in peers if prom_port in p["ports"] and p["pods"]
                      and p["namespace"] not in (None, "*", KNATIVE_SERVING_NS, KNATIVE_EVENTING_NS)]
        report.check(bool(prometheus), f"{label}: Prometheus (a namespace and its pods) may scrape port {prom_port}",
                     str(peers))
        report.check(all(p in prometheus for p in peers if prom_port in p["ports"] or "*" in p["ports"]),
                     f"{label}: only Prometheus reaches the metrics port {prom_port} directly", str(peers))
        if d == "knative":
            def admits(ns, port):
                return any(p["namespace"] == ns and p["pods"] is None and (port in p["ports"]) for p in peers)
            report.check(admits(KNATIVE_SERVING_NS, QUEUE_PROXY_PORT),
                         f"{label}: the activator ({KNATIVE_SERVING_NS}) may reach queue-proxy on {QUEUE_PROXY_PORT}")
            report.check(admits(KNATIVE_SERVING_NS, AUTOSCALER_METRICS_PORT),
                         f"{label}: the autoscaler ({KNATIVE_SERVING_NS}) may scrape queue-proxy on "
                         f"{AUTOSCALER_METRICS_PORT}")
            gateways = [p for p in peers if p["namespace"] not in (None, "*", "ipBlock", KNATIVE_SERVING_NS,
                                                                      KNATIVE_EVENTING_NS)
                        and p not in prometheus and QUEUE_PROXY_PORT in p["ports"]]
            report.check(bool(gateways), f"{label}: the networking layer's gateway namespace may reach "
                                         f"queue-proxy on {QUEUE_PROXY_PORT}")
            report.check(admits(KNATIVE_EVENTING_NS, QUEUE_PROXY_PORT),
                         f"{label}: the KafkaSource dispatcher ({KNATIVE_EVENTING_NS}) may reach queue-proxy")
        else:
            report.check(all(p in prometheus and p["ports"] == {prom_port} for p in peers),
                         f"{label}: nothing but Prometheus on {prom_port} may connect (consumers are called by no one)",
                         str(peers))
    for o in objs.get("CronJob", []) + objs.get("Job", []):
        report.check(not ingress_peers(policies, template_labels(o)),
                     f"{d}: {o['kind']}/{o['metadata']['name']} admits no connection (it serves nothing)")


# Where the pods may connect to. Addresses that are no webhook's (special-purpose ranges, one
# address of each) and public ones, judged against the egress rules as a network plugin would.
EGRESS_PRIVATE = ("0.0.0.1", "10.0.0.1", "10.96.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254",
                  "172.16.0.1", "192.0.0.8", "192.168.0.1", "198.18.0.1", "224.0.0.1", "240.0.0.1",
                  "255.255.255.255", "::1", "::ffff:10.0.0.1", "::a00:1", "64:ff9b:1::a00:1", "100::1",
                  "2001::1", "2001:db8::1", "2002:a00:1::1", "3fff::1", "fc00::1", "fd00:ec2::254",
                  "fe80::1", "fec0::1", "ff02::1")
EGRESS_PUBLIC = ("1.1.1.1", "93.184.215.14", "2606:4700::1111", "2a00:1450:4001::1")
DNS_NS = "kube-system"
POSTGRES_PORT = 5432
OTLP_HTTP_PORT = 4318


def egress_peers(policies: list[dict], labels: dict) -> tuple[bool, list[dict]]:
    """Whether an Egress policy selects pods with these labels (then only what the rules admit
    may be reached), and what they admit: one entry per destination, {"namespace", "pods",
    "cidr", "except", "ports": set of (port, protocol) or {"*"}}."""
    restricted, out = False, []
    for np in policies:
        spec = np["spec"]
        if "Egress" not in spec.get("policyTypes", []) or not selects(spec.get("podSelector"), labels):
            continue
        restricted = True
        for rule in spec.get("egress", []):
            ports = {(p.get("port", "*"), p.get("protocol", "TCP")) for p in rule.get("ports", [])} or {"*"}
            for t in rule.get("to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}},
                                        {"namespaceSelector": {}}]:
                if "ipBlock" in t:
                    out.append({"namespace": "ipBlock", "pods": None, "cidr": t["ipBlock"]["cidr"],
                                "except": t["ipBlock"].get("except", []), "ports": ports})
                    continue
                nss = t.get("namespaceSelector")
                ns = None if nss is None else nss.get("matchLabels", {}).get(NS_NAME_LABEL, "*")
                out.append({"namespace": ns, "pods": (t.get("podSelector") or {}).get("matchLabels") or None,
                            "cidr": None, "except": [], "ports": ports})
    return restricted, out


def _port_ok(peer: dict, port, protocol: str) -> bool:
    return "*" in peer["ports"] or (port, protocol) in peer["ports"] or ("*", protocol) in peer["ports"]


def reaches_ip(peers: list[dict], ip: str, port, protocol: str = "TCP", wide_only: bool = False) -> bool:
    """An ipBlock rule admits ip:port (`wide_only`: only rules wider than one operator's range,
    IPv4 /16 or IPv6 /32, the internet rules)."""
    addr = ipaddress.ip_address(ip)
    for p in peers:
        if p["cidr"] is None or not _port_ok(p, port, protocol):
            continue
        net = ipaddress.ip_network(p["cidr"], strict=False)
        if net.version != addr.version or addr not in net:
            continue
        if wide_only and net.prefixlen > (16 if net.version == 4 else 32):
            continue
        if any(addr in ipaddress.ip_network(e, strict=False) for e in p["except"]):
            continue
        return True
    return False


def reaches_ns(peers: list[dict], ns: str, port, protocol: str = "TCP") -> bool:
    return any(p["namespace"] in (ns, "*") and _port_ok(p, port, protocol) for p in peers)


def check_network_egress(report, d: str, objs: dict) -> None:
    """The egress policies let every pod reach DNS, PostgreSQL, Kafka and the OTLP collector;
    notify also the SMTP relay and public addresses on 443, never a private, special-purpose or
    tunnel address; nothing else reaches the internet, and no rule is open-ended."""
    policies = objs.get("NetworkPolicy", [])
    config = next(o for o in objs["ConfigMap"] if o["metadata"]["name"] == "todo-events-config")["data"]
    broker_host, broker_port = config["KAFKA_BROKERS"].split(",")[0].rsplit(":", 1)
    broker_ns = broker_host.split(".")[1] if broker_host.count(".") >= 2 else None
    for np in policies:
        if "Egress" not in np["spec"].get("policyTypes", []):
            continue
        for i, rule in enumerate(np["spec"].get("egress", [])):
            report.check(bool(rule.get("to")) and bool(rule.get("ports")),
                         f"{d}: NetworkPolicy/{np['metadata']['name']} egress rule {i} names its destinations and ports")
    functions = [o for o in objs.get("Service", []) if o["apiVersion"].startswith("serving.")] if d == "knative" \
        else objs.get("Deployment", [])
    for o in functions + objs.get("CronJob", []) + objs.get("Job", []):
        labels = template_labels(o)
        label = f"{d}: {o['kind']}/{o['metadata']['name']}"
        restricted, peers = egress_peers(policies, labels)
        report.check(restricted, f"{label}: an Egress NetworkPolicy selects it (only what its rules admit is reached)")
        for proto in ("UDP", "TCP"):
            report.check(reaches_ns(peers, DNS_NS, 53, proto), f"{label}: may reach the cluster DNS ({DNS_NS}) on 53/{proto}",
                         str(peers))
        report.check(any(_port_ok(p, POSTGRES_PORT, "TCP") and p["namespace"] != "*" for p in peers),
                     f"{label}: may reach PostgreSQL on {POSTGRES_PORT}", str(peers))
        report.check(broker_ns is not None and reaches_ns(peers, broker_ns, int(broker_port)),
                     f"{label}: may reach the Kafka brokers of KAFKA_BROKERS (namespace {broker_ns}, port {broker_port})")
        report.check(any(_port_ok(p, OTLP_HTTP_PORT, "TCP") and p["namespace"] != "*" for p in peers),
                     f"{label}: may reach the OTLP collector on {OTLP_HTTP_PORT}")
        # A function that checks OIDC tokens reads the issuer's keys from the API server.
        if effective_env(pod_spec(o)["containers"][0], objs).get("OIDC_AUDIENCE"):
            api = [p for p in peers if p["namespace"] == "ipBlock" and not p["except"]
                   and (_port_ok(p, 443, "TCP") or _port_ok(p, 6443, "TCP"))
                   and ipaddress.ip_network(p["cidr"], strict=False).prefixlen >= (32 if ":" in p["cidr"] else 16)]
            report.check(bool(api), f"{label}: may reach the API server on 443 or 6443 (the OIDC issuer's keys) "
                                    "through an ipBlock of its own", str(peers))
        name = labels.get("app.kubernetes.io/name")
        if name == "notify":
            report.check(any(_port_ok(p, 587, "TCP") and p["cidr"] and p["namespace"] == "ipBlock" for p in peers),
                         f"{label}: may reach the SMTP relay on 587")
            for ip in EGRESS_PUBLIC:
                report.check(reaches_ip(peers, ip, 443), f"{label}: may reach a public webhook host {ip} on 443")
                report.check(not reaches_ip(peers, ip, 80) and not reaches_ip(peers, ip, 8080),
                             f"{label}: may not reach {ip} on ports other than 443 (80, 8080)")
            bad = [ip for ip in EGRESS_PRIVATE if reaches_ip(peers, ip, 443, wide_only=True)]
            report.check(not bad, f"{label}: the internet rules except every private, special-purpose and tunnel range "
                                  f"({len(EGRESS_PRIVATE)} addresses checked)", f"reachable: {bad}")
        else:
            wide = [ip for ip in EGRESS_PUBLIC if reaches_ip(peers, ip, 443)]
            report.check(not wide, f"{label}: reaches no public address (only notify goes to the internet)",
                         f"reachable: {wide}")


def check_disruption_budgets(report, d: str, objs: dict) -> None:
    """keda/: each consumer Deployment has a PodDisruptionBudget that lets drains evict one
    consumer at a time (maxUnavailable; minAvailable would block every drain at 1 replica)."""
    pdbs = objs.get("PodDisruptionBudget", [])
    deployments = objs.get("Deployment", [])
    for dep in deployments:
        mine = [b for b in pdbs if selects(b["spec"].get("selector"), template_labels(dep))]
        label = f"{d}: Deployment/{dep['metadata']['name']}"
        report.check(len(mine) == 1, f"{label}: one PodDisruptionBudget selects its pods",
                     str([b["metadata"]["name"] for b in mine]))
        for b in mine:
            report.check("minAvailable" not in b["spec"] and b["spec"].get("maxUnavailable") not in (None, 0, "0%"),
                         f"{label}: PodDisruptionBudget/{b['metadata']['name']} uses maxUnavailable > 0, no minAvailable",
                         str(b["spec"]))
    for b in pdbs:
        report.check(any(selects(b["spec"].get("selector"), template_labels(x)) for x in deployments),
                     f"{d}: PodDisruptionBudget/{b['metadata']['name']} selects a Deployment's pods")
    if d == "keda":
        report.check(bool(pdbs), "keda: PodDisruptionBudgets for the consumers")


def feature_gated_fields(value, schema: dict, path: str = "") -> list[str]:
    """Fields of a custom resource whose CRD schema says they are "behind a feature flag"
    (Knative Serving rejects them unless the cluster's config-features enables the flag)."""
    found = []
    if "feature flag" in schema.get("description", "") and path:
        found.append(path)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                found += feature_gated_fields(v, props[k], f"{path}.{k}" if path else k)
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            found += feature_gated_fields(v, schema["items"], f"{path}[{i}]")
    return found


def consumer_group(code: Code, per_dir: dict, fn: str) -> str:
    """The consumer group of `fn` in consumer mode: KAFKA_GROUP of its keda/ Deployment, else
    the code's default (the function's name)."""
    for dep in per_dir["keda"].get("Deployment", []):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        if os.path.basename(c["command"][0]) == code.functions[fn]["binary"]:
            return effective_env(c, per_dir["keda"]).get("KAFKA_GROUP") or fn
    return fn


def effective_env(c: dict, objs: dict) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom in order, then env."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objs.get("ConfigMap", [])}
    secrets = {o["metadata"]["name"]: o.get("stringData", {}) for o in objs.get("Secret", [])}
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps.get(source["configMapRef"]["name"], {}))
        if "secretRef" in source:
            env.update(secrets.get(source["secretRef"]["name"], {}))
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "configMapKeyRef" in vf:
                env[e["name"]] = maps.get(vf["configMapKeyRef"]["name"], {}).get(vf["configMapKeyRef"]["key"], "")
            elif "secretKeyRef" in vf:
                env[e["name"]] = secrets.get(vf["secretKeyRef"]["name"], {}).get(vf["secretKeyRef"]["key"], "")
    return env


def check_container(report, code, label, c, spec, knative, configmaps, secrets, objs, partitions) -> None:
    label = f"{label} container {c['name']}"
    command = c.get("command", [])
    report.check(len(command) == 1 and command[0].startswith("/usr/local/bin/"),
                 f"{label}: command is one of the image's binaries", str(command))
    binary = os.path.basename(command[0]) if command else ""
    report.check(binary in code.ws.binaries, f"{label}: {binary} is a workspace binary", binary)
    if binary not in code.ws.binaries:
        return
    args = c.get("args", [])
    check_args(report, code, label, binary, args)

    # Variables: set by the manifest, read by the code, and everything required is set.
    names = []
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            report.check(name in configmaps, f"{label}: ConfigMap {name} exists")
            names += list(configmaps.get(name, {}).get("data", {}))
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            report.check(name in secrets, f"{label}: Secret {name} exists (template)")
            names += list(secrets.get(name, {}).get("stringData", {}))
        report.check(not source.get("prefix") and not source.get("configMapRef", source.get("secretRef", {})).get("optional"),
                     f"{label}: envFrom without prefix, not optional")
    for e in c.get("env", []):
        names.append(e["name"])
        vf = e.get("valueFrom", {})
        for ref, pool, field in (("configMapKeyRef", configmaps, "data"), ("secretKeyRef", secrets, "stringData")):
            if ref in vf:
                r = vf[ref]
                report.check(r["key"] in pool.get(r["name"], {}).get(field, {}),
                             f"{label}: {e['name']} from {r['name']}.{r['key']}, which exists")
    report.check(len(names) == len(set(names)), f"{label}: no variable set twice", str(names))
    for n in names:
        report.check(n in code.reads[binary], f"{label}: {n} is read by {binary}",
                     f"{binary} reads {sorted(code.reads[binary])}")
    env = effective_env(c, objs)
    # Clusters run PostgreSQL (the SQLite default is for laptops).
    report.check(env.get("DATABASE_URL", "").startswith("postgres://"), f"{label}: DATABASE_URL is PostgreSQL")
    uses_kafka = binary == "scheduler-cron" or (args[:1] and args[0] in ("consume", "replay-dead-letters"))
    for var in sorted(code.kafka_required if uses_kafka else set()):
        report.check(bool(env.get(var)), f"{label}: required {var} is set")
    for var, cond_var, cond_value in sorted(code.conditional[binary]):
        if env.get(cond_var, "").lower() == cond_value.lower():
            report.check(bool(env.get(var)), f"{label}: {var} is set, as {cond_var}={cond_value} requires")
    if binary == "scheduler-cron":
        report.check(not any(k in env for k in ("SINK_REMINDERS", "SINK_TASK_EVENTS", "K_SINK")),
                     f"{label}: publishes to Kafka only (no SINK_*)")
    if binary in [f["binary"] for f in code.functions.values()]:
        for f in code.functions.values():
            if f["binary"] == binary and f["topic_var"] in env:
                report.check(re.match(r"^[A-Za-z0-9._-]+$", env[f["topic_var"]]) is not None, f"{label}: topic name")

    # Ports and probes of the functions.
    serves_http = binary in [f["binary"] for f in code.functions.values()] and (not args or args[0] == "consume")
    if serves_http:
        if knative:
            report.check("PORT" not in names, f"{label}: PORT is left to Knative (reserved)")
            port = c["ports"][0]["containerPort"]
            report.check(len(c.get("ports", [])) == 1 and c["ports"][0].get("name") in (None, "http1", "h2c"),
                         f"{label}: one port, named http1")
        else:
            port = int(env.get("PORT", code.default_port))
            report.check([p["containerPort"] for p in c.get("ports", [])] == [port],
                         f"{label}: containerPort is PORT ({port})")
        port_names = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe, path_word in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
            p = c.get(probe, {}).get("httpGet")
            report.check(p is not None, f"{label}: {probe} over HTTP")
            if p is None:
                continue
            report.check(p["path"] in code.health and path_word in p["path"], f"{label}: {probe} path {p['path']}")
            probe_port = port_names.get(p["port"], p["port"]) if isinstance(p["port"], str) else p["port"]
            report.check(probe_port == port, f"{label}: {probe} port is the served port", f"{p['port']} vs {port}")
    # Hardening, requests and limits.
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    report.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{label}: runAsNonRoot")
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    report.check(isinstance(uid, int) and uid > 0, f"{label}: runAsUser is a non-root uid", str(uid))
    report.check(sc.get("readOnlyRootFilesystem") is True, f"{label}: read-only root filesystem")
    report.check(sc.get("allowPrivilegeEscalation") is False, f"{label}: no privilege escalation")
    report.check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add"),
                 f"{label}: all capabilities dropped")
    report.check(sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") == "RuntimeDefault",
                 f"{label}: seccomp RuntimeDefault")
    res = c.get("resources", {})
    report.check({"cpu", "memory"} <= set(res.get("requests", {})) and {"cpu", "memory"} <= set(res.get("limits", {})),
                 f"{label}: cpu and memory requests and limits")


def check_args(report, code, label, binary, args) -> None:
    cli = code.commands[binary]
    rest = list(args)
    flags = dict(cli["flags"])
    if cli["subcommands"]:
        if rest and not rest[0].startswith("-"):
            sub = rest.pop(0)
            report.check(sub in cli["subcommands"], f"{label}: `{binary} {sub}` is a subcommand",
                         f"{binary} has {sorted(cli['subcommands'])}")
            flags.update(cli["subcommands"].get(sub, {}))
        else:
            report.check(not cli["subcommand_required"], f"{label}: {binary} runs without a subcommand")
    values = {}
    while rest:
        tok = rest.pop(0)
        name = tok.split("=", 1)[0]
        ok = name in flags
        report.check(ok, f"{label}: {name} is a flag of {binary}", f"{binary} has {sorted(flags)}")
        if ok and flags[name]:
            value = tok.split("=", 1)[1] if "=" in tok else (rest.pop(0) if rest else None)
            report.check(value is not None, f"{label}: {name} has a value")
            values[name] = value
    if binary == "scheduler-cron":
        report.check("--for" in values and "--every" in values, f"{label}: CronJob mode --for D --every E")
        if "--for" in values and "--every" in values:
            report.check(all(DURATION.match(values[k] or "") for k in ("--for", "--every")), f"{label}: durations")
            report.check(0 < seconds(values["--every"]) < seconds(values["--for"]),
                         f"{label}: polls more than once per run (0 < --every < --for)", str(values))


# ---------------------------------------------------------------- cron job timing


# The CronJob runs every minute (CRON_PERIOD) and each run polls for --for. A run needs
# CRON_START_MARGIN from its scheduled minute to its first poll (the controller creates the Job
# and the pod, the container starts and connects), so --for must outlast the period by that
# margin for the next run to be polling before this one stops: no second goes unpolled. Runs
# then overlap, which is safe (claims are exclusive: FOR UPDATE SKIP LOCKED and a lease) but
# needs concurrencyPolicy Allow (Forbid would hold the next run back until this one ends).
CRON_PERIOD = 60
CRON_START_MARGIN = 10


def cron_timing_rules(doc: dict) -> list[tuple[bool, str, str]]:
    """(ok, rule, detail) for the scheduler CronJob's timing."""
    s = doc["spec"]
    job = s["jobTemplate"]["spec"]
    c = job["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    run_for = seconds(args[args.index("--for") + 1]) if "--for" in args else 0
    env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
    delivery = seconds(env.get("KAFKA_DELIVERY_TIMEOUT", "30s"))
    deadline = job.get("activeDeadlineSeconds", 0)
    overlap = run_for > CRON_PERIOD
    policy = s.get("concurrencyPolicy", "Allow")
    return [
        (s["schedule"] == "* * * * *", "scheduler every minute", s["schedule"]),
        (run_for >= CRON_PERIOD + CRON_START_MARGIN,
         f"--for outlasts the {CRON_PERIOD} s period by the start margin ({CRON_START_MARGIN} s): "
         "the next run polls before this one stops", f"--for {run_for:g} s"),
        (run_for + delivery + CRON_START_MARGIN <= deadline,
         "activeDeadlineSeconds covers the start, --for and a last publish (KAFKA_DELIVERY_TIMEOUT)",
         f"{CRON_START_MARGIN} + {run_for:g} + {delivery:g} > {deadline}"),
        (deadline < 2 * CRON_PERIOD, "activeDeadlineSeconds under two periods: at most two runs at once",
         str(deadline)),
        (not overlap or policy == "Allow", "runs overlap, so concurrencyPolicy is Allow", policy),
        (0 < s.get("startingDeadlineSeconds", 0) < CRON_PERIOD, "startingDeadlineSeconds under a minute",
         str(s.get("startingDeadlineSeconds"))),
    ]


def cmd_cron_timing(report: Report) -> None:
    for d in MANIFEST_DIRS:
        for doc in load_yaml_docs(ROOT / d / "scheduler-cron.yaml"):
            for ok, rule, detail in cron_timing_rules(doc):
                report.check(ok, f"{d}: {rule}", detail)


# ---------------------------------------------------------------- image


def cmd_image() -> int:
    report = Report()
    code = Code()
    text = read("Dockerfile")
    lines = [ln for ln in re.sub(r"\\\n", " ", text).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    stages = [ln for ln in lines if ln.upper().startswith("FROM ")]
    report.check(len(stages) >= 2, "multi-stage Dockerfile", str(len(stages)))
    final = stages[-1].split()
    final_start = lines.index(stages[-1])
    runtime = lines[final_start:]
    report.check(final[1].startswith("gcr.io/distroless/cc-debian12:") and final[1].split("@")[0].endswith("nonroot"),
                 "runtime image is distroless cc-debian12, nonroot", final[1])
    for stage in stages:
        image = stage.split()[1]
        report.check(bool(re.fullmatch(r"[\w.\-/]+:[\w.\-]+@sha256:[0-9a-f]{64}", image)),
                     f"base image pinned by digest, its tag beside it: {image}")
    users = [ln.split()[1] for ln in runtime if ln.upper().startswith("USER ")]
    report.check(len(users) == 1 and re.match(r"^\d+(:\d+)?$", users[0]) and int(users[0].split(":")[0]) > 0,
                 "runtime USER is a numeric non-root uid", str(users))
    uid = int(users[0].split(":")[0]) if users else -1
    report.check(not any(ln.upper().startswith("RUN ") for ln in runtime), "nothing runs in the runtime stage (no shell)")
    rv = re.search(r"/rust:(\d+)\.(\d+)\.\d+-", stages[0])
    msrv = tuple(int(x) for x in code.ws.rust_version.split(".")[:2])
    report.check(rv is not None and (int(rv.group(1)), int(rv.group(2))) >= msrv,
                 f"builder Rust is at least the workspace's rust-version {code.ws.rust_version}")
    report.check("-bookworm" in stages[0], "builder is Debian 12 (bookworm), the glibc of cc-debian12")
    build = next((ln for ln in lines if "cargo build" in ln), "")
    report.check(all(f in build for f in ("--release", "--locked")), "cargo build --release --locked", build)
    report.check("--workspace" in build and "--bins" in build, "cargo build builds every binary", build)
    listed = re.search(r"for bin in ([\w\- ]+); do", build)
    binaries = set(listed.group(1).split()) if listed else set()
    report.check(binaries == set(code.ws.binaries), "the image holds exactly the workspace's binaries",
                 f"{sorted(binaries)} vs {sorted(code.ws.binaries)}")
    report.check(any(ln.startswith("COPY --from=build /out/bin/ /usr/local/bin/") for ln in runtime),
                 "binaries land in /usr/local/bin")
    copies = [ln.split()[1] for ln in lines[:final_start] if ln.upper().startswith("COPY ") and "--from" not in ln]
    # Everything the build reads is in the context and copied: the workspace members' sources
    # (with include_str!/migrate! data under them) and the lockfile.
    ignore = read(".dockerignore")
    allowed = set(re.findall(r"^!(\S+?)/?$", ignore, re.M))
    for member in ["Cargo.toml", "Cargo.lock", "src"] + sorted(
            {str(p["dir"].relative_to(ROOT)).split("/")[0] for p in code.ws.packages.values() if p["dir"] != ROOT}):
        report.check(member in allowed, f".dockerignore lets {member} in")
        report.check(member in copies or (member in ("Cargo.toml", "Cargo.lock") and any("Cargo.lock" in ln for ln in lines)),
                     f"Dockerfile copies {member}")
    report.check(re.search(r"^\*$", ignore, re.M) is not None, ".dockerignore starts from nothing (target/, .git/ out)")
    # Every file cargo read to build a binary (its dep-info: sources, templates, migrations)
    # is in the context, and none is a test's.
    for binary, inputs in sorted(code.build_inputs.items()):
        report.check(bool(inputs), f"cargo's dep-info of {binary} lists its inputs")
        for target in sorted(inputs or ()):
            if not target.is_relative_to(ROOT) or target.is_relative_to(ROOT / "target"):
                continue
            rel = target.relative_to(ROOT)
            report.check(rel.parts[0] in allowed or str(rel) in allowed,
                         f"{binary}: build input {rel} is in the context")
            report.check("tests" not in rel.parts, f"{binary}: build input {rel} is not a test's")
    # Manifests run what the image has, as the image's user.
    for label, doc in all_manifests():
        for c in containers(doc):
            report.check(c["image"].startswith("registry.example.com/todo-events:"), f"{label}: the todo-events image")
            cmd = c.get("command", [""])[0]
            report.check(cmd.startswith("/usr/local/bin/") and os.path.basename(cmd) in binaries,
                         f"{label}: {cmd} is in the image")
            sc, psc = c.get("securityContext", {}), (pod_spec(doc) or {}).get("securityContext", {})
            report.check(sc.get("runAsUser", psc.get("runAsUser")) == uid, f"{label}: runs as the image's user {uid}")
    return report.finish("image")


# ---------------------------------------------------------------- observability


# Metrics of other programs that dashboards and alerts may use, with where they come from.
EXTERNAL_METRICS = {
    # KEDA operator (keda.sh/docs/latest/operate/prometheus)
    "keda_scaler_metrics_value": {"namespace", "scaledObject", "scaler", "scalerIndex", "metric", "type", "triggerName"},
    "keda_scaler_active": {"namespace", "scaledObject", "scaler", "scalerIndex", "metric", "type", "triggerName"},
    "keda_scaler_detail_errors_total": {"namespace", "scaledObject", "scaler", "scalerIndex", "metric", "type",
                                        "triggerName"},
    # kafka_exporter (danielqsj/kafka_exporter)
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
    "kafka_topic_partition_current_offset": {"topic", "partition"},
    # kube-state-metrics
    "kube_cronjob_status_last_successful_time": {"namespace", "cronjob"},
    "kube_job_status_failed": {"namespace", "job_name", "reason"},
    "kube_job_owner": {"namespace", "job_name", "owner_kind", "owner_name", "owner_is_controller"},
    "kube_deployment_status_replicas": {"namespace", "deployment"},
}
COMMON_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "__name__", "le"}
# kube-state-metrics' custom resource configuration (the metrics for the KafkaSources' and
# ScaledObjects' conditions come from it, so the alerts' names and labels are read from it).
KSM_CONFIG = "deploy/kube-state-metrics/custom-resource-state.yaml"
KSM_CR_LABELS = {"customresource_group", "customresource_version", "customresource_kind"}
# Lateness targets for p99 (docs/DEPLOYMENT.md "Lateness"): a trickle, a burst, from zero.
LATENESS_TARGETS = (1.5, 10.0, 30.0)


def crd_path_schema(schema: dict, path: list[str]) -> dict | None:
    """The CRD schema node at a kube-state-metrics path (metadata.* is ObjectMeta, not in the CRD)."""
    node = schema
    for part in path:
        if node.get("type") == "array":
            node = node.get("items", {})
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def ksm_metrics(report: Report | None = None) -> dict[str, set[str]]:
    """metric name -> labels, as kube-state-metrics produces them from KSM_CONFIG; with a
    report, also checks the configuration against the CRDs (the paths exist, conditions are
    the status/type pairs of an array)."""
    cfg = load_yaml_docs(ROOT / KSM_CONFIG)[0]
    crds = Schemas().crd
    out: dict[str, set[str]] = {}
    ok = lambda cond, what, detail="": report.check(cond, what, detail) if report else None  # noqa: E731
    ok(cfg.get("kind") == "CustomResourceStateMetrics" and set(cfg) == {"kind", "spec"}, f"{KSM_CONFIG}: kind and spec")
    for res in cfg["spec"]["resources"]:
        gvk = res["groupVersionKind"]
        key = (f"{gvk['group']}/{gvk['version']}", gvk["kind"])
        schema = crds.get(key)
        ok(schema is not None, f"{KSM_CONFIG}: {key} is served by a CRD of tests/system/manifests/schemas", str(key))
        ok(set(res) <= {"groupVersionKind", "metricNamePrefix", "labelsFromPath", "commonLabels", "metrics", "errorLogV"},
           f"{KSM_CONFIG}: {gvk['kind']}: known fields", str(sorted(res)))
        common = set(res.get("labelsFromPath", {})) | set(res.get("commonLabels", {}))
        for lbl, path in res.get("labelsFromPath", {}).items():
            ok(path[0] == "metadata" or (schema is not None and crd_path_schema(schema, path) is not None),
               f"{KSM_CONFIG}: {gvk['kind']} label {lbl} from {path}")
        for m in res["metrics"]:
            each = m["each"]
            kind = each["type"]
            body = each.get(kind[0].lower() + kind[1:], {})
            ok(kind in ("Gauge", "StateSet", "Info") and m.get("help"), f"{KSM_CONFIG}: {m['name']}: type and help")
            node = crd_path_schema(schema or {}, body.get("path", []))
            ok(node is not None, f"{KSM_CONFIG}: {gvk['kind']} path {body.get('path')} exists in the CRD")
            item = (node or {}).get("items", node or {})
            for sub in [body.get("valueFrom", [])] + list(body.get("labelsFromPath", {}).values()):
                ok(not sub or crd_path_schema(item, sub) is not None,
                   f"{KSM_CONFIG}: {gvk['kind']} {body.get('path')} + {sub} exists in the CRD")
            name = f"{res.get('metricNamePrefix', 'kube_customresource')}_{m['name']}".lstrip("_")
            out[name] = common | set(m.get("labelsFromPath", {})) | set(m.get("commonLabels", {})) \
                | set(body.get("labelsFromPath", {})) | ({body["labelName"]} if "labelName" in body else set()) \
                | KSM_CR_LABELS
    return out


def histogram_buckets(code: Code) -> dict[str, list[float]]:
    """histogram metric (full name, without _bucket) -> its bucket bounds, as the functions serve them."""
    out: dict[str, list[float]] = {}
    for f in code.facts["functions"].values():
        out.update(prometheus_series(f["metrics"])[1])
    return out


def bucket_rules(buckets: dict[str, list[float]], rules: list[dict], timeouts: list[int]) -> list[tuple[bool, str, str]]:
    """The histograms resolve what the alerts and the targets look at: every
    histogram_quantile(...) > X threshold is a bucket bound of its histogram (else the alert
    fires on interpolation inside a wide bucket), the lateness targets are bounds, and
    handling time reaches the longest answer a function may take (Knative timeoutSeconds)."""
    out = []
    lat = buckets.get("todo_events_event_lateness_seconds", [])
    handling = buckets.get("todo_events_event_handling_seconds", [])
    for t in LATENESS_TARGETS:
        out.append((t in lat, f"lateness buckets have a bound at the {t:g} s target", str(lat)))
    out.append((bool(handling) and max(handling) >= max(timeouts or [0]),
                f"handling buckets reach the longest function timeout ({max(timeouts or [0])} s)", str(handling)))
    for r in rules:
        for hist, x in re.findall(r"histogram_quantile\([^,]+,.*?(\w+)_bucket.*?\)\)\)\s*>\s*([\d.]+)", r["expr"], re.S):
            out.append((float(x) in buckets.get(hist, []),
                        f"rule {r.get('alert')}: threshold {x} is a bucket bound of {hist}", str(buckets.get(hist))))
    return out


class Metrics:
    """The metrics the functions export (their /metrics after handling an event and rejecting
    one) and the label values the code can give them."""

    def __init__(self, code: Code) -> None:
        self.series: dict[str, set[str]] = {}
        for f in code.facts["functions"].values():
            for name, labels in prometheus_series(f["metrics"])[0].items():
                self.series.setdefault(name, set()).update(labels)
        outcomes = set(code.facts["outcomes"]) | {f["done"] for f in code.facts["functions"].values()}
        types = set(code.facts["event_types"])
        self.values = {"function": set(code.functions), "outcome": outcomes, "type": types | {"other"}}
        self.buckets = histogram_buckets(code)
        self.ksm = ksm_metrics()


def promql_selectors(expr: str):
    import promql_parser

    tree = promql_parser.parse(expr)
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(tree, visit)
    return found


def check_expr(report: Report, metrics: Metrics, what: str, expr: str) -> None:
    try:
        selectors = promql_selectors(expr)
    except Exception as e:  # the parser's own error type
        report.check(False, f"{what}: PromQL parses", f"{e}: {expr}")
        return
    report.check(bool(selectors), f"{what}: selects metrics")
    for s in selectors:
        name = s.name
        ours = name in metrics.series
        external = {**EXTERNAL_METRICS, **metrics.ksm}
        report.check(ours or name in external, f"{what}: metric {name} exists",
                     f"not exported by the code ({sorted(metrics.series)}) nor a known exporter's")
        labels = metrics.series.get(name) or external.get(name, set())
        for m in s.matchers.matchers:
            if m.name == "__name__":
                continue
            report.check(m.name in labels or m.name in COMMON_LABELS, f"{what}: {name} has label {m.name}")
            if ours and m.name == "le" and name.endswith("_bucket"):
                report.check(float(m.value) in metrics.buckets.get(name[: -len("_bucket")], []),
                             f"{what}: le={m.value!r} is a bucket bound of {name}")
            if ours and m.name in metrics.values:
                op = str(m.op)
                words = [m.value] if "Equal" in op and "Not" not in op else (
                    re.fullmatch(r"[\w.|-]+", m.value) and m.value.split("|") or [])
                for w in words:
                    if "__var_" in w:
                        continue
                    report.check(w in metrics.values[m.name], f"{what}: {m.name}={w!r} is a value the code emits",
                                 f"{sorted(metrics.values[m.name])}")


GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def grafana_expr(expr: str) -> str:
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    # Dashboard variables become a marker that value checks skip (the user picks the value).
    return re.sub(r"\$\{?(\w+)\}?", r"__var_\1__", expr)


RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


def cmd_observability() -> int:
    report = Report()
    code = Code()
    metrics = Metrics(code)
    print(f"metrics of the code: {sorted(metrics.series)}; label values: "
          + "; ".join(f"{k}={sorted(v)}" for k, v in metrics.values.items()))
    report.check({"todo_events_events_total", "todo_events_event_handling_seconds_bucket",
                  "todo_events_events_in_flight"} <= set(metrics.series), "the documented metrics are found in the code")

    dash_path = ROOT / "deploy/grafana/todo-events.json"
    dash = json.loads(dash_path.read_text())
    report.check(isinstance(dash.get("panels"), list) and dash.get("title") and dash.get("uid"),
                 "dashboard has a title, a uid and panels")
    report.check(isinstance(dash.get("schemaVersion"), int), "dashboard schemaVersion")
    ids = [p["id"] for p in dash["panels"]]
    report.check(len(ids) == len(set(ids)), "panel ids are unique")
    variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    exprs = 0
    for p in dash["panels"]:
        report.check({"x", "y", "w", "h"} <= set(p.get("gridPos", {})), f"panel {p.get('title')}: gridPos")
        if p.get("type") == "row":
            continue
        report.check(bool(p.get("targets")), f"panel {p.get('title')}: has queries")
        for t in p.get("targets", []):
            exprs += 1
            used = set(re.findall(r"\$\{?(\w+)\}?", t["expr"])) - {k[1:] for k in GRAFANA_VARS} - {"__rate_interval"}
            report.check(used <= variables, f"panel {p['title']}: variables {sorted(used)} are defined")
            check_expr(report, metrics, f"panel {p['title']!r}", grafana_expr(t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            inner = re.match(r"label_values\((.*),\s*\w+\)$", q)
            if inner:
                check_expr(report, metrics, f"variable {v['name']}", grafana_expr(inner.group(1)))
    report.check(exprs >= 8, "dashboard queries", str(exprs))

    rules = load_yaml_docs(ROOT / "deploy/prometheus/todo-events-alerts.yaml")[0]
    report.check(set(rules) == {"groups"}, "rules file: only groups")
    alerts = 0
    for g in rules["groups"]:
        report.check(set(g) <= {"name", "interval", "rules"} and isinstance(g.get("name"), str), f"group {g.get('name')}")
        for r in g["rules"]:
            alerts += 1
            name = r.get("alert", "?")
            report.check(set(r) <= RULE_KEYS and {"alert", "expr"} <= set(r), f"rule {name}: fields")
            report.check(DURATION.match(str(r.get("for", "0s"))) is not None, f"rule {name}: for is a duration")
            report.check(r.get("labels", {}).get("severity") in ("critical", "warning", "info"), f"rule {name}: severity")
            ann = r.get("annotations", {})
            report.check("summary" in ann and "description" in ann, f"rule {name}: summary and description")
            check_expr(report, metrics, f"rule {name}", r["expr"])
    names = " ".join(r.get("alert", "") for g in rules["groups"] for r in g["rules"]).lower()
    for topic in ("lag", "deadletter", "late", "fail", "notready", "absent"):
        report.check(topic in names, f"an alert about {topic}")
    report.check(alerts >= 6, "alert rules", str(alerts))
    all_rules = [r for g in rules["groups"] for r in g["rules"]]
    exprs_of = lambda pred: [r["expr"] for r in all_rules if pred(r)]  # noqa: E731
    # Lateness: measured (todo_events_event_lateness_seconds), on the dashboard and alerted at
    # the trickle target.
    lat = "todo_events_event_lateness_seconds_bucket"
    report.check(any(lat in t["expr"] for p in dash["panels"] for t in p.get("targets", [])),
                 "the dashboard shows lateness")
    report.check(any(re.search(lat + r".*>\s*" + re.escape(f"{LATENESS_TARGETS[0]:g}") + r"\s*$", e.strip(), re.S)
                     for e in exprs_of(lambda r: True)),
                 f"an alert on lateness p99 above {LATENESS_TARGETS[0]:g} s")
    # Not Ready: an alert on each custom resource condition metric kube-state-metrics produces.
    ksm = ksm_metrics(report)
    for name in sorted(ksm):
        report.check(any(name in e and "Ready" in e and "absent" not in e for e in exprs_of(lambda r: True)),
                     f"an alert when {name} says not Ready")
    # Missing metrics: absent() guards for every external source the other alerts rely on.
    for name in ["kafka_consumergroup_lag", "kube_cronjob_status_last_successful_time", "keda_scaler_active"] + sorted(ksm):
        report.check(any(re.search(r"absent\(\s*" + name + r"\b", e) for e in exprs_of(lambda r: True)),
                     f"an absent() alert for {name}")
    report.check(any("absent_over_time(todo_events_" in e for e in exprs_of(lambda r: True)),
                 "an alert when the functions' own metrics are missing")
    timeouts = [o["spec"]["template"]["spec"].get("timeoutSeconds", 300) for o in load_per_dir()["knative"].get("Service", [])]
    for ok, rule, detail in bucket_rules(metrics.buckets, all_rules, timeouts):
        report.check(ok, rule, detail)
    return report.finish("observability")


def cmd_derive() -> int:
    DERIVED_DIR.mkdir(parents=True, exist_ok=True)
    for file in DERIVED_SCHEMAS:
        out = derived_schema_from_kubernetes_validate(file)
        (DERIVED_DIR / file).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
        print("wrote", DERIVED_DIR / file)
    return 0


def main(argv: list[str]) -> int:
    commands = {
        "schemas": cmd_schemas,
        "negative": cmd_negative,
        "agreement": lambda: cmd_agreement_with_cron(),
        "image": cmd_image,
        "observability": cmd_observability,
        "derive-schemas": cmd_derive,
        "facts": cmd_facts,
    }
    if len(argv) != 2 or argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[argv[1]]()


def cmd_agreement_with_cron() -> int:
    status = cmd_agreement()
    report = Report()
    cmd_cron_timing(report)
    return status | report.finish("cron timing")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
