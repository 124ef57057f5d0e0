"""Signatures, attestations and SBOMs travel with promoted images: real Distribution registries (no
referrers API, so referrers live under the ``sha256-<hex>`` tag), and the devtools referrers-API proxy
in front of them for registries that have the API."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from devtools import images, signing
from devtools.fault_proxy import FaultProxy
from devtools.referrers_api import ReferrersApiProxy
from devtools.registry import RegistryProcess
from tests.conftest import CliRun
from tests.registry_checks import head, manifest_digest, push

import promoter
from promoter.errors import AnswerTooLargeError, InputError, PromoterError, RegistryError
from promoter.reference import parse_reference
from promoter.remote import attachments as attachments_module
from promoter.remote import repository as repository_module
from promoter.remote.repository import Repository
from promoter.transport.session import Transport

SPDX = "application/spdx+json"
PROVENANCE = "application/vnd.in-toto+json"


def _sbom(subject: dict[str, Any], seed: str, **annotations: str) -> images.Image:
    return signing.referrer(
        subject, SPDX, signing.spdx_document("app", seed), SPDX, annotations or None
    )


def _fallback(registry: RegistryProcess, repo: str, digest: str) -> list[dict[str, Any]] | None:
    return signing.fallback_referrers(registry.url, repo, digest)


def _digests(entries: list[dict[str, Any]] | None) -> list[str]:
    return [e["digest"] for e in entries or []]


def test_cosign_tag_attachments_travel_with_the_image_and_keep_their_tags(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """.sig, .att and .sbom of the image arrive digest-exact under the same tags; JSON lists them."""
    digest = push(source_registry, repo, images.oci_image([images.layer(800, "t")], seed="tag"))
    src = f"{source_registry.host}/{repo}"
    signature = signing.sign_image(source_registry.url, repo, digest, f"{src}:1.0", key)
    attestation = signing.push_cosign_attachment(
        source_registry.url, repo, digest, "att", signing.cosign_attachment("att", b'{"a": 1}')
    )
    sbom = signing.push_cosign_attachment(
        source_registry.url, repo, digest, "sbom", signing.cosign_attachment("sbom", b"{}")
    )

    result = cli("copy", f"{src}:1.0", f"{dest_registry.host}/{repo}:1.0", "-o", "json")

    assert result.code == 0, result.err
    document = result.json()
    assert document["action"] == "copied"
    hex_ = digest.split(":")[1]
    for suffix, wanted in (("sig", signature), ("att", attestation), ("sbom", sbom)):
        assert manifest_digest(dest_registry, repo, f"sha256-{hex_}.{suffix}") == wanted
    kinds = {(a["kind"], a["tag"], a["digest"]) for a in document["attachments"]}
    assert kinds == {
        ("signature", f"sha256-{hex_}.sig", signature),
        ("attestation", f"sha256-{hex_}.att", attestation),
        ("sbom", f"sha256-{hex_}.sbom", sbom),
    }
    assert {a["subject"] for a in document["attachments"]} == {digest}


def test_referrers_of_an_index_and_of_its_children_travel_under_the_referrers_tag(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """An SBOM of a multi-platform index and a provenance attestation of one platform arrive by
    digest and are listed, with their annotations, in the destination's sha256-<hex> indexes."""
    index = images.multi_arch_index("refs")
    push(source_registry, repo, index)
    child = index.children[0]
    sbom = _sbom(index.descriptor(), "idx", **{"org.opencontainers.image.created": "2026-11-30"})
    provenance = signing.referrer(child.descriptor(), PROVENANCE, b'{"p": 1}', PROVENANCE)
    signing.push_referrer(source_registry.url, repo, sbom, index.digest)
    signing.push_referrer(source_registry.url, repo, provenance, child.digest)

    result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")

    assert result.code == 0, result.err
    assert "+ 2 referrers" in result.out
    [listed] = _fallback(dest_registry, repo, index.digest) or [None]
    assert listed is not None
    assert listed["digest"] == sbom.digest
    assert listed["artifactType"] == SPDX
    assert listed["annotations"] == {"org.opencontainers.image.created": "2026-11-30"}
    assert _digests(_fallback(dest_registry, repo, child.digest)) == [provenance.digest]
    assert manifest_digest(dest_registry, repo, sbom.digest) == sbom.digest


