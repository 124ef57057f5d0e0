"""sync --from-registry: the in-cluster form of sync, with no Git checkout and no promoter.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devtools import images
from devtools.fault_proxy import FaultProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import manifest_digest, push


def test_copies_missing_images_and_reruns_read_only(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """Each --image is made present from --from-registry under the same path and tag; a re-run
    with everything present sends only HEAD requests and exits 0."""
    first = push(source_registry, f"{repo}/a", images.multi_arch_index(f"{repo}-a"), tag="1.0")
    second = push(
        source_registry,
        f"{repo}/b",
        images.oci_image([images.layer(99, repo)], seed=repo),
        tag="2.0",
    )
    listed = tmp_path / "images.txt"
    listed.write_text(f"# from the rendered manifests\n{dest_registry.host}/{repo}/b:2.0\n")
    report = tmp_path / "report.json"
    args = (
        "sync",
        "--from-registry",
        source_registry.host,
        "--image",
        f"{dest_registry.host}/{repo}/a:1.0",
        "--images-file",
        str(listed),
    )
    result = cli(*args, "--report", str(report))
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, f"{repo}/a", "1.0") == first
    assert manifest_digest(dest_registry, f"{repo}/b", "2.0") == second
    entries = {e["destination"]: e for e in json.loads(report.read_text())["images"]}
    assert (
        entries[f"{dest_registry.host}/{repo}/a:1.0"]["source"]
        == f"{source_registry.host}/{repo}/a:1.0"
    )
    assert entries[f"{dest_registry.host}/{repo}/a:1.0"]["bytes"] > 0

    with FaultProxy(dest_registry.url) as proxy:
        again = cli(
            "sync",
            "--from-registry",
            source_registry.host,
            "--image",
            f"{proxy.host}/{repo}/a:1.0",
            "-o",
            "json",
        )
        methods = {h.method for h in proxy.hits}
    assert again.code == 0, again.err
    assert methods <= {"GET", "HEAD"}
    assert "PUT" not in methods
    assert [i["status"] for i in again.json()["images"]] == ["present"]  # type: ignore[index]


def test_statuses_and_exit_codes_match_sync_env(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """An image in neither registry is missing-source (exit 3, others still copied); a destination
    tag whose source tag now holds other content is diverged (kept, not blocking)."""
    digest = push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "ok")], seed=f"{repo}ok"),
        tag="ok",
    )
    push(
        source_registry, repo, images.oci_image([images.layer(10, "c1")], seed=f"{repo}c1"), tag="c"
    )
    push(dest_registry, repo, images.oci_image([images.layer(10, "c2")], seed=f"{repo}c2"), tag="c")
    dry = cli(
        "sync",
        "--dry-run",
        "-o",
        "json",
        "--from-registry",
        source_registry.host,
        "--image",
        f"{dest_registry.host}/{repo}:ok",
        "--image",
        f"{dest_registry.host}/{repo}:c",
        "--image",
        f"{dest_registry.host}/{repo}:none",
    )
    assert dry.code == 3
    assert [i["status"] for i in dry.json()["images"]] == ["copy", "diverged", "missing-source"]  # type: ignore[index]
    assert manifest_digest(dest_registry, repo, "ok") is None  # dry run wrote nothing
    real = cli(
        "sync",
        "--from-registry",
        source_registry.host,
        "--image",
        f"{dest_registry.host}/{repo}:ok",
        "--image",
        f"{dest_registry.host}/{repo}:none",
    )
    assert real.code == 3
    assert manifest_digest(dest_registry, repo, "ok") == digest
    assert f"{repo}:none" in real.err


def test_bad_invocations_exit_2(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """Missing images, a bad host, --image without --from-registry and ENV with it are usage errors."""
    assert cli("sync", "--from-registry", "127.0.0.1:1").code == 2
    bad_host = cli("sync", "--from-registry", "https://x", "--image", "127.0.0.1:1/a:1")
    assert bad_host.code == 2
    assert "registry host" in bad_host.err
    assert cli("sync", "--image", "127.0.0.1:1/a:1").code == 2
    assert (
        cli(
            "sync", "production", "--from-registry", "127.0.0.1:1", "--image", "127.0.0.1:1/a:1"
        ).code
        == 2
    )
    assert (
        cli("sync", "--from-registry", "127.0.0.1:1", "--images-file", str(tmp_path / "none")).code
        == 2
    )
    assert cli("sync").code == 2


def test_in_cluster_sync_loads_no_yaml_or_pydantic(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    tmp_path: Path,
) -> None:
    """The hook Job's path imports neither PyYAML, ruamel nor pydantic: it starts on every sync."""
    push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "imp")], seed=f"{repo}imp"),
        tag="1",
    )
    code = (
        "import sys; from promoter.cli.main import main; "
        f"rc = main(['sync', '--from-registry', '{source_registry.host}', "
        f"'--image', '{dest_registry.host}/{repo}:1']); "
        "heavy = [m for m in ('yaml', 'ruamel', 'pydantic') if m in sys.modules]; "
        "print(rc, heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_tag_and_digest_references_keep_tags_identical(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """image:tag@digest is copied with its tag; a destination tag on another digest is a conflict,
    not a copy that would fail on the tag."""
    digest = push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "td")], seed=f"{repo}td"),
        tag="1.0",
    )
    reference = f"{dest_registry.host}/{repo}:1.0@{digest}"
    first = cli("sync", "-o", "json", "--from-registry", source_registry.host, "--image", reference)
    assert first.code == 0, first.err
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert [i["status"] for i in first.json()["images"]] == ["copy"]  # type: ignore[index]
    again = cli(
        "sync",
        "--dry-run",
        "-o",
        "json",
        "--from-registry",
        source_registry.host,
        "--image",
        reference,
    )
    assert [i["status"] for i in again.json()["images"]] == ["present"]  # type: ignore[index]

    other = push(
        dest_registry, repo, images.oci_image([images.layer(10, "o")], seed=f"{repo}o"), tag="2.0"
    )
    assert other != digest
    push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "td")], seed=f"{repo}td"),
        tag="2.0",
    )
    clash = cli(
        "sync",
        "-o",
        "json",
        "--from-registry",
        source_registry.host,
        "--image",
        f"{dest_registry.host}/{repo}:2.0@{digest}",
    )
    assert clash.code == 3
    assert [i["status"] for i in clash.json()["images"]] == ["conflict"]  # type: ignore[index]
    assert manifest_digest(dest_registry, repo, "2.0") == other


def test_a_registry_error_on_one_image_does_not_stop_the_others(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A lookup that keeps failing makes that image an error (exit 1); the other images are copied."""
    good = push(
        source_registry,
        f"{repo}/good",
        images.oci_image([images.layer(10, "g")], seed=f"{repo}g"),
        tag="1",
    )
    push(
        source_registry,
        f"{repo}/bad",
        images.oci_image([images.layer(10, "b")], seed=f"{repo}b"),
        tag="1",
    )
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("HEAD", f"/{repo}/bad/manifests/", status=500, times=100)
        result = cli(
            "sync",
            "--retries",
            "0",
            "-o",
            "json",
            "--from-registry",
            source_registry.host,
            "--image",
            f"{proxy.host}/{repo}/bad:1",
            "--image",
            f"{proxy.host}/{repo}/good:1",
        )
    assert result.code == 1
    statuses = {i["image"]: i for i in result.json()["images"]}  # type: ignore[union-attr]
    assert statuses[f"{proxy.host}/{repo}/bad:1"]["status"] == "error"
    assert "500" in str(statuses[f"{proxy.host}/{repo}/bad:1"]["error"])
    assert manifest_digest(dest_registry, f"{repo}/good", "1") == good


def test_a_promoter_yaml_with_only_registries_is_enough(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """The hook packagings mount promoter.yaml with just registry settings: --config takes it, and
    its endpoints carry real-looking registry names to the local registries."""
    src_host, dst_host = (
        "111111111111.dkr.ecr.us-east-1.amazonaws.com",
        "222222222222.dkr.ecr.us-east-1.amazonaws.com",
    )
    config = tmp_path / "promoter.yaml"
    config.write_text(
        "registries:\n"
        f"  {src_host}: {{endpoint: '{source_registry.url}'}}\n"
        f"  {dst_host}: {{endpoint: '{dest_registry.url}'}}\n"
    )
    digest = push(
        source_registry,
        repo,
        images.oci_image([images.layer(10, "cfg")], seed=f"{repo}cfg"),
        tag="1",
    )
    result = cli(
        "sync",
        "--config",
        str(config),
        "--from-registry",
        src_host,
        "--image",
        f"{dst_host}/{repo}:1",
    )
    assert result.code == 0, result.err
    assert manifest_digest(dest_registry, repo, "1") == digest


def test_bare_word_hosts_are_refused_and_empty_lists_are_no_work(
    cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    """--from-registry foo is not read as Docker Hub; an images file with only comments does
    nothing and succeeds, so a hook for an overlay without managed images never blocks a sync."""
    bare = cli("sync", "--from-registry", "foo", "--image", "127.0.0.1:1/a:1")
    assert bare.code == 2
    assert "registry host" in bare.err
    listed = tmp_path / "images.txt"
    listed.write_text("# nothing promoted yet\n")
    empty = cli("sync", "--from-registry", "127.0.0.1:1", "--images-file", str(listed))
    assert empty.code == 0
    assert "nothing to promote" in empty.err
    bad = cli("sync", "--from-registry", "bad_host!", "--image", "r.example.com/a:1", "-o", "json")
    assert bad.code == 2
    assert bad.json()["exitCode"] == 2  # a failure is one JSON document too, for CI on stdout
    assert "--from-registry" in str(bad.json()["error"])
    as_json = cli(
        "sync", "--from-registry", "127.0.0.1:1", "--images-file", str(listed), "-o", "json"
    )
    assert as_json.json() == {"environment": "from 127.0.0.1:1", "images": []}


def test_a_destination_in_the_source_registry_is_refused_not_present(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """An --image in the source registry itself (dev's image listed for production) is a blocking
    foreign-environment item naming the source registry (exit 3, the others still copied), not
    "present"; --allow-foreign makes it a warning."""
    push(
        source_registry,
        f"{repo}/worker",
        images.oci_image([images.layer(10, "w")], seed=f"{repo}w"),
        tag="2.0.0",
    )
    cart = push(
        source_registry,
        f"{repo}/cart",
        images.oci_image([images.layer(10, "c")], seed=f"{repo}c"),
        tag="1.0",
    )
    foreign = f"{source_registry.host}/{repo}/worker:2.0.0"
    args = (
        "sync",
        "--from-registry",
        source_registry.host,
        "--image",
        foreign,
        "--image",
        f"{dest_registry.host}/{repo}/cart:1.0",
    )
    planned = cli(*args, "--dry-run", "-o", "json")
    assert planned.code == 3
    first = planned.json()["images"][0]  # type: ignore[index]
    assert first["status"] == "foreign-environment"
    assert first["blocking"] is True
    assert first["foreignEnvironment"] == f"the source registry {source_registry.host}"

    run = cli(*args)
    assert run.code == 3
    assert manifest_digest(dest_registry, f"{repo}/cart", "1.0") == cart
    (line,) = [line for line in run.err.splitlines() if foreign in line]
    assert line == (
        f"promoter: error: {foreign} is in the source registry {source_registry.host}, not this "
        "environment's: promote it here and deploy it from this registry, or allow it "
        "(--allow-foreign)"
    )

    allowed = cli(*args, "--allow-foreign")
    assert allowed.code == 0, allowed.err
    assert f"promoter: warning: {foreign} is in the source registry" in allowed.err
