"""The Kustomize component's image list: drift detection and rewriting. Pure file work."""

from __future__ import annotations

from pathlib import Path

from promoter.gitops.hookfile import drift, hook_images_path, is_hook, read_hook_images, rewritten


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


def test_only_promoters_own_hook_is_recognised() -> None:
    """The hook Job running promoter sync --from-registry is recognised; other hooks (a migration
    Job) and ordinary objects are not, so their images are still promoted."""
    annotations = {"argocd.argoproj.io/hook": "PreSync"}

    def job(command: list[str], args: list[str]) -> dict[str, object]:
        container = {"name": "c", "image": "x", "command": command, "args": args}
        return {
            "metadata": {"annotations": annotations},
            "spec": {"template": {"spec": {"containers": [container]}}},
        }

    assert is_hook(job(["promoter"], ["sync", "--from-registry", "r", "--image", "i"]))
    assert not is_hook(job(["/migrate"], ["up"]))
    assert not is_hook({"metadata": {"annotations": {"other": "x"}}})
    assert not is_hook({"kind": "Deployment"})
