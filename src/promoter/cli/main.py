"""``promoter`` command line: parsing, calling :mod:`promoter.app`, printing, exit codes.

Exit codes (README "Exit codes", :mod:`promoter.cli.exit_codes`): 0 done; 1 failed; 2 bad input or usage;
3 refused by a safety rule. Errors are one line on standard error; ``--debug`` adds the traceback and HTTP
logging. Credentials are never printed: messages carry no headers, URLs lose their query strings, and every
line we print is scrubbed of the secrets loaded in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from promoter.app.access import login, login_host
from promoter.app.batch import Pair, copy_images, pair, read_pairs
from promoter.app.runtime import Runtime, SecretScrubber, registry_settings_of
from promoter.app.wire import (
    command_failure_json,
    copy_failure_json,
    copy_result_json,
    login_json,
    promotion_failure_json,
)
from promoter.cli import argocd, ecr_commands, gitops, webhook
from promoter.cli.common import (
    add_jobs_option,
    add_referrers_options,
    as_json,
    attachment_filter,
    attachment_notes,
    build_runtime,
    build_runtime_settings,
    configure_logging,
    describe_attachments,
    error,
    human_size,
    int_at_least,
    log,
    stop_on_signals,
    terminal_progress,
    warn,
)
from promoter.cli.exit_codes import (
    DEFAULT_TIMEOUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    cli_message,
    exit_code_for,
    exit_code_of,
)
from promoter.config.locate import named_config
from promoter.deadline import LONGEST_RUN_TIMEOUT, Deadline, bounded_by
from promoter.errors import InputError, PromoterError
from promoter.outcome import Outcome, outcome_of, worst
from promoter.reference import parse_reference
from promoter.remote.copy import CopyResult
from promoter.remote.repository import resolve_digest, uncancelled_uploads
from promoter.transport.watch import INTERRUPT_GRACE, interrupted, unanswered_after_interrupt
from promoter.version import __version__


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
        "--timeout",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"give up on the whole run after SECONDS (default {DEFAULT_TIMEOUT:g}; 0 for no "
        "limit); keep it below the hook Job's activeDeadlineSeconds",
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
    parser.add_argument(
        "--config",
        type=Path,
        dest="global_config",
        metavar="PATH",
        help="promoter.yaml (or a folder holding one) for the command that follows",
    )
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
    add_referrers_options(copy)
    _add_config_option(copy)

    digest = commands.add_parser(
        "digest", parents=[common], help="print the digest a reference resolves to"
    )
    digest.add_argument("reference", metavar="REF")
    _add_config_option(digest)

    login = commands.add_parser(
        "login",
        parents=[common],
        help="store registry credentials in the docker config",
        description="Check credentials against the registry and store them as 'docker login' does "
        "(the configured credential helper, else auths in $DOCKER_CONFIG/config.json).",
    )
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", required=True)
    # docker login's -p, accepted only to be refused without repeating it (argparse would echo an
    # unknown option's value in its error).
    login.add_argument("-p", "--password", help=argparse.SUPPRESS)
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else prompt on a terminal)",
    )
    gitops.add_commands(commands, common)
    ecr_commands.add_commands(commands, common)
    argocd.add_commands(commands, common)
    webhook.add_commands(commands, common)
    return parser


def _seconds(text: str) -> float:
    """An argparse type for ``--timeout``: a non-negative, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text!r}")
    if value > LONGEST_RUN_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"expected at most {LONGEST_RUN_TIMEOUT:g} seconds (0 for no limit), got {text!r}"
        )
    return value


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config PATH``: registry settings (endpoints, CAs, ECR) from a promoter.yaml."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="promoter.yaml whose registries: settings (endpoints, CAs, ECR) apply",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    owns_process: bool = False,
) -> int:
    """Run the CLI and return its exit code (callable from tests; the console script owns the
    process: see :func:`~promoter.cli.common.stop_on_signals`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    if args.global_config is not None and not hasattr(args, "config"):
        parser.print_usage(sys.stderr)
        error(f"--config: '{args.command}' reads no promoter.yaml")
        return EXIT_USAGE
    scrub = SecretScrubber()
    configure_logging(debug, scrub)
    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    # A server runs until stopped: each review has its own deadline (docs/webhook.md).
    serving = args.command in webhook.WEBHOOK_COMMANDS
    args.deadline = Deadline.after(timeout) if timeout > 0 and not serving else None
    # The run's deadline is also the current one (deadline.bounded_by), so that what cannot be
    # handed it (a credential source, a read of standard input) still ends at it.
    # The counts are the process's; this run's part is what they grow by (main() runs many times
    # in one process under tests and Python callers).
    unanswered_before, uncancelled_before = unanswered_after_interrupt(), uncancelled_uploads()
    with stop_on_signals(owns_process=owns_process), bounded_by(args.deadline):
        code = _run_command(args, scrub, stdin, debug=debug)
    unanswered = unanswered_after_interrupt() - unanswered_before
    if unanswered:
        warn(
            f"{unanswered} request(s) that open upload sessions got no answer within "
            f"{INTERRUPT_GRACE:g} s of the interrupt: the registry may keep those sessions until "
            "it purges stale uploads"
        )
    uncancelled = uncancelled_uploads() - uncancelled_before
    if uncancelled:
        warn(
            f"{uncancelled} upload session(s) could not be cancelled (the registry refused or did "
            "not answer the DELETE): it keeps them until it purges stale uploads"
        )
    # A server's stop cuts what is still running on purpose (webhook.md): its code stands.
    return EXIT_INTERRUPTED if interrupted() and not serving else code


def _run_command(
    args: argparse.Namespace, scrub: SecretScrubber, stdin: TextIO | None, *, debug: bool
) -> int:
    try:
        code = _dispatch(args, scrub, stdin)
        sys.stdout.flush()  # here, not at exit: a reader gone is handled below
    except PromoterError as exc:
        message = cli_message(exc, scrub)
        if args.command in _ONE_DOCUMENT_COMMANDS and as_json(args):
            # Their -o json is one document: a failure is one too, for CI reading stdout.
            print(json.dumps(_failure_document(args, message, exit_code_for(exc))))
        error(message)
        if debug:
            log.exception("details")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (promoter history | head -1): as a program killed by SIGPIPE,
        # stop quietly; standard output goes nowhere from now on, so exiting flushes nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last resort: one scrubbed line, exit 1
        scrub.error(exc)
        if debug:  # the traceback through the scrubbing log handler, never Python's own printer
            log.exception("internal error")
        error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_FAILED
    return code


def _dispatch(args: argparse.Namespace, scrub: SecretScrubber, stdin: TextIO | None) -> int:
    """Run the command ``args`` names; its exit code."""
    if hasattr(args, "config"):
        args.config = _config_named(args.global_config, args.config)
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
    if args.command in webhook.WEBHOOK_COMMANDS:
        return webhook.run_command(args, scrub)
    return _login(args, scrub, stdin or sys.stdin)


def _config_named(before: Path | None, after: Path | None) -> Path | None:
    """The promoter.yaml that ``--config`` names before and/or after the command (each may be the
    file or its folder); naming one file twice, in any spelling, is fine.

    Raises:
        InputError: the two name different files.
        ConfigError: a folder without promoter.yaml (:func:`named_config`).
    """
    named = [named_config(path) for path in (before, after) if path is not None]
    if len(named) == 2 and not _same_file(*named):
        raise InputError(
            f"--config is given twice with different files ({named[0]}, {named[1]}); give it once"
        )
    return named[0] if named else None


def _same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file: the same path once links and ``..`` are resolved, or the
    same file on disk (a hard link)."""
    if first.resolve() == second.resolve():
        return True
    try:
        return first.samefile(second)
    except OSError:
        return False


