"""Offline checks of deploy/k8s: it renders, it validates strictly, and it follows the platform's rules."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.crd_schemas import SCHEMAS
from tests.deploy.support import (
    CRD_KINDS,
    DOMAIN_SERVICES,
    HTTP_WORKLOADS,
    OVERLAYS,
    SCALED,
    WORKER,
    Doc,
    containers,
    kubernetes_validate_binary,
    load_docs,
    of_kind,
    pod_spec,
    run,
    secret_refs,
    selects,
    strict_errors,
)

RENDERS = ("base", *OVERLAYS)
#: The oldest Kubernetes the manifests claim to support, and the newest schemas the validator ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
WORKLOADS = (*HTTP_WORKLOADS, WORKER)
SECRETISH = re.compile(
    r"(PASSWORD|PASS|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIALS?)$|^(DATABASE_URL|AMQP_URL)$", re.IGNORECASE
)


def deployments(docs: list[Doc]) -> dict[str, Doc]:
    return of_kind(docs, "Deployment")


# ---- render + schema validation ------------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERS)
def test_kustomize_renders_the_expected_workloads(rendered: dict[str, list[Doc]], name: str) -> None:
    assert set(deployments(rendered[name])) == set(WORKLOADS)


@pytest.mark.parametrize("name", OVERLAYS)
def test_rendered_output_passes_kubernetes_validate_strict(
    rendered_files: dict[str, Path], rendered: dict[str, list[Doc]], name: str
) -> None:
    """The command CI would run: `kubectl kustomize ... | kubernetes-validate --strict` (newest schemas)."""
    result = run([kubernetes_validate_binary(), "--strict", "--quiet", str(rendered_files[name])])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output and "FATAL" not in output, output
    # Only the custom resources may be skipped for want of a schema; they are checked in test_custom_resources.
    skipped = re.findall(r"Couldn't find schema for kind (\S+) with api version (\S+)", output)
    assert {(api, kind) for kind, api in skipped} <= CRD_KINDS, output
    expected = sum(1 for doc in rendered[name] if (doc["apiVersion"], doc["kind"]) in CRD_KINDS)
    assert len(skipped) == expected, output


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", RENDERS)
def test_every_document_validates_strictly_on_supported_versions(
    rendered: dict[str, list[Doc]], name: str, version: str
) -> None:
    """The same strict schemas, from the oldest supported Kubernetes to the newest (no field newer than 1.29)."""
    for doc in rendered[name]:
        errors = strict_errors(doc, version)
        if errors is None:
            assert (doc["apiVersion"], doc["kind"]) in CRD_KINDS, f"no schema for {doc['kind']}"
            continue
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']} on {version}: {errors}"


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The control: the validator really refuses a misspelt field (so a green run means something)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n"
        "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec:\n      containers:\n        - name: x\n          image: x\n          readinessProbes: {}\n"
    )
    result = run([kubernetes_validate_binary(), "--strict", "--quiet", str(broken)])
    assert result.returncode != 0
    assert "readinessProbes" in result.stdout
    (doc,) = load_docs(broken.read_text())
    for version in K8S_VERSIONS:
        assert any("readinessProbes" in error for error in strict_errors(doc, version) or [])
    # And a field newer than the oldest supported version is caught there (pod-level resources, 1.32+).
    fixed = doc["spec"]["template"]["spec"]
    fixed["containers"][0].pop("readinessProbes")
    fixed["resources"] = {"limits": {"cpu": "1"}}
    assert strict_errors(doc, K8S_VERSIONS[0])


def test_custom_resources_match_their_schemas_and_the_references(rendered: dict[str, list[Doc]]) -> None:
    prod = rendered["prod"]
    customs = [doc for doc in prod if (doc["apiVersion"], doc["kind"]) in CRD_KINDS]
    assert customs, "prod must run PostgreSQL and RabbitMQ through their operators"
    for doc in customs:
        jsonschema.Draft202012Validator(SCHEMAS[(doc["apiVersion"], doc["kind"])]).validate(doc)
    assert not (set(of_kind(rendered["dev"], "Cluster")) | set(of_kind(rendered["dev"], "RabbitmqCluster")))

    clusters = of_kind(prod, "Cluster")
    assert set(clusters) == {f"{service}-db" for service in DOMAIN_SERVICES}
    for service in DOMAIN_SERVICES:
        spec = clusters[f"{service}-db"]["spec"]
        assert spec["instances"] >= 2, "a primary and at least one replica"
        assert spec["bootstrap"]["initdb"]["database"] == f"auction_{service}"  # DATABASE_PREFIX + service
        assert spec["inheritedMetadata"]["labels"] == {f"db.auction/{service}": "true"}

    (rabbit,) = of_kind(prod, "RabbitmqCluster").values()
    assert rabbit["metadata"]["name"] == "rabbitmq"  # Service "rabbitmq", Secret "rabbitmq-default-user"
    assert rabbit["spec"]["replicas"] >= 3 and rabbit["spec"]["replicas"] % 2 == 1, "quorum queues need a majority"
    assert re.search(r"^default_queue_type\s*=\s*quorum$", rabbit["spec"]["rabbitmq"]["additionalConfig"], re.M)
    # Its affinity is a core Affinity: validate it strictly inside a throwaway Pod.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "affinity-check"},
        "spec": {"containers": [{"name": "x", "image": "x"}], "affinity": rabbit["spec"]["affinity"]},
    }
    kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)


# ---- secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", "prod"])
def test_no_secret_values_in_base_or_prod(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    assert not of_kind(docs, "Secret"), "base and prod reference Secrets, they never define them"
    for config in of_kind(docs, "ConfigMap").values():
        for key in config.get("data", {}):
            assert not SECRETISH.search(key), f"{config['metadata']['name']}.{key} looks like a secret"
    for workload in deployments(docs).values():
        for container in containers(workload):
            for var in container.get("env", []):
                if not SECRETISH.search(var["name"]) or "valueFrom" in var:
                    continue
                # The only literal allowed: AMQP_URL composed from the Secret's values by Kubernetes.
                assert var["name"] == "AMQP_URL", f"{var['name']} has a literal value"
                assert var["value"] == "amqp://$(AMQP_USERNAME):$(AMQP_PASSWORD)@rabbitmq:5672/"


def test_prod_secrets_come_from_the_operators_or_are_documented(rendered: dict[str, list[Doc]]) -> None:
    prod = rendered["prod"]
    referenced = {ref[0] for workload in deployments(prod).values() for ref in secret_refs(workload)}
    from_operators = {f"{name}-app" for name in of_kind(prod, "Cluster")} | {
        f"{name}-default-user" for name in of_kind(prod, "RabbitmqCluster")
    }
    documented = {"users-jwt"}
    assert referenced - from_operators == documented
    readme = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()
    for secret in referenced:
        assert f"`{secret}`" in readme, f"deploy/README.md must say where {secret} comes from"
    # The JWT key is mandatory in prod (every users replica must sign with the same key).
    users = deployments(prod)["users"]
    assert ("users-jwt", "private-key.pem", False) in set(secret_refs(users))


def test_dev_secret_references_resolve(rendered: dict[str, list[Doc]]) -> None:
    dev = rendered["dev"]
    secrets = of_kind(dev, "Secret")
    workloads = list(deployments(dev).values()) + list(of_kind(dev, "StatefulSet").values())
    for workload in workloads:
        for name, key, optional in secret_refs(workload):
            if optional and name not in secrets:
                continue
            assert name in secrets, f"{workload['metadata']['name']} needs Secret {name}"
            assert key == "*" or key in secrets[name]["data"], f"{name} has no key {key}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_config_map_references_resolve(rendered: dict[str, list[Doc]], name: str) -> None:
    config_maps = of_kind(rendered[name], "ConfigMap")
    for workload in list(deployments(rendered[name]).values()) + list(of_kind(rendered[name], "StatefulSet").values()):
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps


# ---- workloads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_deployment_is_probed_bounded_and_locked_down(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    accounts = of_kind(docs, "ServiceAccount")
    for workload_name, workload in deployments(docs).items():
        spec = pod_spec(workload)
        where = f"{name}/{workload_name}"
        assert spec["serviceAccountName"] in accounts, where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["terminationGracePeriodSeconds"] >= 30, where
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in containers(workload):
            cname = f"{where}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, cname
            assert security["allowPrivilegeEscalation"] is False, cname
            assert security["runAsNonRoot"] is True, cname
            assert security["capabilities"]["drop"] == ["ALL"], cname
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{cname} {bound}"
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{cname}: /tmp must be a writable emptyDir"
        for container in containers(workload, init=False):
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            assert "/data" in mounts, f"{where}: DATA_DIR=/data must be writable"
            assert "livenessProbe" in container, where


@pytest.mark.parametrize("name", OVERLAYS)
def test_http_services_probe_healthz_and_readyz_and_drain(rendered: dict[str, list[Doc]], name: str) -> None:
    for workload_name in HTTP_WORKLOADS:
        (container,) = containers(deployments(rendered[name])[workload_name], init=False)
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["command"] == ["python", "-m", "services", "serve", workload_name]
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        grace = pod_spec(deployments(rendered[name])[workload_name])["terminationGracePeriodSeconds"]
        assert grace > int(sleep[1]) + 10, f"{workload_name}: the grace period must outlast preStop"
    gateway = next(containers(deployments(rendered[name])["gateway"], init=False))
    assert int(gateway["lifecycle"]["preStop"]["exec"]["command"][1]) >= 15, "the gateway drains its sockets"


@pytest.mark.parametrize("name", OVERLAYS)
def test_worker_runs_dramatiq_with_an_exec_liveness_probe(rendered: dict[str, list[Doc]], name: str) -> None:
    worker = deployments(rendered[name])[WORKER]
    (container,) = containers(worker, init=False)
    assert container["command"] == ["python", "-m", "services.bidding.worker"]
    assert "ports" not in container
    assert container["livenessProbe"]["exec"]["command"][:2] == ["python", "-c"]
    compile(container["livenessProbe"]["exec"]["command"][2], "liveness", "exec")
    assert WORKER not in of_kind(rendered[name], "Service")


@pytest.mark.parametrize("name", OVERLAYS)
def test_migrations_run_as_init_containers(rendered: dict[str, list[Doc]], name: str) -> None:
    expected = {service: service for service in DOMAIN_SERVICES} | {WORKER: "bidding"}
    for workload_name, workload in deployments(rendered[name]).items():
        inits = pod_spec(workload).get("initContainers", [])
        if workload_name not in expected:
            assert not inits, workload_name
            continue
        (init,) = inits
        assert init["command"] == ["python", "-m", "services", "migrate", expected[workload_name]]
        database = {var["name"]: var for var in init["env"]}["DATABASE_URL"]
        assert database["valueFrom"]["secretKeyRef"]["name"].startswith(f"{expected[workload_name]}-db-app")


@pytest.mark.parametrize("name", OVERLAYS)
def test_one_image_for_every_process(rendered: dict[str, list[Doc]], name: str) -> None:
    images = {c["image"] for workload in deployments(rendered[name]).values() for c in containers(workload)}
    assert len(images) == 1, images
    (image,) = images
    assert ":" in image and not image.endswith(":latest")
    if name == "prod":
        assert "/" in image, "prod pulls from a registry"


@pytest.mark.parametrize("name", OVERLAYS)
def test_services_select_their_pods(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    services = of_kind(docs, "Service")
    for workload_name in HTTP_WORKLOADS:
        workload = deployments(docs)[workload_name]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects({"matchLabels": services[workload_name]["spec"]["selector"]}, labels)
        assert services[workload_name]["spec"]["ports"][0]["port"] == 8000


@pytest.mark.parametrize("name", OVERLAYS)
def test_media_volumes_are_persistent_claims(rendered: dict[str, list[Doc]], name: str) -> None:
    claims = of_kind(rendered[name], "PersistentVolumeClaim")
    for service in ("users", "listings"):
        volumes = {v["name"]: v for v in pod_spec(deployments(rendered[name])[service])["volumes"]}
        claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
        access = claims[claim]["spec"]["accessModes"]
        assert access == (["ReadWriteMany"] if name == "prod" else ["ReadWriteOnce"]), (service, access)


# ---- scaling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_pdb_and_hpa_for_gateway_bidding_and_worker(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    budgets, autoscalers, workloads = (
        of_kind(docs, "PodDisruptionBudget"),
        of_kind(docs, "HorizontalPodAutoscaler"),
        deployments(docs),
    )
    assert set(budgets) == set(autoscalers) == set(SCALED)
    for workload_name in SCALED:
        labels = workloads[workload_name]["spec"]["template"]["metadata"]["labels"]
        assert selects(budgets[workload_name]["spec"]["selector"], labels)
        target = autoscalers[workload_name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", workload_name)
        assert "replicas" not in workloads[workload_name]["spec"], "the HPA owns the replica count"
        hpa = autoscalers[workload_name]["spec"]
        assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
        if name == "prod":
            assert hpa["minReplicas"] >= 2


# ---- network -------------------------------------------------------------------------------------------


def _pods(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Pod labels of every workload (Deployments and StatefulSets; CNPG/RabbitMQ pods as the operators label them)."""
    pods = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in of_kind(docs, kind).items():
            pods[name] = doc["spec"]["template"]["metadata"]["labels"]
    for name, cluster in of_kind(docs, "Cluster").items():
        pods[name] = {"cnpg.io/cluster": name, **cluster["spec"]["inheritedMetadata"]["labels"]}
    for name in of_kind(docs, "RabbitmqCluster"):
        pods[name] = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "rabbitmq"}
    return pods