def test_a_signature_of_an_sbom_travels_with_the_sbom(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """A chain two levels deep (image <- SBOM <- its .sig and its bundle referrer) arrives whole."""
    image = images.oci_image([images.layer(500, "chain")], seed="chain")
    push(source_registry, repo, image)
    identity = f"{source_registry.host}/{repo}:1.0"
    chain = signing.push_signed_sbom_chain(source_registry.url, repo, image.digest, key, identity)

    result = cli("copy", identity, f"{dest_registry.host}/{repo}:1.0", "-o", "json")

    assert result.code == 0, result.err
    copied = {a["digest"]: a for a in result.json()["attachments"]}
    assert set(copied) == set(chain.digests)
    assert copied[chain.sbom]["subject"] == image.digest
    for digest in chain.digests:
        assert manifest_digest(dest_registry, repo, digest) == digest
    assert _digests(_fallback(dest_registry, repo, chain.sbom)) == [chain.sbom_signature_referrer]
    assert chain.sbom_sig is not None
    sbom_hex = chain.sbom.split(":")[1]
    assert manifest_digest(dest_registry, repo, f"sha256-{sbom_hex}.sig") == chain.sbom_sig


def test_the_destination_referrers_index_is_merged_never_replaced(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A referrer only the destination has stays listed, first; ours is appended once."""
    image = images.oci_image([images.layer(300, "merge")], seed="merge")
    push(source_registry, repo, image)
    push(dest_registry, repo, image)
    theirs = _sbom(image.descriptor(), "theirs")
    ours = _sbom(image.descriptor(), "ours")
    signing.push_referrer(dest_registry.url, repo, theirs, image.digest)
    signing.push_referrer(source_registry.url, repo, ours, image.digest)

    first = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    again = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")

    assert first.code == 0, first.err
    assert "attached" in first.out
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [theirs.digest, ours.digest]
    assert again.code == 0, again.err
    assert again.out.startswith("present")


def test_a_rerun_with_everything_present_only_reads(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """Once image and attachments are there, a copy sends nothing but GET and HEAD requests."""
    image = images.multi_arch_index("ro")
    push(source_registry, repo, image)
    signing.sign_recursively(source_registry.url, repo, image, "x/y:1", key)
    signing.push_referrer(source_registry.url, repo, _sbom(image.descriptor(), "ro"), image.digest)
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", src, dst).code == 0
    with FaultProxy(dest_registry.url) as proxy:
        result = cli("copy", src, f"{proxy.host}/{repo}:1.0", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["action"] == "present"
    assert {hit.method for hit in proxy.hits} <= {"GET", "HEAD"}, proxy.hits


def test_no_referrers_copies_the_image_alone(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """--no-referrers: the image arrives, its signature does not, and nothing says attached."""
    digest = push(source_registry, repo, images.oci_image([images.layer(200, "n")], seed="no"))
    signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "--no-referrers",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert result.json()["attachments"] == []
    assert manifest_digest(dest_registry, repo, "1.0") == digest
    assert manifest_digest(dest_registry, repo, f"sha256-{digest.split(':')[1]}.sig") is None


def test_referrers_type_limits_what_travels_but_keeps_chains_whole(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """--referrers-type SPDX: the SBOM and its signature travel; the image's own .sig does not."""
    image = images.oci_image([images.layer(200, "ty")], seed="type")
    push(source_registry, repo, image)
    image_sig = signing.sign_image(source_registry.url, repo, image.digest, "x/y:1", key)
    chain = signing.push_signed_sbom_chain(source_registry.url, repo, image.digest, key, "x/y:1")
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "--referrers-type",
        signing.SPDX_JSON,
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert {a["digest"] for a in result.json()["attachments"]} == set(chain.digests)
    assert manifest_digest(dest_registry, repo, image_sig) is None


def test_a_differing_destination_signature_tag_is_refused_and_force_moves_it(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """A destination .sig that holds other content: exit 3 naming both digests and that the image
    is promoted but unsigned there; --force moves the tag."""
    image = images.oci_image([images.layer(200, "cf")], seed="conflict")
    push(source_registry, repo, image)
    ours = signing.sign_image(source_registry.url, repo, image.digest, "src/app:1", key)
    push(dest_registry, repo, image)
    theirs = signing.sign_image(dest_registry.url, repo, image.digest, "other/app:1", key)
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"

    refused = cli("copy", src, dst)
    forced = cli("copy", src, dst, "--force")

    assert refused.code == 3, refused.err
    assert "was promoted, but" in refused.err
    assert "was promoted, but not its signature tag" in refused.err
    assert ours in refused.err
    assert theirs in refused.err
    assert "--force" in refused.err
    assert forced.code == 0, forced.err
    sig_tag = f"sha256-{image.digest.split(':')[1]}.sig"
    assert manifest_digest(dest_registry, repo, sig_tag) == ours


def test_a_referrers_tag_holding_no_index_is_left_alone(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """cosign copy tags the image itself as sha256-<hex>: that is no referrers list; the copy fails
    (exit 1) saying so and writes nothing over it."""
    image = images.oci_image([images.layer(200, "nx")], seed="noindex")
    push(source_registry, repo, image)
    signing.push_referrer(source_registry.url, repo, _sbom(image.descriptor(), "n"), image.digest)
    push(dest_registry, repo, image)
    push(dest_registry, repo, image, tag=f"sha256-{image.digest.split(':')[1]}")

    result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")

    assert result.code == 1, result.err
    assert "not a referrers list" in result.err
    assert "Traceback" not in result.err
    held = manifest_digest(dest_registry, repo, f"sha256-{image.digest.split(':')[1]}")
    assert held == image.digest


def test_a_failed_attachment_says_the_image_is_promoted_and_a_rerun_completes_it(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """The signature's PUT fails: exit 1, the image's tag is there, the message says it is unsigned;
    the next run copies just the signature."""
    image = images.oci_image([images.layer(200, "fl")], seed="fail")
    push(source_registry, repo, image)
    signature = signing.sign_image(source_registry.url, repo, image.digest, "x/y:1", key)
    src = f"{source_registry.host}/{repo}:1.0"
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/sha256-[0-9a-f]+\.sig$", status=400, times=10)
        failed = cli("copy", src, f"{proxy.host}/{repo}:1.0", "--retries", "0", "-o", "json")
    rerun = cli("copy", src, f"{dest_registry.host}/{repo}:1.0", "-o", "json")

    assert failed.code == 1, failed.err
    assert "was promoted, but" in failed.err
    line = failed.json()
    assert (line["action"], line["digest"], line["exitCode"]) == ("copied", image.digest, 1)
    assert "promoting it again copies what is missing" in failed.err
    assert manifest_digest(dest_registry, repo, "1.0") == image.digest
    assert rerun.code == 0, rerun.err
    assert rerun.json()["action"] == "attached"
    assert [a["digest"] for a in rerun.json()["attachments"]] == [signature]


@pytest.fixture
def api_registries(
    source_registry: RegistryProcess, dest_registry: RegistryProcess
) -> Iterator[tuple[ReferrersApiProxy, ReferrersApiProxy]]:
    """Both registries behind the referrers-API proxy."""
    with (
        ReferrersApiProxy(("127.0.0.1", source_registry.port)) as source,
        ReferrersApiProxy(("127.0.0.1", dest_registry.port)) as dest,
    ):
        yield source, dest


def test_with_the_referrers_api_referrers_are_read_from_it_and_no_tag_is_written(
    api_registries: tuple[ReferrersApiProxy, ReferrersApiProxy],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Source and destination answer the referrers API: the SBOM is found through it (no fallback
    tag in the source), pushed by digest, listed by the destination's API, and no sha256-<hex>
    tag is written there."""
    source, dest = api_registries
    image = images.oci_image([images.layer(200, "api")], seed="api")
    images.push_image(source.url, repo, image, "1.0")
    sbom = _sbom(image.descriptor(), "api")
    images.push_image(source.url, repo, sbom, None)  # the API lists it; no tag involved

    result = cli("copy", f"{source.host}/{repo}:1.0", f"{dest.host}/{repo}:1.0", "-o", "json")

    assert result.code == 0, result.err
    assert [a["digest"] for a in result.json()["attachments"]] == [sbom.digest]
    assert [d["digest"] for d in dest.referrers(repo, image.digest)] == [sbom.digest]
    assert _fallback(dest_registry, repo, image.digest) is None


def test_from_the_api_into_a_registry_without_it_the_referrers_tag_is_written(
    api_registries: tuple[ReferrersApiProxy, ReferrersApiProxy],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """Source with the API, destination without: the referrer is listed under sha256-<hex>."""
    source, _ = api_registries
    image = images.oci_image([images.layer(200, "mix")], seed="mix")
    images.push_image(source.url, repo, image, "1.0")
    sbom = _sbom(image.descriptor(), "mix")
    images.push_image(source.url, repo, sbom, None)

    result = cli("copy", f"{source.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")

    assert result.code == 0, result.err
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [sbom.digest]


def test_make_present_carries_attachments_as_the_hook_and_the_webhook_do(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    key: signing.KeyPair,
) -> None:
    """make_present (the hook Job, the webhook's promote mode) brings the signature along."""
    digest = push(source_registry, repo, images.oci_image([images.layer(100, "mp")], seed="mp"))
    signature = signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    with promoter.Session() as session:
        report = session.make_present(
            f"{dest_registry.host}/{repo}:1.0", from_registry=source_registry.host
        )
    [record] = report.records
    assert record.result is not None
    assert [a.digest for a in record.result.attachments] == [promoter.parse_digest(signature)]
    assert manifest_digest(dest_registry, repo, f"sha256-{digest.split(':')[1]}.sig") == signature


def test_hook_sync_plans_attach_then_copies_only_the_attachments(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """An image promoted without its signature plans as 'attach' (listing what is missing); the
    sync copies only that, reports it per image, and the next plan is 'present'."""
    digest = push(source_registry, repo, images.oci_image([images.layer(100, "hk")], seed="hk"))
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", src, dst).code == 0
    signature = signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    hook = ("sync", "--from-registry", source_registry.host, "--image", dst)

    planned = cli(*hook, "--dry-run", "-o", "json")
    synced = cli(*hook, "-o", "json")
    again = cli(*hook, "--dry-run", "-o", "json")
    unsigned = cli(*hook, "--dry-run", "--no-referrers", "-o", "json")

    assert planned.code == 0, planned.err
    [item] = planned.json()["images"]
    assert item["status"] == "attach"
    assert [a["digest"] for a in item["attachments"]] == [signature]
    assert synced.code == 0, synced.err
    [record] = synced.json()["images"]
    assert record["action"] == "attached"
    assert [a["kind"] for a in record["attachments"]] == ["signature"]
    assert again.json()["images"][0]["status"] == "present"
    assert unsigned.json()["images"][0]["status"] == "present"


def test_plan_with_nothing_attached_is_unchanged(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """An image whose source has no attachments plans present, with no attachments key."""
    push(source_registry, repo, images.oci_image([images.layer(100, "pl")], seed="plain"))
    dst = f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", f"{source_registry.host}/{repo}:1.0", dst).code == 0
    planned = cli(
        "sync", "--from-registry", source_registry.host, "--image", dst, "--dry-run", "-o", "json"
    )
    [item] = planned.json()["images"]
    assert item["status"] == "present"
    assert "attachments" not in item


def test_conflicting_options_are_one_line_and_exit_2(
    cli: Callable[..., CliRun], source_registry: RegistryProcess, repo: str
) -> None:
    """--no-referrers with --referrers-type contradict: exit 2, one line."""
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1",
        f"{source_registry.host}/{repo}:2",
        "--no-referrers",
        "--referrers-type",
        SPDX,
    )
    assert result.code == 2
    assert result.err.strip().count("\n") == 0
    assert "contradict" in result.err


def _json_lines(result: CliRun) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.out.splitlines() if line.strip()]


@pytest.mark.parametrize("multi_arch", [False, True], ids=["image", "multi-arch"])
def test_skopeo_finds_the_promoted_signature_in_the_destination(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    fresh_registry: Callable[..., RegistryProcess],
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
    skopeo_signs: bool,
    tmp_path: Path,
    multi_arch: bool,
) -> None:
    """Signed in the source (by skopeo where it can sign, each platform of an index too), promoted
    by promoter: in the destination skopeo's sigstoreSigned policy finds the signature (and verifies
    it where skopeo has sigstore: Debian's 1.9 has it disabled), c/image's check accepts it; in a
    registry promoted to with --no-referrers skopeo finds none."""
    image = (
        images.multi_arch_index("sk")
        if multi_arch
        else images.oci_image([images.layer(300, "sk")], seed="skopeo")
    )
    push(source_registry, repo, image)
    identity = f"{source_registry.host}/{repo}:1.0"
    for manifest in image.all_manifests():
        signed = signing.sign(
            source_registry.url, repo, manifest.digest, identity, key, workdir=tmp_path / "sign"
        )
        assert (signed.signer is signing.Signer.SKOPEO) is skopeo_signs
    unsigned_registry = fresh_registry()
    src = f"{source_registry.host}/{repo}:1.0"
    assert cli("copy", src, f"{dest_registry.host}/{repo}:1.0").code == 0
    assert cli("copy", src, f"{unsigned_registry.host}/{repo}:1.0", "--no-referrers").code == 0
    public_key = key.write(tmp_path / "keys").public_key

    def skopeo_sees(registry: RegistryProcess) -> signing.SkopeoVerdict:
        return signing.skopeo_verify(
            registry.host,
            repo,
            "1.0",
            public_key,
            workdir=tmp_path / registry.name,
            signed_prefix=f"{source_registry.host}/{repo}",
            copy_all=multi_arch,
        )

    found = (
        signing.SkopeoVerdict.VERIFIED
        if skopeo_signs
        else signing.SkopeoVerdict.SIGNATURE_FOUND_UNVERIFIABLE
    )
    assert skopeo_sees(dest_registry) is found
    assert skopeo_sees(unsigned_registry) is signing.SkopeoVerdict.NO_SIGNATURE
    for manifest in image.all_manifests():
        at_destination = signing.verify_signature(
            dest_registry.url, repo, manifest.digest, key.public_pem, identity
        )
        assert at_destination.accepted, at_destination.reason
        elsewhere = signing.verify_signature(
            unsigned_registry.url, repo, manifest.digest, key.public_pem, identity
        )
        assert not elsewhere.accepted


def test_a_python_session_can_leave_attachments_behind(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    key: signing.KeyPair,
) -> None:
    """Session(attachments=NO_ATTACHMENTS) copies the image alone; the default carries its .sig."""
    digest = push(source_registry, repo, images.oci_image([images.layer(100, "py")], seed="py"))
    signature = signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    src = f"{source_registry.host}/{repo}:1.0"
    with promoter.Session(attachments=promoter.NO_ATTACHMENTS) as session:
        alone = session.copy(src, f"{dest_registry.host}/{repo}:alone")
    carried = promoter.copy(src, f"{dest_registry.host}/{repo}:1.0")
    assert alone.attachments == ()
    assert [str(a.digest) for a in carried.attachments] == [signature]
    assert carried.action is promoter.CopyAction.COPIED


def test_a_signature_added_after_the_promotion_is_kept_by_a_sync_with_a_warning(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """CI signs again after the promotion (dev's .sig grows a layer): plan and the hook's sync keep
    production's .sig, warning with both digests and the command that moves it (exit 0, like a
    diverged tag); --fail-on-diverged refuses (exit 3); copy --force moves it and says so."""
    digest = push(source_registry, repo, images.oci_image([images.layer(90, "again")], seed="ag"))
    signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    src, dst = f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", src, dst).code == 0
    sig_tag = f"sha256-{digest.split(':')[1]}.sig"
    promoted = manifest_digest(dest_registry, repo, sig_tag)
    resigned = signing.sign_image(source_registry.url, repo, digest, "x/y:2", key)
    hook = ("sync", "--from-registry", source_registry.host, "--image", dst)

    planned = cli(*hook, "--dry-run", "-o", "json")
    synced = cli(*hook)
    strict = cli(*hook, "--fail-on-diverged")

    assert planned.code == 0, planned.err
    [item] = planned.json()["images"]
    assert item["status"] == "present"
    [differing] = item["differingAttachments"]
    assert (differing["digest"], differing["destinationDigest"]) == (resigned, promoted)
    assert resigned in item["warning"]
    assert promoted in item["warning"]
    assert synced.code == 0, synced.err
    assert f"promoter copy --force {src}" in synced.err
    assert strict.code == 3, strict.err
    assert manifest_digest(dest_registry, repo, sig_tag) == promoted

    forced = cli("copy", src, dst, "--force", "-o", "json")

    assert forced.code == 0, forced.err
    assert f"moved {dest_registry.host}/{repo}:{sig_tag} from {promoted}" in forced.err
    # dev's .sig grew from production's (a signature appended): nothing only production had
    assert "it held nothing the new one lacks" in forced.err
    assert forced.json()["movedTags"] == [{"tag": sig_tag, "was": promoted, "dropped": False}]
    assert manifest_digest(dest_registry, repo, sig_tag) == resigned


def test_attachments_a_type_filter_leaves_behind_are_named(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """A --referrers-type that matches nothing (a typo) copies the image and says which types
    stayed behind, instead of dropping the signature silently."""
    digest = push(source_registry, repo, images.oci_image([images.layer(90, "lb")], seed="lb"))
    signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "--referrers-type",
        "text/spdx",
    )
    assert result.code == 0, result.err
    assert f"attachments of type {signing.SIMPLE_SIGNING} stayed behind" in result.err


def _delete_manifest(registry: RegistryProcess, repo: str, digest: str) -> None:
    status, _ = head(registry, f"/v2/{repo}/manifests/{digest}")
    assert status == 200
    url = f"{registry.url}/v2/{repo}/manifests/{digest}"
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - a loopback registry
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the same
        assert answer.status == 202


def test_a_referrer_the_source_lists_but_no_longer_has_is_left_out_with_a_warning(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """An SBOM deleted from the source while its referrers index still names it (crane or regctl
    clean-up leaves that) does not block the rest: the signature and the other SBOM travel, a
    warning names the dangling one, and the next plan is present."""
    image = images.oci_image([images.layer(90, "dg")], seed="dangling")
    push(source_registry, repo, image)
    old, new = _sbom(image.descriptor(), "old"), _sbom(image.descriptor(), "new")
    signing.push_referrer(source_registry.url, repo, old, image.digest)
    signing.push_referrer(source_registry.url, repo, new, image.digest)
    signature = signing.sign_image(source_registry.url, repo, image.digest, "x/y:1", key)
    _delete_manifest(source_registry, repo, old.digest)
    dst = f"{dest_registry.host}/{repo}:1.0"

    result = cli("copy", f"{source_registry.host}/{repo}:1.0", dst)
    planned = cli(
        "sync", "--from-registry", source_registry.host, "--image", dst, "--dry-run", "-o", "json"
    )

    assert result.code == 0, result.err
    assert f"the source lists referrer {old.digest}" in result.err
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [new.digest]
    sig_tag = f"sha256-{image.digest.split(':')[1]}.sig"
    assert manifest_digest(dest_registry, repo, sig_tag) == signature
    assert planned.json()["images"][0]["status"] == "present"


def test_tag_listings_are_bounded_and_loops_and_other_hosts_refused(
    source_registry: RegistryProcess, repo: str
) -> None:
    """A listing longer than its limit stops (memory bounded); a page linking to itself or to
    another host is refused, not followed."""
    image = images.oci_image([images.layer(50, "tl")], seed="taglist")
    for tag in ("a", "b", "c", "d"):
        push(source_registry, repo, image, tag=tag)
    transport = Transport()
    try:
        listing = Repository.of(transport, parse_reference(f"{source_registry.host}/{repo}:a"))
        with pytest.raises(AnswerTooLargeError):
            listing.list_tags(page_size=2, limit=3)
        assert len(listing.list_tags(page_size=2)) == 4
        with FaultProxy(source_registry.url) as proxy:
            looped = Repository.of(transport, parse_reference(f"{proxy.host}/{repo}:a"))
            for link in (f"</v2/{repo}/tags/list?n=1>", "<http://127.0.0.1:9/v2/x/tags/list>"):
                proxy.add_rule(
                    "GET",
                    r"/tags/list",
                    status=200,
                    headers={"Link": f'{link}; rel="next"', "Content-Type": "application/json"},
                    body=b'{"name": "x", "tags": ["a"]}',
                    times=5,
                )
                with pytest.raises(PromoterError, match=r"links a page twice|another host"):
                    looped.list_tags(page_size=1)
    finally:
        transport.close()


def test_too_many_tags_to_list_and_the_signature_is_found_by_name(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repository with more tags than promoter lists (or a registry paging without end) is asked
    for each attachment tag by name: the signature still travels."""
    digest = push(source_registry, repo, images.oci_image([images.layer(60, "mt")], seed="many"))
    push(source_registry, repo, images.oci_image([images.layer(60, "mt2")], seed="many2"), "2.0")
    signature = signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    monkeypatch.setattr(repository_module, "MAX_TAGS", 2)
    result = cli(
        "copy",
        f"{source_registry.host}/{repo}:1.0",
        f"{dest_registry.host}/{repo}:1.0",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert [a["digest"] for a in result.json()["attachments"]] == [signature]


def test_referrers_answers_are_bounded(
    api_registries: tuple[ReferrersApiProxy, ReferrersApiProxy],
    repo: str,
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More referrers, or more pages, than promoter reads end the copy with one line (exit 1)
    before memory grows: the image is promoted, the message says the rest was not."""
    source, dest = api_registries
    image = images.oci_image([images.layer(60, "rb")], seed="bounded")
    images.push_image(source.url, repo, image, "1.0")
    for seed in ("r1", "r2", "r3"):
        images.push_image(source.url, repo, _sbom(image.descriptor(), seed), None)
    src = f"{source.host}/{repo}:1.0"
    monkeypatch.setattr(repository_module, "MAX_REFERRERS", 2)
    too_many = cli("copy", src, f"{dest.host}/{repo}:1.0")
    monkeypatch.setattr(repository_module, "MAX_REFERRERS", 1000)
    monkeypatch.setattr(repository_module, "MAX_REFERRERS_PAGES", 2)
    source.configure(page_size=1)
    too_long = cli("copy", src, f"{dest.host}/{repo}:2.0")

    assert too_many.code == 1
    assert "more than 2 referrers" in too_many.err
    assert "was promoted, but" in too_many.err
    assert too_long.code == 1
    assert "more than 2 pages" in too_long.err


def test_a_destination_api_that_does_not_index_gets_the_referrers_tag(
    api_registries: tuple[ReferrersApiProxy, ReferrersApiProxy],
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A destination whose referrers API answers but lists nothing pushed (no OCI-Subject): the
    referrer is listed under sha256-<hex> too, and the next copy is present."""
    source, dest = api_registries
    image = images.oci_image([images.layer(60, "ni")], seed="noindex-api")
    images.push_image(source.url, repo, image, "1.0")
    sbom = _sbom(image.descriptor(), "ni")
    images.push_image(source.url, repo, sbom, None)
    empty = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }
    )
    with FaultProxy(dest.url) as blind:
        blind.add_rule(
            "GET",
            r"/referrers/",
            status=200,
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
            body=empty.encode(),
            times=100,
        )
        first = cli("copy", f"{source.host}/{repo}:1.0", f"{blind.host}/{repo}:1.0")
        again = cli("copy", f"{source.host}/{repo}:1.0", f"{blind.host}/{repo}:1.0")

    assert first.code == 0, first.err
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [sbom.digest]
    assert again.code == 0, again.err
    assert again.out.startswith("present")


def test_a_conditional_index_write_refused_is_merged_again(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """A registry that honours If-Match and refuses the index write (412: another writer changed
    it) gets the merge again, and the referrer is listed."""
    image = images.oci_image([images.layer(60, "im")], seed="ifmatch")
    push(source_registry, repo, image)
    sbom = _sbom(image.descriptor(), "im")
    signing.push_referrer(source_registry.url, repo, sbom, image.digest)
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/sha256-[0-9a-f]{64}$", status=412, times=1)
        result = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{proxy.host}/{repo}:1.0")
        puts = [h for h in proxy.hits if h.method == "PUT" and "/manifests/sha256-" in h.path]
    assert result.code == 0, result.err
    assert [h.status for h in puts][-2:] == [412, 201]
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [sbom.digest]


def test_a_destination_referrers_tag_holding_an_image_is_an_error_in_the_plan(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The plan does not promise what the sync cannot do: a destination sha256-<hex> tag holding an
    image makes the image an error (exit 1) naming the tag, in the plan as in the sync."""
    image = images.oci_image([images.layer(60, "pe")], seed="plan-error")
    push(source_registry, repo, image)
    signing.push_referrer(source_registry.url, repo, _sbom(image.descriptor(), "pe"), image.digest)
    push(dest_registry, repo, image)
    push(dest_registry, repo, image, tag=f"sha256-{image.digest.split(':')[1]}")
    dst = f"{dest_registry.host}/{repo}:1.0"
    planned = cli("sync", "--from-registry", source_registry.host, "--image", dst, "--dry-run")
    assert planned.code == 1
    assert "not a referrers list" in planned.err


def test_a_sync_report_keeps_the_copy_of_an_image_whose_signature_failed(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
    tmp_path: Path,
) -> None:
    """--report says the image was copied (action, bytes) and why its signature was not."""
    image = images.oci_image([images.layer(60, "rp")], seed="report")
    push(source_registry, repo, image)
    signing.sign_image(source_registry.url, repo, image.digest, "x/y:1", key)
    report = tmp_path / "report.json"
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/sha256-[0-9a-f]+\.sig$", status=400, times=10)
        result = cli(
            "sync",
            "--from-registry",
            source_registry.host,
            "--image",
            f"{proxy.host}/{repo}:1.0",
            "--retries",
            "0",
            "--report",
            str(report),
        )
    assert result.code == 1
    [entry] = json.loads(report.read_text())["images"]
    assert entry["action"] == "copied"
    assert entry["bytes"] > 0
    assert "was promoted, but" in entry["error"]


def test_attachments_deeper_than_promoter_follows_are_an_error_not_a_silent_cut(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chain of referrers deeper than MAX_DEPTH fails the copy saying so, instead of carrying
    part of it and calling the image complete."""
    image = images.oci_image([images.layer(60, "dp")], seed="deep")
    push(source_registry, repo, image)
    push(source_registry, repo, image, tag="2.0")
    subject = image
    for level in range(3):
        referrer = _sbom(subject.descriptor(), f"deep{level}")
        signing.push_referrer(source_registry.url, repo, referrer, subject.digest)
        subject = referrer
    monkeypatch.setattr(attachments_module, "MAX_DEPTH", 3)
    at_limit = cli("copy", f"{source_registry.host}/{repo}:1.0", f"{dest_registry.host}/{repo}:1.0")
    monkeypatch.setattr(attachments_module, "MAX_DEPTH", 2)
    result = cli("copy", f"{source_registry.host}/{repo}:2.0", f"{dest_registry.host}/{repo}:2.0")
    assert at_limit.code == 0, at_limit.err
    assert result.code == 1
    assert "more than 2 levels deep" in result.err


def test_a_destination_index_entry_whose_manifest_is_gone_is_pushed_again(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
) -> None:
    """The destination's referrers index names an SBOM whose manifest was deleted there: the plan
    says attach, and the sync pushes it again."""
    image = images.oci_image([images.layer(60, "gone")], seed="gone")
    push(source_registry, repo, image)
    sbom = _sbom(image.descriptor(), "gone")
    signing.push_referrer(source_registry.url, repo, sbom, image.digest)
    dst = f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", f"{source_registry.host}/{repo}:1.0", dst).code == 0
    _delete_manifest(dest_registry, repo, sbom.digest)
    hook = ("sync", "--from-registry", source_registry.host, "--image", dst)

    planned = cli(*hook, "--dry-run", "-o", "json")
    synced = cli(*hook)

    assert planned.json()["images"][0]["status"] == "attach"
    assert synced.code == 0, synced.err
    assert manifest_digest(dest_registry, repo, sbom.digest) == sbom.digest
    assert _digests(_fallback(dest_registry, repo, image.digest)) == [sbom.digest]


def test_later_tag_pages_missing_or_without_end_are_never_a_silent_cut(
    source_registry: RegistryProcess, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag list whose second page is gone is an error (the first page's 404 alone means no
    repository); one that pages past the page limit stops (then tags are asked for by name)."""
    image = images.oci_image([images.layer(50, "pg")], seed="pages")
    for tag in ("a", "b", "c"):
        push(source_registry, repo, image, tag=tag)
    transport = Transport()
    try:
        with FaultProxy(source_registry.url) as proxy:
            listing = Repository.of(transport, parse_reference(f"{proxy.host}/{repo}:a"))
            next_page = f'</v2/{repo}/tags/list?n=1&last=a>; rel="next"'
            proxy.add_rule(
                "GET",
                r"/tags/list\?n=1$",
                status=200,
                headers={"Link": next_page, "Content-Type": "application/json"},
                body=b'{"name": "x", "tags": ["a"]}',
                times=1,
            )
            proxy.add_rule("GET", r"/tags/list\?.*last=", status=404, times=1)
            with pytest.raises(RegistryError, match="a later page"):
                listing.list_tags(page_size=1)
            for n in range(3):
                proxy.add_rule(
                    "GET",
                    r"/tags/list",
                    status=200,
                    headers={
                        "Link": f'</v2/{repo}/tags/list?n=1&last=p{n}>; rel="next"',
                        "Content-Type": "application/json",
                    },
                    body=b'{"name": "x", "tags": []}',
                    times=1,
                )
            monkeypatch.setattr(repository_module, "MAX_TAG_PAGES", 2)
            with pytest.raises(AnswerTooLargeError, match="more than 2 pages"):
                listing.list_tags(page_size=1)
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (201, "does not store the referrers tag"),
        (403, "it may reserve sha256- tags"),
    ],
    ids=["acknowledged-not-stored", "reserved-tag"],
)
def test_a_destination_that_will_not_keep_the_referrers_tag_is_named_as_such(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    answer: int,
    words: str,
) -> None:
    """A registry that answers the index write without storing it, or refuses sha256- tags, is
    said to do so (exit 1), not blamed on another writer or on missing credentials."""
    image = images.oci_image([images.layer(60, f"ks{answer}")], seed=f"keep{answer}")
    push(source_registry, repo, image)
    signing.push_referrer(source_registry.url, repo, _sbom(image.descriptor(), "k"), image.digest)
    with FaultProxy(dest_registry.url) as proxy:
        proxy.add_rule("PUT", r"/manifests/sha256-[0-9a-f]{64}$", status=answer, times=10)
        result = cli(
            "copy",
            f"{source_registry.host}/{repo}:1.0",
            f"{proxy.host}/{repo}:1.0",
            "--retries",
            "0",
        )
    assert result.code == 1
    assert words in result.err
    assert "another writer" not in result.err
    assert "promoter login" not in result.err


def test_a_plan_names_the_types_a_filter_leaves_behind_for_present_images(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    cli: Callable[..., CliRun],
    key: signing.KeyPair,
) -> None:
    """A present image whose signature a --referrers-type (here two types in one value, one
    misspelt) leaves out: the plan says which types stay behind instead of a silent 'present'."""
    digest = push(source_registry, repo, images.oci_image([images.layer(60, "lp")], seed="lp"))
    dst = f"{dest_registry.host}/{repo}:1.0"
    assert cli("copy", f"{source_registry.host}/{repo}:1.0", dst).code == 0
    signing.sign_image(source_registry.url, repo, digest, "x/y:1", key)
    planned = cli(
        "sync",
        "--from-registry",
        source_registry.host,
        "--image",
        dst,
        "--dry-run",
        "--referrers-type",
        f"{SPDX},application/vnd.dev.cosign.simplesigning.v1+jsn",
    )
    assert planned.code == 0, planned.err
    assert f"attachments of type {signing.SIMPLE_SIGNING} stayed behind" in planned.err


def test_a_session_refuses_attachments_that_are_no_filter() -> None:
    """Session(attachments="none") is refused at once with one line, not an AttributeError later."""
    with pytest.raises(InputError, match="must be an AttachmentFilter"):
        promoter.Session(attachments="none")  # type: ignore[arg-type]  # the wrong type on purpose
