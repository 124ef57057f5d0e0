"""Connection pools and TLS settings, shared by every registry session of a transport."""

from __future__ import annotations

import os
import re
import ssl
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import InsecureRequestWarning

from promoter.errors import ConfigError, Remedy
from promoter.transport.retry import RetryPolicy
from promoter.transport.watch import Pace, attach_current
from promoter.version import __version__

USER_AGENT = f"promoter/{__version__}"
#: The most bytes of an answer read whole (a token, a tag list, an error, the ping); manifests have their
#: own cap (``promoter.remote.repository.MAX_MANIFEST_BYTES``) and blobs stream.
ANSWER_LIMIT = 4 * 1024 * 1024
#: Requests in flight by default for latency-bound work: registry lookups, manifest reads and
#: writes, small blobs, images copied at once. Over a link with round trips of 20-100 ms each
#: request mostly waits, so many in flight are what make a run short; on loopback the registries'
#: CPU is the limit from about 16. Measured (bench/README.md, "Far link", --sweep-requests), the
#: 20-image batch and the hook's no-op run: 8, 16, 32 and 64 are equal on loopback (but 8 for the
#: batch), and at 80 ms 64 is the fastest (batch 3.25, 2.23, 1.44, 1.27 s). Blob streams,
#: bandwidth-bound, have their own limit (``promoter.remote.copy.DEFAULT_JOBS``).
DEFAULT_REQUESTS = 64
#: The most requests in flight a run may ask for: each is a thread per worker pool and a pooled
#: connection per registry host (urllib3 sets a pool's slots up front), so a mistyped huge value
#: would take the machine's memory and file descriptors before the first request.
MAX_REQUESTS = 256


class _Watched:
    """Mixed into urllib3's connections: each attaches itself to the exchange being sent on this
    thread (:mod:`promoter.transport.watch`), so the watchdog can cut it."""

    def connect(self) -> None:
        attach_current(self)
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        attach_current(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings shared by every registry session.

    Attributes:
        ca_file: extra CA certificates (PEM) trusted besides the system store, for every registry.
        ca_files: registry name -> CA certificates (PEM) trusted for that registry only.
        insecure_registries: hosts for which TLS is not verified and plain HTTP is allowed.
        endpoints: registry name -> base URL to send its requests to instead (a mirror, a local test
            registry standing in for a real-looking name); the scheme of the URL is used as given.
        retry: the retry policy for requests whose body can be sent again.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds a registry may take to answer a request as a whole (status line,
            headers and a body read whole), however it drips them; also the longest silence on a
            connection.
        stall_window: seconds over which a streaming body (a blob) must move ``stall_bytes``.
        stall_bytes: the fewest bytes a streaming body must move in each window; less is a stall,
            retried like a dropped connection.
        answer_limit: the most bytes of an answer read whole (a token, a tag list, an error body).
        pool_size: connections kept per host; at least the number of concurrent transfers.
    """

    ca_file: Path | None = None
    ca_files: Mapping[str, Path] = field(default_factory=dict)
    insecure_registries: frozenset[str] = frozenset()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    stall_window: float = 30.0
    stall_bytes: int = 64 * 1024
    answer_limit: int = ANSWER_LIMIT
    pool_size: int = 16

    @property
    def pace(self) -> Pace:
        """The rules every exchange is held to (:mod:`promoter.transport.watch`)."""
        return Pace(self.read_timeout, self.stall_window, self.stall_bytes)


class ConnectionPools:
    """urllib3 pool managers: plain HTTP, verified TLS, unverified TLS for insecure hosts, and one per
    registry that has a CA of its own. TLS contexts are made on first use: loading the trust store
    costs more than a loopback copy's first requests."""

    def __init__(self, options: TransportOptions) -> None:
        self.options = options
        timeout = urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout)
        self._common: dict[str, Any] = {
            "num_pools": 32,
            "maxsize": options.pool_size,
            "timeout": timeout,
            "retries": False,
            "headers": {"User-Agent": USER_AGENT},
        }
        self._plain = self._manager()
        self._verified: urllib3.PoolManager | None = None
        self._unverified: urllib3.PoolManager | None = None
        self._private: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _manager(self, **extra: Any) -> urllib3.PoolManager:
        """A pool manager whose connections can be watched (:mod:`promoter.transport.watch`)."""
        manager = urllib3.PoolManager(**self._common, **extra)
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager

    def _ssl_context(self, extra: Path | None = None) -> ssl.SSLContext:
        """The system trust store plus the common CA file (and a registry's own CA, if given).

        Raises:
            ConfigError: a CA file cannot be loaded.
        """
        context = ssl.create_default_context()
        for ca_file in (self.options.ca_file, extra):
            if ca_file is None:
                continue
            try:
                context.load_verify_locations(cadata=_read_ca_file(ca_file))
            except (OSError, ssl.SSLError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot load CA file {ca_file}: {exc}",
                    hint="give a PEM file of certificates",
                    remedy=Remedy.TRUST_CA,
                ) from exc
        return context

    def pool_for(self, url: str, registry: str) -> urllib3.PoolManager:
        """The pool for a URL: plain for http, unverified TLS for insecure hosts, verified TLS (the
        system store plus the CA files) for everything else.

        Args:
            url: the request URL.
            registry: the registry the URL belongs to, or "" for another host (storage redirects).
        """
        if url.startswith("http://"):
            return self._plain
        with self._lock:
            if registry in self.options.insecure_registries:
                if self._unverified is None:
                    # The user named this host insecure on purpose; the warning would only repeat it.
                    urllib3.disable_warnings(InsecureRequestWarning)
                    self._unverified = self._manager(cert_reqs=ssl.CERT_NONE)
                return self._unverified
            own_ca = self.options.ca_files.get(registry)
            if own_ca is not None:
                if registry not in self._private:
                    self._private[registry] = self._manager(ssl_context=self._ssl_context(own_ca))
                return self._private[registry]
            if self._verified is None:
                self._verified = self._manager(ssl_context=self._ssl_context())
            return self._verified

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools = [self._plain, self._verified, self._unverified, *self._private.values()]
        for pool in pools:
            if pool is not None:
                pool.clear()


#: The largest CA file read: a bundle of every public CA is about 220 KiB.
CA_FILE_LIMIT = 4 * 1024 * 1024


def _read_ca_file(path: Path) -> str:
    """A CA file's PEM text, read without ever blocking: opened with ``O_NONBLOCK`` and checked to
    be a regular file on the open descriptor (a named pipe nobody writes to, which OpenSSL's own
    open would wait on forever, out of reach of any deadline or interrupt), and capped.

    Raises:
        OSError: it cannot be opened or read, is not a regular file, or is over the cap.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{path} is not a regular file")
        if status.st_size > CA_FILE_LIMIT:
            raise OSError(f"{path} is larger than {CA_FILE_LIMIT // (1024 * 1024)} MiB")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(descriptor, 65536):
            size += len(chunk)
            if size > CA_FILE_LIMIT:
                raise OSError(f"{path} is larger than {CA_FILE_LIMIT // (1024 * 1024)} MiB")
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    # Only the certificate blocks: OpenSSL takes them as ASCII text, and text around them (a
    # comment in any encoding) is no certificate anyway.
    blocks = _PEM_CERTIFICATE.findall(b"".join(chunks))
    if not blocks:
        raise OSError(f"{path} holds no PEM certificate")
    return b"\n".join(blocks).decode("ascii")


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
