"""Editing an overlay's images: one value changes, every other byte of the file stays as it was."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from promoter.errors import ConfigError, InvalidReferenceError
from promoter.gitops.discover import discover_images, parse_manifests
from promoter.gitops.kustomization import KUSTOMIZATION_NAMES, kustomization_path
from promoter.gitops.overlay import (
    ImageEdit,
    ImageEntry,
    image_entries,
    kept_comments,
    patched_images,
    set_image,
    unchanged_edit,
    unified_diff,
    write_edit,
)

PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

# Comments everywhere, blank lines, trailing spaces, a mix of indentations, both quote styles, a
# flow entry and flow collections: a round-trip dumper would normalise some of this.
TRAILING_SPACES = "   "
ODD = f"""\
# Production overlay.{TRAILING_SPACES}
# Owned by the platform team; promote with `promoter promote`.

apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:
    - ../../base        # the shared base
    - 'extra.yaml'
patches:
- path: patch-image.yaml      # image pins live in images: below
- path: patch-replicas.yaml

images:
  # api: promoted 2024-05-01 after the load test
  - name: shop/api
    newName:   {PROD}/shop/api
    newTag: "1.4.0"   # keep quoted

  - {{name: shop/web, newName: {PROD}/shop/web, newTag: '2.0'}}
  -   name: shop/worker   # odd spacing after the dash
      newName: {PROD}/shop/worker
      digest: {DIGEST_A}
labels: [{{pairs: {{team: shop}}, includeSelectors: false}}]
# end of file
"""


def overlay_with(tmp_path: Path, text: str, name: str = "kustomization.yaml") -> Path:
    """An overlay folder whose kustomization file holds ``text``."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    (overlay / name).write_bytes(text.encode())
    return overlay


def test_changing_a_tag_keeps_every_other_byte(tmp_path: Path) -> None:
    """Only the tag's value changes; comments, spacing, quotes and order are kept exactly."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.5.0")
    assert edit == ImageEdit(
        before=ODD,
        after=ODD.replace('newTag: "1.4.0"', 'newTag: "1.5.0"'),
        path=overlay / "kustomization.yaml",
        changed=True,
    )
    assert (overlay / "kustomization.yaml").read_text() == ODD  # planning writes nothing


def test_only_the_named_module_changes(tmp_path: Path) -> None:
    """With three modules in images:, promoting one leaves the other two as they were."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/web", name="shop/web", new_tag="2.1")
    assert edit.after == ODD.replace("newTag: '2.0'}", "newTag: '2.1'}")


def test_several_modules_make_one_edit(tmp_path: Path) -> None:
    """Chaining edits through previous gives one edit with all changes and the original before."""
    overlay = overlay_with(tmp_path, ODD)
    first = set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.5.0")
    both = set_image(
        overlay, match_repository="shop/web", name="shop/web", new_tag="2.1", previous=first
    )
    assert both.before == ODD
    assert both.after == ODD.replace('"1.4.0"', '"1.5.0"').replace("'2.0'", "'2.1'")
    assert both.changed


def test_tag_to_digest_replaces_the_key_in_place(tmp_path: Path) -> None:
    """Pinning a digest turns the newTag line into a digest line where it stood."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/api", name="shop/api", digest=DIGEST_B)
    assert edit.after == ODD.replace('newTag: "1.4.0"', f"digest: {DIGEST_B}")


def test_digest_to_tag_replaces_the_key_in_place(tmp_path: Path) -> None:
    """Setting a tag where a digest was pinned turns the digest line into a newTag line."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/worker", name="shop/worker", new_tag="3.1.0")
    assert edit.after == ODD.replace(f"digest: {DIGEST_A}", "newTag: 3.1.0")


def test_tag_in_a_flow_entry_becomes_a_digest(tmp_path: Path) -> None:
    """A flow-style entry is edited inside its braces."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/web", name="shop/web", digest=DIGEST_B)
    assert edit.after == ODD.replace("newTag: '2.0'}", f"digest: {DIGEST_B}}}")


def test_setting_a_tag_drops_a_pinned_digest(tmp_path: Path) -> None:
    """An entry with both newTag and digest keeps newTag (changed) and loses the digest line."""
    text = f"""\
images:
- name: shop/api  # api
  newTag: "1.0"
  digest: {DIGEST_A}   # pinned
  newName: {PROD}/shop/api
"""
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="1.1"
    )
    assert (
        edit.after
        == f"""\
