"""The serving certificate, reloaded when its files change (cert-manager rotates the Secret, and the
kubelet swaps the mounted files) without a restart and without dropping connections.

New TLS connections get the newest good certificate through the server context's SNI callback, which
OpenSSL calls for every ClientHello (with or without a server name): it moves the connection to the
current context. Connections already open keep theirs. A pair of files that does not load (a key
from one rotation and a certificate from the next, read between two writes) is not used: the last good
pair keeps serving and the next check tries again.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from promoter.errors import ConfigError, one_line

_log = logging.getLogger("promoter.webhook")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context for ``cert`` (PEM chain) and ``key`` (PEM), TLS 1.2 or newer.

    Raises:
        ConfigError: a file cannot be read, or the key does not belong to the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"TLS certificate {cert} and key {key}: {one_line(str(exc), 300)}",
            hint="give the PEM certificate chain and its private key (tls.crt and tls.key of a "
            "kubernetes.io/tls Secret)",
        ) from None
    return context


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten: inode, size, modification time."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class CertificateReloader:
    """Serves the newest loadable certificate of two files. Thread-safe.

    Args:
        cert, key: the PEM files.

    Raises:
        ConfigError: the files do not load now (a webhook must not start without a certificate).
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._stamps = (_stamp(cert), _stamp(key))
        self.context = server_context(cert, key)
        self.context.sni_callback = self._choose
        self._current = self.context
        self.reloads = 0

    def _choose(
        self, connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not self.context:
            connection.context = current

    def check(self) -> bool:
        """Load the files again if they changed since the last check; True when a new certificate
        is now served. A pair that does not load is logged and skipped."""
        stamps = (_stamp(self.cert), _stamp(self.key))
        with self._lock:
            if stamps == self._stamps:
                return False
        try:
            context = server_context(self.cert, self.key)
        except ConfigError as exc:  # tried again at the next check: the stamps stay as they were
            _log.warning("TLS certificate not reloaded: %s", exc, extra={"event": "tls-reload"})
            return False
        with self._lock:
            self._stamps = stamps
            self._current = context
            self.reloads += 1
        _log.info("TLS certificate reloaded", extra={"event": "tls-reload", "cert": str(self.cert)})
        return True
