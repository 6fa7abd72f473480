"""Small strict JSON Schemas for the two custom resources of the prod overlay.

kubernetes-validate ships schemas for the core API only, so it can only warn that it skipped a
CloudNativePG ``Cluster`` or a ``RabbitmqCluster``. These schemas cover the fields the manifests use
(names and types as in the operators' CRDs: cloudnative-pg api/v1 ClusterSpec, rabbitmq cluster-operator
api/v1beta1 RabbitmqClusterSpec) and refuse any other field, so a typo or a field in the wrong place fails
here instead of being silently dropped by the API server.
"""

from __future__ import annotations

from typing import Any

DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"cpu": QUANTITY, "memory": QUANTITY},
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"cpu": QUANTITY, "memory": QUANTITY},
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": DNS_LABEL, "namespace": DNS_LABEL, "labels": STRING_MAP, "annotations": STRING_MAP},
}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
    }


CNPG_CLUSTER = _resource(
    "postgresql.cnpg.io/v1",
    "Cluster",
    {
        "type": "object",
        # "instances" is required by the CRD; storage and bootstrap by this project (the database must exist).
        "required": ["instances", "storage", "bootstrap"],
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string"},
            "instances": {"type": "integer", "minimum": 1},
            "imageName": {"type": "string", "minLength": 1},
            "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
            "primaryUpdateMethod": {"enum": ["switchover", "restart"]},
            "enableSuperuserAccess": {"type": "boolean"},
            "bootstrap": {
                "type": "object",
                "required": ["initdb"],
                "additionalProperties": False,
                "properties": {
                    "initdb": {
                        "type": "object",
                        "required": ["database", "owner"],
                        "additionalProperties": False,
                        "properties": {
                            "database": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                            "owner": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                        },
                    }
                },
            },
            "inheritedMetadata": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"labels": STRING_MAP, "annotations": STRING_MAP},
            },
            "postgresql": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"parameters": STRING_MAP},
            },
            "storage": {
                "type": "object",
                "required": ["size"],
                "additionalProperties": False,
                "properties": {"size": QUANTITY, "storageClass": {"type": "string"}},
            },
            "resources": RESOURCES,
            "affinity": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enablePodAntiAffinity": {"type": "boolean"},
                    "topologyKey": {"type": "string"},
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                    "nodeSelector": STRING_MAP,
                },
            },
        },
    },
)

RABBITMQ_CLUSTER = _resource(
    "rabbitmq.com/v1beta1",
    "RabbitmqCluster",
    {
        "type": "object",
        "required": ["replicas"],
        "additionalProperties": False,
        "properties": {
            "replicas": {"type": "integer", "minimum": 1},
            "image": {"type": "string", "minLength": 1},
            "resources": RESOURCES,
            "persistence": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"storage": QUANTITY, "storageClassName": {"type": "string"}},
            },
            "rabbitmq": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "additionalConfig": {"type": "string"},
                    "advancedConfig": {"type": "string"},
                    "envConfig": {"type": "string"},
                    "additionalPlugins": {"type": "array", "items": {"type": "string"}},
                },
            },
            # A core Affinity: kubernetes-validate checks its shape separately (see test_k8s.py).
            "affinity": {"type": "object"},
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        },
    },
)

SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): CNPG_CLUSTER,
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): RABBITMQ_CLUSTER,
}