images:
- name: shop/api  # api
  newTag: "1.1"
  newName: {PROD}/shop/api
"""
    )


def test_pinning_a_digest_drops_the_tag_even_on_the_dash_line(tmp_path: Path) -> None:
    """A newTag written first, on the dash line, is removed and the next key moves up."""
    text = f"images:\n- newTag: v1\n  name: shop/api\n  digest: {DIGEST_A}\n"
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="x", digest=DIGEST_B
    )
    assert edit.after == f"images:\n- name: shop/api\n  digest: {DIGEST_B}\n"


def test_entry_without_tag_or_digest_gets_one(tmp_path: Path) -> None:
    """An entry that only renames gets newTag added after its last key, at its indentation."""
    text = f"images:\n  - name: shop/api\n    newName: {PROD}/shop/api # moved\nother: 1\n"
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="7"
    )
    assert edit.after == (
        f'images:\n  - name: shop/api\n    newName: {PROD}/shop/api # moved\n    newTag: "7"\nother: 1\n'
    )


def test_absent_module_is_appended_like_the_entries_before_it(tmp_path: Path) -> None:
    """A module not in images: gets a new entry at the end, indented like the first entry."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/cart", name="shop/cart", new_tag="0.3.1")
    assert edit.after == ODD.replace(
        f"      digest: {DIGEST_A}\n",
        f"      digest: {DIGEST_A}\n  - name: shop/cart\n    newTag: 0.3.1\n",
    )


def test_absent_images_key_is_created_at_the_end(tmp_path: Path) -> None:
    """Without images:, the key is added at the end, lists indented as the file indents them."""
    text = "# overlay\nresources:\n  - ../../base\n# trailing comment"
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", digest=DIGEST_A
    )
    assert edit.after == text + f"\nimages:\n  - name: shop/api\n    digest: {DIGEST_A}\n"


def test_empty_file_gets_an_images_key(tmp_path: Path) -> None:
    """A kustomization with nothing but a comment gets images: with one entry."""
    edit = set_image(
        overlay_with(tmp_path, "# nothing yet\n"), match_repository="a", name="a", new_tag="1"
    )
    assert edit.after == '# nothing yet\nimages:\n- name: a\n  newTag: "1"\n'


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("images: []\nresources: [base]\n",
         "images: [{name: shop/api, newTag: v2}]\nresources: [base]\n"),
        ("images: [{name: shop/web, newTag: v1}]  # flow\n",
         "images: [{name: shop/web, newTag: v1}, {name: shop/api, newTag: v2}]  # flow\n"),
        ("images:   # none yet\nresources:\n- base\n",
         "images:   # none yet\n- name: shop/api\n  newTag: v2\nresources:\n- base\n"),
        ("images: ~\n", "images: [{name: shop/api, newTag: v2}]\n"),
        ("{resources: [base]}\n", "{resources: [base], images: [{name: shop/api, newTag: v2}]}\n"),
        ("images:\n- {name: shop/web}\n", "images:\n- {name: shop/web}\n- {name: shop/api, newTag: v2}\n"),
    ],
    ids=["empty-flow-list", "flow-list", "empty-key", "null", "flow-root", "flow-entries"],
)  # fmt: skip
def test_other_shapes_of_images_get_the_entry(tmp_path: Path, text: str, after: str) -> None:
    """Empty, null and flow-style images: lists get the new entry in their own style."""
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="v2"
    )
    assert edit.after == after


def test_matching_uses_new_name_over_name(tmp_path: Path) -> None:
    """An entry matches on newName's repository when it has one, on name otherwise."""
    text = (
        "images:\n"
        "- name: shop/api\n  newName: other.example.com/shop/api-renamed\n  newTag: a\n"
        f"- name: legacy/api\n  newName: {PROD}/shop/api\n  newTag: b\n"
        "- name: shop/api-renamed\n  newTag: c\n"
    )
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="z"
    )
    assert edit.after == text.replace("newTag: b", "newTag: z")


@pytest.mark.parametrize("empty", ["", " ~", " null", ' ""'])
def test_an_empty_new_name_falls_back_to_name(tmp_path: Path, empty: str) -> None:
    """An entry whose newName is empty or null matches on its name."""
    text = f"images:\n- name: shop/api\n  newName:{empty}\n  newTag: v1\n"
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="v2"
    )
    assert edit.after == text.replace("newTag: v1", "newTag: v2")


