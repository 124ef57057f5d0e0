"""The Python API: a :class:`Session` owns connection pools and credentials, and offers every operation
the CLI has, on plain values.

    >>> import promoter
    >>> with promoter.Session() as session:                                   # doctest: +SKIP
    ...     result = session.copy("dev.example.com/shop/cart:1.4", "prod.example.com/shop/cart")
    ...     plan = session.plan("production", config="promoter.yaml")

Timeouts are in seconds and bound an operation as a whole (retries and waits included); every error is a
:class:`promoter.errors.PromoterError` (see that module's tree).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypedDict, TypeVar

from promoter.app.batch import Pair, copy_images, pair
from promoter.app.runtime import Runtime, RuntimeSettings, SecretScrubber
from promoter.config.values import PromoterConfig, RegistrySettings
from promoter.deadline import Deadline
from promoter.errors import InputError, PromoterError
from promoter.oci.digest import Digest
from promoter.oci.referrers import ALL_ATTACHMENTS, AttachmentFilter
from promoter.planning.plan import PlanPolicy
from promoter.reference import Reference, parse_reference
from promoter.remote.copy import DEFAULT_JOBS, CopyProgress, CopyResult
from promoter.remote.repository import resolve_digest
from promoter.transport.pools import DEFAULT_REQUESTS

if TYPE_CHECKING:  # these load kustomize and YAML handling; the in-cluster sync needs neither
    from promoter.app.plan import EnvironmentPlan
    from promoter.app.promote import Promotion
    from promoter.app.status import StatusMatrix
    from promoter.app.sync import SyncReport
    from promoter.app.write_back import WriteBack
    from promoter.gitops.promotions import PromotionLog

#: ``promoter.yaml`` as a loaded value, or the path of one.
ConfigLike = PromoterConfig | Path | str


class SessionOptions(TypedDict, total=False):
    """The connection options of :class:`Session`, accepted by every one-shot function too."""

    ca_file: Path | str | None
    insecure_registries: Iterable[str]
    retries: int
    jobs: int
    requests: int
    progress: CopyProgress | None
    attachments: AttachmentFilter


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _scrubbed(
    operation: Callable[Concatenate[Session, _P], _R],
) -> Callable[Concatenate[Session, _P], _R]:
    """What leaves the Python API through an operation carries no secret of the session: an error
    it raises, and the errors it returns in a list (:meth:`Session.copy_batch`), are scrubbed in
    place (message, fields, causes), as the CLI scrubs what it prints. Reports scrub their own
    error texts where they are made (:mod:`promoter.app.plan`, :mod:`promoter.app.sync`)."""

    def run(self: Session, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            result = operation(self, *args, **kwargs)
        except BaseException as exc:
            self.scrubber.error(exc)
            raise
        if isinstance(result, list):
            for item in result:
                if isinstance(item, BaseException):
                    self.scrubber.error(item)
        return result

    functools.update_wrapper(run, operation)  # name and docstring of the operation, for help()
    return run


def _names(value: str | Iterable[str]) -> list[str]:
    """One name or many: a lone string is one name, not its characters."""
    return [value] if isinstance(value, str) else list(value)


def _modules(value: str | Iterable[str] | None) -> set[str] | None:
    """The modules a sync is limited to; None for all.

    Raises:
        InputError: an empty selection (a sync of nothing would report done).
    """
    if value is None:
        return None
    names = set(_names(value))
    if not names:
        raise InputError("modules: name at least one module, or leave it out to sync them all")
    return names


def deadline_after(timeout: float | None) -> Deadline | None:
    """A deadline ``timeout`` seconds from now; None for no timeout.

    Raises:
        InputError: ``timeout`` is not a positive, finite number of seconds.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool):
        raise InputError(f"timeout must be a number of seconds, got {timeout!r}")
    try:
        return Deadline.after(timeout)
    except ValueError as exc:
        raise InputError(f"timeout: {exc}") from None


def load(config: ConfigLike) -> PromoterConfig:
    """promoter.yaml as a value (a path is loaded and validated).

    Raises:
        ConfigError: the file is invalid; one line naming the key.
    """
    if isinstance(config, PromoterConfig):
        return config
    from promoter.config.load import load_config  # noqa: PLC0415 - pydantic only when asked for

    return load_config(Path(config))


