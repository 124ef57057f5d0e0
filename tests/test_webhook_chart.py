"""The admission webhook's Helm chart, deploy/helm/promoter-webhook.

Rendered by Helm's own engine (Helm's Go SDK through helm-python-sdk) and linted with
``helm lint --strict``. Every built-in object is validated against the schemas of a current
Kubernetes in strict mode; the cert-manager objects against cert-manager's own Certificate and
Issuer schemas (tests/data, from its CRDs), made strict the same way (unknown fields refused); the
webhook's matchConditions are evaluated by CEL's own implementation on requests as the API server
builds them; the values.yaml recipe for running without cert-manager is run with openssl and
kubectl, and the Deployment's own command is run with what it mounts.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml
from cel_expr_python import cel
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from devtools.registry import RegistryProcess
from devtools.webhook import deployment, pod, review
from tests.test_packaging import check_hardened, helm_lint_problems, load, only, validate

from promoter.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "promoter-webhook"
RELEASE = "promoter-webhook"  # contains the chart's name: the full name is the release's
NAMESPACE = "promoter"
SERVICE = RELEASE
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
STAGING = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
CONFIG = (
    "environments:\n"
    f"  staging:\n    overlay: infra/overlays/staging\n    registry: {STAGING}\n"
    f"  production:\n    overlay: infra/overlays/production\n    registry: {PROD}\n"
    "    promotesFrom: staging\n"
    "    admission:\n      mode: guard\n      deadlineSeconds: 8\n"
)
#: What every render needs: the environment, promoter.yaml and the webhook's image.
VALUES: dict[str, Any] = {
    "environment": "production",
    "config": CONFIG,
    "image": {"repository": "registry.example.com/tools/promoter", "tag": "0.1.0"},
}
WORKLOAD_RESOURCES = {
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
#: The contract's command as the chart passes it (the tests also parse it with promoter's own
#: parser, ``promoter.cli.main.build_parser``, and run it).
SERVE_ARGS = [
    "webhook",
    "serve",
    "--environment",
    "production",
    "--config",
    "/etc/promoter/promoter.yaml",
    "--tls-cert",
    "/tls/tls.crt",
    "--tls-key",
    "/tls/tls.key",
    "--listen",
    ":8443",
    "--metrics-listen",
    ":9090",
    "--shutdown-grace",
    "10",
]
PROMOTER = Path(sys.executable).parent / "promoter"


def values(**overrides: Any) -> dict[str, Any]:
    """VALUES with top-level keys replaced (deep copies: a render never shares a test's dicts)."""
    return copy.deepcopy({**VALUES, **overrides})


def render(chart_values: dict[str, Any], *, name: str = RELEASE) -> list[dict[str, Any]]:
    """``helm template NAME CHART -n promoter`` through Helm's Go SDK."""
    with helm.Chart.load(str(CHART)) as loaded:
        rendered = loaded.render(chart_values, name=name, namespace=NAMESPACE)
    return [d for text in rendered.values() for d in load(text)]


def render_error(chart_values: dict[str, Any]) -> str:
    """The message of a render that fails."""
    with pytest.raises(helm.HelmError) as caught:
        render(chart_values)
    return str(caught.value)


# -- cert-manager's schemas ----------------------------------------------------------------------

#: cert-manager.io/v1 Certificate and Issuer as JSON Schema, derived from cert-manager's CRDs (the
#: file's $comment says how, from which version, and how to make it for another).
CERT_MANAGER_SCHEMAS = ROOT / "tests" / "data" / "cert-manager-v1.17.1.schema.json"


def strict(node: Any) -> Any:
    """A JSON schema that refuses what kubectl's strict field validation refuses: unknown fields
    of every object with declared properties, and null where the CRD has no null."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    alternatives = [a for a in node.get("anyOf", []) if a != {"type": "null"}]
    if "anyOf" in node:
        del node["anyOf"]
        if len(alternatives) == 1:
            node.update(alternatives[0])
        else:
            node["anyOf"] = alternatives
    node.pop("default", None)
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def cert_manager_validator(kind: str) -> jsonschema.Draft202012Validator:
    """A strict validator for a cert-manager.io/v1 kind."""
    schema = strict(json.loads(CERT_MANAGER_SCHEMAS.read_text())[kind])
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_all(documents: list[dict[str, Any]]) -> None:
    """Built-in objects against Kubernetes' schemas, cert-manager's against cert-manager's."""
    builtin = [d for d in documents if not d["apiVersion"].startswith("cert-manager.io/")]
    validate(builtin)
    for document in documents:
        if document["apiVersion"].startswith("cert-manager.io/"):
            assert document["apiVersion"] == "cert-manager.io/v1"
            cert_manager_validator(document["kind"]).validate(document)
        assert len(document["metadata"]["name"]) <= 63


def test_cert_manager_schemas_refuse_unknown_fields_bad_values_and_missing_ones() -> None:
    """The cert-manager validator is strict: a misspelt field, a value outside an enum and a
    missing required field each fail, and a plain Certificate passes."""
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "a", "labels": {"a": "b"}},
        "spec": {
            "secretName": "a",
            "dnsNames": ["a.b.svc"],
            "issuerRef": {"name": "ca", "kind": "Issuer"},
            "privateKey": {"algorithm": "ECDSA", "size": 256},
        },
    }
    validator = cert_manager_validator("Certificate")
    validator.validate(certificate)
    wrong: list[tuple[str, Any]] = [
        ("dnsName", ["a.b.svc"]),
        ("privateKey", {"algorithm": "EC"}),
        ("issuerRef", {"kind": "Issuer"}),
        ("duration", None),
    ]
    for key, value in wrong:
        spec = {**certificate["spec"], key: value}
        assert not validator.is_valid({**certificate, "spec": spec}), key
    issuer = {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "a"}}
    assert cert_manager_validator("Issuer").is_valid({**issuer, "spec": {"selfSigned": {}}})
    assert not cert_manager_validator("Issuer").is_valid({**issuer, "spec": {"selfsigned": {}}})
    comment = json.loads(CERT_MANAGER_SCHEMAS.read_text())["$comment"]
    assert "generated from the CRDs of cert-manager v1.17.1" in comment


