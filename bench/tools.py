"""The tools under measurement, promoter and skopeo: their environment, command lines and versions.

Both run with the same empty home and no proxy variables (``Tools``); skopeo's blob-info cache is
deleted where it really lives. Also here: the figures about the tools themselves (promoter's
start-up time, the RSS floor of a measured child, versions and the revision measured) and the
check that every program the benchmark runs is installed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import KIB, Measured, Spawner

ROOT = Path(__file__).resolve().parent.parent  # the repository
PROMOTER = ROOT / ".venv" / "bin" / "promoter"
# Where containers/image (skopeo 1.9) keeps its blob-info cache: the system path when running as
# root, else under $XDG_DATA_HOME (defaulting to ~/.local/share). The cache remembers which
# repositories of a registry hold a blob, so with it skopeo could mount instead of copying.
SYSTEM_BLOB_INFO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
USER_BLOB_INFO_CACHE = Path("containers/cache/blob-info-cache-v1.boltdb")

COPY_TIMEOUT_S = 900.0  # every subprocess of the benchmark is bounded


@dataclass
class Tools:
    """Environment and command lines of the two copiers, promoter and skopeo."""

    home: Path
    spawner: Spawner
    env: dict[str, str] = field(init=False)
    cache_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        # An empty home for both tools: no docker or containers auth files are read, and a
        # non-root skopeo keeps its blob-info cache in here, where we delete it.
        for sub in ("data", "config", "cache", "runtime", "docker"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / "data"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_CACHE_HOME=str(self.home / "cache"),
            XDG_RUNTIME_DIR=str(self.home / "runtime"),
            DOCKER_CONFIG=str(self.home / "docker"),
            # Keep compiled bytecode between runs, as an installed package has it, without
            # writing into src/: the first start compiles, later ones reuse.
            PYTHONPYCACHEPREFIX=str(self.home / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env

    def cache_files(self) -> list[Path]:
        return [SYSTEM_BLOB_INFO_CACHE, self.home / "data" / USER_BLOB_INFO_CACHE]

    def drop_skopeo_cache(self) -> None:
        for path in self.cache_files():
            path.unlink(missing_ok=True)

    def note_skopeo_cache(self) -> None:
        """Record where skopeo actually wrote its cache, as evidence that we delete the right file."""
        for path in self.cache_files():
            if path.exists():
                self.cache_seen.add(str(path))

    def promoter(self, *args: str) -> Measured:
        argv = [str(PROMOTER), "copy", "-o", "json", *args]
        return self.spawner.measure(argv, env=self.env, timeout=COPY_TIMEOUT_S)

    def skopeo(self, src: str, dst: str, *, registries_d: Path | None = None) -> Measured:
        """``skopeo copy --all --preserve-digests``; with ``registries_d`` (a containers-registries.d
        directory, e.g. one turning on ``use-sigstore-attachments``) as its ``--registries.d``."""
        options = [] if registries_d is None else ["--registries.d", str(registries_d)]
        argv = [
            "skopeo",
            *options,
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{src}",
            f"docker://{dst}",
        ]
        result = self.spawner.measure(argv, env=self.env, timeout=COPY_TIMEOUT_S)
        self.note_skopeo_cache()
        return result


def startup_time(tools: Tools) -> float:
    """Median wall time of ``promoter --version``: interpreter start and imports."""
    argv = [str(PROMOTER), "--version"]
    runs = [
        tools.spawner.measure(argv, env=tools.env, timeout=60).check("promoter --version").seconds
        for _ in range(5)
    ]
    return statistics.median(runs)


def skopeo_version(tools: Tools) -> str:
    result = tools.spawner.measure(["skopeo", "--version"], env=tools.env, timeout=60)
    return result.check("skopeo --version").stdout.strip()


def rss_floor(tools: Tools) -> float:
    """Peak RSS (MiB) that spawn.py reports for ``true``: the least any measured child can show."""
    result = tools.spawner.measure(["true"], env=tools.env, timeout=60).check("true")
    return result.max_rss_kib / KIB


def _output(argv: Sequence[str]) -> str:
    """stdout of a quick informational command, or '' if it cannot run."""
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def revision() -> str:
    """The commit promoter was measured at, with '+dirty' if src/ has uncommitted changes."""
    head = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return head + ("+dirty" if dirty else "")


def docker_registry_version() -> str:
    return _output(["docker-registry", "--version"]) or "docker-registry (version unknown)"


def preflight() -> None:
    missing = [tool for tool in ("skopeo", "curl", "docker-registry") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (run `make deps`)")
    if not PROMOTER.exists():
        raise SystemExit(f"{PROMOTER} not found (run `make deps`)")
