"""deploy/k8s: every manifest valid against the Kubernetes schema (kubernetes-validate, offline) and
KEDA's against its published CRD schema (checked in), the overlays rendered with `kubectl kustomize`,
and the properties an operator relies on held to the code they depend on.

No cluster and no image registry are reachable here: nothing is applied, pulled or run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from adapters.queue.group_commit import queue_keys
from adapters.queue.names import NAMESPACE, QUEUES
from cli import WORKER_SHUTDOWN_TIMEOUT_MS
from receiver.openapi import document, template_of
from tests.conftest import unavailable
from tests.unit.test_deploy_files import resolve
from workers.actors import ACTORS

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("example", "example-cpu-autoscaling")
# The oldest Kubernetes these manifests claim to support, and a recent one.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
}


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def unknown_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the schema does not declare: the API server would drop them silently (a typo'd field
    does nothing), so they are reported here as kubectl's strict field validation would."""
    if isinstance(value, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems = []
        for key, item in value.items():
            if key in schema["properties"]:
                problems += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
            elif "additionalProperties" not in schema:
                problems.append(f"{where}.{key}")
        return problems
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [p for k, v in value.items() for p in unknown_fields(v, schema["additionalProperties"], f"{where}.{k}")]
    if isinstance(value, list) and "items" in schema:
        return [p for n, item in enumerate(value) for p in unknown_fields(item, schema["items"], f"{where}[{n}]")]
    return []


def validate(doc: dict[str, Any]) -> None:
    crd = CRDS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        schema = json.loads((K8S / "schemas" / crd).read_text())
        jsonschema.validate(doc, schema)
        assert not unknown_fields(doc, schema), (
            f"{doc['kind']}: fields KEDA does not know: {unknown_fields(doc, schema)}"
        )
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl (renders the kustomize overlays)", FileNotFoundError("kubectl"))
    done = subprocess.run(  # noqa: S603
        [str(kubectl), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize(
    ("path", "doc"), manifests(), ids=lambda v: str(v.relative_to(K8S)) if isinstance(v, Path) else ""
)
def test_every_manifest_is_valid(path: Path, doc: dict[str, Any]) -> None:
    validate(doc)


def test_validation_would_catch_a_typo() -> None:
    deployment = next(doc for _, doc in manifests() if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    scaled = next(doc for _, doc in manifests() if doc["kind"] == "ScaledObject")
    typo = json.loads(json.dumps(scaled))
    typo["spec"]["minReplicas"] = 1
    with pytest.raises(AssertionError, match="minReplicas"):
        validate(typo)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_to_valid_manifests_in_their_namespace(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == "facesign"
    for deployment in by_kind(docs, "Deployment").values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/facesign-recovery:0.2.0"
        assert container["resources"]["requests"] and container["securityContext"]["readOnlyRootFilesystem"]
        resolve(container["args"])  # a command and options the CLI has
    autoscalers = [
        doc["spec"]["scaleTargetRef"]["name"]
        for doc in docs
        if doc["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
    ]
    assert autoscalers == ["facesign-recovery-worker"], "exactly one autoscaler, on the workers"


def test_receiver_is_ready_on_readyz_and_kept_available() -> None:
    docs = render("example")
    receiver = by_kind(docs, "Deployment")["facesign-recovery-receiver"]
    [container] = receiver["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    [budget] = by_kind(docs, "PodDisruptionBudget").values()
    assert (
        budget["spec"]["selector"]["matchLabels"].items() <= receiver["spec"]["template"]["metadata"]["labels"].items()
    )
    assert budget["spec"]["minAvailable"] >= 1 and receiver["spec"]["replicas"] > budget["spec"]["minAvailable"]


def test_workers_get_longer_to_stop_than_any_actor_may_run() -> None:
    worker = by_kind(render("example"), "Deployment")["facesign-recovery-worker"]
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    longest_actor = max(actor.options["time_limit"] for actor in ACTORS) / 1000
    assert grace > longest_actor and grace > WORKER_SHUTDOWN_TIMEOUT_MS / 1000


def test_one_reconciler_and_a_migration_job() -> None:
    docs = render("example")
    reconciler = by_kind(docs, "Deployment")["facesign-recovery-reconciler"]
    assert reconciler["spec"]["replicas"] == 1 and reconciler["spec"]["strategy"]["type"] == "Recreate"
    [job] = by_kind(docs, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_secrets_hold_the_keys_and_nothing_secret_is_in_the_configmap() -> None:
    docs = render("example")
    [secret] = by_kind(docs, "Secret").values()
    assert {"FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY", "DATABASE_URL", "REDIS_URL"} <= set(
        secret["stringData"]
    )
    [config] = by_kind(docs, "ConfigMap").values()
    assert not {key for key in config["data"] if any(word in key for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))}


def test_keda_scales_workers_on_dramatiq_s_queue_lists() -> None:
    [scaled] = by_kind(render("example"), "ScaledObject").values()
    lists = {trigger["metadata"]["listName"] for trigger in scaled["spec"]["triggers"] if trigger["type"] == "redis"}
    assert lists == {queue_keys(NAMESPACE, queue)[1] for queue in QUEUES}
    assert scaled["spec"]["minReplicaCount"] >= 1, "delayed retries need a running worker to move them back"


def test_metrics_stay_in_the_cluster() -> None:
    docs = render("example")
    [ingress] = by_kind(docs, "Ingress").values()
    paths = {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    routes = {template_of(route).split("{")[0].rstrip("/") or "/" for route in document()["paths"]}
    assert paths <= routes, f"ingress paths with no route: {paths - routes}"
    assert not paths & {"/metrics", "/healthz", "/readyz"}
    policies = by_kind(docs, "NetworkPolicy")
    metrics_policy = policies["facesign-recovery-metrics"]["spec"]["ingress"]
    assert [peer["namespaceSelector"]["matchLabels"] for rule in metrics_policy for peer in rule["from"]] == [
        {"kubernetes.io/metadata.name": "monitoring"}
    ]
    assert policies["facesign-recovery-default-deny"]["spec"]["policyTypes"] == ["Ingress"]
