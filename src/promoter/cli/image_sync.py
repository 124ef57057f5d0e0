"""``promoter sync --from-registry SRC --image DST ...``: the in-cluster sync, no Git checkout needed.

The hook Job knows the images its environment is about to run and the registry it promotes
from; it makes each destination reference present by copying the same repository path and tag or
digest from that registry (:func:`promoter.app.sync.make_present`'s plan). Statuses, report, exit codes
and idempotency are those of ``sync ENV``; a reference in the source registry itself is a refused
``foreign-environment`` image (``--allow-foreign``: a warning), never "present". It runs on every Argo CD sync, so when everything is present it
only sends HEAD requests, and it loads no YAML or pydantic unless a promoter.yaml supplies registry settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from promoter.app.runtime import SecretScrubber, registry_settings_of
from promoter.app.sync import lookup_deadline, plan_references
from promoter.cli.common import as_json, attachment_filter, build_runtime, warn
from promoter.cli.exit_codes import EXIT_OK
from promoter.cli.plan_output import sync_and_print
from promoter.config.lists import read_list_file
from promoter.config.locate import CONFIG_NAME
from promoter.errors import InputError, InvalidReferenceError
from promoter.planning.plan import PlanPolicy
from promoter.reference import parse_reference, parse_registry_host


def run_image_sync(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Plan and carry out the copy of the named images from ``--from-registry``."""
    if args.environment is not None:
        raise InputError("give either ENV or --from-registry with --image, not both")
    try:
        source_registry = parse_registry_host(args.from_registry)
    except InvalidReferenceError as exc:
        # the parser's words: they never repeat credentials typed into the host
        raise InputError(f"--from-registry: {exc}") from None
    texts = list(args.image or [])
    for path in args.images_file or []:
        texts.extend(entry for _, entry in read_list_file(path, "images file"))
    if not texts and not args.images_file:
        raise InputError("--from-registry needs at least one --image DST_REF or --images-file FILE")
    if not texts:
        # An overlay that runs no image of its registry yet: the hook must not fail every sync.
        files = "file lists" if len(args.images_file) == 1 else "files list"
        warn(f"nothing to promote: the images {files} no image")
        if as_json(args):  # the documented shape, empty, so a reader never parses nothing
            print(json.dumps({"environment": f"from {source_registry}", "images": []}))
        return EXIT_OK
    for text in texts:
        try:
            parse_reference(text)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"--image: {exc}") from exc
    config_path = args.config
    if config_path is None and (Path.cwd() / CONFIG_NAME).is_file():
        config_path = Path.cwd() / CONFIG_NAME
    with build_runtime(args, scrub, registries=registry_settings_of(config_path)) as runtime:
        plan = plan_references(
            runtime,
            texts,
            source_registry,
            deadline=lookup_deadline(args.deadline),
            policy=PlanPolicy(
                fail_diverged=args.fail_on_diverged,
                allowed_foreign=frozenset({"*"} if args.allow_foreign else ()),
                attachments=attachment_filter(args),
            ),
        )
        return sync_and_print(plan, args, runtime)
