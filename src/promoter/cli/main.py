"""``promoter`` command line.

Exit codes (README "Exit codes"): 0 done; 1 failed; 2 bad input or usage; 3 refused by a safety rule.
Errors are one line on standard error; ``--debug`` adds the traceback and HTTP logging. Credentials
are never printed: messages carry no headers, URLs lose their query strings, and every line we print
is scrubbed of the secrets loaded in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from promoter import __version__
from promoter.authn.store import Credential, store_credential
from promoter.cli import argocd, ecr_commands, gitops
from promoter.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    SecretScrubber,
    add_jobs_option,
    build_transport,
    configure_logging,
    destination_preparer,
    error,
    human_size,
    immutable_note,
    int_at_least,
    log,
    terminal_progress,
)
from promoter.errors import ConfigError, InputError, PromoterError, TagConflictError
from promoter.reference import Reference, parse_reference
from promoter.remote.copy import (
    Copier,
    CopyOptions,
    CopyResult,
    resolve_digest,
)
from promoter.transport.session import Transport, TransportOptions

if TYPE_CHECKING:
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; common options work before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log HTTP requests and show tracebacks",
    )
    group.add_argument(
        "--ca-file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PEM",
        help="trust these CA certificates besides the system store",
    )
    group.add_argument(
        "--insecure-registry",
        action="append",
        default=argparse.SUPPRESS,
        metavar="HOST",
        help="allow plain HTTP and unverified TLS for HOST[:PORT] "
        "(repeatable); loopback hosts may use plain HTTP anyway",
    )
    group.add_argument(
        "--retries",
        type=int_at_least(0),
        default=argparse.SUPPRESS,
        metavar="N",
        help="retries of a failed request on 408/429/5xx or a dropped connection (default 4)",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="output format (default text)",
    )

    parser = argparse.ArgumentParser(
        prog="promoter",
        parents=[common],
        description="Promote container images between registries, digest-exact.",
    )
    parser.add_argument("--version", action="version", version=f"promoter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    copy = commands.add_parser(
        "copy",
        parents=[common],
        help="copy an image, every platform, digest-exact",
        description="Copy SRC to DST exactly: same manifest bytes and digest, every platform. "
        "A DST without tag or digest keeps the source's tag (or digest).",
    )
    copy.add_argument("source", nargs="?", metavar="SRC", help="source image reference")
    copy.add_argument("destination", nargs="?", metavar="DST", help="destination image reference")
    copy.add_argument(
        "--batch",
        type=Path,
        metavar="FILE",
        help="copy many images in one run: each line 'SRC DST' ('-' reads stdin); blobs "
        "shared between images move once",
    )
    copy.add_argument(
        "--force",
        action="store_true",
        help="move a destination tag that points at a different digest",
    )
    copy.add_argument(
        "--include-foreign",
        action="store_true",
        help="also copy foreign (non-distributable) layers, those with 'urls'",
    )
    add_jobs_option(copy)

    digest = commands.add_parser(
        "digest", parents=[common], help="print the digest a reference resolves to"
    )
    digest.add_argument("reference", metavar="REF")

    login = commands.add_parser(
        "login",
        parents=[common],
        help="store registry credentials in the docker config",
        description="Check credentials against the registry and store them as 'docker login' does "
        "(the configured credential helper, else auths in $DOCKER_CONFIG/config.json).",
    )
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", required=True)
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else prompt on a terminal)",
    )
    gitops.add_commands(commands, common)
    ecr_commands.add_commands(commands, common)
    argocd.add_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    """Run the CLI and return its exit code (callable from tests)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    scrub = SecretScrubber()
    configure_logging(debug, scrub)
    try:
        if args.command == "copy":
            return _copy(args, scrub)
        if args.command == "digest":
            return _digest(args, scrub)
        if args.command in gitops.GITOPS_COMMANDS:
            return gitops.run_command(args, scrub)
        if args.command in ecr_commands.ECR_COMMANDS:
            return ecr_commands.run_command(args, scrub)
        if args.command in argocd.ARGOCD_COMMANDS:
            return argocd.run_command(args, scrub)
        return _login(args, scrub, stdin or sys.stdin)
    except PromoterError as exc:
        error(scrub(str(exc)))
        if debug:
            log.exception("details")
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        error(scrub(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"))
        return EXIT_FAILED


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


def _copy_pairs(args: argparse.Namespace) -> list[tuple[Reference, Reference]]:
    if args.batch is not None:
        if args.source or args.destination:
            raise InputError("give either SRC DST or --batch FILE, not both")
        return _read_batch(args.batch)
    if not args.source or not args.destination:
        raise InputError("copy needs SRC and DST (or --batch FILE); see 'promoter copy --help'")
    return [_pair(args.source, args.destination)]


def _pair(source_text: str, destination_text: str) -> tuple[Reference, Reference]:
    source = parse_reference(source_text)
    destination = parse_reference(destination_text, default_tag=None)
    if destination.tag is None and destination.digest is None:
        # Promotion keeps names: a bare destination repository gets the source's tag and digest
        # (pushed by tag when there is one, checked against the digest), as crane does.
        destination = replace(destination, tag=source.tag, digest=source.digest)
    return source, destination


def _read_batch(path: Path) -> list[tuple[Reference, Reference]]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read batch file {path}: {exc.strerror}") from exc
    pairs: list[tuple[Reference, Reference]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise InputError(f"{path}:{number}: expected 'SRC DST', got {line.strip()!r}")
        try:
            pair = _pair(words[0], words[1])
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc}") from exc
        # Pairs run concurrently in no set order: two writes to one destination would race.
        target = str(pair[1])
        if target in seen:
            raise InputError(
                f"{path}:{number}: destination {target} is already written by line {seen[target]}"
            )
        seen[target] = number
        pairs.append(pair)
    if not pairs:
        raise InputError(f"{path}: no 'SRC DST' lines to copy")
    return pairs


def _copy(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    pairs = _copy_pairs(args)
    as_json = getattr(args, "output", "text") == "json"
    transport = build_transport(args, scrub, args.jobs)
    options = CopyOptions(force=args.force, include_foreign=args.include_foreign, jobs=args.jobs)
    progress = terminal_progress(args)
    display = progress if progress is not None else contextlib.nullcontext()
    try:
        copier = Copier(
            transport, options, progress, prepare_destination=destination_preparer(transport)
        )
        with copier, display:
            outcomes = _run_copies(copier, pairs)
    finally:
        transport.close()
    outcomes = [_explain_conflict(outcome, transport) for outcome in outcomes]
    if len(pairs) == 1 and isinstance(outcomes[0], PromoterError):
        if as_json:
            _print_failure(pairs[0], outcomes[0], scrub)
        raise outcomes[0]
    failures: set[int] = set()
    for (source, destination), outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, CopyResult):
            _print_result(outcome, as_json)
            continue
        message = scrub(str(outcome))
        if as_json:
            _print_failure((source, destination), outcome, scrub)
        error(message)
        failures.add(outcome.exit_code)
    # A batch exits with its worst outcome: any real failure (1) outranks refusals (3).
    if not failures:
        return EXIT_OK
    return EXIT_FAILED if failures - {EXIT_REFUSED} else EXIT_REFUSED


def _explain_conflict(
    outcome: CopyResult | PromoterError, transport: Transport
) -> CopyResult | PromoterError:
    """A refused tag move into an ECR repository that keeps the tag immutable says so."""
    if not isinstance(outcome, TagConflictError):
        return outcome
    destination = parse_reference(outcome.destination)
    note = immutable_note(transport, destination.registry, destination.repository, destination.tag)
    if not note:
        return outcome
    explained = TagConflictError(outcome.destination, outcome.existing, outcome.wanted)
    explained.args = (str(outcome).removesuffix(" (use --force to move it)") + note,)
    return explained


def _print_failure(
    pair: tuple[Reference, Reference], error: PromoterError, scrub: SecretScrubber
) -> None:
    """The JSON line for an image that failed, so a -o json reader sees every pair."""
    source, destination = pair
    print(
        json.dumps(
            {
                "source": str(source),
                "destination": str(destination),
                "error": scrub(str(error)),
                "exitCode": error.exit_code,
            }
        )
    )


def _run_copies(
    copier: Copier, pairs: list[tuple[Reference, Reference]]
) -> list[CopyResult | PromoterError]:
    if len(pairs) == 1:
        try:
            return [copier.copy(*pairs[0])]
        except PromoterError as exc:
            return [exc]
    return copier.copy_all(pairs)


def _print_result(result: CopyResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json()))
        return
    if result.action == "present":
        print(f"present {result.destination} {result.digest} (nothing to copy)")
        return
    blobs = {str(action): count for action, count in result.blobs.items()}
    print(
        f"copied  {result.source} -> {result.destination} {result.digest} "
        f"(blobs: {blobs['copied']} copied, {blobs['mounted']} mounted, {blobs['skipped']} skipped; "
        f"{human_size(result.bytes)} in {result.seconds:.2f} s)"
    )


def _digest(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    reference = parse_reference(args.reference)
    transport = build_transport(args, scrub)
    try:
        digest = resolve_digest(transport, reference)
    finally:
        transport.close()
    if getattr(args, "output", "text") == "json":
        print(json.dumps({"reference": str(reference), "digest": str(digest)}))
    else:
        print(digest)
    return EXIT_OK


def _login(args: argparse.Namespace, scrub: SecretScrubber, stdin: TextIO) -> int:
    registry = args.registry.strip()
    # Accept what docker login accepts: a URL such as https://registry.example.com/ names its host.
    if "://" in registry:
        registry = registry.split("://", 1)[1].rstrip("/")
    if "/" in registry or not registry:
        raise InputError(
            f"login takes a registry host such as registry.example.com:5000, not {registry!r}"
        )
    if args.password_stdin:
        password = stdin.read().rstrip("\r\n")
    elif stdin.isatty():
        import getpass  # noqa: PLC0415 - only an interactive login prompts

        password = getpass.getpass(f"Password for {args.username}@{registry}: ")
    else:
        raise InputError("no password: pass --password-stdin and pipe it in")
    if not password:
        raise InputError("empty password on standard input")
    scrub.remember(password)
    credential = Credential(username=args.username, password=password)
    transport = Transport(
        TransportOptions(
            ca_file=getattr(args, "ca_file", None),
            insecure_registries=frozenset(getattr(args, "insecure_registry", None) or ()),
        ),
        credentials=lambda _host: credential,
    )
    try:
        transport.session(registry).ping()
    finally:
        transport.close()
    where = store_credential(registry, args.username, password)
    print(f"Login succeeded: credentials for {registry} stored in {where}", file=sys.stderr)
    return EXIT_OK
