"""``promoter webhook serve``: the admission webhook (docs/webhook.md)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from promoter.app.runtime import SecretScrubber
from promoter.cli.common import (
    add_referrers_options,
    attachment_filter,
    build_runtime_settings,
    int_at_least,
    positive_seconds,
)
from promoter.cli.exit_codes import EXIT_OK
from promoter.config.locate import find_config
from promoter.errors import InputError

WEBHOOK_COMMANDS = ("webhook",)

#: Seconds a registry may take to answer one request: a review's deadline bounds it anyway, and a
#: process that lives for weeks must not keep a stalled connection for the CLI's two minutes.
ANSWER_TIMEOUT = 30.0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``webhook`` and its subcommand ``serve``."""
    webhook = commands.add_parser(
        "webhook",
        parents=[common],
        help="the Kubernetes admission webhook (guard and on-demand promotion)",
        description="Commands of the admission webhook; see docs/webhook.md.",
    )
    subcommands = webhook.add_subparsers(dest="webhook_command", metavar="SUBCOMMAND")
    subcommands.required = True
    serve = subcommands.add_parser(
        "serve",
        parents=[common],
        help="answer AdmissionReviews for one environment over HTTPS",
        description="Serve AdmissionReview admission.k8s.io/v1 on POST /validate for ENV: deny "
        "Pods and pod templates whose images of ENV's registry are missing there (or, with "
        "admission.mode: promote in promoter.yaml, copy them from promotesFrom first), images of "
        "other environments' registries, and, as admission.external says, other registries' "
        "images. GET /healthz and /readyz on the same port; Prometheus metrics on "
        "--metrics-listen. Runs until SIGTERM, then answers the reviews in flight and exits 0.",
    )
    serve.add_argument("--environment", required=True, metavar="ENV", help="the environment")
    serve.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="promoter.yaml (default: the nearest one in the current directory or above)",
    )
    serve.add_argument(
        "--tls-cert", type=Path, required=True, metavar="PEM", help="certificate chain"
    )
    serve.add_argument("--tls-key", type=Path, required=True, metavar="PEM", help="private key")
    serve.add_argument(
        "--listen",
        default=":8443",
        metavar="ADDR",
        help="HOST:PORT to serve HTTPS on (default :8443, every address; port 0 picks one)",
    )
    serve.add_argument(
        "--metrics-listen",
        default=":9090",
        metavar="ADDR",
        help="HOST:PORT for Prometheus metrics over plain HTTP (default :9090; 'off' for none)",
    )
    serve.add_argument(
        "--review-threads",
        type=int_at_least(1),
        default=64,
        metavar="N",
        help="reviews that need the registry handled at once (default 64)",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=positive_seconds,
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM, how long reviews in flight may take (default 20; keep the Pod's "
        "terminationGracePeriodSeconds above it)",
    )
    serve.add_argument(
        "--idle-seconds",
        type=positive_seconds,
        default=75.0,
        metavar="SECONDS",
        help="close a connection that sends nothing for SECONDS (default 75); a request's head "
        "and its body must each arrive within 10 s, or SECONDS when shorter",
    )
    serve.add_argument(
        "--max-connections",
        type=int_at_least(1),
        default=1000,
        metavar="N",
        help="open connections beyond which new ones are closed at once (default 1000)",
    )
    serve.add_argument(
        "--tls-check-seconds",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how often the certificate files are checked for a rotation (default 10)",
    )
    add_referrers_options(serve)


def run_command(args: argparse.Namespace, scrub: SecretScrubber) -> int:
    """Run ``webhook serve`` until it is stopped.

    Raises:
        ConfigError, InputError: promoter.yaml, the environment, an address or the certificate is
            unusable (before anything is served).
    """
    # Loaded here, not at the top: the server libraries are needed by this command only.
    from promoter.app.admission import LOOKUP_WORKERS  # noqa: PLC0415
    from promoter.app.runtime import Runtime  # noqa: PLC0415
    from promoter.config.load import load_config  # noqa: PLC0415 - pydantic
    from promoter.webhook.server import (  # noqa: PLC0415
        ServeOptions,
        Webhook,
        configure_logging,
        parse_listen,
    )

    if hasattr(args, "timeout") or getattr(args, "output", "text") == "json":
        raise InputError(
            "webhook serve runs until it is stopped and logs JSON lines: --timeout and -o do not "
            "apply (each review is bounded by admission.deadlineSeconds in promoter.yaml)"
        )
    config = load_config(args.config if args.config is not None else find_config(Path.cwd()))
    config.environment(args.environment)  # an unknown environment is an error before serving
    metrics = (
        None
        if args.metrics_listen == "off"
        else parse_listen(args.metrics_listen, what="--metrics-listen")
    )
    options = ServeOptions(
        listen=parse_listen(args.listen),
        metrics_listen=metrics,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        review_threads=args.review_threads,
        shutdown_grace=args.shutdown_grace,
        tls_check_seconds=args.tls_check_seconds,
        keep_alive_seconds=args.idle_seconds,
        max_connections=args.max_connections,
        attachments=attachment_filter(args),
    )
    settings = replace(
        build_runtime_settings(args, registries=config.registries),
        answer_timeout=ANSWER_TIMEOUT,
        pool_size=args.review_threads + LOOKUP_WORKERS,
    )
    with Runtime(settings, scrubber=scrub) as runtime:
        webhook = Webhook(runtime, config, args.environment, options)
        # JSON lines from here on, once nothing can be refused any more: the process is a server.
        configure_logging(scrub, debug=bool(getattr(args, "debug", False)))
        for warning in config.warnings:
            logging.getLogger("promoter.webhook").warning(warning, extra={"event": "config"})
        webhook.run()
    return EXIT_OK
