"""``make demo``: promotion from a local "dev" registry to a local "production" one, end to end.

Two real Distribution registries start on loopback, standing in for two accounts' ECR registries.

Part 1, the engine: a two-platform image whose platforms share a base layer is pushed to "dev" and
``promoter copy`` promotes it: identical digests, a re-run that writes nothing, a refused tag move.

Part 2, GitOps: examples/gitops (three modules on their own versions, a dev and a production
overlay) is copied to a scratch folder with its promoter.yaml pointed at the two registries. CI's
images land in dev; production is brought to what its overlay asks for; then one module is promoted
as a Git change (``promoter promote``), planned, synced, and ``promoter status`` shows the result.

Part 3, admission: ``promoter webhook serve`` for production answers AdmissionReviews as the
Kubernetes API server sends them (over HTTPS, certificate from a throwaway CA): a Pod of a promoted
image is allowed, one of an image never promoted is denied with what to do, and with
``admission.mode: promote`` the same Pod makes the webhook copy the image from dev before it answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devtools import images, signing
from devtools.registry import RegistryProcess
from devtools.webhook import Certificates, WebhookProcess, pod, review

ROOT = Path(__file__).resolve().parent.parent
#: Where the demo works and leaves its results (DEMO_DIR overrides it, for the test that runs it).
WORK = Path(os.environ.get("DEMO_DIR") or ROOT / ".demo").resolve()
PROMOTER = Path(sys.executable).parent / "promoter"


def say(text: str) -> None:
    """A narrator line, set apart from the commands' own output."""
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(*args: str, check: bool = True) -> int:
    """Show and run a promoter command, letting its output through."""
    print("$ promoter " + " ".join(args), flush=True)
    code = subprocess.run([str(PROMOTER), *args], check=False, timeout=300).returncode
    print(f"(exit code {code})", flush=True)
    if check and code != 0:
        raise SystemExit(f"demo: 'promoter {' '.join(args)}' failed with exit code {code}")
    return code


def main() -> None:
    """Run the demo end to end; its work stays in .demo/ until the next run (or make clean)."""
    shutil.rmtree(WORK, ignore_errors=True)
    dev = RegistryProcess(WORK / "dev", name="dev")
    prod = RegistryProcess(WORK / "production", name="production")
    with dev, prod:
        say(f"two local registries: dev at {dev.host}, production at {prod.host}")

        base = images.layer(8 * 1024 * 1024, "demo-base", gzip=False)
        platforms = [
            images.oci_image(
                [base, images.layer(2 * 1024 * 1024, f"demo-{arch}", gzip=False)],
                arch=arch,
                seed=f"demo-{arch}",
            )
            for arch in ("amd64", "arm64")
        ]
        index = images.oci_index(platforms)
        digest = images.push_image(dev.url, "shop/checkout", index, "1.4.2")
        say(
            f"CI pushed shop/checkout:1.4.2 (linux/amd64 + linux/arm64, shared base layer) to dev: {digest}"
        )

        src = f"{dev.host}/shop/checkout:1.4.2"
        dst = f"{prod.host}/shop/checkout:1.4.2"
        key = signing.sigstore_key_pair(b"demo")
        signing.sign_recursively(dev.url, "shop/checkout", index, src, key)
        sbom = signing.referrer(
            index.descriptor(),
            signing.SPDX_JSON,
            signing.spdx_document("checkout", "1.4.2"),
            signing.SPDX_JSON,
        )
        signing.push_referrer(dev.url, "shop/checkout", sbom, digest)
        say(
            "CI signed it (a cosign .sig for the index and each platform) and attached an SBOM "
            "(an OCI 1.1 referrer)"
        )
        say("promote it to production, every platform, digest-exact, signatures and SBOM along")
        run("copy", src, dst)
        verdict = signing.verify_signature(prod.url, "shop/checkout", "1.4.2", key.public_pem, src)
        if not verdict.accepted:
            raise SystemExit(f"demo: the signature did not verify in production: {verdict.reason}")
        say(f"the signature verifies in production: {verdict.digest} signed as {src}")

        say("the digest in production is the digest in dev")
        run("digest", src)
        run("digest", dst)

        say("running the promotion again writes nothing (reads only): safe in every hook Job")
        run("copy", src, dst, "-o", "json")

        say("a hotfix rebuilt under the same tag in dev is refused in production (exit code 3)")
        rebuilt = images.oci_index(
            [
                images.oci_image(
                    [base, images.layer(1024, f"hotfix-{a}")], arch=a, seed=f"hotfix-{a}"
                )
                for a in ("amd64", "arm64")
            ]
        )
        images.push_image(dev.url, "shop/checkout", rebuilt, "1.4.2")
        code = run("copy", src, dst, check=False)
        if code != 3:
            raise SystemExit(
                f"demo: expected the tag move to be refused with exit code 3, got {code}"
            )

        say("promoted under a new tag instead; the shared base layer is not sent again")
        images.push_image(dev.url, "shop/checkout", rebuilt, "1.4.3")
        run("copy", f"{dev.host}/shop/checkout:1.4.3", f"{prod.host}/shop/checkout", "-o", "json")

        gitops_story(dev, prod, base)
        admission_story()
        prune_story(prod, base)
        git_story()
    say(
        f"done: registries stopped; the work is left for inspection in {WORK}: gitops/ (the "
        "GitOps repository, its promotions committed: git -C .demo/gitops log), status.html "
        "(the status page), "
        "dev/ and production/ (each registry's storage). The next 'make demo' or 'make clean' "
        "removes it."
    )