class Session:
    """Connection pools, credentials (renewed as they expire) and settings for many operations.

    Use it as a context manager, or call :meth:`close`. Thread-safe: operations may run concurrently.

    Args:
        config: promoter.yaml (a path or a loaded value); its ``registries:`` settings apply to every
            operation, and its environments to :meth:`plan`, :meth:`sync`, :meth:`status` and
            :meth:`promote`.
        ca_file: extra CA certificates (PEM) for every registry.
        insecure_registries: hosts reached over plain HTTP or unverified TLS.
        retries: retries of a failed request.
        jobs: concurrent blob streams (blobs over 64 KiB).
        requests: requests in flight (images at once, lookups, manifests, small blobs).
        progress: receives blob progress events of copies.
        attachments: which signatures, attestations and SBOMs travel with every image this session
            copies, makes present, plans or syncs: all by default; ``NO_ATTACHMENTS`` for none
            (CLI ``--no-referrers``), or ``AttachmentFilter(artifact_types=...)``
            (``--referrers-type``).
        runtime: an existing runtime to share (front ends that build their own); the other
            connection arguments are then ignored.
    """

    def __init__(
        self,
        config: ConfigLike | None = None,
        *,
        ca_file: Path | str | None = None,
        insecure_registries: Iterable[str] = (),
        retries: int = 4,
        jobs: int = DEFAULT_JOBS,
        requests: int = DEFAULT_REQUESTS,
        progress: CopyProgress | None = None,
        attachments: AttachmentFilter = ALL_ATTACHMENTS,
        runtime: Runtime | None = None,
    ) -> None:
        self.config = load(config) if config is not None else None
        registries: Mapping[str, RegistrySettings] = (
            self.config.registries if self.config is not None else {}
        )
        self._found: tuple[PromoterConfig, Runtime] | None = None
        self._lock = threading.Lock()
        self.runtime = runtime or Runtime(
            RuntimeSettings(
                ca_file=Path(ca_file) if ca_file is not None else None,
                insecure_registries=frozenset(insecure_registries),
                retries=retries,
                jobs=jobs,
                requests=requests,
                registries=registries,
            )
        )
        self.progress = progress
        if not isinstance(attachments, AttachmentFilter):
            raise InputError(
                "attachments must be an AttachmentFilter (promoter.ALL_ATTACHMENTS, "
                f"promoter.NO_ATTACHMENTS, or AttachmentFilter(artifact_types=...)), got {attachments!r}"
            )
        self.attachments = attachments
        self._closed = False

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pools; the session cannot be used afterwards."""
        self._closed = True
        self.runtime.close()
        if self._found is not None:
            self._found[1].close()

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this promoter.Session is closed; open a new one")

    @property
    def scrubber(self) -> SecretScrubber:
        """Removes every secret this session has met from a text."""
        return self.runtime.scrubber

    def _environments(self) -> tuple[PromoterConfig, Runtime]:
        """promoter.yaml and the runtime for environment operations.

        The configuration given to the session, with the session's runtime; without one, the nearest
        promoter.yaml from the current folder up, with a runtime of its own that applies its
        ``registries:`` settings (as ``promoter plan`` does). Copies and digests keep the session's
        runtime either way, so their behaviour never depends on which operation ran first.

        Raises:
            ConfigError: none is found, or it is invalid.
        """
        with self._lock:
            if self.config is not None:
                return self.config, self.runtime
            if self._found is None:
                from promoter.config.load import find_config, load_config  # noqa: PLC0415

                found = load_config(find_config(Path.cwd()))
                runtime = Runtime(
                    replace(self.runtime.settings, registries=found.registries),
                    scrubber=self.runtime.scrubber,
                )
                self._found = (found, runtime)
            return self._found

    # -- images -------------------------------------------------------------------------------------

    @_scrubbed
    def copy(
        self,
        source: str | Reference,
        destination: str | Reference,
        *,
        force: bool = False,
        include_foreign: bool = False,
        timeout: float | None = None,
    ) -> CopyResult:
        """Make ``destination`` hold exactly the image ``source`` names, every platform, digest-exact.

        A destination without tag or digest keeps the source's tag (or digest). That rule reads the
        text: a :class:`~promoter.reference.Reference` is taken as given (``parse_reference`` gives
        a bare name ``latest``; build it with ``tag=None`` to keep the source's tag).

        Args:
            source: the image to copy (a reference string or a ``Reference``).
            destination: where to; a repository without tag or digest keeps the source's.
            force: move a destination tag that holds another digest.
            include_foreign: also copy foreign (non-distributable) layers.
            timeout: seconds for the whole copy.

        Returns:
            The result: digest, action (copied or present), blob counts, bytes, seconds.

        Raises:
            InvalidReferenceError: a reference does not parse.
            InputError: the session is closed.
            TagConflictError: the destination tag points at another digest and ``force`` is off.
            ImmutableTagError: the registry refuses to move the tag.
            RegistryError, RegistryUnreachableError, DigestMismatchError, CredentialError,
            DeadlineExceededError: the copy failed; nothing was tagged.
        """
        (outcome,) = self.copy_batch(
            [pair(source, destination)],
            force=force,
            include_foreign=include_foreign,
            timeout=timeout,
        )
        if isinstance(outcome, PromoterError):
            raise outcome
        return outcome

    @_scrubbed
    def copy_batch(
        self,
        pairs: Sequence[Pair] | Sequence[tuple[str, str]],
        *,
        force: bool = False,
        include_foreign: bool = False,
        timeout: float | None = None,
    ) -> list[CopyResult | PromoterError]:
        """Copy many images in one run (shared blobs move once); each pair's result or error in its
        place, never raised. Destinations follow :meth:`copy`'s naming rule.

        Raises:
            InvalidReferenceError: a reference does not parse.
            InputError: two pairs write one destination, or the session is closed.
        """
        self._check_open()
        if any(isinstance(p, str) or len(p) != 2 for p in pairs):
            raise InputError("copy_batch takes a list of (source, destination) pairs")
        parsed = [pair(s, d) for s, d in pairs]
        options = self.runtime.settings.copy_options(
            force=force, include_foreign=include_foreign, attachments=self.attachments
        )
        return copy_images(
            self.runtime,
            parsed,
            options=options,
            progress=self.progress,
            deadline=deadline_after(timeout),
        )

    @_scrubbed
    def digest(self, reference: str | Reference, *, timeout: float | None = None) -> Digest:
        """The digest ``reference`` resolves to (as ``crane digest``).

        Raises:
            InvalidReferenceError: the reference does not parse.
            RegistryError: 404 ``MANIFEST_UNKNOWN`` when it does not exist; any other answer.
            RegistryUnreachableError, CredentialError, DeadlineExceededError: no answer in time.
        """
        self._check_open()
        ref = reference if isinstance(reference, Reference) else parse_reference(reference)
        return resolve_digest(self.runtime.transport, ref, deadline=deadline_after(timeout))

    @_scrubbed
    def make_present(
        self,
        references: str | Iterable[str],
        *,
        from_registry: str,
        timeout: float | None = None,
    ) -> SyncReport:
        """Make each destination reference present by copying the same repository path and tag or
        digest from ``from_registry`` (what the hook Job and the webhook do).

        Args:
            references: destination references (one string, or many).
            from_registry: the registry host to copy from (``host[:port]``).
            timeout: seconds for the whole operation.

        Returns:
            One record per reference; images that failed or ran out of time are failed records.

        Raises:
            InputError: ``from_registry`` is not a registry host, or the session is closed.
            InvalidReferenceError: a reference does not parse.
        """
        self._check_open()
        from promoter.app.sync import make_present  # noqa: PLC0415

        return make_present(
            self.runtime,
            _names(references),
            from_registry,
            progress=self.progress,
            deadline=deadline_after(timeout),
            policy=PlanPolicy(attachments=self.attachments),
        )

    # -- environments -------------------------------------------------------------------------------

    @_scrubbed
    def plan(
        self, environment: str, *, manifests: str | None = None, timeout: float | None = None
    ) -> EnvironmentPlan:
        """What a sync of ``environment`` would do.

        Args:
            environment: an environment of promoter.yaml.
            manifests: a file of rendered manifests to read instead of rendering the overlay
                (``-`` for standard input).
            timeout: seconds for the registry lookups as a whole.

        Returns:
            The plan: one item per distinct image with its status (present, copy, conflict,
            missing-source, external, error) and how the hook's image list differs, if it does.

        Raises:
            ConfigError: no promoter.yaml, an unknown environment, an overlay that does not render.
            InvalidReferenceError: an image in the manifests does not parse.
            InputError: the session is closed.
        """
        self._check_open()
        from promoter.app.plan import plan_environment  # noqa: PLC0415

        config, runtime = self._environments()
        return plan_environment(
            runtime,
            config,
            environment,
            manifests=manifests,
            check_hook_file=True,
            deadline=deadline_after(timeout),
            policy=self._policy(config, environment),
        )

    @_scrubbed
    def sync(
        self,
        environment: str,
        *,
        manifests: str | None = None,
        modules: str | Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> SyncReport:
        """Copy every image ``environment`` needs into its registry, in one run.

        Args:
            environment: an environment of promoter.yaml.
            manifests: as :meth:`plan`.
            modules: sync only these modules (repository paths; one string or many).
            timeout: seconds for the whole sync.

        Returns:
            One record per managed image; ``outcome`` is done when all are present now.

        Raises:
            ConfigError, InvalidReferenceError: as :meth:`plan`.
            InputError: a module the environment does not run, or the session is closed.
        """
        self._check_open()
        from promoter.app.sync import sync_environment  # noqa: PLC0415

        config, runtime = self._environments()
        return sync_environment(
            runtime,
            config,
            environment,
            manifests=manifests,
            only=_modules(modules),
            progress=self.progress,
            deadline=deadline_after(timeout),
            policy=self._policy(config, environment),
        )

    def _policy(self, config: PromoterConfig, environment: str) -> PlanPolicy:
        """The environment's plan policy with this session's attachments.

        Raises:
            ConfigError: ``environment`` is not one of ``config``'s.
        """
        from promoter.app.plan import environment_policy  # noqa: PLC0415

        return environment_policy(config.environment(environment), attachments=self.attachments)

    @_scrubbed
    def status(self, *, timeout: float | None = None, offline: bool = False) -> StatusMatrix:
        """Which version of each module every environment runs, and who is behind; with
        ``offline``, Git's view without asking any registry (every cell not checked).

        Raises:
            ConfigError: no promoter.yaml, or an overlay that does not render.
            RegistryError, RegistryUnreachableError, CredentialError, DeadlineExceededError: a
                registry could not be asked.
            InputError: the session is closed.
        """
        self._check_open()
        from promoter.app.status import status_matrix  # noqa: PLC0415

        config, runtime = self._environments()
        return status_matrix(runtime, config, deadline=deadline_after(timeout), offline=offline)

    @_scrubbed
    def promote(
        self,
        modules: str | Sequence[str] = (),
        *,
        to: str,
        every_module: bool = False,
        pin_digest: bool = False,
        verify: bool = True,
        version: str | None = None,
        dry_run: bool = False,
        write_back: WriteBack | None = None,
        timeout: float | None = None,
    ) -> Promotion:
        """Set the version ``to``'s source environment runs (or ``version``) into ``to``'s overlay,
        check what the edited overlay renders, rewrite the hook's image list, and (``write_back``)
        commit it to Git.

        Args:
            modules: repository paths (one string or many), unless ``every_module``.
            to: the target environment.
            every_module: every module of the source that the target deploys; one the source
                runs in more than one version is left alone (``refused``, outcome refused).
            pin_digest: write the digest beside the tag (an entry pinned already stays pinned).
            verify: ask the source registry for each version before writing anything.
            version: this version (tag, digest or ``tag@digest``) of the one module named: one
                the source registry holds, else the target's (a rollback).
            dry_run: write nothing; the edit is rendered in a temporary copy and returned.
            write_back: commit the edit (``WriteBack(branch=..., push=...)``); Git's refusals
                are checked before anything is written.
            timeout: seconds for the renders, the registry lookups and Git.

        Returns:
            The files written, their diff, each module's change, notes, warnings and the commit.

        Raises:
            InputError: no source environment, unknown modules, named modules the source runs in
                more than one version, an edit that would not change what the target runs (the
                file is put back), or a closed session.
            PromoterError: a version the source registry lacks (nothing is written), or a push
                that failed (the commit stays).
            ConfigError: an overlay cannot be read, rendered or written; a commit Git refused
                (the files are put back).
        """
        self._check_open()
        from promoter.app.promote import promote  # noqa: PLC0415

        config, runtime = self._environments()
        return promote(
            runtime,
            config,
            to,
            _names(modules),
            every_module=every_module,
            pin_digest=pin_digest,
            verify=verify,
            version=version,
            dry_run=dry_run,
            write_back=write_back,
            deadline=deadline_after(timeout),
        )

    def history(
        self,
        environment: str | None = None,
        module: str | None = None,
        *,
        limit: int = 100,
        timeout: float | None = None,
    ) -> PromotionLog:
        """The promotions recorded by ``promote --commit`` in the Git history of promoter.yaml's
        checkout, newest first (``.records``; ``.shallow`` when the checkout is a shallow clone;
        see :func:`promoter.app.write_back.promotion_history`).

        Raises:
            ConfigError: an unknown environment, no Git checkout, Git failed.
            InputError: a closed session, or no promoter.yaml given.
        """
        self._check_open()
        from promoter.app.write_back import promotion_history  # noqa: PLC0415

        config, _ = self._environments()
        return promotion_history(
            config, environment, module, limit=limit, deadline=deadline_after(timeout)
        )
