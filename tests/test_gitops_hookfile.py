"""The Kustomize component's image list (drift detection, rewriting, reading it safely) and telling
promoter's own hook container apart. Pure file work."""

from __future__ import annotations

from pathlib import Path

import pytest

from promoter.errors import ConfigError
from promoter.gitops.hookfile import (
    drift,
    hook_images_path,
    is_hook,
    read_hook_images,
    rewritten,
    without_hook_containers,
)


def test_reads_references_without_comments(tmp_path: Path) -> None:
    """Comments and blank lines are not references."""
    path = tmp_path / "promoter-images.txt"
    path.write_text("# images the hook copies\n\nreg.example.com/a:1  # api\nreg.example.com/b:2\n")
    assert read_hook_images(path) == ["reg.example.com/a:1", "reg.example.com/b:2"]
    assert hook_images_path(tmp_path) == path
    assert hook_images_path(tmp_path / "nowhere") is None


def test_drift_names_missing_and_extra(tmp_path: Path) -> None:
    """Images the overlay runs but the file lacks are missing; listed but unused ones are extra."""
    path = tmp_path / "promoter-images.txt"
    path.write_text("r/a:1\nr/old:0\n")
    found = drift(path, ["r/a:1", "r/b:2"])
    assert found is not None
    assert found.missing == ("r/b:2",)
    assert found.extra == ("r/old:0",)
    assert drift(path, ["r/a:1", "r/old:0"]) is None


def test_rewrite_keeps_the_header_and_sorts(tmp_path: Path) -> None:
    """The explanation at the top stays; the list becomes exactly what runs, sorted, once each."""
    path = tmp_path / "promoter-images.txt"
    path.write_text("# one reference per line\n\nr/a:1\nr/old:0\n")
    before, after = rewritten(path, ["r/b:2", "r/a:1", "r/b:2"])
    assert before == path.read_text()
    assert after == "# one reference per line\n\nr/a:1\nr/b:2\n"


def _job(*containers: dict[str, object], hook: bool = True) -> dict[str, object]:
    annotations = {"argocd.argoproj.io/hook": "Sync"} if hook else {}
    return {
        "kind": "Job",
        "metadata": {"name": "j", "annotations": annotations},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


PROMOTER = {
    "name": "promoter",
    "image": "reg.example.com/tools/promoter:1",
    "command": ["promoter"],
    "args": ["sync", "--timeout", "480", "--from-registry", "dev.example.com", "--image", "i"],
}
MIGRATOR = {"name": "migrate", "image": "reg.example.com/shop/migrator:9.9.9", "command": ["up"]}


def test_only_promoters_own_hook_containers_are_left_out() -> None:
    """promoter's container in an Argo CD hook is left out of discovery; another container of the
    same Job (a migration beside it), other hooks and ordinary objects are kept, and the given
    documents are not changed."""
    both = _job(PROMOTER, MIGRATOR)
    with_init = _job(PROMOTER)
    with_init["spec"]["template"]["spec"]["initContainers"] = [PROMOTER, MIGRATOR]  # type: ignore[index]
    documents = [
        both,
        _job(MIGRATOR),
        _job(PROMOTER, hook=False),  # not a hook: an ordinary Job running promoter is planned
        with_init,
        {"kind": "Deployment", "metadata": {"name": "d"}},
    ]
    kept = list(without_hook_containers(documents))
    pods = [d.get("spec", {}).get("template", {}).get("spec", {}) for d in kept]
    assert [p.get("containers") for p in pods] == [
        [MIGRATOR],
        [MIGRATOR],
        [PROMOTER],
        [],
        None,
    ]
    assert pods[3]["initContainers"] == [MIGRATOR]
    assert both["spec"]["template"]["spec"]["containers"] == [PROMOTER, MIGRATOR]  # type: ignore[index]
    assert kept[4] is documents[4]
    assert [is_hook(d) for d in documents] == [True, False, False, True, False]


def test_an_image_list_that_is_a_symlink_is_neither_read_nor_rewritten(tmp_path: Path) -> None:
    """promoter-images.txt as a symbolic link (a pull request can point one at any file) is refused
    in one line naming it, so neither plan's drift nor promote's rewrite reads what it points at."""
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "promoter-images.txt").symlink_to(outside)
    path = hook_images_path(overlay)
    assert path == overlay / "promoter-images.txt"
    for read in (read_hook_images, lambda p: drift(p, []), lambda p: rewritten(p, ["r/a:1"])):
        with pytest.raises(ConfigError) as caught:
            read(path)
        assert str(caught.value) == (
            f"image list {path} is a symbolic link; promoter reads and writes this file only as "
            "a regular file, never through a link: replace the link with the file itself"
        )


def test_an_image_list_over_the_cap_is_refused_by_every_reader(tmp_path: Path) -> None:
    """A promoter-images.txt over the 4 MiB list cap is refused by plan's reading and promote's
    rewrite alike, reading stopping one byte past the cap."""
    path = tmp_path / "promoter-images.txt"
    path.write_text("reg.example.com/shop/api:1.0.0\n" * 200_000)  # 6.2 MB
    for read in (read_hook_images, lambda p: rewritten(p, ["r/a:1"])):
        with pytest.raises(ConfigError, match=r"is larger than 4 MiB, the limit for a list file"):
            read(path)


def test_rewrite_keeps_a_byte_order_mark_and_crlf_as_written(tmp_path: Path) -> None:
    """before is the file's exact text (what write_edit compares); after keeps its byte order mark
    and its line ends."""
    path = tmp_path / "promoter-images.txt"
    path.write_bytes(b"\xef\xbb\xbf# header\r\nr/old:0\r\n")
    before, after = rewritten(path, ["r/a:1"])
    assert before == "\ufeff# header\r\nr/old:0\r\n"
    assert after == "\ufeff# header\r\nr/a:1\r\n"


def test_a_rewrite_past_what_a_configmap_holds_is_refused(tmp_path: Path) -> None:
    """A list whose rewrite would exceed a ConfigMap's 1 MiB is refused before anything is written
    (promote puts the kustomization back): the hook Job could never read it."""
    path = tmp_path / "promoter-images.txt"
    path.write_text("# images\n")
    running = [f"r.example.com/team/app-{n:06d}:1.0" for n in range(40_000)]  # about 1.3 MB
    with pytest.raises(ConfigError, match="over the 1 MiB a Kubernetes ConfigMap holds"):
        rewritten(path, running)
    assert path.read_text() == "# images\n"
