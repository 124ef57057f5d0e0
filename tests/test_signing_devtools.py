"""Proves devtools.signing, the signer/verifier and attachment builders that issue 11's tests use.

The key format is checked by an independent decryption path; the ``.sig`` format against skopeo
itself (skopeo rewrites our attachment byte for byte when it copies it); the verifier against a
signature cosign made (containers/image's own test fixture) and against tampering; skopeo's
policy verdicts against Debian's sigstore-disabled skopeo, upgrading themselves where skopeo
can sign and verify. All registries are the real Distribution on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from pathlib import Path
from typing import Any, Literal

import nacl.secret
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from devtools import images, signing
from devtools.registry import RegistryProcess
from tests.registry_checks import manifest_digest, push, skopeo

DATA = Path(__file__).parent / "data"
EMPTY_CONFIG_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


@pytest.fixture(scope="session")
def other_key() -> signing.KeyPair:
    """A second key, with the empty passphrase cosign allows."""
    return signing.sigstore_key_pair(b"")


def _get(registry: RegistryProcess, repo: str, reference: str, accept: str) -> tuple[int, bytes]:
    """GET a manifest with http.client (not the module under test): (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    try:
        conn.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _get_json(registry: RegistryProcess, repo: str, reference: str, accept: str) -> dict[str, Any]:
    status, body = _get(registry, repo, reference, accept)
    assert status == 200, f"{repo}:{reference} answered {status}"
    document: dict[str, Any] = json.loads(body)
    return document


def _get_blob(registry: RegistryProcess, repo: str, digest: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    try:
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        return body
    finally:
        conn.close()


@pytest.fixture
def pushed(source_registry: RegistryProcess, repo: str) -> tuple[str, str]:
    """An image tagged v1 in the source registry: (digest, the identity a signer names)."""
    image = images.oci_image([images.layer(256, repo)], seed=repo)
    return push(source_registry, repo, image, "v1"), f"{source_registry.host}/{repo}:v1"


# keys ------------------------------------------------------------------------------------------


def test_key_pair_is_the_cosign_encrypted_format(key: signing.KeyPair) -> None:
    """The private PEM is go-tuf's scrypt(32768/8/1) + nacl/secretbox JSON and opens to the public key."""
    lines = key.private_pem.decode().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED COSIGN PRIVATE KEY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    document = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert list(document) == ["kdf", "cipher", "ciphertext"]
    assert document["kdf"]["name"] == "scrypt"
    assert document["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(document["kdf"]["salt"])) == 32
    assert document["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(document["cipher"]["nonce"])) == 24
    opened = signing.open_sigstore_key(key.private_pem, key.passphrase)
    assert opened.curve.name == "secp256r1"
    assert (
        opened.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == key.public_pem
    )


def test_wrong_passphrase_is_refused(key: signing.KeyPair, other_key: signing.KeyPair) -> None:
    """A wrong passphrase fails to open the secretbox with a clear error, also for the empty one."""
    with pytest.raises(signing.SigstoreKeyError, match="wrong passphrase"):
        signing.open_sigstore_key(key.private_pem, b"correct horse battery stapler")
    with pytest.raises(signing.SigstoreKeyError, match="wrong passphrase"):
        signing.open_sigstore_key(other_key.private_pem, b"x")
    assert signing.open_sigstore_key(other_key.private_pem, b"").curve.name == "secp256r1"


def test_key_opens_by_an_independent_path(key: signing.KeyPair) -> None:
    """hashlib.scrypt, a raw SecretBox and load_der_private_key open the key, and it signs for the public PEM."""
    body = b"".join(key.private_pem.splitlines()[1:-1])
    document = json.loads(base64.b64decode(body))
    params = document["kdf"]["params"]
    box_key = hashlib.scrypt(
        key.passphrase,
        salt=base64.b64decode(document["kdf"]["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    der = nacl.secret.SecretBox(box_key).decrypt(
        base64.b64decode(document["ciphertext"]), base64.b64decode(document["cipher"]["nonce"])
    )
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    signature = private.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    public = serialization.load_pem_public_key(key.public_pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))


# the verifier on a signature cosign made ---------------------------------------------------------


def test_verify_payload_accepts_a_signature_cosign_made() -> None:
    """c/image's cosign fixture verifies, and the same bytes are refused for another identity, digest or key."""
    vector = json.loads((DATA / "cosign-signature-vector.json").read_text())
    public_pem = vector["public_key"].encode()
    payload = base64.b64decode(vector["payload"])
    encoded = vector["annotations"][signing.SIGNATURE_ANNOTATION]
    digest = images.sha256_digest(vector["manifest"].encode())
    identity = "192.168.64.2:5000/cosign-signed-single-sample"
    assert vector["media_type"] == signing.SIMPLE_SIGNING
    assert (
        signing.verify_payload(public_pem, payload, encoded, digest=digest, identity=identity)
        is None
    )
    assert "identity" in str(
        signing.verify_payload(public_pem, payload, encoded, digest=digest, identity=identity + "2")
    )
    assert "does not match" in str(
        signing.verify_payload(
            public_pem, payload, encoded, digest=images.sha256_digest(b"x"), identity=identity
        )
    )
    other = signing.sigstore_key_pair(b"p").public_pem
    assert "verification failed" in str(
        signing.verify_payload(other, payload, encoded, digest=digest, identity=identity)
    )


# signing and verifying in a registry ----------------------------------------------------------


def test_signed_image_verifies(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """sign_image writes c/image's .sig (one simplesigning layer, payload naming digest and identity) that verifies."""
    digest, identity = pushed
    sig_digest = signing.sign_image(source_registry.url, repo, digest, identity, key)
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    assert manifest_digest(source_registry, repo, tag) == sig_digest
    manifest = _get_json(source_registry, repo, tag, images.OCI_MANIFEST)
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest["config"]["mediaType"] == images.OCI_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == signing.SIMPLE_SIGNING
    assert list(layer["annotations"]) == [signing.SIGNATURE_ANNOTATION]
    config = json.loads(_get_blob(source_registry, repo, manifest["config"]["digest"]))
    assert config == {
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    payload = json.loads(_get_blob(source_registry, repo, layer["digest"]))
    assert payload["critical"] == {
        "identity": {"docker-reference": identity},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature",
    }
    assert set(payload["optional"]) == {"creator", "timestamp"}
    verdict = signing.verify_signature(source_registry.url, repo, "v1", key.public_pem, identity)
    assert verdict == signing.Verdict(True, digest, (), identity)
    by_digest = signing.verify_signature(
        source_registry.url, repo, digest, key.public_pem, identity
    )
    assert by_digest.accepted


def test_verify_rejects_other_key_and_other_identity(
    source_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    other_key: signing.KeyPair,
) -> None:
    """A signature is refused under another public key and for another expected identity."""
    digest, identity = pushed
    signing.sign_image(source_registry.url, repo, digest, identity, key)
    wrong_key = signing.verify_signature(
        source_registry.url, repo, "v1", other_key.public_pem, identity
    )
    assert not wrong_key.accepted
    assert wrong_key.reasons == ("cryptographic signature verification failed",)
    wrong_identity = signing.verify_signature(
        source_registry.url, repo, "v1", key.public_pem, f"{source_registry.host}/{repo}:v2"
    )
    assert not wrong_identity.accepted
    assert wrong_identity.reason == f"Signature for identity {identity} is not accepted"


def test_verify_rejects_a_signature_moved_to_another_digest(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """A valid signature of image A copied into image B's .sig is refused: the signed digest differs."""
    digest_a, identity = pushed
    digest_b = push(source_registry, repo, images.oci_image([], seed=f"{repo}-b"), "v1")
    payload = signing.signature_payload(digest_a, identity)
    signature = signing.make_signature(payload, key.private_key())
    signing.put_sigstore_signatures(source_registry.url, repo, digest_b, [signature])
    verdict = signing.verify_signature(source_registry.url, repo, "v1", key.public_pem, identity)
    assert verdict.digest == digest_b
    assert verdict.reasons == (f"Signature for digest {digest_a} does not match",)


def test_verify_rejects_a_tampered_payload(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """A payload changed after signing (another identity, same signature annotation) is refused."""
    digest, identity = pushed
    signed = signing.make_signature(
        signing.signature_payload(digest, "elsewhere.invalid/team/app:v1"), key.private_key()
    )
    tampered = signing.SigstoreSignature(
        signing.signature_payload(
            digest, identity, timestamp=json.loads(signed.payload)["optional"]["timestamp"]
        ),
        signed.annotations,
    )
    signing.put_sigstore_signatures(source_registry.url, repo, digest, [tampered])
    verdict = signing.verify_signature(source_registry.url, repo, "v1", key.public_pem, identity)
    assert verdict.reasons == ("cryptographic signature verification failed",)


def test_verify_rejects_an_unsigned_image(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """An image without a .sig tag is refused, naming the missing tag."""
    digest, identity = pushed
    verdict = signing.verify_signature(source_registry.url, repo, "v1", key.public_pem, identity)
    assert verdict.reasons == (f"no .sig tag sha256-{digest.removeprefix('sha256:')}.sig (404)",)


def test_second_signature_is_appended(
    source_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    other_key: signing.KeyPair,
) -> None:
    """Signing again appends a layer and a diff_id (as c/image does); an equal signature is not added twice."""
    digest, identity = pushed
    first = signing.make_signature(signing.signature_payload(digest, identity), key.private_key())
    signing.put_sigstore_signatures(source_registry.url, repo, digest, [first])
    signing.sign_image(source_registry.url, repo, digest, identity, other_key)
    again = signing.put_sigstore_signatures(source_registry.url, repo, digest, [first])
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    manifest = _get_json(source_registry, repo, tag, images.OCI_MANIFEST)
    assert again == images.sha256_digest(_get(source_registry, repo, tag, images.OCI_MANIFEST)[1])
    layers = manifest["layers"]
    assert len(layers) == 2
    assert layers[0]["digest"] == images.sha256_digest(first.payload)
    config = json.loads(_get_blob(source_registry, repo, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in layers]
    for public in (key.public_pem, other_key.public_pem):
        assert signing.verify_signature(source_registry.url, repo, "v1", public, identity).accepted


# skopeo as the independent client ---------------------------------------------------------------


def _skopeo_copy_with_attachments(
    source: RegistryProcess, dest: RegistryProcess, src_ref: str, dst_ref: str, workdir: Path
) -> None:
    registries_d = signing.write_registries_d(workdir / "registries.d", source.host, dest.host)
    skopeo(
        "--registries.d",
        str(registries_d),
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{source.host}/{src_ref}",
        f"docker://{dest.host}/{dst_ref}",
    )


def test_skopeo_writes_the_same_sig_as_ours(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    other_key: signing.KeyPair,
    tmp_path: Path,
) -> None:
    """skopeo carrying our signature rewrites the .sig byte for byte, also when appending to one there."""
    digest, identity = pushed
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    ours = signing.make_signature(signing.signature_payload(digest, identity), key.private_key())
    source_sig = signing.put_sigstore_signatures(source_registry.url, repo, digest, [ours])
    # 1. A fresh destination: skopeo writes a new .sig from the signatures it read.
    _skopeo_copy_with_attachments(
        source_registry, dest_registry, f"{repo}:v1", f"{repo}:v1", tmp_path
    )
    assert manifest_digest(dest_registry, repo, tag) == source_sig
    # 2. A destination signed already: skopeo appends, and so do we, to the same bytes.
    theirs = signing.make_signature(
        signing.signature_payload(digest, identity), other_key.private_key()
    )
    image = images.oci_image([images.layer(256, repo)], seed=repo)
    for name in ("by-skopeo", "by-us"):
        push(dest_registry, f"{repo}-{name}", image, "v1")
        signing.put_sigstore_signatures(dest_registry.url, f"{repo}-{name}", digest, [theirs])
    _skopeo_copy_with_attachments(
        source_registry, dest_registry, f"{repo}:v1", f"{repo}-by-skopeo:v1", tmp_path
    )
    expected = signing.put_sigstore_signatures(dest_registry.url, f"{repo}-by-us", digest, [ours])
    assert manifest_digest(dest_registry, f"{repo}-by-skopeo", tag) == expected
    assert expected != source_sig


def test_sign_with_skopeo_signs_or_says_it_cannot(
    source_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    skopeo_signs: bool,
    tmp_path: Path,
) -> None:
    """sign() signs through skopeo where skopeo can and through the stand-in where it cannot; either verifies."""
    digest, identity = pushed
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    signed_by_skopeo = signing.sign_with_skopeo(
        source_registry.host, repo, digest, identity, key, workdir=tmp_path / "direct"
    )
    assert signed_by_skopeo == skopeo_signs
    assert (manifest_digest(source_registry, repo, tag) is not None) == skopeo_signs
    result = signing.sign(
        source_registry.url, repo, digest, identity, key, workdir=tmp_path / "sign"
    )
    assert result.signer == (signing.Signer.SKOPEO if skopeo_signs else signing.Signer.PYTHON)
    assert manifest_digest(source_registry, repo, tag) == result.sig_digest
    assert signing.verify_signature(
        source_registry.url, repo, "v1", key.public_pem, identity
    ).accepted


def test_sign_with_skopeo_raises_on_other_failures(
    source_registry: RegistryProcess, repo: str, key: signing.KeyPair, tmp_path: Path
) -> None:
    """A skopeo failure that is not Debian's disabled sigstore (here: no such manifest) raises with skopeo's words."""
    missing = images.sha256_digest(b"not pushed")
    with pytest.raises(signing.SkopeoError, match="manifest unknown"):
        signing.sign_with_skopeo(
            source_registry.host,
            repo,
            missing,
            f"{source_registry.host}/{repo}:v1",
            key,
            workdir=tmp_path,
        )


def _found(skopeo_signs: bool) -> signing.SkopeoVerdict:
    """What skopeo answers for a correctly signed image on this machine."""
    return (
        signing.SkopeoVerdict.VERIFIED
        if skopeo_signs
        else signing.SkopeoVerdict.SIGNATURE_FOUND_UNVERIFIABLE
    )


def test_skopeo_verify_finds_a_signature_and_its_absence(
    source_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    skopeo_signs: bool,
    tmp_path: Path,
) -> None:
    """skopeo's sigstoreSigned policy sees our .sig (verified, or found where sigstore is disabled); unsigned is NO_SIGNATURE."""
    digest, identity = pushed
    files = key.write(tmp_path / "keys")
    push(source_registry, repo, images.oci_image([], seed=f"{repo}-unsigned"), "unsigned")

    def check(tag: str) -> signing.SkopeoVerdict:
        return signing.skopeo_verify(
            source_registry.host,
            repo,
            tag,
            files.public_key,
            workdir=tmp_path / tag.replace(":", "-"),
        )

    assert check("v1") == signing.SkopeoVerdict.NO_SIGNATURE
    signing.sign_image(source_registry.url, repo, digest, identity, key)
    assert check("v1") == _found(skopeo_signs)
    assert check(digest) == _found(skopeo_signs)
    assert check("unsigned") == signing.SkopeoVerdict.NO_SIGNATURE


def test_skopeo_verify_at_the_destination_with_a_remapped_identity(
    source_registry: RegistryProcess,
    dest_registry: RegistryProcess,
    repo: str,
    pushed: tuple[str, str],
    key: signing.KeyPair,
    skopeo_signs: bool,
    tmp_path: Path,
) -> None:
    """After image and .sig reach another registry, skopeo_verify there with signed_prefix finds the source's signature."""
    digest, identity = pushed
    signing.sign_image(source_registry.url, repo, digest, identity, key)
    _skopeo_copy_with_attachments(
        source_registry, dest_registry, f"{repo}:v1", f"{repo}:v1", tmp_path
    )
    _skopeo_copy_with_attachments(
        source_registry, dest_registry, f"{repo}:v1", f"{repo}:bare", tmp_path
    )
    files = key.write(tmp_path / "keys")
    verdict = signing.skopeo_verify(
        dest_registry.host,
        repo,
        "v1",
        files.public_key,
        workdir=tmp_path / "verify",
        signed_prefix=f"{source_registry.host}/{repo}",
    )
    assert verdict == _found(skopeo_signs)
    assert signing.verify_signature(
        dest_registry.url, repo, "v1", key.public_pem, identity
    ).accepted
    # The same image bytes, so the same .sig: any tag of a signed digest carries its signature.
    bare = signing.skopeo_verify(
        dest_registry.host, repo, "bare", files.public_key, workdir=tmp_path / "bare"
    )
    assert bare == _found(skopeo_signs)


def test_skopeo_verify_multi_arch_needs_per_platform_signatures(
    source_registry: RegistryProcess,
    repo: str,
    key: signing.KeyPair,
    skopeo_signs: bool,
    tmp_path: Path,
) -> None:
    """skopeo checks each platform of an index: an index-only signature is NO_SIGNATURE, signed children are found."""
    index = images.multi_arch_index(repo)
    push(source_registry, repo, index, "multi")
    identity = f"{source_registry.host}/{repo}:multi"
    files = key.write(tmp_path / "keys")

    def check(name: str) -> signing.SkopeoVerdict:
        return signing.skopeo_verify(
            source_registry.host,
            repo,
            "multi",
            files.public_key,
            workdir=tmp_path / name,
            copy_all=True,
        )

    signing.sign_image(source_registry.url, repo, index.digest, identity, key)
    assert check("index-only") == signing.SkopeoVerdict.NO_SIGNATURE
    signed = signing.sign_recursively(source_registry.url, repo, index, identity, key)
    assert list(signed) == [child.digest for child in index.children] + [index.digest]
    assert check("recursive") == _found(skopeo_signs)
    for child in index.children:
        assert signing.verify_signature(
            source_registry.url, repo, child.digest, key.public_pem, identity
        ).accepted


@pytest.mark.parametrize(
    ("returncode", "stderr", "expected"),
    [
        (0, "", signing.SkopeoVerdict.VERIFIED),
        (
            1,
            'level=fatal msg="Source image rejected: Debian-local change: sigstore disabled"',
            signing.SkopeoVerdict.SIGNATURE_FOUND_UNVERIFIABLE,
        ),
        (
            1,
            (
                "copying image 1/2 from manifest list: Source image rejected: "
                "A signature was required, but no signature exists"
            ),
            signing.SkopeoVerdict.NO_SIGNATURE,
        ),
        (
            1,
            (
                "Source image rejected: A signature was required, but no signature exists "
                "(0 non-sigstore signatures, 1 sigstore non-signature attachments)"
            ),
            signing.SkopeoVerdict.NO_SIGNATURE,
        ),
    ],
)
def test_skopeo_outcomes_are_classified(
    returncode: int, stderr: str, expected: signing.SkopeoVerdict
) -> None:
    """Exit code 0, Debian's refusal and c/image's 'no signature' messages map to the three verdicts."""
    assert signing.classify_skopeo_verification(returncode, stderr) == expected


@pytest.mark.parametrize(
    ("stderr", "quoted"),
    [
        (
            "Source image rejected: Signature for identity 127.0.0.1:1/a:v1 is not accepted",
            "is not accepted",
        ),
        ("reading manifest v9 in 127.0.0.1:1/a: manifest unknown", "manifest unknown"),
    ],
)
def test_other_skopeo_failures_raise(stderr: str, quoted: str) -> None:
    """A rejection for another reason or a registry error raises, carrying skopeo's message."""
    with pytest.raises(signing.SkopeoError, match=quoted):
        signing.classify_skopeo_verification(1, stderr)


# referrers and cosign attachments -----------------------------------------------------------------


def test_referrer_manifest_layout() -> None:
    """referrer() is an OCI image manifest with artifactType, the {} empty config, one layer and the subject."""
    subject = {
        "mediaType": images.OCI_MANIFEST,
        "digest": images.sha256_digest(b"s"),
        "size": 1,
        "x": 1,
    }
    built = signing.referrer(
        subject, "application/spdx+json", b"sbom", "application/spdx+json", {"a": "b"}
    )
    document = json.loads(built.manifest)
    assert document["mediaType"] == images.OCI_MANIFEST
    assert document["artifactType"] == "application/spdx+json"
    assert document["config"] == {
        "mediaType": images.OCI_EMPTY,
        "digest": EMPTY_CONFIG_DIGEST,
        "size": 2,
    }
    assert built.blobs[0].data == b"{}"
    assert document["layers"] == [
        {"mediaType": "application/spdx+json", "digest": images.sha256_digest(b"sbom"), "size": 4}
    ]
    assert document["subject"] == {key: subject[key] for key in ("mediaType", "digest", "size")}
    assert document["annotations"] == {"a": "b"}


def test_referrer_descriptor_takes_artifact_type_else_config_media_type() -> None:
    """The fallback-index entry carries artifactType (else the config mediaType) and every manifest annotation."""
    with_type = images.oci_artifact(content=b"c", artifact_type="application/x-test")
    assert signing.referrer_descriptor(with_type) == {
        **with_type.descriptor(),
        "artifactType": "application/x-test",
    }
    without = images.oci_artifact(content=b"c")
    assert signing.referrer_descriptor(without)["artifactType"] == images.HELM_CONFIG
    annotated = images.oci_image([], seed="annotated", annotations={"k": "v"})
    descriptor = signing.referrer_descriptor(annotated)
    assert descriptor["annotations"] == {"k": "v"}
    assert descriptor["artifactType"] == images.OCI_CONFIG


def test_push_referrer_twice_keeps_both_descriptors(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str]
) -> None:
    """Two referrers of one image both end up in the sha256-<hex> index; pushing one again adds no duplicate."""
    digest, _ = pushed
    subject = {"mediaType": images.OCI_MANIFEST, "digest": digest, "size": 1}
    first = signing.referrer(
        subject, "application/spdx+json", b"one", "application/spdx+json", {"n": "1"}
    )
    second = signing.referrer(subject, "application/vnd.example", b"two", "text/plain")
    url = source_registry.url
    assert signing.fallback_referrers(url, repo, digest) is None
    assert signing.push_referrer(url, repo, first, digest) == first.digest
    assert signing.push_referrer(url, repo, second, digest) == second.digest
    signing.push_referrer(url, repo, first, digest)
    index = _get_json(
        source_registry, repo, f"sha256-{digest.removeprefix('sha256:')}", images.OCI_INDEX
    )
    assert index["mediaType"] == images.OCI_INDEX
    assert index["manifests"] == [
        {**first.descriptor(), "artifactType": "application/spdx+json", "annotations": {"n": "1"}},
        {**second.descriptor(), "artifactType": "application/vnd.example"},
    ]
    assert signing.fallback_referrers(url, repo, digest) == index["manifests"]
    stored = _get_json(source_registry, repo, first.digest, images.OCI_MANIFEST)
    assert stored["subject"]["digest"] == digest


def test_push_referrer_refuses_a_fallback_tag_that_is_not_an_index(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str]
) -> None:
    """When sha256-<hex> holds an image (as cosign copy writes it), push_referrer fails and leaves the tag alone."""
    digest, _ = pushed
    fallback = f"sha256-{digest.removeprefix('sha256:')}"
    image = images.oci_image([images.layer(256, repo)], seed=repo)
    push(source_registry, repo, image, fallback)
    built = signing.referrer(
        {"mediaType": images.OCI_MANIFEST, "digest": digest, "size": 1}, "a/b", b"x", "a/b"
    )
    with pytest.raises(images.PushError, match="not a referrers index"):
        signing.push_referrer(source_registry.url, repo, built, digest)
    assert manifest_digest(source_registry, repo, fallback) == digest


def test_cosign_attachments_under_att_and_sbom_tags(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """An attestation (DSSE of an in-toto statement) and an SBOM are pushed under .att and .sbom with cosign's layer types."""
    digest, _ = pushed
    statement = signing.in_toto_statement(
        f"{source_registry.host}/{repo}", digest, signing.SLSA_PROVENANCE, {"builder": {"id": "ci"}}
    )
    envelope = signing.dsse_envelope(statement, key)
    att = signing.cosign_attachment(
        "att", envelope, annotations={signing.PREDICATE_TYPE_ANNOTATION: signing.SLSA_PROVENANCE}
    )
    sbom = signing.cosign_attachment("sbom", signing.spdx_document("app", "1"))
    kinds: tuple[tuple[Literal["att", "sbom"], images.Image], ...] = (("att", att), ("sbom", sbom))
    for kind, attachment in kinds:
        pushed_digest = signing.push_cosign_attachment(
            source_registry.url, repo, digest, kind, attachment
        )
        tag = f"sha256-{digest.removeprefix('sha256:')}.{kind}"
        assert manifest_digest(source_registry, repo, tag) == pushed_digest == attachment.digest
    att_manifest = _get_json(source_registry, repo, att.digest, images.OCI_MANIFEST)
    [att_layer] = att_manifest["layers"]
    assert att_layer["mediaType"] == signing.DSSE_ENVELOPE
    assert att_layer["annotations"] == {"predicateType": signing.SLSA_PROVENANCE}
    sbom_manifest = _get_json(source_registry, repo, sbom.digest, images.OCI_MANIFEST)
    assert sbom_manifest["layers"][0]["mediaType"] == signing.SPDX_JSON
    config = json.loads(_get_blob(source_registry, repo, att_manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [att_layer["digest"]]
    opened = signing.verify_dsse_envelope(
        _get_blob(source_registry, repo, att_layer["digest"]), key.public_pem
    )
    assert opened["subject"][0]["digest"] == {"sha256": digest.removeprefix("sha256:")}


def test_signed_sbom_chain_layout(
    source_registry: RegistryProcess, repo: str, pushed: tuple[str, str], key: signing.KeyPair
) -> None:
    """The chain is image <- SBOM referrer <- (.sig on the SBOM digest, bundle referrer), each findable by tag."""
    digest, identity = pushed
    url = source_registry.url
    chain = signing.push_signed_sbom_chain(url, repo, digest, key, identity)
    assert chain.image == {
        "mediaType": images.OCI_MANIFEST,
        "digest": digest,
        "size": chain.image["size"],
    }
    [sbom_entry] = signing.fallback_referrers(url, repo, digest) or []
    assert sbom_entry["digest"] == chain.sbom
    assert sbom_entry["artifactType"] == signing.SPDX_JSON
    sbom_manifest = _get_json(source_registry, repo, chain.sbom, images.OCI_MANIFEST)
    assert sbom_manifest["subject"] == chain.image
    # The SBOM's own signatures: a .sig tag on its digest and a referrer listed under it.
    sig_tag = f"sha256-{chain.sbom.removeprefix('sha256:')}.sig"
    assert manifest_digest(source_registry, repo, sig_tag) == chain.sbom_sig
    assert signing.verify_signature(url, repo, chain.sbom, key.public_pem, identity).accepted
    [bundle_entry] = signing.fallback_referrers(url, repo, chain.sbom) or []
    assert bundle_entry["digest"] == chain.sbom_signature_referrer
    assert bundle_entry["artifactType"] == signing.SIGSTORE_BUNDLE
    assert (
        bundle_entry["annotations"]["dev.sigstore.bundle.predicateType"]
        == signing.COSIGN_SIGN_PREDICATE
    )
    bundle_manifest = _get_json(source_registry, repo, bundle_entry["digest"], images.OCI_MANIFEST)
    assert bundle_manifest["subject"]["digest"] == chain.sbom
    bundle = json.loads(_get_blob(source_registry, repo, bundle_manifest["layers"][0]["digest"]))
    statement = signing.verify_dsse_envelope(
        json.dumps(bundle["dsseEnvelope"]).encode(), key.public_pem
    )
    assert statement["subject"][0]["digest"] == {"sha256": chain.sbom.removeprefix("sha256:")}
    assert chain.digests == (chain.sbom, chain.sbom_sig, chain.sbom_signature_referrer)
    only_tag = signing.push_signed_sbom_chain(
        url, repo, digest, key, identity, sbom=b"{}", referrer_signature=False
    )
    assert only_tag.sbom_signature_referrer is None
    assert len(signing.fallback_referrers(url, repo, digest) or []) == 2
