"""The admission webhook as a real process, and AdmissionReview bodies as the API server sends them.

``WebhookProcess`` starts ``promoter webhook serve`` on loopback with a certificate of a throwaway CA
(trustme), waits until it is ready, and sends reviews over HTTPS the way the API server does (POST
``/validate?timeout=10s``, keep-alive). Used by the tests, ``make demo`` and bench/.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trustme

#: Seconds to wait for the webhook to listen and to become ready.
START_TIMEOUT_S = 30.0
#: Seconds a stopped webhook may take to exit.
STOP_TIMEOUT_S = 30.0


def pod(
    name: str, *images: str, namespace: str = "shop", init: Sequence[str] = ()
) -> dict[str, Any]:
    """A Pod with one container per image (and init containers)."""
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    }
    if init:
        spec["initContainers"] = [
            {"name": f"init{i}", "image": image} for i, image in enumerate(init)
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def deployment(name: str, *images: str, namespace: str = "shop") -> dict[str, Any]:
    """A Deployment whose pod template runs the images."""
    template = pod(name, *images, namespace=namespace)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": template["spec"]},
        },
    }


_RESOURCES = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Rollout": ("argoproj.io", "v1alpha1", "rollouts"),
}


def review(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview admission.k8s.io/v1 request as the API server sends it for ``obj``."""
    kind = str(obj["kind"])
    group, version, resource = _RESOURCES.get(kind, ("example.com", "v1", kind.lower() + "s"))
    metadata = obj.get("metadata", {})
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
        "object": dict(obj),
        "oldObject": dict(old) if old is not None else None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


class Certificates:
    """A throwaway CA and a serving certificate for 127.0.0.1 and localhost, as files."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ca = trustme.CA()
        self.cert = folder / "tls.crt"
        self.key = folder / "tls.key"
        self.ca_file = folder / "ca.crt"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.issue()

    def issue(self) -> bytes:
        """Write a new serving certificate (and key) over the files, by rename as the kubelet swaps
        a Secret's files; its DER bytes."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        for path, pem in ((self.key, leaf.private_key_pem), (self.cert, leaf.cert_chain_pems[0])):
            part = path.with_suffix(".new")
            pem.write_to_path(str(part))
            part.replace(path)
        return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the CA (as the API server trusts ``caBundle``)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


class WebhookProcess:
    """``promoter webhook serve`` in a child process, on 127.0.0.1 with free ports.

    Args:
        config: promoter.yaml.
        environment: the environment served.
        certificates: its TLS files.
        extra_args: more command-line arguments (``--tls-check-seconds 0.1``).
        env: environment variables of the process (DOCKER_CONFIG for credentials).
    """

    def __init__(
        self,
        config: Path,
        environment: str,
        certificates: Certificates,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config, self.environment, self.certificates = config, environment, certificates
        self.extra_args = list(extra_args)
        self.env = dict(env if env is not None else os.environ)
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self.address = ""
        self.metrics_address = ""
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None
        self._connection: http.client.HTTPSConnection | None = None

    # -- process ------------------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> WebhookProcess:
        """Start it; wait until it listens (and, by default, is ready)."""
        argv = [
            sys.executable,
            "-m",
            "promoter",
            "webhook",
            "serve",
            "--environment",
            self.environment,
            "--config",
            str(self.config),
            "--tls-cert",
            str(self.certificates.cert),
            "--tls-key",
            str(self.certificates.key),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            listening = self.wait_for_log(lambda e: e.get("event") == "listening", START_TIMEOUT_S)
            self.address = str(listening["address"])
            self.metrics_address = str(listening["metrics"])
            if wait_ready:
                self.wait_for_log(lambda e: e.get("event") == "ready", START_TIMEOUT_S)
        except BaseException:
            # __exit__ does not run when __enter__ fails: never leave the server behind.
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        found = []
        with self._changed:
            lines = list(self.lines)
        for line in lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_for_log(self, wanted: Any, timeout: float) -> dict[str, Any]:
        """The first JSON log line for which ``wanted(line)`` is true, waiting up to ``timeout``.

        Raises:
            AssertionError: none came in time, or the process exited first (with its output).
        """
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events():
                    if wanted(event):
                        return event
                exited = self.process is not None and self.process.poll() is not None
                left = end - time.monotonic()
                if left <= 0 or (exited and not self._reader_alive()):
                    tail = "\n".join(self.lines[-20:])
                    raise AssertionError(f"webhook log line not seen (exited={exited}):\n{tail}")
                self._changed.wait(min(left, 0.5))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def terminate(self) -> int:
        """SIGTERM; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        finally:
            self._finish()

    def _finish(self) -> None:
        """Collect the rest of the log and close the pipe."""
        if self._reader is not None:
            self._reader.join(5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self) -> None:
        """Stop it if running (SIGTERM, then SIGKILL after a while)."""
        if self._connection is not None:
            self._connection.close()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._finish()

    def __enter__(self) -> WebhookProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def connect(self, timeout: float = 20.0) -> http.client.HTTPSConnection:
        """A new HTTPS connection to the webhook, trusting its CA."""
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.certificates.client_context(), timeout=timeout
        )

    def post(
        self,
        body: bytes,
        *,
        path: str = "/validate?timeout=10s",
        headers: Mapping[str, str] | None = None,
        connection: http.client.HTTPSConnection | None = None,
    ) -> tuple[int, bytes]:
        """POST ``body``; status and response body (a new connection unless one is given)."""
        own = connection is None
        conn = connection or self.connect()
        try:
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if own:
                conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` on the HTTPS port."""
        conn = self.connect()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def review(self, request: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Send an AdmissionReview; its ``response``.

        Raises:
            AssertionError: the answer is not 200 with an AdmissionReview for the same uid.
        """
        status, data = self.post(json.dumps(request).encode(), **kwargs)
        assert status == 200, (status, data[:500])
        answer = json.loads(data)
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        response: dict[str, Any] = answer["response"]
        assert response["uid"] == request["request"]["uid"]
        return response

    def metrics(self) -> str:
        """The Prometheus exposition text of the metrics port."""
        host, port = self.metrics_address.rsplit(":", 1)
        conn = http.client.HTTPConnection(
            "127.0.0.1" if host == "*" else host, int(port), timeout=10
        )
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()