def test_docker_hub_names_match_their_normalised_repository(tmp_path: Path) -> None:
    """``nginx`` in images: is docker.io/library/nginx, so it matches ``library/nginx``."""
    text = "images:\n- name: nginx\n  newTag: 1.26.0\n"
    edit = set_image(
        overlay_with(tmp_path, text),
        match_repository="library/nginx",
        name="nginx",
        new_tag="1.27.0",
    )
    assert edit.after == "images:\n- name: nginx\n  newTag: 1.27.0\n"


def test_tags_that_look_like_numbers_are_quoted(tmp_path: Path) -> None:
    """A plain tag is quoted when YAML would read it as a number (1.10 is not 1.1)."""
    text = "images:\n- name: shop/api\n  newTag: v1\n"
    edit = set_image(
        overlay_with(tmp_path, text), match_repository="shop/api", name="shop/api", new_tag="1.10"
    )
    assert edit.after == 'images:\n- name: shop/api\n  newTag: "1.10"\n'


def test_setting_the_same_value_changes_nothing(tmp_path: Path) -> None:
    """When the overlay already asks for that tag the edit is empty and the diff is blank."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.4.0")
    assert not edit.changed
    assert edit.after == ODD
    assert unified_diff(edit) == ""


def test_crlf_line_ends_are_kept(tmp_path: Path) -> None:
    """A file written on Windows keeps its CRLF line ends, also on added lines."""
    text = 'resources:\r\n- base\r\nimages:\r\n- name: a/b\r\n  newTag: "1"\r\n'
    overlay = overlay_with(tmp_path, text)
    changed = set_image(overlay, match_repository="a/b", name="a/b", new_tag="2")
    assert changed.after == text.replace('"1"', '"2"')
    added = set_image(overlay, match_repository="c/d", name="c/d", new_tag="v3")
    assert added.after == text + "- name: c/d\r\n  newTag: v3\r\n"


def test_unified_diff_shows_the_one_line(tmp_path: Path) -> None:
    """The diff has git's a/ b/ labels and exactly the changed line."""
    overlay = overlay_with(tmp_path, "images:\n- name: a/b\n  newTag: v1\n# end")
    edit = set_image(overlay, match_repository="a/b", name="a/b", new_tag="v2")
    label = edit.path.as_posix().lstrip("/")
    assert unified_diff(edit) == (
        f"--- a/{label}\n+++ b/{label}\n@@ -1,4 +1,4 @@\n images:\n - name: a/b\n"
        "-  newTag: v1\n+  newTag: v2\n # end\n\\ No newline at end of file\n"
    )


def test_write_edit_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    """write_edit puts the new text in place, keeps permissions and leaves no temporary file."""
    overlay = overlay_with(tmp_path, ODD)
    path = overlay / "kustomization.yaml"
    path.chmod(0o640)
    edit = set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.5.0")
    write_edit(edit)
    assert path.read_bytes() == edit.after.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(child.name for child in overlay.iterdir()) == ["kustomization.yaml"]


