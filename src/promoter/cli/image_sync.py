"""``promoter sync --from-registry SRC --image DST ...``: the in-cluster sync, no Git checkout needed.

A PreSync hook Job knows the images its environment is about to run and the registry it promotes
from; it makes each destination reference present by copying the same repository path and tag or
digest from that registry (the original design did this with a string replace of the account id).
Statuses, report, exit codes and idempotency are those of ``sync ENV``. It runs on every Argo CD
sync, so when everything is present it only sends HEAD requests, and it loads no YAML or pydantic
unless a promoter.yaml supplies registry settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promoter.cli.common import EXIT_OK, SecretScrubber, build_transport
from promoter.cli.plan_output import carry_out
from promoter.errors import ConfigError, InputError, InvalidReferenceError
from promoter.gitops.locate import CONFIG_NAME
from promoter.promote.facts import plan_images
from promoter.promote.plan import WantedImage
from promoter.reference import parse_reference
from promoter.remote.copy import DEFAULT_JOBS
from promoter.transport.session import Transport


def run_image_sync(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Plan and carry out the copy of the named images from ``--from-registry``."""
    if args.environment is not None:
        raise InputError("give either ENV or --from-registry with --image, not both")
    source_registry = _registry(args.from_registry)
    texts = list(args.image or [])
    for path in args.images_file or []:
        texts.extend(_read_images_file(path))
    if not texts and not args.images_file:
        raise InputError("--from-registry needs at least one --image DST_REF or --images-file FILE")
    if not texts:
        # An overlay that runs no image of its registry yet: the hook must not fail every sync.
        print("nothing to promote: the images files list no image", file=sys.stderr)
        return EXIT_OK
    wanted = []
    for text in dict.fromkeys(texts):
        try:
            destination = parse_reference(text)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"--image: {exc}") from exc
        source = destination.in_repository(source_registry, destination.repository)
        wanted.append(WantedImage(text, destination, source))
    transport = _transport(args, scrub)
    try:
        items = plan_images(transport, wanted)
        return carry_out(items, args, transport, f"from {source_registry}")
    finally:
        transport.close()


def _registry(text: str) -> str:
    """A registry host as references name it (``host[:port]``), validated.

    A bare word is refused rather than read as a Docker Hub repository (``foo`` -> docker.io).
    """
    host = text.strip()
    problem = f"--from-registry {text!r} is not a registry host; give host[:port] without a scheme"
    if not ("." in host or ":" in host or host == "localhost"):
        raise InputError(problem)
    try:
        return parse_reference(f"{host}/x").registry
    except InvalidReferenceError as exc:
        raise InputError(problem) from exc


def _read_images_file(path: Path) -> list[str]:
    """One image reference per line; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read images file {path}: {exc.strerror}") from exc
    return [
        line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()
    ]


def _transport(args: argparse.Namespace, scrub: SecretScrubber) -> Transport:
    """The transport, with registry settings from promoter.yaml when one is given or here."""
    config_path = args.config
    if config_path is None and (Path.cwd() / CONFIG_NAME).is_file():
        config_path = Path.cwd() / CONFIG_NAME
    jobs = getattr(args, "jobs", DEFAULT_JOBS)
    if config_path is None:
        return build_transport(args, scrub, jobs)
    from promoter.gitops.config import load_config  # noqa: PLC0415 - only with a promoter.yaml

    config = load_config(config_path, registries_only=True)
    return build_transport(args, scrub, jobs, registries=config.registries)
