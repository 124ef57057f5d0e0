"""status --exit-code (a CI gate), --offline (Git's view, no registry asked) and --html end to end:
real kustomize, real registries behind ECR-like names."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import CliRun, GitOpsRepo

import promoter
from promoter.app.status import CellState, Verdict

VERSIONS = (("cart", "2.4.0"), ("checkout", "1.8.0"), ("catalog", "3.1.0"))


def _in_sync(gitops: GitOpsRepo) -> None:
    """Production's overlay names dev's versions, and both registries hold the same images."""
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.3.1", "newTag: 2.4.0"))
    patch = production.with_name("patch-image.yaml")
    patch.write_text(patch.read_text().replace("catalog:3.0.2", "catalog:3.1.0"))
    for module, tag in VERSIONS:
        gitops.seed(gitops.dev, module, tag)
        gitops.seed(gitops.prod, module, tag)


def _cells(run: CliRun) -> dict[tuple[str, str], dict[str, object]]:
    """(environment, module name without the test's prefix) -> the cell of ``status -o json``."""
    return {
        (env, row["module"].split("/", 1)[1]): cell  # type: ignore[index]
        for row in run.json()["modules"]  # type: ignore[union-attr]
        for env, cell in row["environments"].items()  # type: ignore[index]
    }


def _close_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_exit_code_is_0_when_every_environment_runs_what_it_should(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """In sync everywhere: --exit-code exits 0 and the JSON verdict is in-sync with nothing failing."""
    _in_sync(gitops)
    result = cli("status", "--exit-code", "-o", "json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["verdict"] == "in-sync"
    assert doc["failing"] == []
    assert doc["unchecked"] == []
    assert doc["offline"] is False
    assert {cell["state"] for cell in _cells(result).values()} == {"present", "in-sync"}


def test_behind_or_missing_exits_4_with_exit_code_and_0_without(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """Production behind dev and an image missing from production's registry are drift: exit 4
    with --exit-code (one line naming the cells), 0 without; the JSON carries the verdict."""
    _in_sync(gitops)
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.4.0", "newTag: 2.3.1"))
    gitops.seed(gitops.prod, "cart", "2.3.1")
    gated = cli("status", "--exit-code", "-o", "json")
    assert gated.code == 4, gated.err
    doc = gated.json()
    assert doc["verdict"] == "drift"
    assert doc["failing"] == [
        {"environment": "production", "module": gitops.repo("cart"), "state": "behind"}
    ]
    assert f"drift: production {gitops.repo('cart')} behind" in gated.err
    assert len(gated.err.splitlines()) == 1
    assert cli("status", "-o", "json").code == 0  # no gate, no failure: a report
    # the same version, but production's registry lacks it: missing, exit 4
    production.write_text(production.read_text().replace("newTag: 1.8.0", "newTag: 1.9.0"))
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 1.8.0", "newTag: 1.9.0"))
    gitops.seed(gitops.dev, "checkout", "1.9.0")
    missing = cli("status", "--exit-code", "-o", "json")
    assert missing.code == 4
    assert _cells(missing)[("production", "checkout")]["state"] == "missing"
    assert {"environment": "production", "module": gitops.repo("checkout"), "state": "missing"} in (
        missing.json()["failing"]  # type: ignore[operator]
    )


def test_ahead_is_not_drift_but_diverged_and_differs_are(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A newer version than the source's (a hotfix) passes the gate; the same tag on other content
    (diverged) and versions whose order the tags do not tell (differs) fail it."""
    _in_sync(gitops)
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.4.0", "newTag: 2.4.1"))
    gitops.seed(gitops.prod, "cart", "2.4.1")
    ahead = cli("status", "--exit-code", "-o", "json")
    assert ahead.code == 0, ahead.err
    assert _cells(ahead)[("production", "cart")]["state"] == "ahead"
    gitops.seed(gitops.dev, "catalog", "3.1.0", seed="pushed-again-in-dev")
    diverged = cli("status", "--exit-code", "-o", "json")
    assert diverged.code == 4
    assert _cells(diverged)[("production", "catalog")]["state"] == "diverged"
    gitops.seed(gitops.dev, "catalog", "3.1.0")  # back as it was
    dev = gitops.kustomization("dev")
    dev.write_text(dev.read_text().replace("newTag: 1.8.0", "newTag: main-3f2a1c"))
    gitops.seed(gitops.dev, "checkout", "main-3f2a1c")
    differs = cli("status", "--exit-code", "-o", "json")
    assert differs.code == 4
    assert differs.json()["failing"] == [
        {"environment": "production", "module": gitops.repo("checkout"), "state": "differs"}
    ]


def test_a_registry_that_cannot_be_asked_exits_1_even_with_drift(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A gate does not pass what it could not check: an unreachable registry is exit 1 (not 0),
    and it wins over drift found elsewhere; the verdict is incomplete and names both lists."""
    _in_sync(gitops)
    config = gitops.root / "promoter.yaml"
    config.write_text(
        config.read_text().replace(gitops.dev.url, f"http://127.0.0.1:{_close_port()}")
    )
    unreachable = cli("status", "--exit-code", "-o", "json")
    assert unreachable.code == 1, unreachable.err
    doc = unreachable.json()
    assert doc["verdict"] == "incomplete"
    assert {f["environment"] for f in doc["unchecked"]} == {"dev"}  # type: ignore[union-attr]
    assert "a gate does not pass what it could not check" in unreachable.err
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.4.0", "newTag: 2.3.1"))
    gitops.seed(gitops.prod, "cart", "2.3.1")
    both = cli("status", "--exit-code", "-o", "json")
    assert both.code == 1
    assert both.json()["verdict"] == "incomplete"
    assert both.json()["failing"] == [
        {"environment": "production", "module": gitops.repo("cart"), "state": "behind"}
    ]
    assert cli("status").code == 0  # without --exit-code a report still exits 0


@pytest.fixture
def silent_registries(gitops: GitOpsRepo) -> Iterator[list[socket.socket]]:
    """Both registries' endpoints pointed at listening sockets that nothing accepts on: a
    connection attempt would be queued there, so an empty queue proves no registry was contacted."""
    listeners = []
    config = gitops.root / "promoter.yaml"
    text = config.read_text()
    for registry in (gitops.dev, gitops.prod):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        listeners.append(listener)
        text = text.replace(registry.url, f"http://127.0.0.1:{listener.getsockname()[1]}")
    config.write_text(text)
    yield listeners
    for listener in listeners:
        listener.close()


def _contacted(listeners: list[socket.socket]) -> int:
    """Connections made to the silent registries so far."""
    count = 0
    for listener in listeners:
        while True:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                break
            connection.close()
            count += 1
    return count


def test_offline_asks_no_registry_and_shows_gits_view(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], silent_registries: list[socket.socket]
) -> None:
    """--offline contacts no registry at all: cells show the overlays' versions, drift by tags,
    'not checked' (never unknown or missing), and --exit-code judges that view (4 for behind)."""
    result = cli("status", "--offline", "--exit-code", "-o", "json")
    assert _contacted(silent_registries) == 0
    assert result.code == 4, result.err
    cells = _cells(result)
    assert cells[("production", "cart")] == {
        "image": f"222222222222.dkr.ecr.us-east-1.amazonaws.com/{gitops.repo('cart')}:2.3.1",
        "tag": "2.3.1",
        "digest": None,
        "present": None,
        "behind": True,
        "drift": "behind",
        "state": "behind",
        "checked": False,
    }
    assert cells[("dev", "cart")]["state"] == "not-checked"
    assert cells[("production", "checkout")]["state"] == "in-sync"
    assert all("error" not in cell for cell in cells.values())
    doc = result.json()
    assert doc["offline"] is True
    assert doc["unchecked"] == []
    table = cli("status", "--offline")
    assert _contacted(silent_registries) == 0
    assert table.code == 0, table.err
    assert table.err == ""
    cart = next(ln for ln in table.out.splitlines() if ln.startswith(gitops.repo("cart")))
    assert "< 2.3.1 (not checked)" in cart
    rows = [ln for ln in table.out.splitlines() if ln.startswith(gitops.prefix)]
    assert len(rows) == 3
    assert not any("(unknown)" in ln or "(missing)" in ln for ln in rows)
    assert "offline: no registry was asked" in table.out
    # the same run online does try them: the proof above is not a registry that is never used
    assert cli("status", "--exit-code", "--timeout", "5").code == 1
    assert _contacted(silent_registries) > 0


def test_offline_in_sync_passes_the_gate_with_registries_down(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], silent_registries: list[socket.socket]
) -> None:
    """Offline, overlays that name the same versions pass --exit-code (0) though no registry
    answers: presence is not part of Git's view."""
    production = gitops.kustomization("production")
    production.write_text(production.read_text().replace("newTag: 2.3.1", "newTag: 2.4.0"))
    patch = production.with_name("patch-image.yaml")
    patch.write_text(patch.read_text().replace("catalog:3.0.2", "catalog:3.1.0"))
    result = cli("status", "--offline", "--exit-code", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["verdict"] == "in-sync"
    assert _contacted(silent_registries) == 0


def test_html_writes_the_page_with_the_promotions_git_records(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--html FILE writes one page (a row per module, a column per environment) with production's
    promotion commits, prints the path, leaves no temporary file, and keeps -o json one document."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "CI")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "ci@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for module, tag in VERSIONS:
        gitops.seed(gitops.dev, module, tag)
    for arguments in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "example")):
        subprocess.run(["git", "-C", str(gitops.root), *arguments], check=True)
    page = tmp_path / "out" / "status.html"
    page.parent.mkdir()
    empty = cli("status", "--html", str(page))
    assert empty.code == 0, empty.err
    assert f"status page written to {page}" in empty.out
    html = page.read_text()
    for module, _ in VERSIONS:
        assert f'<tr data-module="{gitops.repo(module)}">' in html
    assert '<th scope="col" data-environment="production">production</th>' in html
    assert "no promotion commits yet: promote --commit records them" in html
    promoted = cli("promote", gitops.repo("cart"), "--to", "production", "--commit")
    assert promoted.code == 0, promoted.err
    as_json = cli("status", "-o", "json", "--html", str(page))
    assert as_json.code == 0, as_json.err
    assert as_json.json()["environments"] == ["dev", "production"]
    assert f"status page written to {page}" in as_json.err
    html = page.read_text()
    assert "no promotion commits yet" not in html
    assert re.search(
        rf"<strong>{gitops.repo('cart')}</strong> 2\.4\.0 <code>[0-9a-f]{{12}}</code> from 2\.3\.1",
        html,
    )
    assert [p.name for p in page.parent.iterdir()] == ["status.html"]


def test_html_outside_git_is_written_and_says_why_it_lists_no_promotions(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """promoter.yaml outside a Git checkout: the page is still written, saying that promotions
    could not be read from Git (not that there are none), and a warning says so."""
    page = tmp_path / "status.html"
    result = cli("status", "--html", str(page))
    assert result.code == 0, result.err
    html = page.read_text()
    assert "promotions not read from Git:" in html
    assert "no promotion commits yet" not in html
    assert "promoter: warning: the status page lists no promotions:" in result.err


def test_html_to_a_path_that_cannot_be_written_is_one_line_before_any_work(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--html into a folder that does not exist is exit 2, one line naming it, checked first."""
    result = cli("status", "--html", str(tmp_path / "nowhere" / "status.html"))
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert "--html" in result.err
    assert "does not exist" in result.err


def test_the_python_api_has_the_offline_view_and_the_verdict(
    gitops: GitOpsRepo, silent_registries: list[socket.socket]
) -> None:
    """promoter.status(offline=True) asks no registry either; the matrix carries the verdict."""
    matrix = promoter.status(config=gitops.root / "promoter.yaml", offline=True)
    assert _contacted(silent_registries) == 0
    assert matrix.offline
    assert matrix.verdict is Verdict.DRIFT
    cart = matrix.cell("production", gitops.repo("cart"))
    assert cart is not None
    assert (cart.checked, cart.present, cart.state) == (False, None, CellState.BEHIND)


@pytest.mark.parametrize(
    "registry", ["ghcr.io", "127.0.0.1:1"], ids=["another-registry", "lookalike-typo"]
)
def test_a_module_deployed_from_a_registry_outside_promoter_yaml_fails_the_gate(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], registry: str
) -> None:
    """Production's entry for cart renamed into a registry no environment has: the cell is
    external (not "not deployed"), the gate exits 4 naming it, and that registry is not asked."""
    _in_sync(gitops)
    production = gitops.kustomization("production")
    text = production.read_text()
    production.write_text(
        re.sub(r"newName: \S+/cart\n", f"newName: {registry}/{gitops.repo('cart')}\n", text)
    )
    gated = cli("status", "--exit-code", "-o", "json")
    assert gated.code == 4, gated.err
    assert _cells(gated)[("production", "cart")]["state"] == "external"
    assert gated.json()["verdict"] == "drift"
    assert f"production {gitops.repo('cart')} external" in gated.err
    table = cli("status")
    assert f"(external: {registry})" in table.out


def test_html_never_replaces_what_is_not_a_status_page(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """--html naming promoter.yaml, a named pipe or a symbolic link is refused before any work
    (exit 2, the file as it was); a page written before is replaced."""
    import os  # noqa: PLC0415

    _in_sync(gitops)
    config = gitops.root / "promoter.yaml"
    before = config.read_text()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    link = tmp_path / "link.html"
    link.symlink_to(config)
    for target in (config, pipe, link):
        result = cli("status", "--html", str(target))
        assert result.code == 2, result.err
        assert "--html" in result.err
    assert config.read_text() == before
    assert link.is_symlink()
    page = tmp_path / "status.html"
    for _ in range(2):
        assert cli("status", "--html", str(page)).code == 0
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_a_registry_that_hangs_still_gives_a_page_and_one_document(
    gitops: GitOpsRepo, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """Production's registry accepts and never answers: with --timeout, --html still writes the
    page (cells unreachable, verdict incomplete) and -o json prints one document, exit 1."""
    _in_sync(gitops)
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)
        port = hanging.getsockname()[1]
        config = gitops.root / "promoter.yaml"
        config.write_text(config.read_text().replace(gitops.prod.url, f"http://127.0.0.1:{port}"))
        page = tmp_path / "status.html"
        result = cli(
            "--timeout",
            "2",
            "--retries",
            "0",
            "status",
            "--exit-code",
            "--html",
            str(page),
            "-o",
            "json",
        )
    assert result.code == 1, result.err
    assert result.json()["verdict"] == "incomplete"
    assert 'data-verdict="incomplete"' in page.read_text()


def test_an_external_image_in_one_workload_or_under_another_path_fails_the_gate(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A patch runs one workload's checkout from ghcr.io while another runs the promoted image;
    a rename moves cart to docker.io/library/<path>: both cells are external, exit 4, with the
    hint to fix the images: entry."""
    _in_sync(gitops)
    production = gitops.kustomization("production")
    production.write_text(
        re.sub(
            r"newName: \S+/cart\n",
            f"newName: docker.io/library/{gitops.repo('cart')}\n",
            production.read_text(),
        )
    )
    patch = production.with_name("patch-image.yaml")
    patch.write_text(
        patch.read_text()
        + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: checkout}\nspec:\n"
        "  template:\n    spec:\n      containers:\n"
        f"        - {{name: checkout, image: 'ghcr.io/{gitops.repo('checkout')}:6.6.6'}}\n"
    )
    gated = cli("status", "--exit-code", "-o", "json")
    assert gated.code == 4, gated.err
    cells = _cells(gated)
    assert cells[("production", "cart")]["state"] == "external"
    assert cells[("production", "checkout")]["state"] == "external"
    assert "images: entry of an external module" in gated.err


def test_a_vendor_image_named_like_a_one_part_module_is_not_external(
    gitops: GitOpsRepo, cli: Callable[..., CliRun]
) -> None:
    """A one-part module (nginx) and an unrelated vendor image bitnami/nginx in another workload:
    no external cell, the gate passes (a path ending in the module's counts only for a module of
    two parts or more)."""
    from promoter.app.status import _external_cells  # noqa: PLC0415

    found = _external_cells(
        ["production"],
        ["nginx", "shop/cart"],
        {"registry.example"},
        {"production": ["docker.io/bitnami/nginx:1.25", "ghcr.io/other/shop/cart:1"]},
    )
    assert list(found) == [("production", "shop/cart")]