def _commit_all(repo: Path, message: str) -> None:
    """Make ``repo`` a Git repository with everything committed, committing as a fixed demo
    identity set in the repository itself (promote --commit commits there too)."""
    for command in (
        ["init", "-q"],
        ["config", "user.name", "promoter demo"],
        ["config", "user.email", "demo@promoter.invalid"],
        ["add", "-A"],
        ["commit", "-q", "-m", message],
    ):
        subprocess.run(["git", "-C", str(repo), *command], check=True, timeout=60)


def gitops_story(dev: RegistryProcess, prod: RegistryProcess, base: bytes) -> None:
    """Part 2: promotion as a Git change to the production overlay."""
    repo = WORK / "gitops"
    shutil.copytree(ROOT / "examples" / "gitops", repo)
    config = repo / "promoter.yaml"
    text = config.read_text().replace("http://127.0.0.1:5101", dev.url)
    config.write_text(text.replace("http://127.0.0.1:5102", prod.url))
    _commit_all(repo, "the GitOps repository as the demo starts")
    say(
        f"examples/gitops copied to {repo} (a Git repository, so the promotion "
        "is a diff to review); promoter.yaml points at the two registries"
    )

    for module, tags in {
        "cart": ("2.3.1", "2.4.0"),
        "checkout": ("1.8.0",),
        "catalog": ("3.0.2", "3.1.0"),
    }.items():
        for tag in tags:
            image = images.oci_index(
                [
                    images.oci_image(
                        [base, images.layer(64 * 1024, f"{module}-{tag}-{arch}")],
                        arch=arch,
                        seed=f"{module}-{tag}-{arch}",
                    )
                    for arch in ("amd64", "arm64")
                ]
            )
            images.push_image(dev.url, f"shop/{module}", image, tag)
    say("CI pushed cart 2.3.1 and 2.4.0, checkout 1.8.0, catalog 3.0.2 and 3.1.0 to dev")

    os.chdir(repo)
    say("production's registry starts empty: sync copies exactly what its overlay names")
    run("plan", "production", check=False)
    run("sync", "production")
    say(
        "which version of each module runs where ('<' = an older version than the environment it promotes from)"
    )
    run("status")
    say(
        "promote cart to production: one edit to the production overlay, shown as a diff, "
        "committed with the versions and digest as trailers (--commit)"
    )
    run("promote", "shop/cart", "--to", "production", "--commit")
    say("the plan for production now has one image to copy; the rest is present")
    run("plan", "production")
    run("sync", "production")
    say("cart is current in production; catalog still waits for its own promotion")
    run("status")
    os.chdir(ROOT)


def admission_story() -> None:
    """Part 3: the admission webhook, guard and then promote mode, for production."""
    repo = WORK / "gitops"
    production = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
    certificates = Certificates(WORK / "webhook-tls")
    say(
        "the admission webhook for production (what a Pod admission runs, whatever applied it): "
        "promoter webhook serve --environment production --config promoter.yaml "
        "--tls-cert tls.crt --tls-key tls.key"
    )
    with WebhookProcess(repo / "promoter.yaml", "production", certificates) as webhook:
        say(f"serving AdmissionReview v1 on https://{webhook.address}/validate")
        ask(webhook, f"{production}/shop/cart:2.4.0", "cart 2.4.0 was promoted: allowed")
        ask(
            webhook,
            f"{production}/shop/catalog:3.1.0",
            "catalog 3.1.0 was never promoted (kubectl set image, a self-heal without hooks): "
            "denied, saying what to do",
        )
    config = repo / "promoter.yaml"
    text = config.read_text()
    config.write_text(
        text.replace(
            "    promotesFrom: dev\n", "    promotesFrom: dev\n    admission: {mode: promote}\n", 1
        )
    )
    say("admission.mode: promote in promoter.yaml: the webhook copies a missing image on demand")
    with WebhookProcess(config, "production", certificates) as webhook:
        ask(
            webhook,
            f"{production}/shop/catalog:3.1.0",
            "the same Pod: catalog 3.1.0 is copied from dev, digest-exact, before the answer",
        )
        ask(webhook, f"{production}/shop/catalog:3.1.0", "and it is simply present now")
    say("the same digest in both registries")
    for registry in ("111111111111.dkr.ecr.us-east-1.amazonaws.com", production):
        run("digest", f"{registry}/shop/catalog:3.1.0", "--config", str(config))
    config.write_text(text)