def _policies_for(docs: list[Doc], labels: dict[str, str], policy_type: str) -> list[Doc]:
    return [
        policy
        for policy in of_kind(docs, "NetworkPolicy").values()
        if policy_type in policy["spec"]["policyTypes"] and selects(policy["spec"]["podSelector"], labels)
    ]


def _allowed_peers(docs: list[Doc], source: str, direction: str) -> set[tuple[str, int]]:
    """(pod, port) pairs a workload may reach (egress) or be reached from (ingress), inside the namespace."""
    pods = _pods(docs)
    policy_type, key, peers_key = (
        ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    )
    allowed = set()
    for policy in _policies_for(docs, pods[source], policy_type):
        for rule in policy["spec"].get(key, []):
            ports = [port["port"] for port in rule.get("ports", [])]
            for peer in rule.get(peers_key, []):
                if "podSelector" not in peer or "namespaceSelector" in peer:
                    continue
                for other, labels in pods.items():
                    if selects(peer["podSelector"], labels):
                        allowed |= {(other, port) for port in ports}
    return allowed


def _outside_sources(docs: list[Doc], target: str) -> set[str]:
    """Namespaces allowed to reach a workload, by their kubernetes.io/metadata.name label."""
    names = set()
    for policy in _policies_for(docs, _pods(docs)[target], "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer:
                    names.add(peer["namespaceSelector"].get("matchLabels", {}).get("kubernetes.io/metadata.name", "*"))
    return names


@pytest.mark.parametrize("name", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_dns(rendered: dict[str, list[Doc]], name: str) -> None:
    policies = of_kind(rendered[name], "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for workload_name in WORKLOADS:
        labels = _pods(rendered[name])[workload_name]
        assert _policies_for(rendered[name], labels, "Egress"), f"{workload_name} egress is not restricted"
        dns = [
            rule
            for policy in _policies_for(rendered[name], labels, "Egress")
            for rule in policy["spec"].get("egress", [])
            if {"port": 53, "protocol": "UDP"} in rule.get("ports", [])
        ]
        assert dns, f"{workload_name} cannot resolve names"


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_the_gateway_is_reachable_from_outside(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    assert _outside_sources(docs, "gateway") == {"ingress-nginx", "monitoring"}
    for workload_name in (*DOMAIN_SERVICES, WORKER):
        assert _outside_sources(docs, workload_name) <= {"monitoring"}, workload_name
    (ingress,) = of_kind(docs, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]
    }
    assert backends == {"gateway"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_who_talks_to_whom(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    pods = _pods(docs)
    broker = {pod for pod, labels in pods.items() if labels.get("app.kubernetes.io/name") == "rabbitmq"}
    assert len(broker) == 1
    databases = {
        service: {pod for pod, labels in pods.items() if labels.get(f"db.auction/{service}") == "true"}
        for service in DOMAIN_SERVICES
    }
    assert all(databases.values()), databases
    for service in (*DOMAIN_SERVICES, WORKER):
        own = "bidding" if service == WORKER else service
        egress = _allowed_peers(docs, service, "egress")
        reachable_databases = {pod for pod, port in egress if port == 5432}
        assert reachable_databases == databases[own], f"{service} must reach its own database only"
        assert {(pod, 5672) for pod in broker} <= egress, f"{service} must reach RabbitMQ"
        http = {pod for pod, port in egress if port == 8000}
        assert http == (set() if service in ("users", WORKER) else {"users"}), f"{service}: {http}"
    gateway = _allowed_peers(docs, "gateway", "egress")
    assert {pod for pod, port in gateway if port == 8000} == set(DOMAIN_SERVICES)
    assert not {pod for pod, port in gateway if port == 5432}, "the gateway has no database"
    # Ingress: the services only from the gateway (users also from the services that need its JWKS).
    for service in DOMAIN_SERVICES:
        sources = {pod for pod, port in _allowed_peers(docs, service, "ingress") if port == 8000}
        assert sources == ({"gateway", "listings", "bidding", "chat"} if service == "users" else {"gateway"})
    assert not _allowed_peers(docs, WORKER, "ingress")


@pytest.mark.parametrize("name", OVERLAYS)
def test_ingress_is_websocket_friendly_and_not_sticky(rendered: dict[str, list[Doc]], name: str) -> None:
    (ingress,) = of_kind(rendered[name], "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert not any("affinity" in key or "session-cookie" in key for key in annotations), "no sticky sessions"
    if name == "prod":
        assert ingress["spec"]["tls"]
    origins = of_kind(rendered[name], "ConfigMap")["gateway-config"]["data"]["GATEWAY_ALLOWED_ORIGINS"]
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert all(any(host in origin for origin in origins.split(",")) for host in hosts), (hosts, origins)


def test_dev_runs_plain_statefulsets_and_prod_the_operators(rendered: dict[str, list[Doc]]) -> None:
    assert set(of_kind(rendered["dev"], "StatefulSet")) == {"postgres", "rabbitmq"}
    assert not of_kind(rendered["prod"], "StatefulSet")
    for doc in rendered["dev"] + rendered["prod"]:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] in ("auction-dev", "auction")