def test_a_kustomization_that_is_a_symlink_is_neither_read_nor_written(tmp_path: Path) -> None:
    """A kustomization.yaml that is a symbolic link (Git stores links: a pull request can point one
    at any file) is refused in one line naming it, when planned and when written; the file it
    points at is left alone."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("images:\n- name: a/b\n  newTag: v1\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = overlay / "kustomization.yaml"
    kustomization.symlink_to(outside)
    with pytest.raises(ConfigError, match=r"kustomization\.yaml is a symbolic link;") as planned:
        set_image(overlay, match_repository="a/b", name="a/b", new_tag="v2")
    assert str(kustomization) in str(planned.value)
    kustomization.unlink()
    kustomization.write_text(outside.read_text())
    edit = set_image(overlay, match_repository="a/b", name="a/b", new_tag="v2")
    kustomization.unlink()  # swapped for a link between plan and write
    kustomization.symlink_to(outside)
    with pytest.raises(ConfigError, match=r"kustomization\.yaml is a symbolic link;"):
        write_edit(edit)
    assert outside.read_text() == "images:\n- name: a/b\n  newTag: v1\n"
    assert kustomization.is_symlink()


def test_an_unchanged_edit_is_the_file_as_it_is_and_writes_nothing(tmp_path: Path) -> None:
    """unchanged_edit gives the kustomization's exact text as an edit that changes nothing (what
    promote reports when every module keeps what it runs); a kustomization that is a symbolic
    link is refused in one line, as for set_image."""
    overlay = overlay_with(tmp_path, ODD)
    edit = unchanged_edit(overlay)
    assert (edit.before, edit.after, edit.changed) == (ODD, ODD, False)
    assert edit.path == overlay / "kustomization.yaml"
    assert unified_diff(edit) == ""
    write_edit(edit)
    assert edit.path.read_text() == ODD
    edit.path.unlink()
    edit.path.symlink_to(tmp_path / "elsewhere.yaml")
    (tmp_path / "elsewhere.yaml").write_text(ODD)
    with pytest.raises(ConfigError, match=r"kustomization\.yaml is a symbolic link;"):
        unchanged_edit(overlay)


def test_write_edit_refuses_a_file_changed_since_reading(tmp_path: Path) -> None:
    """If someone edited the file after the edit was planned, nothing is overwritten."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.5.0")
    (overlay / "kustomization.yaml").write_text(ODD + "# someone else\n")
    with pytest.raises(ConfigError, match=r"changed since it was read"):
        write_edit(edit)
    assert (overlay / "kustomization.yaml").read_text() == ODD + "# someone else\n"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_edited_overlay_renders_to_the_new_image(tmp_path: Path) -> None:
    """After write_edit, kubectl kustomize renders the promoted tag, then the pinned digest."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources:\n- deployment.yaml\n")
    (base / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
        "    spec:\n      containers:\n      - {name: api, image: shop/api:1.0}\n"
        "      - {name: web, image: shop/web:1.0}\n"
    )
    overlay = overlay_with(
        tmp_path, ODD.replace("    - 'extra.yaml'\n", "").replace("../../", "../")
    )
    for name in ("patch-image.yaml", "patch-replicas.yaml"):
        (overlay / name).write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"
        )

    def rendered() -> list[str]:
        output = subprocess.run(
            ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
        ).stdout
        return [image.image for image in discover_images(parse_manifests(output))]

    assert rendered() == [f"{PROD}/shop/api:1.4.0", f"{PROD}/shop/web:2.0"]
    write_edit(set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.5.0"))
    assert rendered() == [f"{PROD}/shop/api:1.5.0", f"{PROD}/shop/web:2.0"]
    write_edit(set_image(overlay, match_repository="shop/web", name="shop/web", digest=DIGEST_B))
    assert rendered() == [f"{PROD}/shop/api:1.5.0", f"{PROD}/shop/web@{DIGEST_B}"]


@pytest.mark.parametrize("name", KUSTOMIZATION_NAMES)
def test_each_kustomization_file_name_is_found(tmp_path: Path, name: str) -> None:
    """kustomization.yaml, kustomization.yml and Kustomization are all found, as kustomize does."""
    overlay = overlay_with(tmp_path, "resources: []\n", name=name)
    assert kustomization_path(overlay) == overlay / name


def test_overlay_without_kustomization_is_a_config_error(tmp_path: Path) -> None:
    """An overlay folder with no kustomization file gives one line naming the folder."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    with pytest.raises(ConfigError) as caught:
        kustomization_path(overlay)
    assert str(caught.value) == (
        f"no kustomization.yaml, kustomization.yml, Kustomization in overlay {overlay}"
    )


def test_missing_overlay_is_a_config_error(tmp_path: Path) -> None:
    """A missing overlay folder is named in the error."""
    with pytest.raises(ConfigError, match=r"^overlay .*/nope does not exist"):
        set_image(tmp_path / "nope", match_repository="a", name="a", new_tag="1")


def test_two_kustomization_files_are_refused(tmp_path: Path) -> None:
    """Two kustomization files in one folder are refused, as kustomize refuses them."""
    overlay = overlay_with(tmp_path, "resources: []\n")
    (overlay / "kustomization.yml").write_text("resources: []\n")
    with pytest.raises(ConfigError, match=r"several kustomization files"):
        kustomization_path(overlay)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: [\n", "invalid YAML at line 2, column 1: "),
        ("images: shop/api\n", "images: expected a list of images"),
        ("images:\n- shop/api\n", "images: every entry must be a mapping with a name"),
        ("- resources\n", "expected a mapping at the top of the kustomization"),
        ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1: "),
        ("images:\n- name: shop/api\n  newTag: |\n    v1\n", "images: newTag must be a one-line plain or quoted string"),
        ("images:\n- name: shop/api\n  digest: >-\n    sha256:a\n", "images: digest must be a one-line plain or quoted string"),
    ],
)  # fmt: skip
def test_unusable_kustomization_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    """A kustomization that cannot be edited safely gives one line naming the file."""
    overlay = overlay_with(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="v2")
    assert str(caught.value).startswith(f"{overlay / 'kustomization.yaml'}: {message}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "arguments",
    [{"new_tag": "-bad"}, {"digest": "sha256:short"}, {"new_tag": "v1", "name": "Shop/API"}],
)
def test_invalid_tag_digest_or_name_is_refused(tmp_path: Path, arguments: dict[str, str]) -> None:
    """A tag, digest or name that would not form a valid reference is refused before editing."""
    overlay = overlay_with(tmp_path, ODD)
    with pytest.raises(InvalidReferenceError):
        set_image(overlay, match_repository="shop/api", **{"name": "shop/api", **arguments})


