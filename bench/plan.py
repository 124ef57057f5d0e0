"""Benchmark ``promoter plan`` on an overlay with many managed images, side by side with the floor
(``kustomize build`` alone) and with what a script would do (``kustomize build`` plus one
``skopeo inspect --raw`` per image).

Two throwaway Distribution registries run on 127.0.0.1 and hold every image in both the source
("dev") and the destination ("production"), so the plan finds everything present: the PreSync case
that runs on every sync. Run ``.venv/bin/python bench/plan.py --help`` for options.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools is a top-level package of the repository

from bench.tools import PROMOTER  # noqa: E402
from devtools import images  # noqa: E402 - needs the sys.path entry above
from devtools.registry import RegistryProcess  # noqa: E402

DEV = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
PROD = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
TIMEOUT_S = 600


def kustomize_command(overlay: Path) -> list[str]:
    """The same renderer promoter uses: kustomize if installed, else kubectl kustomize."""
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(overlay)]
    return ["kubectl", "kustomize", str(overlay)]


def deployment(name: str, image: str) -> str:
    """A Deployment named ``name`` running ``image``: one file of a benchmark's base."""
    return (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  selector: {{matchLabels: {{app: {name}}}}}\n"
        f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
        f"    spec:\n      containers:\n        - name: app\n"
        f"          image: {image}\n"
    )


def promoter_yaml(registries: tuple[str, str], endpoints: tuple[str, str]) -> str:
    """promoter.yaml: dev -> production (overlays/dev, overlays/production), the dev and
    production ``registries`` reached at ``endpoints`` (base URLs)."""
    dev, prod = registries
    return (
        "environments:\n"
        f"  dev: {{overlay: overlays/dev, registry: {dev}}}\n"
        f"  production: {{overlay: overlays/production, registry: {prod}, promotesFrom: dev}}\n"
        "registries:\n"
        f"  {dev}: {{endpoint: '{endpoints[0]}'}}\n"
        f"  {prod}: {{endpoint: '{endpoints[1]}'}}\n"
    )


def write_overlay(root: Path, count: int, source: RegistryProcess, dest: RegistryProcess) -> Path:
    """A GitOps tree with one Deployment per image and a promoter.yaml pointing at the registries."""
    base = root / "base"
    base.mkdir(parents=True)
    names = []
    for i in range(count):
        name = f"svc-{i:03d}"
        names.append(f"{name}.yaml")
        (base / f"{name}.yaml").write_text(deployment(name, f"{PROD}/bench/{name}:1.0"))
    (base / "kustomization.yaml").write_text("resources:\n" + "".join(f"  - {n}\n" for n in names))
    overlay = root / "overlays" / "production"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources:\n  - ../../base\n")
    (root / "overlays" / "dev").mkdir()
    (root / "overlays" / "dev" / "kustomization.yaml").write_text("resources: []\n")
    (root / "promoter.yaml").write_text(promoter_yaml((DEV, PROD), (source.url, dest.url)))
    return overlay


def seed(count: int, source: RegistryProcess, dest: RegistryProcess) -> None:
    """The same small image under every repository, in both registries."""
    image = images.oci_image([images.layer(1024, "plan-bench")], seed="plan-bench")

    def push(args: tuple[RegistryProcess, int]) -> str:
        registry, i = args
        return images.push_image(registry.url, f"bench/svc-{i:03d}", image, "1.0")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(push, [(r, i) for r in (source, dest) for i in range(count)]))


def timed(argv: Sequence[str], *, cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    """Wall seconds of one command; fails loudly on an unexpected exit code."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed


def script_loop(overlay: Path, count: int, dest: RegistryProcess, root: Path) -> float:
    """What a hand-written check does: render, then ask skopeo about each image in turn."""
    started = time.perf_counter()
    subprocess.run(kustomize_command(overlay), capture_output=True, timeout=TIMEOUT_S, check=True)
    for i in range(count):
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--no-creds",
                f"docker://{dest.host}/bench/svc-{i:03d}:1.0",
            ],
            capture_output=True,
            timeout=60,
            check=True,
            cwd=root,
        )
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    """Seed, measure side by side for a few rounds, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="managed images (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="plan-", dir=ROOT / "bench"))
    try:
        with (
            RegistryProcess(work / "dev", name="dev") as source,
            RegistryProcess(work / "prod", name="prod") as dest,
        ):
            seed(args.images, source, dest)
            overlay = write_overlay(work / "repo", args.images, source, dest)
            plan_argv = [str(PROMOTER), "plan", "production", "-o", "json"]
            timed(plan_argv, cwd=work / "repo")  # warm-up: page cache, bytecode
            results: dict[str, list[float]] = {"plan": [], "kustomize": [], "script": []}
            for _ in range(max(1, args.rounds)):
                results["plan"].append(timed(plan_argv, cwd=work / "repo"))
                results["kustomize"].append(timed(kustomize_command(overlay), cwd=work))
                results["script"].append(script_loop(overlay, args.images, dest, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.images} managed images, all present; {args.rounds} rounds, medians (min)")
    print("| run | median | min |\n| --- | ---: | ---: |")
    labels = {
        "plan": "(1) promoter plan",
        "kustomize": "(2) kustomize build alone",
        "script": f"(3) kustomize build + {args.images} x skopeo inspect --raw",
    }
    for key, label in labels.items():
        print(f"| {label} | {median[key]:.2f} s | {min(results[key]):.2f} s |")
    print(f"(1)/(3) = {median['plan'] / median['script']:.3f} (target <= 0.15)")
    print(f"(1)/(2) = {median['plan'] / median['kustomize']:.2f} (target <= 2.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