def prune_story(prod: RegistryProcess, base: bytes) -> None:
    """Part 4: production's registry pruned down to what Git (and the running Pods) need."""
    repo = WORK / "gitops"
    production = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
    old = images.oci_image([base, images.layer(64 * 1024, "cart-2.2.0")], seed="cart-2.2.0")
    images.push_image(prod.url, "shop/cart", old, "2.2.0")
    say(
        "production's registry also holds cart 2.2.0, promoted long ago: no revision of any "
        "overlay in Git deploys it any more"
    )
    pods = WORK / "pods.json"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "catalog", "namespace": "shop"},
        "spec": {"containers": [{"name": "catalog", "image": f"{production}/shop/catalog:3.1.0"}]},
    }
    pods.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod]}))
    os.chdir(repo)
    say(
        "prune plans, as a dry run, what production's registry no longer needs: it keeps what the "
        "overlay deploys and deployed in its last revisions in Git, and, with --in-use (kubectl get "
        "pods -A -o json), catalog 3.1.0, which a Pod runs since the webhook promoted it. "
        "Part 1's checkout 1.4.2 and 1.4.3 (signatures and SBOM with them) are no overlay's "
        "either: two of checkout's three tags, more than the default --max-delete of half, so the "
        "run stops there (exit 3) and would delete nothing"
    )
    code = run("prune", "production", "--in-use", str(pods), check=False)
    if code != 3:
        raise SystemExit(f"demo: expected prune to stop at --max-delete with exit 3, got {code}")
    say("--max-delete 0.7 allows it; --confirm deletes; a second run finds nothing more to delete")
    run("prune", "production", "--in-use", str(pods), "--max-delete", "0.7", "--confirm")
    run("prune", "production", "--in-use", str(pods), "--max-delete", "0.7")
    os.chdir(ROOT)


def git_story() -> None:
    """Part 5: a promotion as a reviewed Git change: dry run, a branch, the merge, history."""
    repo = WORK / "gitops"
    os.chdir(repo)
    branch = "promote/catalog-3.1.0"
    say("catalog's turn, as a pull request would have it: first a dry run (nothing is written)")
    run("promote", "shop/catalog", "--to", "production", "--dry-run")
    say(
        f"then the same promotion committed on a new branch, {branch}, from HEAD; the checkout "
        "stays on its branch (with --push the branch goes to the remote, for gh pr create)"
    )
    run("promote", "shop/catalog", "--to", "production", "--branch", branch)
    identity = {
        "GIT_AUTHOR_NAME": "reviewer",
        "GIT_AUTHOR_EMAIL": "reviewer@promoter.invalid",
        "GIT_COMMITTER_NAME": "reviewer",
        "GIT_COMMITTER_EMAIL": "reviewer@promoter.invalid",
    }
    say(f"a reviewer merges the pull request: git merge --no-ff {branch}")
    subprocess.run(
        ["git", "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch],
        check=True,
        env={**os.environ, **identity},
        timeout=60,
    )
    say("the promotion history, read back from the commits' trailers")
    run("history", "production")
    say("a rollback names the version production ran before (its registry still holds it)")
    run("promote", "shop/cart", "--to", "production", "--version", "2.3.1", "--dry-run")
    say(
        "the status page: environments as columns, modules as rows, each cell's state in colour "
        "and in words, and the last promotions from Git (one self-contained HTML file)"
    )
    run("status", "--html", str(WORK / "status.html"))
    os.chdir(ROOT)


def ask(webhook: WebhookProcess, image: str, what: str) -> None:
    """Send a Pod CREATE review for ``image`` and show the answer."""
    say(what)
    print(f"POST /validate  Pod shop/web, image {image}", flush=True)
    response = webhook.review(review(pod("web", image)))
    print(json.dumps(response, indent=2), flush=True)


if __name__ == "__main__":
    main()