#: Commands whose ``-o json`` is one document on success, and one on a failure too
#: (:func:`_failure_document`), whatever step failed (``copy`` prints a line per image instead).
_ONE_DOCUMENT_COMMANDS = (
    "plan",
    "sync",
    "status",
    "promote",
    "prune",
    "history",
    "login",
    "digest",
)


def _failure_document(args: argparse.Namespace, message: str, code: int) -> object:
    """``{"error", "exitCode"}``, with the environment a plan or sync names, or promote's target."""
    if args.command == "promote":
        return promotion_failure_json(args.target, message, code)
    environment = (
        getattr(args, "environment", None)
        if args.command in ("plan", "sync", "prune", "history")
        else None
    )
    return command_failure_json(environment, message, code)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main(owns_process=True))


def _copy_pairs(args: argparse.Namespace) -> list[Pair]:
    if args.batch is not None:
        if args.source or args.destination:
            raise InputError("give either SRC DST or --batch FILE, not both")
        return read_pairs(args.batch)
    if not args.source or not args.destination:
        raise InputError("copy needs SRC and DST (or --batch FILE); see 'promoter copy --help'")
    return [pair(args.source, args.destination)]


def _copy_runtime(args: argparse.Namespace, scrub: SecretScrubber) -> Runtime:
    """The runtime for ``copy`` and ``digest``: promoter.yaml's registry settings with --config."""
    config = getattr(args, "config", None)
    return build_runtime(args, scrub, registries=registry_settings_of(config))


