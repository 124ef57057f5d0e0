"""The Python API driven directly against the real Distribution registry: no CLI involved."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import PROD, GitOpsRepo
from tests.registry_checks import has_blob, manifest_digest, push, skopeo_raw_digest

import promoter
from promoter.app.wire import plan_json, status_json, sync_json
from promoter.errors import DeadlineExceededError, InputError, PromoterError, TagConflictError
from promoter.oci.digest import Digest, parse_digest
from promoter.outcome import Outcome
from promoter.planning.plan import PlanStatus
from promoter.reference import parse_reference
from promoter.remote.copy import Copier, CopyAction

#: How long a stalled answer is held before the proxy lets go (far beyond any deadline tested).
STALL_S = 20.0


@pytest.fixture
def stalled() -> Iterator[threading.Event]:
    """An event that stalled proxy handlers wait on; set at the end so no thread is left hanging."""
    release = threading.Event()
    yield release
    release.set()


def test_copy_keeps_the_source_tag_and_returns_a_typed_result(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """promoter.copy to a bare repository keeps the tag; the result carries a Digest skopeo agrees on."""
    digest = push(source_registry, repo, images.multi_arch_index("api-copy"), tag="1.4")
    result = promoter.copy(f"{source_registry.host}/{repo}:1.4", f"{dest_registry.host}/{repo}")
    assert isinstance(result.digest, Digest)
    assert str(result.digest) == digest
    assert result.action is CopyAction.COPIED
    assert str(result.destination) == f"{dest_registry.host}/{repo}:1.4"
    assert skopeo_raw_digest(dest_registry, f"{repo}:1.4") == digest
    assert promoter.digest(f"{dest_registry.host}/{repo}:1.4") == parse_digest(digest)


def test_a_session_returns_batch_failures_in_place_and_raises_for_one_copy(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """copy_batch never raises for one image; copy raises the refusal with a hint, not a CLI flag."""
    push(source_registry, repo, images.oci_image([images.layer(50, "a")], seed="api-a"), tag="a")
    push(dest_registry, repo, images.oci_image([images.layer(50, "b")], seed="api-b"), tag="a")
    push(source_registry, repo, images.oci_image([images.layer(50, "c")], seed="api-c"), tag="c")
    with promoter.Session() as session:
        outcomes = session.copy_batch(
            [
                (f"{source_registry.host}/{repo}:a", f"{dest_registry.host}/{repo}:a"),
                (f"{source_registry.host}/{repo}:c", f"{dest_registry.host}/{repo}:c"),
            ]
        )
        assert isinstance(outcomes[0], TagConflictError)
        assert not isinstance(outcomes[1], PromoterError)
        assert outcomes[1].action is CopyAction.COPIED
        with pytest.raises(TagConflictError) as refused:
            session.copy(f"{source_registry.host}/{repo}:a", f"{dest_registry.host}/{repo}:a")
    assert "--force" not in str(refused.value)
    assert "forcing the copy moves it" in str(refused.value)
    moved = promoter.copy(
        f"{source_registry.host}/{repo}:a", f"{dest_registry.host}/{repo}:a", force=True
    )
    assert moved.action is CopyAction.COPIED


def test_plan_sync_status_and_promote_through_one_session(gitops: GitOpsRepo) -> None:
    """The GitOps operations return values whose outcomes and wire shapes match the CLI's."""
    for module, tag in (("cart", "2.3.1"), ("catalog", "3.0.2"), ("checkout", "1.8.0")):
        gitops.seed(gitops.dev, module, tag)
    gitops.seed(gitops.dev, "cart", "2.4.0")
    dev_cart = parse_reference(f"x.example.com/{gitops.repo('cart')}:2.4.0")
    text = gitops.kustomization("dev").read_text().replace("newTag: 2.3.1", "newTag: 2.4.0")
    gitops.kustomization("dev").write_text(text)
    with promoter.Session(config=gitops.root / "promoter.yaml") as session:
        plan = session.plan("production")
        assert plan.outcome is Outcome.DONE
        assert {i.status for i in plan.items} == {PlanStatus.COPY, PlanStatus.EXTERNAL}
        assert plan_json(plan)["environment"] == "production"
        report = session.sync("production")
        assert report.outcome is Outcome.DONE
        assert report.copied == 3
        assert {r["action"] for r in sync_json(report)["images"]} == {"copied"}
        matrix = session.status()
        cart = matrix.cell("production", gitops.repo("cart"))
        assert cart is not None
        assert cart.behind
        assert cart.present
        assert status_json(matrix)["environments"] == ["dev", "production"]
        promotion = session.promote([gitops.repo("cart")], to="production")
        assert "+    newTag: 2.4.0" in promotion.diff
        assert promotion.modules == (gitops.repo("cart"),)
        synced = session.sync("production", modules=[gitops.repo("cart")])
        assert synced.copied == 1
        after = session.status().cell("production", gitops.repo("cart"))
        assert after is not None
        assert not after.behind
        assert after.reference.tag == dev_cart.tag
    assert manifest_digest(gitops.prod, gitops.repo("cart"), "2.4.0") is not None


