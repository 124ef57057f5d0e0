"""What the GitOps commands do: ``plan``, ``sync``, ``status`` and ``promote``, driven by promoter.yaml.

Each environment is a Kustomize overlay and a registry. The overlay is rendered with the real
kustomize (or read from ``--manifests``), its images are discovered, and those in the environment's
own registry are planned against the environment it promotes from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promoter.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    SecretScrubber,
    build_transport,
)
from promoter.cli.plan_output import as_json, carry_out, plan_exit_code, print_plan, print_table
from promoter.errors import InputError
from promoter.gitops.config import Environment, PromoterConfig, find_config, load_config
from promoter.gitops.discover import iter_images, iter_manifests
from promoter.gitops.hookfile import drift, hook_images_path, is_hook, rewritten
from promoter.gitops.render import Rendering, read_manifests, render_overlay
from promoter.oci.digest import Digest
from promoter.promote.facts import lookup_digest, plan_images
from promoter.promote.plan import PlanItem, iter_wanted
from promoter.reference import Reference, parse_reference
from promoter.remote.copy import DEFAULT_JOBS
from promoter.transport.session import Transport

if TYPE_CHECKING:
    from promoter.gitops.overlay import ImageEdit


def run_command(
    args: argparse.Namespace, scrub: SecretScrubber, early: Rendering | None = None
) -> int:
    """Run one of the GitOps commands; ``early`` is a build of the overlay started before loading."""
    config = load_config(args.config if args.config is not None else find_config(Path.cwd()))
    transport = _transport(config, args, scrub)
    try:
        if args.command == "plan":
            return _plan(config, args, transport, early)
        if args.command == "sync":
            return _sync(config, args, transport, early=early)
        if args.command == "status":
            return _status(config, args, transport)
        return _promote(config, args, transport)
    finally:
        transport.close()


def _transport(
    config: PromoterConfig, args: argparse.Namespace, scrub: SecretScrubber
) -> Transport:
    return build_transport(
        args, scrub, getattr(args, "jobs", DEFAULT_JOBS), registries=config.registries
    )


# -- images of an environment ----------------------------------------------------------------


def _images(
    environment: Environment, manifests: str | None = None, early: Rendering | None = None
) -> Iterator[str]:
    """Every container image the environment's manifests use, as written, as they are parsed.

    Argo CD hook objects are left out: their image is the promoter Job's own, deployed with the
    hook, not something the environment promotes.
    """
    if manifests:
        text = read_manifests(manifests)
    elif early is not None and early.overlay == environment.overlay:
        text = early.result()
    else:
        if early is not None:
            early.cancel()  # built for an overlay the validated configuration does not name
        text = render_overlay(environment.overlay)
    documents = (d for d in iter_manifests(text) if not is_hook(d))
    return (found.image for found in iter_images(documents))


def _modules(environment: Environment, images: Iterable[str]) -> dict[str, Reference]:
    """Managed images by module (repository path in the environment's registry), the first
    version each module runs."""
    return {module: refs[0] for module, refs in _versions(environment, images).items()}


def _versions(environment: Environment, images: Iterable[str]) -> dict[str, list[Reference]]:
    """Every distinct reference each module of the environment runs."""
    versions: dict[str, list[Reference]] = {}
    for text in _own_images(environment, images):
        reference = parse_reference(text)
        found = versions.setdefault(reference.repository, [])
        if reference not in found:
            found.append(reference)
    return versions


def _own_images(environment: Environment, images: Iterable[str]) -> list[str]:
    """The images of the environment's own registry, as the manifests write them."""
    return [text for text in images if parse_reference(text).registry == environment.registry]


def _plan_for(
    config: PromoterConfig,
    name: str,
    transport: Transport,
    *,
    manifests: str | None = None,
    only: set[str] | None = None,
    early: Rendering | None = None,
) -> list[PlanItem]:
    environment = config.environment(name)
    source = config.source_of(name)
    images = _images(environment, manifests, early)
    wanted = iter_wanted(images, environment.registry, source.registry if source else None)
    if only is not None:
        wanted = (
            w for w in wanted if w.destination is not None and w.destination.repository in only
        )
    return plan_images(transport, wanted)


# -- plan --------------------------------------------------------------------------------------


def _plan(
    config: PromoterConfig,
    args: argparse.Namespace,
    transport: Transport,
    early: Rendering | None = None,
) -> int:
    items = _plan_for(config, args.environment, transport, manifests=args.manifests, early=early)
    environment = config.environment(args.environment)
    hook_file = None if args.manifests else hook_images_path(environment.overlay)
    difference = drift(hook_file, _managed(items)) if hook_file is not None else None
    print_plan(args.environment, items, as_json(args), hook_file=difference)
    if difference is not None and not as_json(args):
        shown = (
            difference.path.relative_to(config.path.parent)
            if difference.path.is_relative_to(config.path.parent)
            else difference.path
        )
        if difference.missing:
            print(
                f"promoter: error: {shown} lacks {', '.join(difference.missing)}: the PreSync hook "
                "would not copy it; run promoter promote or add it",
                file=sys.stderr,
            )
        if difference.extra:
            print(
                f"promoter: warning: {shown} lists {', '.join(difference.extra)}, which the "
                "overlay does not run",
                file=sys.stderr,
            )
    code = plan_exit_code(items)
    if code == EXIT_OK and difference is not None and difference.missing:
        return EXIT_REFUSED  # the hook would leave an image the overlay runs uncopied
    return code


def _managed(items: Iterable[PlanItem]) -> list[str]:
    """The managed images of a plan, as the manifests write them (the hook file's form)."""
    return [item.image for item in items if item.destination is not None]


# -- sync --------------------------------------------------------------------------------------


def _sync(
    config: PromoterConfig,
    args: argparse.Namespace,
    transport: Transport,
    *,
    only: set[str] | None = None,
    manifests: str | None = None,
    early: Rendering | None = None,
) -> int:
    name = args.target if args.command == "promote" else args.environment
    manifests = manifests if manifests is not None else getattr(args, "manifests", None)
    items = _plan_for(config, name, transport, manifests=manifests, only=only, early=early)
    return carry_out(items, args, transport, name)


# -- status ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StatusCell:
    """One module in one environment: what its overlay asks for and what its registry holds."""

    reference: Reference
    resolved: Digest | None  #: what the reference resolves to in the environment's registry
    behind: bool

    def to_json(self) -> dict[str, object]:
        return {
            "image": str(self.reference),
            "tag": self.reference.tag,
            "digest": str(self.resolved) if self.resolved else self.reference.digest,
            "present": self.resolved is not None,
            "behind": self.behind,
        }

    def text(self) -> str:
        version = self.reference.tag or ""
        digest = str(self.resolved) if self.resolved else self.reference.digest
        if digest:
            short = digest.split(":", 1)[-1][:12]
            version += f" ({short})" if self.reference.tag else short
        mark = "" if self.resolved is not None else " (missing)"
        return ("< " if self.behind else "") + version + mark


def _status(config: PromoterConfig, args: argparse.Namespace, transport: Transport) -> int:
    names = list(config.environments)
    per_env = {
        name: _modules(config.environment(name), _images(config.environment(name)))
        for name in names
    }
    modules = sorted({module for refs in per_env.values() for module in refs})
    keys = [(name, module) for name in names for module in modules if module in per_env[name]]
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="status") as pool:
        futures = {
            key: pool.submit(lookup_digest, transport, per_env[key[0]][key[1]]) for key in keys
        }
        resolved = {key: future.result() for key, future in futures.items()}
    cells: dict[tuple[str, str], _StatusCell] = {}
    for name, module in keys:
        reference = per_env[name][module]
        source = config.source_of(name)
        behind = False
        if source is not None and module in per_env[source.name]:
            upstream = per_env[source.name][module]
            mine, theirs = resolved[(name, module)], resolved[(source.name, module)]
            # Behind means other content: compare digests where both registries answered, the
            # references otherwise (a tag and a pinned digest of the same image are not behind).
            if mine is not None and theirs is not None:
                behind = mine != theirs
            else:
                behind = (upstream.tag, upstream.digest) != (reference.tag, reference.digest)
        cells[(name, module)] = _StatusCell(reference, resolved[(name, module)], behind)
    if as_json(args):
        document = {
            "environments": names,
            "modules": [
                {
                    "module": module,
                    "environments": {
                        name: cells[(name, module)].to_json()
                        for name in names
                        if (name, module) in cells
                    },
                }
                for module in modules
            ],
        }
        print(json.dumps(document))
        return EXIT_OK
    table: list[tuple[str, ...]] = [("MODULE", *names)]
    for module in modules:
        table.append(
            (module, *(cells[(n, module)].text() if (n, module) in cells else "-" for n in names))
        )
    print_table(table)
    print("'<' behind the environment it promotes from; '(missing)' not in its registry")
    return EXIT_OK