def test_tag_or_digest_is_required(tmp_path: Path) -> None:
    """Giving neither new_tag nor digest is a programming error."""
    with pytest.raises(ValueError, match="new_tag, digest or both"):
        set_image(tmp_path, match_repository="a", name="a")


def test_tag_and_digest_together_keep_both(tmp_path: Path) -> None:
    """Both given: newTag is set and digest joins it in the same entry; kustomize renders both."""
    overlay = overlay_with(tmp_path, ODD)
    edit = set_image(
        overlay, match_repository="shop/api", name="shop/api", new_tag="9.9", digest=DIGEST_A
    )
    entries = [
        e
        for e in yaml.safe_load(edit.after)["images"]
        if "shop/api" in str(e.get("newName", e["name"]))
    ]
    assert entries
    assert all(e["newTag"] == "9.9" and e["digest"] == DIGEST_A for e in entries)


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("images:\n  - name: web\n    newTag: v1\n",
         f"images:\n  - name: web\n    newTag: v1\n  - name: ml\n    newName: {PROD}/shop/ml\n    newTag: v2\n"),
        ("images: [{name: web, newTag: v1}]\n",
         f"images: [{{name: web, newTag: v1}}, {{name: ml, newName: {PROD}/shop/ml, newTag: v2}}]\n"),
        ("images:\nresources:\n- base\n",
         f"images:\n- name: ml\n  newName: {PROD}/shop/ml\n  newTag: v2\nresources:\n- base\n"),
        ("resources:\n  - base\n",
         f"resources:\n  - base\nimages:\n  - name: ml\n    newName: {PROD}/shop/ml\n    newTag: v2\n"),
    ],
    ids=["block", "flow", "empty-key", "no-key"],
)  # fmt: skip
def test_an_appended_entry_can_rename_the_image(tmp_path: Path, text: str, after: str) -> None:
    """With new_name, the appended entry keeps the resources' name and renames it into the
    registry (what promote writes for a module new to the target), in every shape of images:."""
    edit = set_image(
        overlay_with(tmp_path, text),
        match_repository="shop/ml",
        name="ml",
        new_name=f"{PROD}/shop/ml",
        new_tag="v2",
    )
    assert edit.after == after


DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "after"),
    [
        (f"images:\n  - name: ml  # the chart's name\n    newName: '{DEV}/shop/ml'\n    newTag: v1\n",
         f"images:\n  - name: ml  # the chart's name\n    newName: '{PROD}/shop/ml'\n    newTag: v2\n"),
        (f"images: [{{name: ml, newName: {DEV}/shop/ml, newTag: v1}}]\n",
         f"images: [{{name: ml, newName: {PROD}/shop/ml, newTag: v2}}]\n"),
        (f"images:\n  - name: {DEV}/shop/ml\n    newTag: v1\n",
         f"images:\n  - name: {DEV}/shop/ml\n    newName: {PROD}/shop/ml\n    newTag: v2\n"),
        (f"images: [{{name: {DEV}/shop/ml, newTag: v1}}]\n",
         f"images: [{{name: {DEV}/shop/ml, newName: {PROD}/shop/ml, newTag: v2}}]\n"),
        (f"images:\n  - name: {PROD}/shop/ml\n    newTag: v1\n",
         f"images:\n  - name: {PROD}/shop/ml\n    newTag: v2\n"),
    ],
    ids=["new-name", "flow-new-name", "name-only", "flow-name-only", "already-there"],
)  # fmt: skip
def test_rename_to_moves_a_matching_entry_into_the_registry(
    tmp_path: Path, text: str, after: str
) -> None:
    """With rename_to, a matching entry that names another registry gets that newName (set in
    place, or added right after name), quotes and comments kept; one that already names it, by
    newName or by name, is left as it is (what promote does for a module taken from dev)."""
    edit = set_image(
        overlay_with(tmp_path, text),
        match_repository="shop/ml",
        name="ml",
        new_tag="v2",
        rename_to=f"{PROD}/shop/ml",
    )
    assert edit.after == after


