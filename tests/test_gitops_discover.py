"""Image discovery in rendered manifests: every pod spec of every kind, robust to odd documents."""

from __future__ import annotations

import pytest

from promoter.errors import ConfigError
from promoter.gitops.discover import FoundImage, discover_images, parse_manifests

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers:
  - {name: shell, image: busybox:1.36}
  ephemeralContainers:
  - {name: probe, image: nicolaka/netshoot@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    spec:
      initContainers:
      - {name: migrate, image: 111111111111.dkr.ecr.us-east-1.amazonaws.com/shop/migrate:1.2}
      containers:
      - {name: api, image: 111111111111.dkr.ecr.us-east-1.amazonaws.com/shop/api:1.2}
      - {name: proxy, image: envoyproxy/envoy:v1.30}
"""

STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  template:
    spec:
      containers:
      - {name: postgres, image: postgres:16}
"""

DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      containers:
      - {name: agent, image: "localhost:5000/agent:7"}
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: once, image: shop/once:3}
"""

CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
          - {name: wait, image: shop/wait:1}
          containers:
          - {name: report, image: shop/report:2}
"""

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  strategy: {canary: {steps: [{setWeight: 20}]}}
  template:
    spec:
      containers:
      - {name: web, image: shop/web:5}
"""

REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: legacy}
spec:
  template:
    spec:
      containers:
      - {name: legacy, image: shop/legacy:0.9}
"""

LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: listed}
  spec:
    containers:
    - {name: c, image: shop/listed:1}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {image: not-a-container-image}
- 42
"""

# Documents that look nothing like workloads, or like broken ones: none of them may raise.
GARBAGE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {containers: "x"}
---
just a string
---
- a list
- at the top
---
kind: Deployment
metadata: {name: broken}
spec:
  template:
    spec:
      containers: "not a list"
      initContainers:
      - "not a mapping"
      - {name: no-image}
      - {name: empty-image, image: ""}
      - {name: number-image, image: 3}
---
kind: Deployment
metadata: nameless
spec: {template: null}
---
kind: CronJob
spec: {jobTemplate: {spec: {template: [1, 2]}}}
---
kind: Pod
spec: [containers]
---
---
"""


def found(
    image: str, kind: str, name: str, container: str, field: str = "containers"
) -> FoundImage:
    """Shorthand for an expected FoundImage."""
    return FoundImage(image=image, kind=kind, name=name, container=container, field=field)


ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (POD, [
            found("busybox:1.36", "Pod", "debug", "shell"),
            found("nicolaka/netshoot@sha256:" + "a" * 64, "Pod", "debug", "probe",
                  "ephemeralContainers"),
        ]),
        (DEPLOYMENT, [
            found(f"{ECR}/shop/api:1.2", "Deployment", "api", "api"),
            found("envoyproxy/envoy:v1.30", "Deployment", "api", "proxy"),
            found(f"{ECR}/shop/migrate:1.2", "Deployment", "api", "migrate", "initContainers"),
        ]),
        (STATEFULSET, [found("postgres:16", "StatefulSet", "db", "postgres")]),
        (DAEMONSET, [found("localhost:5000/agent:7", "DaemonSet", "agent", "agent")]),
        (JOB, [found("shop/once:3", "Job", "once", "once")]),
        (REPLICASET, [found("shop/legacy:0.9", "ReplicaSet", "legacy", "legacy")]),
        (CRONJOB, [
            found("shop/report:2", "CronJob", "nightly", "report"),
            found("shop/wait:1", "CronJob", "nightly", "wait", "initContainers"),
        ]),
        (ROLLOUT, [found("shop/web:5", "Rollout", "web", "web")]),
        (LIST, [found("shop/listed:1", "Pod", "listed", "c")]),
        (GARBAGE, []),
        ("", []),
        ("---\n---\n", []),
    ],
    ids=["pod", "deployment", "statefulset", "daemonset", "job", "replicaset", "cronjob",
         "rollout", "list", "garbage", "empty", "empty-documents"],
)  # fmt: skip
def test_discovers_every_container_image(text: str, expected: list[FoundImage]) -> None:
    """Each kind's pod spec yields its containers, initContainers and ephemeralContainers."""
    assert discover_images(parse_manifests(text)) == expected


def test_all_documents_together_keep_document_order() -> None:
    """Images come in document order, so the same manifests always give the same list."""
    documents = [DEPLOYMENT, GARBAGE, CRONJOB, ROLLOUT]
    text = "---\n".join(documents)
    assert [image.image for image in discover_images(parse_manifests(text))] == [
        f"{ECR}/shop/api:1.2",
        "envoyproxy/envoy:v1.30",
        f"{ECR}/shop/migrate:1.2",
        "shop/report:2",
        "shop/wait:1",
        "shop/web:5",
    ]


def test_an_image_used_twice_is_reported_per_place() -> None:
    """The same image in two workloads is found twice, once with each workload's name."""
    text = DEPLOYMENT + "---\n" + DEPLOYMENT.replace("name: api}", "name: api-canary}")
    names = [(image.name, image.container) for image in discover_images(parse_manifests(text))]
    assert names == [
        ("api", "api"),
        ("api", "proxy"),
        ("api", "migrate"),
        ("api-canary", "api"),
        ("api-canary", "proxy"),
        ("api-canary", "migrate"),
    ]


def test_image_is_kept_exactly_as_written() -> None:
    """Discovery does not normalise: docker.io defaults are the reference parser's business."""
    text = "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n"
    assert discover_images(parse_manifests(text)) == [found("nginx", "Pod", "p", "c")]


def test_numeric_names_become_text() -> None:
    """A workload or container name YAML read as a number is reported as text."""
    text = "kind: Pod\nmetadata: {name: 2024}\nspec: {containers: [{name: 1, image: a/b:1}]}\n"
    assert discover_images(parse_manifests(text)) == [found("a/b:1", "Pod", "2024", "1")]


def test_discovery_accepts_documents_without_parsing() -> None:
    """discover_images takes already parsed documents, e.g. from another renderer."""
    documents = [
        {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}}
    ]
    assert discover_images(documents) == [found("x:1", "Job", "", "")]


def test_parse_manifests_flattens_typed_lists() -> None:
    """A DeploymentList's items are documents of their own, as in a List."""
    text = "kind: DeploymentList\nitems:\n- kind: Deployment\n  metadata: {name: a}\n"
    assert parse_manifests(text) == [{"kind": "Deployment", "metadata": {"name": "a"}}]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("kind: Pod\nspec: {containers: [\n", "line 3, column 1"),
        ("kind: Pod\n---\nmetadata:\n  name: a\n bad: 1\n", "line 5, column 2"),
    ],
)
def test_invalid_yaml_names_the_source_and_line(text: str, where: str) -> None:
    """Manifests that are not YAML give one line with the source and the line of the problem."""
    with pytest.raises(ConfigError) as caught:
        parse_manifests(text, source="rendered.yaml")
    assert str(caught.value).startswith(f"rendered.yaml: invalid YAML at {where}: ")
    assert "\n" not in str(caught.value)


def test_a_date_that_is_no_date_is_a_config_error() -> None:
    """PyYAML's ValueError for an impossible timestamp becomes a one-line ConfigError (exit 2)."""
    with pytest.raises(ConfigError, match="invalid YAML value"):
        parse_manifests("apiVersion: v1\nkind: ConfigMap\ndata:\n  built: 2024-02-30\n")