# -- promote -----------------------------------------------------------------------------------


def _promote(config: PromoterConfig, args: argparse.Namespace, transport: Transport) -> int:
    target = config.environment(args.target)
    source = config.source_of(target.name)
    if source is None:
        raise InputError(
            f"environment {target.name} does not promote from another one "
            f"(set promotesFrom in {config.path})"
        )
    if args.all == bool(args.modules):
        raise InputError("name the modules to promote, or pass --all (not both)")
    available = _versions(source, _images(source))
    current = _modules(target, _images(target))
    chosen = sorted(available) if args.all else list(dict.fromkeys(args.modules))
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise InputError(
            f"{', '.join(unknown)}: not a module of {source.name} "
            f"(known: {', '.join(sorted(available)) or 'none'})"
        )
    if args.all:
        # A module the target does not deploy has nothing to set; say so instead of adding an
        # images: entry that would change nothing.
        for module in [m for m in chosen if m not in current]:
            print(f"{target.name} does not use {module}; skipped", file=sys.stderr)
        chosen = [m for m in chosen if m in current]
    ambiguous = [m for m in chosen if len(available[m]) > 1]
    if ambiguous:
        versions = "; ".join(
            f"{m}: {', '.join(_version(r) for r in available[m])}" for m in ambiguous
        )
        raise InputError(
            f"{source.name} runs more than one version of {versions}; promote by editing "
            f"{target.name}'s overlay by hand"
        )
    # ruamel.yaml loads only here: plan and sync, which run on every sync, do not edit files.
    from promoter.gitops.overlay import set_image, unified_diff, write_edit  # noqa: PLC0415

    wanted: dict[str, tuple[str | None, str | None]] = {}
    edit: ImageEdit | None = None
    for module in chosen:
        running = available[module][0]
        new_tag, digest = running.tag, running.digest
        if args.pin_digest:
            found = lookup_digest(transport, running)
            if found is None:
                raise InputError(f"{running} is not in {source.name}'s registry: nothing to pin")
            # The tag stays beside the digest: the copy keeps it, so the destination registry
            # never holds an untagged image that a lifecycle policy would expire.
            digest = str(found)
        wanted[module] = (new_tag, digest)
        name = current[module].name if module in current else f"{target.registry}/{module}"
        updated = set_image(
            target.overlay,
            match_repository=module,
            name=name,
            new_tag=new_tag,
            digest=digest,
            previous=edit,
        )
        if updated.after == (edit.after if edit is not None else updated.before):
            print(f"{target.name} already runs {module} {digest or new_tag}", file=sys.stderr)
        edit = updated
    diff = ""
    rendered: list[str] | None = None  # the target after the edit, rendered once for both uses
    if edit is not None and edit.changed:
        write_edit(edit)  # one write for all modules: the file is never left half-promoted
        rendered = list(_images(target))
        _check_promotion(target, wanted, edit, rendered)
        diff = unified_diff(edit, relative_to=config.path.parent)
    if edit is not None:
        diff += _rewrite_hook_file(config, target, edit, rendered)
    # With -o json the diff goes to stderr, so that stdout stays one JSON document (--sync).
    (sys.stderr if as_json(args) else sys.stdout).write(diff)
    if args.sync:
        return _sync(config, args, transport, only=set(chosen))
    return EXIT_OK