def test_make_present_is_the_hooks_operation(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """make_present copies what is missing from the source registry; a re-run only reads."""
    push(source_registry, repo, images.oci_image([images.layer(80, "mp")], seed="api-mp"), tag="7")
    wanted = [f"{dest_registry.host}/{repo}:7"]
    with promoter.Session() as session:
        first = session.make_present(wanted, from_registry=source_registry.host)
        again = session.make_present(wanted, from_registry=source_registry.host)
    assert first.outcome is Outcome.DONE
    assert first.copied == 1
    assert again.copied == 0
    assert [r.item.status for r in again.records] == [PlanStatus.PRESENT]


def test_importing_promoter_copies_and_plans_without_the_cli(
    gitops: GitOpsRepo, source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """`python -c "import promoter; ..."` copies an image and plans an environment; cli/ never loads."""
    push(source_registry, repo, images.oci_image([images.layer(40, "py")], seed="api-py"), tag="1")
    code = (
        "import sys, promoter; "
        f"r = promoter.copy('{source_registry.host}/{repo}:1', '{dest_registry.host}/{repo}'); "
        f"p = promoter.plan('production', config={str(gitops.root / 'promoter.yaml')!r}); "
        "print(r.action, len(p.items), any(m.startswith('promoter.cli') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["copied", "4", "False"]
    assert done.stderr == ""


def test_a_deadline_bounds_a_copy_whose_source_stalls(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    stalled: threading.Event,
) -> None:
    """A blob GET that never answers ends at the deadline, with nothing tagged in the destination."""
    push(
        source_registry, repo, images.oci_image([images.layer(2000, "st")], seed="api-st"), tag="1"
    )
    with FaultProxy(source_registry.url) as proxy:
        proxy.add_rule("GET", r"/blobs/sha256:", before=lambda: stalled.wait(STALL_S), times=10)
        with promoter.Session(insecure_registries=[proxy.host]) as session:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError) as caught:
                session.copy(
                    f"{proxy.host}/{repo}:1", f"{dest_registry.host}/{repo}:1", timeout=1.5
                )
            elapsed = time.monotonic() - started
    assert elapsed < 5.0
    assert "1.5 s deadline" in str(caught.value)
    assert manifest_digest(dest_registry, repo, "1") is None


def test_a_deadline_bounds_a_plan_lookup(gitops: GitOpsRepo, stalled: threading.Event) -> None:
    """A registry that never answers a HEAD makes that image an error at the deadline, not a hang."""
    config = gitops.root / "promoter.yaml"
    with FaultProxy(gitops.prod.url) as proxy:
        proxy.add_rule("HEAD", r"/manifests/", before=lambda: stalled.wait(STALL_S), times=50)
        config.write_text(config.read_text().replace(gitops.prod.url, proxy.url))
        started = time.monotonic()
        plan = promoter.plan("production", config=config, timeout=1.5)
        elapsed = time.monotonic() - started
    assert elapsed < 6.0
    managed = [i for i in plan.items if i.destination is not None]
    assert managed
    assert {i.status for i in managed} == {PlanStatus.ERROR}
    assert plan.outcome is Outcome.FAILED
    assert all("deadline" in (i.error or "") for i in managed)
    assert PROD in str(managed[0].destination)


def test_what_a_copy_run_remembers_ends_with_the_run(
    fresh_registry: Callable[..., RegistryProcess],
    source_registry: RegistryProcess,
    repo: str,
) -> None:
    """A long-lived copier uploads blobs again in a later run after the destination lost them."""
    push(source_registry, repo, images.oci_image([images.layer(300, "rr")], seed="api-rr"), tag="1")
    destination = fresh_registry()
    with promoter.Session() as session, Copier(session.runtime.transport) as copier:
        source = parse_reference(f"{source_registry.host}/{repo}:1")
        first = copier.copy(source, parse_reference(f"{destination.host}/{repo}:1"))
        destination.stop()
        shutil.rmtree(destination.storage)
        destination.start()
        second = copier.copy(source, parse_reference(f"{destination.host}/{repo}:1"))
    assert first.action is second.action is CopyAction.COPIED
    assert second.blobs["copied"] == first.blobs["copied"] > 0  # type: ignore[index]
    image = images.oci_image([images.layer(300, "rr")], seed="api-rr")
    assert all(has_blob(destination, repo, blob.digest) for blob in image.all_blobs())


def test_session_config_paths_are_checked_with_one_line_errors(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError naming it, before any registry is asked."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PromoterError) as caught:
        promoter.Session(config=missing)
    assert str(missing) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_session_without_config_uses_the_nearest_promoter_yaml_and_its_registries(
    gitops: GitOpsRepo,
) -> None:
    """Session() finds promoter.yaml from the current folder up and reaches registries through its
    endpoints (the example's ECR-like names exist nowhere else)."""
    gitops.seed(gitops.dev, "cart", "2.3.1")
    with promoter.Session() as session:
        plan = session.plan("production")
    cart = next(i for i in plan.items if i.destination and "cart" in i.destination.repository)
    assert cart.status is PlanStatus.COPY


@pytest.mark.parametrize("what", ["blob", "manifest"])
def test_a_deadline_bounds_a_body_that_drips(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str, what: str
) -> None:
    """A body sent a few bytes at a time (each restarting the read timeout) ends at the deadline."""
    push(
        source_registry, repo, images.oci_image([images.layer(4000, "dr")], seed="api-dr"), tag="1"
    )
    path = r"/blobs/sha256:" if what == "blob" else r"/manifests/"  # by tag: read at once
    with FaultProxy(source_registry.url) as proxy:
        proxy.add_rule("GET", path, drip=(16 if what == "blob" else 4, 0.05), times=20)
        with promoter.Session(insecure_registries=[proxy.host]) as session:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                session.copy(
                    f"{proxy.host}/{repo}:1", f"{dest_registry.host}/{repo}:1", timeout=1.5
                )
            elapsed = time.monotonic() - started
    assert elapsed < 4.0
    assert manifest_digest(dest_registry, repo, "1") is None


def test_a_tag_written_whose_answer_was_lost_at_the_deadline_is_reported_copied(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    stalled: threading.Event,
) -> None:
    """When the tag PUT's answer never comes, the copy asks whether the tag holds the image before
    it reports anything: the truth, not a deadline error for a tag that was written."""
    digest = push(
        source_registry, repo, images.oci_image([images.layer(100, "lt")], seed="api-lt"), tag="1"
    )
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule(
            "PUT", r"/manifests/1$", after=lambda: stalled.wait(STALL_S), lose_answer=True
        )
        with promoter.Session(insecure_registries=[proxy.host]) as session:
            result = session.copy(
                f"{source_registry.host}/{repo}:1", f"{proxy.host}/{repo}:1", timeout=2.0
            )
    assert result.action is CopyAction.COPIED
    assert manifest_digest(dest_registry, repo, "1") == digest


def test_a_batch_refuses_two_copies_into_one_destination(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """Two images into one tag would race: the API refuses the batch before copying anything."""
    with promoter.Session() as session, pytest.raises(InputError, match="written by two copies"):
        session.copy_batch(
            [
                (f"{source_registry.host}/{repo}:a", f"{dest_registry.host}/{repo}:x"),
                (f"{source_registry.host}/{repo}:b", f"{dest_registry.host}/{repo}:x"),
            ]
        )


def test_a_deadline_bounds_the_wait_for_another_requests_discovery(
    source_registry: RegistryProcess, repo: str, stalled: threading.Event
) -> None:
    """A call with a deadline does not inherit another thread's wait for a registry that stalls its
    first answer: it gives up at its own deadline."""
    push(source_registry, repo, images.oci_image([images.layer(20, "lk")], seed="api-lk"), tag="1")
    with FaultProxy(source_registry.url) as proxy:
        reached = threading.Event()

        def stall() -> None:
            reached.set()
            stalled.wait(STALL_S)

        proxy.add_rule("GET", r"^/v2/$", before=stall, times=1)
        with promoter.Session(insecure_registries=[proxy.host]) as session:
            first = threading.Thread(
                target=lambda: session.digest(f"{proxy.host}/{repo}:1", timeout=STALL_S),
                daemon=True,
            )
            first.start()
            assert reached.wait(5.0), "the first request never reached the registry"
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError, match="waiting for another request"):
                session.digest(f"{proxy.host}/{repo}:1", timeout=1.0)
            elapsed = time.monotonic() - started
            stalled.set()
            first.join(timeout=10)
    assert elapsed < 3.0


def test_the_api_takes_one_name_for_many_and_refuses_what_it_cannot_do(
    gitops: GitOpsRepo, source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """A lone string is one module or reference; a module typo, an unknown environment and a
    closed session are refused with one-line errors instead of doing nothing."""
    gitops.seed(gitops.dev, "cart", "2.3.1")
    push(
        source_registry, repo, images.oci_image([images.layer(30, "one")], seed="api-one"), tag="1"
    )
    session = promoter.Session(config=gitops.root / "promoter.yaml")
    with session:
        report = session.sync("production", modules=gitops.repo("cart"))
        assert [str(r.item.destination).rsplit("/", 1)[-1] for r in report.records] == [
            "cart:2.3.1"
        ]
        with pytest.raises(InputError, match="not a module of production"):
            session.sync("production", modules=[gitops.repo("nope")])
        with pytest.raises(InputError, match="unknown environment 'prod'"):
            session.status().cell("prod", gitops.repo("cart"))
        present = session.make_present(
            f"{dest_registry.host}/{repo}:1", from_registry=source_registry.host
        )
        assert present.copied == 1
    with pytest.raises(InputError, match="closed"):
        session.digest(f"{dest_registry.host}/{repo}:1")


def test_the_package_exports_its_api_without_loading_it() -> None:
    """Every public name resolves from `promoter`, and `dir()` lists them for completion."""
    names = set(dir(promoter))
    for name in ("Session", "copy", "plan", "sync", "status", "PlanStatus", "CopyResult", "Digest"):
        assert name in names
        assert getattr(promoter, name) is not None
    with pytest.raises(AttributeError):
        promoter.nothing_here  # noqa: B018 - the attribute access is the test


def test_a_batch_refuses_two_copies_into_one_tag_however_they_are_spelt(
    source_registry: RegistryProcess, dest_registry: RegistryProcess, repo: str
) -> None:
    """`repo:1.0` and `repo:1.0@sha256:...` write the same tag: the batch is refused as a race."""
    pinned = f"{dest_registry.host}/{repo}:1.0@sha256:{'a' * 64}"
    with promoter.Session() as session:
        with pytest.raises(InputError, match="written by two copies"):
            session.copy_batch(
                [
                    (f"{source_registry.host}/{repo}:a", pinned),
                    (f"{source_registry.host}/{repo}:b", f"{dest_registry.host}/{repo}:1.0"),
                ]
            )
        with pytest.raises(InputError, match="pairs"):
            session.copy_batch(("a", "b"))  # type: ignore[arg-type]
        for bad in (0, -1, float("nan"), True):
            with pytest.raises(InputError, match="timeout"):
                session.digest(f"{dest_registry.host}/{repo}:1.0", timeout=bad)


def test_a_deadline_bounds_a_kustomize_build_that_does_not_finish(
    gitops: GitOpsRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render stuck on something outside promoter (a remote base that never answers) ends at the
    plan's deadline with a deadline error, not after kustomize's own two minutes."""
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "kustomize"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="kustomize build"):
        promoter.plan("production", config=gitops.root / "promoter.yaml", timeout=1.0)
    assert time.monotonic() - started < 4.0