def _copy(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    pairs = _copy_pairs(args)
    progress = terminal_progress(args)
    display = progress if progress is not None else contextlib.nullcontext()
    with _copy_runtime(args, scrub) as runtime, display:
        options = runtime.settings.copy_options(
            force=args.force,
            include_foreign=args.include_foreign,
            attachments=attachment_filter(args),
        )
        outcomes = copy_images(
            runtime, pairs, options=options, progress=progress, deadline=args.deadline
        )
    if len(pairs) == 1 and isinstance(outcomes[0], PromoterError):
        if as_json(args):
            failure = outcomes[0]
            print(
                json.dumps(
                    copy_failure_json(
                        pairs[0],
                        cli_message(failure, scrub),
                        exit_code_for(failure),
                        _copied(failure),
                    )
                )
            )
        raise outcomes[0]
    for copied_pair, outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, CopyResult):
            _print_result(outcome, as_json(args))
            continue
        message = cli_message(outcome, scrub)
        if as_json(args):
            print(
                json.dumps(
                    copy_failure_json(
                        copied_pair, message, exit_code_for(outcome), _copied(outcome)
                    )
                )
            )
        error(message)
    if len(pairs) > 1 and not as_json(args):
        print(_batch_summary(outcomes))
    # A batch exits with its worst outcome: any real failure (1) outranks refusals (3).
    return exit_code_of(
        worst(outcome_of(o) if isinstance(o, PromoterError) else outcome_of(None) for o in outcomes)
    )


def _copied(failure: PromoterError) -> CopyResult | None:
    """The copy of an image whose attachments then failed (the error carries it), else None."""
    copied = getattr(failure, "result", None)
    return copied if isinstance(copied, CopyResult) else None


def _batch_summary(outcomes: Sequence[CopyResult | PromoterError]) -> str:
    """The last line of ``copy --batch``: how many images were copied, present, refused, failed."""
    results = [o for o in outcomes if isinstance(o, CopyResult)]
    refused = sum(
        1 for o in outcomes if isinstance(o, PromoterError) and outcome_of(o) is Outcome.REFUSED
    )
    copied = sum(1 for r in results if r.action == "copied")
    attached = sum(1 for r in results if r.action == "attached")
    completed = f" ({attached} given missing attachments)" if attached else ""
    return (
        f"{len(outcomes)} images: {copied} copied, {len(results) - copied} present{completed}, "
        f"{refused} refused, {len(outcomes) - len(results) - refused} failed"
    )


def _print_result(result: CopyResult, json_output: bool) -> None:
    for note in attachment_notes(result):
        warn(note)
    if json_output:
        print(json.dumps(copy_result_json(result)))
        return
    if result.action == "present":
        print(f"present {result.destination} {result.digest} (nothing to copy)")
        return
    if result.action == "attached":
        carried = describe_attachments(result.attachments)
        print(f"attached {result.destination} {result.digest}: {carried} copied")
        return
    blobs = {str(action): count for action, count in result.blobs.items()}
    carried = f"; + {describe_attachments(result.attachments)}" if result.attachments else ""
    print(
        f"copied  {result.source} -> {result.destination} {result.digest} "
        f"(blobs: {blobs['copied']} copied, {blobs['mounted']} mounted, {blobs['skipped']} skipped; "
        f"{human_size(result.bytes)} in {result.seconds:.2f} s{carried})"
    )


def _digest(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    reference = parse_reference(args.reference)
    with _copy_runtime(args, scrub) as runtime:
        digest = resolve_digest(runtime.transport, reference, deadline=args.deadline)
    if as_json(args):
        print(json.dumps({"reference": str(reference), "digest": str(digest)}))
    else:
        print(digest)
    return EXIT_OK


def _login(args: argparse.Namespace, scrub: SecretScrubber, stdin: TextIO) -> int:
    registry = login_host(args.registry)
    if args.password is not None:
        raise InputError(
            "login takes no password on the command line (shell history and process lists keep "
            "it); pipe it to --password-stdin"
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
    settings = build_runtime_settings(args)
    where = login(
        settings, registry, args.username, password, scrubber=scrub, deadline=args.deadline
    )
    if as_json(args):
        print(json.dumps(login_json(registry, args.username, where)))
    else:
        print(f"Login succeeded: credentials for {registry} stored in {where}", file=sys.stderr)
    return EXIT_OK