def _version(reference: Reference) -> str:
    return reference.digest or reference.tag or ""


def _rewrite_hook_file(
    config: PromoterConfig, target: Environment, edit: ImageEdit, rendered: list[str] | None
) -> str:
    """Make the Kustomize component's list name what the overlay runs; returns its diff.

    Otherwise the PreSync hook would not copy the promoted image. Rewritten even when the overlay
    already had the version, so that a promote also repairs a stale list.
    """
    from promoter.gitops.overlay import unified_diff, write_edit  # noqa: PLC0415 - see _promote

    hook_file = hook_images_path(target.overlay)
    if hook_file is None:
        return ""
    if rendered is None:
        rendered = list(_images(target))
    before, after = rewritten(hook_file, _own_images(target, rendered))
    listed = replace(edit, before=before, after=after, path=hook_file, changed=after != before)
    write_edit(listed)
    return unified_diff(listed, relative_to=config.path.parent)


def _check_promotion(
    target: Environment,
    wanted: dict[str, tuple[str | None, str | None]],
    edit: ImageEdit,
    rendered: Iterable[str],
) -> None:
    """Render the edited overlay and make sure each module now runs what was promoted.

    An entry can match by repository yet not apply (a patch sets the image after the rename, or
    the target does not deploy the module): then the file is put back and the user told where to
    look, instead of a diff that changes nothing.
    """
    from promoter.gitops.overlay import write_edit  # noqa: PLC0415 - see _promote

    versions = _versions(target, rendered)
    wrong = []
    for module, (tag, digest) in wanted.items():
        runs = versions.get(module, [])
        if not runs or any((r.tag != tag and tag is not None) or r.digest != digest for r in runs):
            shown = ", ".join(str(r) for r in runs) or "no image of it"
            wrong.append(f"{module} (renders {shown})")
    if wrong:
        write_edit(replace(edit, before=edit.after, after=edit.before))
        raise InputError(
            f"promoting to {target.name} would not change what it runs: {'; '.join(wrong)}; "
            "the image is set elsewhere in the overlay (a patch?) or not deployed there; "
            f"{edit.path} is unchanged"
        )