# -- rendering and validation --------------------------------------------------------------------


def webhook_configuration(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration."""
    return only(documents, "ValidatingWebhookConfiguration")


def webhooks(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The webhook configuration's webhooks by name."""
    return {hook["name"]: hook for hook in webhook_configuration(documents)["webhooks"]}


def pod_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment's Pod spec."""
    spec: dict[str, Any] = only(documents, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook's one container."""
    (found,) = pod_spec(documents)["containers"]
    assert isinstance(found, dict)
    return found


def tls_secret_name(documents: list[dict[str, Any]]) -> str:
    """The Secret the Deployment mounts at /tls."""
    volumes = {volume["name"]: volume for volume in pod_spec(documents)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container(documents)["volumeMounts"]}
    name: str = volumes[mounts["/tls"]["name"]]["secret"]["secretName"]
    return name


def test_chart_renders_valid_objects_with_cert_managers_own_ca() -> None:
    """By default the chart renders a schema-valid Deployment, Service, ServiceAccount,
    PodDisruptionBudget, ConfigMap and webhook configuration, plus cert-manager's self-signed CA
    chain and a serving Certificate for the Service's names, whose CA cert-manager injects."""
    documents = render(values())
    validate_all(documents)
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == sorted(
        [
            "Certificate",
            "Certificate",
            "ConfigMap",
            "Deployment",
            "Issuer",
            "Issuer",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    certificates = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Certificate"}
    issuers = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Issuer"}
    serving = certificates[f"{RELEASE}-tls"]
    ca = certificates[f"{RELEASE}-ca"]
    # self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate
    assert issuers[ca["spec"]["issuerRef"]["name"]]["spec"] == {"selfSigned": {}}
    assert ca["spec"]["isCA"] is True
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    assert serving["spec"]["dnsNames"] == [
        f"{SERVICE}.{NAMESPACE}.svc",
        f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
    ]
    assert "server auth" in serving["spec"]["usages"]
    assert serving["spec"]["secretName"] == tls_secret_name(documents)

    configuration = webhook_configuration(documents)
    annotations = configuration["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{RELEASE}-tls"
    service = only(documents, "Service")
    https = next(port for port in service["spec"]["ports"] if port["name"] == "https")
    assert https["port"] == 443
    assert https["targetPort"] == "https"
    for hook in configuration["webhooks"]:
        assert hook["clientConfig"] == {
            "service": {
                "name": service["metadata"]["name"],
                "namespace": NAMESPACE,
                "path": "/validate",
                "port": 443,
            }
        }
    # The Service selects the Deployment's Pods, as does the budget.
    labels = only(documents, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    budget = only(documents, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_chart_issues_the_serving_certificate_from_an_existing_issuer() -> None:
    """certManager.issuerRef names an Issuer or ClusterIssuer of the user's: the chart renders
    only the serving Certificate, issued by it, and no CA of its own."""
    documents = render(
        values(certManager={"issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}})
    )
    validate_all(documents)
    assert not [d for d in documents if d["kind"] == "Issuer"]
    certificate = only(documents, "Certificate")
    assert certificate["spec"]["issuerRef"] == {
        "name": "internal-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    annotations = webhook_configuration(documents)["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )


def recipe_commands() -> list[str]:
    """values.yaml's openssl and kubectl commands, one string each, for this release."""
    text = (CHART / "values.yaml").read_text()
    block = text.split("for example:\n", 1)[1].split("\n# then ", 1)[0]
    commands: list[str] = []
    for line in block.splitlines():
        body = line.removeprefix("#").strip()
        if line.startswith("#   ") and not line.startswith("#     "):
            commands.append(body)
        else:
            commands[-1] += " " + body
    return [
        command.replace(" \\ ", " ")
        .replace("RELEASE-NAME", SERVICE)
        .replace("NAMESPACE", NAMESPACE)
        for command in commands
    ]


def recipe_secret(folder: Path) -> tuple[dict[str, Any], str]:
    """Run values.yaml's openssl and kubectl commands in ``folder``: the kubernetes.io/tls Secret
    (as ``kubectl create secret tls --dry-run=client`` prints it) and the CA's PEM."""
    folder.mkdir(parents=True, exist_ok=True)
    commands = recipe_commands()
    assert [c.split()[0] for c in commands] == [
        "openssl",
        "openssl",
        "printf",
        "openssl",
        "kubectl",
    ]
    commands[-1] += " --dry-run=client -o yaml > secret.yaml"
    for command in commands:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
    secret: dict[str, Any] = yaml.safe_load((folder / "secret.yaml").read_text())
    return secret, (folder / "ca.crt").read_text()


def test_chart_without_cert_manager_takes_the_secret_and_ca_the_values_recipe_makes(
    tmp_path: Path,
) -> None:
    """With certManager.enabled false, values.yaml's openssl and kubectl commands make a
    kubernetes.io/tls Secret whose certificate verifies for the Service's names against the CA
    that the chart puts in caBundle (given as PEM or as base64); no cert-manager object."""
    secret, ca_pem = recipe_secret(tmp_path)
    validate([secret])
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["namespace"] == NAMESPACE
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))

    for bundle in (ca_pem, base64.b64encode(ca_pem.encode()).decode()):
        tls = {"secretName": secret["metadata"]["name"], "caBundle": bundle}
        documents = render(values(certManager={"enabled": False}, tls=tls))
        validate_all(documents)
        assert not [d for d in documents if d["apiVersion"].startswith("cert-manager.io/")]
        configuration = webhook_configuration(documents)
        assert "cert-manager.io/inject-ca-from" not in configuration["metadata"]["annotations"]
        assert tls_secret_name(documents) == secret["metadata"]["name"]
        for hook in configuration["webhooks"]:
            trusted = x509.load_pem_x509_certificates(
                base64.b64decode(hook["clientConfig"]["caBundle"])
            )
            assert trusted == [ca]
            service = hook["clientConfig"]["service"]
            host = f"{service['name']}.{service['namespace']}.svc"
            for name in (host, f"{host}.cluster.local"):
                verifier = (
                    PolicyBuilder().store(Store(trusted)).build_server_verifier(x509.DNSName(name))
                )
                assert verifier.verify(leaf, [])[-1] == ca


def test_chart_refuses_to_render_without_what_the_webhook_needs() -> None:
    """Each missing or contradictory value fails the render with one message naming it: no
    environment, no config, an environment config lacks, no image, no TLS without cert-manager, a
    caBundle that is no certificate, a timeout not above the review deadline or outside 1..30, a
    grace period shorter than preStop and a review, an unknown failurePolicy, a budget with both
    bounds, and an extra rule without resources."""
    no_tls = {"certManager": {"enabled": False}}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"environment": ""},
            (
                "promoter-webhook: environment is required (the promoter.yaml environment whose "
                "registry the webhook guards"
            ),
        ),
        ({"config": ""}, "promoter-webhook: config is required (the content of promoter.yaml"),
        (
            {"environment": "prod"},
            (
                'promoter-webhook: environment "prod" is not in config\'s environments (known: '
                "production, staging)"
            ),
        ),
        ({"config": "- a\n"}, "promoter-webhook: config is not a YAML mapping"),
        ({"config": "registries: {}\n"}, "promoter-webhook: config has no environments: mapping"),
        ({"image": {"tag": "1"}}, "promoter-webhook: image.repository is empty; set it to where"),
        (
            {"image": {"repository": "promoter"}},
            'promoter-webhook: image.repository is the placeholder "promoter"',
        ),
        (
            no_tls,
            (
                "promoter-webhook: certManager.enabled is false and neither tls.secretName nor "
                "tls.caBundle is set; enable cert-manager, or give a kubernetes.io/tls Secret"
            ),
        ),
        (
            {**no_tls, "tls": {"caBundle": "x"}},
            "promoter-webhook: tls.secretName is required when certManager.enabled is false",
        ),
        (
            {**no_tls, "tls": {"secretName": "webhook-tls"}},
            "promoter-webhook: tls.caBundle is required when certManager.enabled is false",
        ),
        (
            {**no_tls, "tls": {"secretName": "webhook-tls", "caBundle": "bm90IGEgY2VydA=="}},
            "promoter-webhook: tls.caBundle is neither PEM certificates nor base64 of them",
        ),
        (
            {"webhook": {"timeoutSeconds": 8}},
            (
                "promoter-webhook: webhook.timeoutSeconds (8) must be above "
                "environments.production.admission.deadlineSeconds in config (8)"
            ),
        ),
        (
            {"config": CONFIG.replace("deadlineSeconds: 8", "deadlineSeconds: 12")},
            (
                "promoter-webhook: webhook.timeoutSeconds (10) must be above "
                "environments.production.admission.deadlineSeconds in config (12)"
            ),
        ),
        (
            {"webhook": {"timeoutSeconds": 31}},
            (
                "promoter-webhook: webhook.timeoutSeconds is 31; Kubernetes takes a whole number of "
                "seconds from 1 to 30"
            ),
        ),
        (
            {"terminationGracePeriodSeconds": 20},
            (
                "promoter-webhook: terminationGracePeriodSeconds (20) must be above "
                "preStopSleepSeconds (10) plus webhook.timeoutSeconds (10, the webhook's "
                "--shutdown-grace)"
            ),
        ),
        (
            {"webhook": {"failurePolicy": "Deny"}},
            'promoter-webhook: webhook.failurePolicy is "Deny"; Kubernetes takes Fail or Ignore',
        ),
        (
            {"podDisruptionBudget": {"minAvailable": 1}},
            "promoter-webhook: podDisruptionBudget sets both minAvailable and maxUnavailable",
        ),
        (
            {"webhook": {"extraWorkloadRules": [{"apiGroups": ["argoproj.io"]}]}},
            (
                "promoter-webhook: webhook.extraWorkloadRules[0] needs apiGroups, apiVersions and "
                "resources"
            ),
        ),
    ]
    for extra, message in cases:
        assert message in render_error(values(**extra)), (extra, message)
    # Without admission settings the deadline is promoter's default, 8 s: 9 is enough.
    plain = CONFIG.replace("    admission:\n      mode: guard\n      deadlineSeconds: 8\n", "")
    assert "admission" not in plain
    assert "must be above" in render_error(values(config=plain, webhook={"timeoutSeconds": 8}))
    assert only(render(values(config=plain, webhook={"timeoutSeconds": 9})), "Deployment")


# -- the webhook configuration -------------------------------------------------------------------


def test_webhook_configuration_defaults_fail_closed_and_spare_system_namespaces() -> None:
    """Both webhooks (Pods; pod-template workloads) fail closed with a 10 s timeout, call
    /validate with AdmissionReview v1, have side effects only outside dry runs, match equivalent
    API versions, never see kube-system or the release namespace, and skip labelled objects."""
    hooks = webhooks(render(values()))
    assert set(hooks) == {"pods.promoter.dev", "workloads.promoter.dev"}
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 10
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["clientConfig"]["service"]["path"] == "/validate"
        assert hook["namespaceSelector"] == {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", NAMESPACE],
                }
            ]
        }
        assert hook["objectSelector"] == {
            "matchExpressions": [
                {"key": "promoter.dev/admission", "operator": "NotIn", "values": ["skip"]}
            ]
        }
    pods = hooks["pods.promoter.dev"]["rules"]
    assert [(r["operations"], r["resources"]) for r in pods] == [
        (["CREATE", "UPDATE"], ["pods"]),
        (["UPDATE"], ["pods/ephemeralcontainers"]),
    ]
    assert all(r["apiGroups"] == [""] and r["apiVersions"] == ["v1"] for r in pods)
    workloads = hooks["workloads.promoter.dev"]["rules"]
    assert {(g, r) for rule in workloads for g in rule["apiGroups"] for r in rule["resources"]} == (
        WORKLOAD_RESOURCES
    )
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in workloads)


def test_webhook_configuration_takes_its_settings_from_values() -> None:
    """failurePolicy, timeoutSeconds, more excluded namespaces, the skip label (or none) and
    extra workload kinds (Argo Rollouts) reach both webhooks, and the configuration stays valid."""
    documents = render(
        values(
            config=CONFIG.replace("deadlineSeconds: 8", "deadlineSeconds: 12"),
            terminationGracePeriodSeconds=40,
            webhook={
                "failurePolicy": "Ignore",
                "timeoutSeconds": 15,
                "excludeNamespaces": ["cert-manager", "argocd", "kube-system"],
                "skipLabel": {"key": "example.com/admission", "value": "off"},
                "extraWorkloadRules": [
                    {
                        "apiGroups": ["argoproj.io"],
                        "apiVersions": ["v1alpha1"],
                        "resources": ["rollouts"],
                    }
                ],
            },
        )
    )
    validate_all(documents)
    hooks = webhooks(documents)
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Ignore"
        assert hook["timeoutSeconds"] == 15
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["values"] == ["kube-system", NAMESPACE, "cert-manager", "argocd"]
        (skip,) = hook["objectSelector"]["matchExpressions"]
        assert skip == {"key": "example.com/admission", "operator": "NotIn", "values": ["off"]}
    rollouts = hooks["workloads.promoter.dev"]["rules"][-1]
    assert rollouts == {
        "apiGroups": ["argoproj.io"],
        "apiVersions": ["v1alpha1"],
        "resources": ["rollouts"],
        "operations": ["CREATE", "UPDATE"],
        "scope": "Namespaced",
    }
    assert len(hooks["pods.promoter.dev"]["rules"]) == 2

    # An empty skipLabel: no opt-out. A key without a value: refused.
    for hook in webhooks(render(values(webhook={"skipLabel": None}))).values():
        assert "objectSelector" not in hook
    assert "webhook.skipLabel.value is required with webhook.skipLabel.key" in render_error(
        values(webhook={"skipLabel": {"key": "example.com/admission", "value": ""}})
    )


#: The variables of a webhook's matchConditions (Kubernetes' "Matching requests:
#: matchConditions"): the AdmissionRequest, the object and the old object, as CEL dyn values.
CEL_VARIABLES = {
    "request": cel.Type.DYN,
    "object": cel.Type.DYN,
    "oldObject": cel.Type.DYN,
    "authorizer": cel.Type.DYN,
}


def sent(hook: dict[str, Any], review: dict[str, Any]) -> bool:
    """Whether the API server sends the review to the webhook: all matchConditions are true."""
    environment = cel.NewEnv(variables=CEL_VARIABLES)
    data = {
        "request": review,
        "object": review.get("object"),
        "oldObject": review.get("oldObject"),
        "authorizer": None,
    }
    results = [
        environment.compile(condition["expression"]).eval(data=data).value()
        for condition in hook.get("matchConditions", [])
    ]
    assert all(isinstance(result, bool) for result in results), results
    return all(results)


def request(
    operation: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
    user: str = "system:serviceaccount:argocd:argocd-application-controller",
) -> dict[str, Any]:
    """The AdmissionRequest the API server sends for ``obj``, made by ``user``."""
    made: dict[str, Any] = review(obj, operation=operation, old=old)["request"]
    made["userInfo"]["username"] = user
    return made


def test_match_conditions_skip_kubelets_and_workload_updates_that_change_no_spec() -> None:
    """Evaluated by CEL: a Pod from a controller, a Pod's image set in place and a workload's
    CREATE or image change are sent to the webhook; a kubelet's mirror Pod and an UPDATE that only
    touches metadata (labels, finalizers on delete) are not; skipNodeRequests false sends the
    kubelet's too."""
    hooks = webhooks(render(values()))
    pods, workloads = hooks["pods.promoter.dev"], hooks["workloads.promoter.dev"]
    mirror = pod("cart-1", f"{PROD}/shop/cart:2.4.0")
    controller = "system:serviceaccount:kube-system:replicaset-controller"
    assert sent(pods, request("CREATE", mirror, user=controller))
    assert not sent(pods, request("CREATE", mirror, user="system:node:ip-10-0-1-17.ec2.internal"))

    current = deployment("cart", f"{PROD}/shop/cart:2.3.1")
    assert sent(workloads, request("CREATE", current))
    assert sent(
        workloads, request("UPDATE", deployment("cart", f"{PROD}/shop/cart:2.4.0"), current)
    )
    relabelled = deployment("cart", f"{PROD}/shop/cart:2.3.1")
    relabelled["metadata"]["labels"] = {"team": "shop"}
    assert not sent(workloads, request("UPDATE", relabelled, current))
    deleting = copy.deepcopy(current)
    deleting["metadata"]["finalizers"] = ["foregroundDeletion"]
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T03:00:00Z"
    assert not sent(workloads, request("UPDATE", deleting, current))
    relabelled_pod = copy.deepcopy(mirror)
    relabelled_pod["metadata"]["labels"] = {"team": "shop"}
    assert not sent(pods, request("UPDATE", relabelled_pod, mirror, user=controller))
    set_image = pod("cart-1", f"{PROD}/shop/cart:2.5.0")
    assert sent(pods, request("UPDATE", set_image, mirror, user="alice"))

    extra = {"name": "not-ci", "expression": "request.userInfo.username != 'ci'"}
    hooks = webhooks(
        render(values(webhook={"skipNodeRequests": False, "matchConditions": [extra]}))
    )
    pods, workloads = hooks["pods.promoter.dev"], hooks["workloads.promoter.dev"]
    assert pods["matchConditions"][0] == extra
    assert sent(pods, request("CREATE", mirror, user="system:node:ip-10-0-1-17.ec2.internal"))
    assert not sent(pods, request("CREATE", mirror, user="ci"))
    assert not sent(workloads, request("CREATE", current, user="ci"))


# -- the Deployment ------------------------------------------------------------------------------


def test_deployment_runs_the_contracts_command_with_its_files_mounted() -> None:
    """The container runs ``promoter webhook serve`` with the contract's arguments (and
    --shutdown-grace = timeoutSeconds), which promoter's parser accepts, and each file they name is
    where a volume puts it: promoter.yaml from the ConfigMap, the TLS
    pair from the Secret; caBundle adds --ca-file, debug --debug before the subcommand, an IPv6
    listen address is bracketed, extraArgs come last."""
    documents = render(values())
    webhook = container(documents)
    assert webhook["command"] == ["promoter"]
    assert webhook["args"] == SERVE_ARGS
    parsed = build_parser().parse_args(webhook["args"])
    assert (parsed.command, parsed.webhook_command) == ("webhook", "serve")
    assert parsed.environment == "production"
    assert (
        parsed.shutdown_grace == webhook_configuration(documents)["webhooks"][0]["timeoutSeconds"]
    )
    mounts = {mount["mountPath"]: mount["name"] for mount in webhook["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(documents)["volumes"]}
    config_map = only(documents, "ConfigMap")
    assert volumes[mounts["/etc/promoter"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"]["promoter.yaml"] == CONFIG
    assert "secret" in volumes[mounts["/tls"]]
    assert not [m for m in webhook["volumeMounts"] if "subPath" in m]  # renewals reach the files

    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    documents = render(
        values(
            caBundle=ca,
            debug=True,
            listenAddress="::",
            extraArgs=["--retries", "2"],
        )
    )
    args = container(documents)["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.debug is True
    assert parsed.ca_file == Path("/etc/promoter/ca.pem")
    assert parsed.retries == 2
    assert args[:3] == ["--debug", "webhook", "serve"]
    assert args[args.index("--listen") + 1] == "[::]:8443"
    assert args[args.index("--metrics-listen") + 1] == "[::]:9090"
    assert args[args.index("--ca-file") + 1] == "/etc/promoter/ca.pem"
    assert args[-2:] == ["--retries", "2"]
    assert only(documents, "ConfigMap")["data"]["ca.pem"] == ca


def test_deployment_is_hardened_highly_available_and_probed_over_https() -> None:
    """Two replicas spread by hostname with a budget of one, non-root 10001 with a read-only root
    and no privileges, a writable /tmp, liveness /healthz and readiness /readyz over HTTPS on the
    container's https port, and a preStop sleep that ends well inside the grace period."""
    documents = render(values())
    deployment_spec = only(documents, "Deployment")["spec"]
    assert deployment_spec["replicas"] == 2
    assert deployment_spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert only(documents, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spec = pod_spec(documents)
    labels = only(documents, "Deployment")["spec"]["template"]["metadata"]["labels"]
    (preferred,) = spec["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    webhook = container(documents)
    check_hardened(webhook)
    mounts = {mount["mountPath"]: mount["name"] for mount in webhook["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {}  # noqa: S108 (the container's path)

    ports = {port["name"]: port["containerPort"] for port in webhook["ports"]}
    assert ports == {"https": 8443, "metrics": 9090}
    assert webhook["args"][webhook["args"].index("--listen") + 1].endswith(f":{ports['https']}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert webhook[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    assert webhook["startupProbe"]["httpGet"]["path"] == "/healthz"
    sleep = webhook["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep > 0
    timeout = webhook_configuration(documents)["webhooks"][0]["timeoutSeconds"]
    assert spec["terminationGracePeriodSeconds"] > sleep + timeout

    custom = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "node-role", "operator": "In", "values": ["system"]}
                        ]
                    }
                ]
            }
        }
    }
    documents = render(
        values(affinity=custom, podDisruptionBudget={"maxUnavailable": None, "minAvailable": 1})
    )
    validate_all(documents)
    assert pod_spec(documents)["affinity"] == custom
    assert only(documents, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in only(documents, "PodDisruptionBudget")["spec"]


def test_metrics_port_is_named_and_prometheus_annotations_are_opt_in() -> None:
    """The container and the Service expose a port named metrics; the Pods carry Prometheus's
    scrape annotations for that port only when metrics.podAnnotations is true."""
    documents = render(values())
    service_ports = {p["name"]: p for p in only(documents, "Service")["spec"]["ports"]}
    assert service_ports["metrics"]["targetPort"] == "metrics"
    annotations = only(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert not [key for key in annotations if key.startswith("prometheus.io/")]

    documents = render(values(metrics={"podAnnotations": True}))
    validate_all(documents)
    annotations = only(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_account_carries_the_role_or_is_named_elsewhere() -> None:
    """The ServiceAccount carries the IRSA annotation the values give and is the Pods' account;
    with create false the Pods run as the named one and none is rendered (and a name is
    required); a new promoter.yaml changes the Pod template, so the Pods roll."""
    role = "arn:aws:iam::222222222222:role/promoter-webhook"
    documents = render(values(serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": role}}))
    account = only(documents, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    assert pod_spec(documents)["serviceAccountName"] == account["metadata"]["name"]

    documents = render(values(serviceAccount={"create": False, "name": "promoter"}))
    assert not [d for d in documents if d["kind"] == "ServiceAccount"]
    assert pod_spec(documents)["serviceAccountName"] == "promoter"
    assert "serviceAccount.name is required when serviceAccount.create is false" in render_error(
        values(serviceAccount={"create": False})
    )

    def template_checksum(config: str) -> str:
        deployment_object = only(render(values(config=config)), "Deployment")
        checksum: str = deployment_object["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return checksum

    assert template_checksum(CONFIG) != template_checksum(CONFIG + "registries: {}\n")


def test_long_release_names_keep_every_name_within_kubernetes_limits() -> None:
    """A release name of 60 characters still gives every object, Secret and Certificate a name
    of at most 63 characters, and a Service name that fits the certificate's DNS names."""
    name = "a" * 60
    documents = render(values(), name=name)
    validate_all(documents)
    service = only(documents, "Service")["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", service)
    serving = next(d for d in documents if d["metadata"]["name"].endswith("-tls"))
    assert serving["spec"]["dnsNames"][0] == f"{service}.{NAMESPACE}.svc"


# -- helm lint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"certManager": {"issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}}},
        {
            "certManager": {"enabled": False},
            "tls": {
                "secretName": "webhook-tls",
                "caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            },
        },
        {
            "serviceAccount": {"create": False, "name": "promoter"},
            "metrics": {"podAnnotations": True},
        },
        {
            "networkPolicy": {
                "enabled": True,
                "apiServerPeers": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
            }
        },
    ],
    ids=["cert-manager", "existing-issuer", "no-cert-manager", "own-account", "network-policy"],
)
def test_chart_passes_strict_lint(extra: dict[str, Any]) -> None:
    """``helm lint --strict`` finds nothing, with cert-manager and without."""
    assert helm_lint_problems(CHART, values(**extra)) == []


# -- the Deployment's command, run ---------------------------------------------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that verifies the certificate for the Service's DNS name against a CA
    bundle, as the API server does when it calls the webhook."""

    def __init__(self, service_host: str, port: int, ca_bundle: str) -> None:
        super().__init__(service_host, port, timeout=20)
        self.trust = ssl.create_default_context(cadata=ca_bundle)

    def connect(self) -> None:
        """Connect to loopback; verify the certificate for ``self.host``."""
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.trust.wrap_socket(raw, server_hostname=self.host)


def call(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> Any:
    """One request: (status, body decoded from JSON when it is JSON, else text)."""
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    text = response.read().decode()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


class Kubelet:
    """The Deployment's container run here as the kubelet would run it: each volume a folder
    (ConfigMap keys and Secret keys as files), each path under a mount mapped to its folder, and
    the image's ``promoter`` this checkout's console script."""

    def __init__(
        self, documents: list[dict[str, Any]], secret: dict[str, Any], folder: Path
    ) -> None:
        spec = pod_spec(documents)
        webhook = container(documents)
        config_map = only(documents, "ConfigMap")
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        self.mounts: dict[str, Path] = {}
        for mount in webhook["volumeMounts"]:
            path = folder / mount["name"]
            path.mkdir(parents=True)
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                assert volume["configMap"]["name"] == config_map["metadata"]["name"]
                for key, value in config_map["data"].items():
                    (path / key).write_text(value)
            elif "secret" in volume:
                assert volume["secret"]["secretName"] == secret["metadata"]["name"]
                for key, value in secret["data"].items():
                    (path / key).write_bytes(base64.b64decode(value))
            self.mounts[mount["mountPath"]] = path
        argv = [str(PROMOTER), *(self.local(arg) for arg in webhook["args"])]
        assert webhook["command"] == ["promoter"]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def local(self, text: str) -> str:
        """``text`` with a mounted path replaced by its folder here."""
        for path, folder in self.mounts.items():
            if text == path or text.startswith(f"{path}/"):
                return str(folder) + text[len(path) :]
        return text

    def read(self) -> None:
        """Queue the container's log lines; None at its end."""
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first JSON log line of ``event``; fails when the log ends or time runs out."""
        seen: list[str] = []
        end = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(end - time.monotonic(), 0.001))
            assert line is not None, f"the webhook exited before {event!r}:\n{''.join(seen)}"
            seen.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                return entry

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends it after preStop; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


def test_deployment_command_serves_probes_reviews_and_metrics_as_configured(
    dest_registry: RegistryProcess, tmp_path: Path
) -> None:
    """The Deployment's own command and arguments, run here with its ConfigMap and the values.yaml
    recipe's Secret mounted, answer the kubelet's probes (/healthz, /readyz on the https port)
    and the API server's reviews on the webhook configuration's path, over TLS that verifies for
    the Service's name against the configuration's caBundle, serve metrics on the metrics port,
    and exit 0 on SIGTERM."""
    secret, ca_pem = recipe_secret(tmp_path / "recipe")
    config = (
        "environments:\n"
        f"  staging:\n    overlay: infra/overlays/staging\n    registry: {STAGING}\n"
        f"  production:\n    overlay: infra/overlays/production\n    registry: {dest_registry.host}\n"
        "    promotesFrom: staging\n"
    )
    https, metrics = free_port(), free_port()
    documents = render(
        values(
            config=config,
            certManager={"enabled": False},
            tls={"secretName": secret["metadata"]["name"], "caBundle": ca_pem},
            listenAddress="127.0.0.1",
            ports={"https": https, "metrics": metrics},
        )
    )
    validate_all(documents)
    webhook = container(documents)
    ports = {port["name"]: port["containerPort"] for port in webhook["ports"]}
    hook = webhooks(documents)["pods.promoter.dev"]
    service = hook["clientConfig"]["service"]
    ca_bundle = base64.b64decode(hook["clientConfig"]["caBundle"]).decode()
    kubelet = Kubelet(documents, secret, tmp_path / "pod")
    try:
        kubelet.wait_for("ready")
        api_server = ServiceConnection(
            f"{service['name']}.{service['namespace']}.svc", ports["https"], ca_bundle
        )
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            action = webhook[probe]["httpGet"]
            assert action["port"] == "https"
            assert call(api_server, "GET", action["path"])[0] == 200, probe

        external = pod("debug", "registry.k8s.io/pause:3.10")
        status, answer = call(api_server, "POST", service["path"], review(external))
        assert status == 200, answer
        assert answer["response"]["allowed"] is True
        missing = pod("cart", f"{dest_registry.host}/shop/never-promoted:1.0")
        status, answer = call(api_server, "POST", service["path"], review(missing))
        assert status == 200, answer
        assert answer["response"]["allowed"] is False
        assert "never-promoted" in answer["response"]["status"]["message"]
        api_server.close()

        scraper = http.client.HTTPConnection("127.0.0.1", ports["metrics"], timeout=20)
        status, text = call(scraper, "GET", "/metrics")
        scraper.close()
        assert status == 200
        assert "promoter_admission_reviews_total" in text
    finally:
        code = kubelet.stop()
    assert code == 0


def test_network_policy_admits_only_the_api_server_to_the_review_port() -> None:
    """Off by default; enabled, the HTTPS port admits only the given API server peers (and the
    render fails without them, rather than shutting the API server out); metrics stay open."""
    assert not [d for d in render(values()) if d["kind"] == "NetworkPolicy"]
    peers = [{"ipBlock": {"cidr": "10.0.0.0/16"}}]
    documents = render(values(networkPolicy={"enabled": True, "apiServerPeers": peers}))
    validate_all(documents)
    policy = only(documents, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    reviews, metrics = policy["spec"]["ingress"]
    assert reviews == {"ports": [{"port": "https", "protocol": "TCP"}], "from": peers}
    assert "from" not in metrics
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == (only(documents, "Deployment")["spec"]["selector"]["matchLabels"])
    )
    assert "networkPolicy.apiServerPeers is required" in render_error(
        values(networkPolicy={"enabled": True})
    )