def test_image_entries_are_read_as_written(tmp_path: Path) -> None:
    """The entries matching a repository come back with their keys as written; absent ones None."""
    overlay = overlay_with(tmp_path, ODD)
    assert image_entries(overlay, "shop/api") == (
        ImageEntry(name="shop/api", new_name=f"{PROD}/shop/api", new_tag="1.4.0", digest=None),
    )
    assert image_entries(overlay, "shop/worker") == (
        ImageEntry(
            name="shop/worker", new_name=f"{PROD}/shop/worker", new_tag=None, digest=DIGEST_A
        ),
    )
    assert image_entries(overlay, "shop/none") == ()


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ('    newTag: "1.4.0"   # keep quoted', True),
        ("    newTag: 1.4.0", False),
        ("  - {name: shop/web, newName: 'a #b', newTag: '2.0'}", False),
        ("  - {name: shop/web, newTag: '2.0'} # web", True),
        ('    newTag: "a # b"', False),
    ],
    ids=["comment", "none", "hash-in-single-quotes", "flow-comment", "hash-in-double-quotes"],
)
def test_kept_comments_are_those_beside_changed_values(
    tmp_path: Path, line: str, flagged: bool
) -> None:
    """A changed line that keeps a trailing comment is named with its number; a '#' inside
    quotes is no comment."""
    before = f"images:\n  - name: x\n{line.replace('2.0', '1.0').replace('1.4.0', '1.3.0')}\n"
    after = f"images:\n  - name: x\n{line}\n"
    edit = ImageEdit(before=before, after=after, path=tmp_path / "k.yaml", changed=True)
    assert [(m.line, m.text) for m in kept_comments(edit)] == (
        [(3, line.strip())] if flagged else []
    )


def test_patched_images_are_found_in_patch_files_and_inline_patches(tmp_path: Path) -> None:
    """Every patch kind is searched: patches (path and inline), patchesStrategicMerge (path and
    inline) and patchesJson6902; only the image named, with a tag or digest, is found."""
    image = f"{PROD}/shop/api"
    overlay = overlay_with(
        tmp_path,
        "patches:\n  - path: a.yaml\n  - patch: |-\n      - op: replace\n"
        f"        value: {image}:1.0\n"
        "patchesStrategicMerge:\n  - b.yaml\n  - |-\n    kind: Deployment\n"
        f"    image: {image}@{DIGEST_A}\n"
        "patchesJson6902:\n  - path: c.yaml\n",
    )
    (overlay / "a.yaml").write_text(f"image: {image}:0.9  # old\nimage: {image}-x:1\n")
    (overlay / "b.yaml").write_text(f"- image: other/{image}:2\n")
    (overlay / "c.yaml").write_text(f'[{{"value": "{image}:0.8"}}]\n')
    found = {(m.path.name, m.line, m.text) for m in patched_images(overlay, image)}
    assert found == {
        ("kustomization.yaml", 5, f"{image}:1.0"),
        ("kustomization.yaml", 10, f"{image}@{DIGEST_A}"),
        ("a.yaml", 1, f"{image}:0.9"),
        ("c.yaml", 1, f"{image}:0.8"),
    }


def test_a_value_shared_through_a_yaml_anchor_is_refused_in_one_clear_line(tmp_path: Path) -> None:
    """newTag: &v 1.8.0 used again as *v: an in-place edit would drop the anchor, so the edit is
    refused naming the anchor, not as 'invalid YAML ... undefined alias'."""
    overlay = overlay_with(
        tmp_path,
        "images:\n  - name: shop/api\n    newTag: &v 1.8.0\n  - name: shop/web\n    newTag: *v\n",
    )
    with pytest.raises(ConfigError) as caught:
        set_image(overlay, match_repository="shop/api", name="shop/api", new_tag="1.9.0")
    assert str(caught.value) == (
        f"{overlay / 'kustomization.yaml'}: cannot change images: in place: the edited value is "
        "shared through a YAML anchor (&name ... *name); write the values out and run again"
    )
