"""``make demo``: promote a multi-arch image from a local "dev" registry to a local "production" one.

Two real Distribution registries start on loopback (standing in for two accounts' ECR registries),
a two-platform image whose platforms share a base layer is built and pushed to "dev", and
``promoter copy`` promotes it. Then the story a platform engineer cares about: the digests are
identical, a re-run writes nothing, and a tag that already points elsewhere is refused.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from devtools import images
from devtools.registry import RegistryProcess

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
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
    """Run the demo end to end and clean up after itself."""
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
        say("promote it to production, every platform, digest-exact")
        run("copy", src, dst)

        say("the digest in production is the digest in dev")
        run("digest", src)
        run("digest", dst)

        say("running the promotion again writes nothing (HEAD only): safe in every PreSync hook")
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
    shutil.rmtree(WORK, ignore_errors=True)
    say("done: registries stopped, .demo/ removed")


if __name__ == "__main__":
    main()
