"""Reading the files promoter is given, with a size cap checked while reading.

promoter.yaml, rendered manifests (``--manifests``, kustomize's output) and list files (``--images-file``,
``copy --batch``) may come from anyone who can open a pull request, and ``argocd generate`` reads them inside
Argo CD's repo-server. So no input is read whole and measured afterwards: at most one byte more than its cap
is read, and a file over the cap is refused in one line. Text must be UTF-8; anything else is bad input with
a line that says where it stopped making sense, not a decoding traceback.

Rendered manifests and list files may be streams on purpose (``-``, ``<(kustomize build ...)``).
promoter's own files (promoter.yaml, kustomizations, the hook's ``promoter-images.txt``, CA files) must
be regular files (:func:`read_regular_file`): a named pipe nobody writes to would block the command
forever, a device never ends, and the files promoter rewrites are never followed through a symbolic
link (Git stores links, so a pull request could point one anywhere).
"""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from promoter.deadline import current_deadline
from promoter.errors import ConfigError, DeadlineExceededError
from promoter.process import signals_to_main_thread

MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class InputCap:
    """The most bytes promoter reads of one kind of input, and what to tell someone who has more.

    Attributes:
        kind: what the input is, for the message (``promoter.yaml``, ``rendered manifests``).
        limit: the cap in bytes.
        remedy: what to do about an input over the cap.
    """

    kind: str
    limit: int
    remedy: str

    def exceeded(self, name: str) -> ConfigError:
        """The error for ``name`` (a path, ``standard input``, a command) being over the cap."""
        size = f"{self.limit // MIB} MiB" if self.limit % MIB == 0 else f"{self.limit} bytes"
        return ConfigError(
            f"{name} is larger than {size}, the limit for {self.kind}; {self.remedy}"
        )


#: promoter.yaml is written by hand; 2 MiB holds well over ten thousand environments.
CONFIG_CAP: Final = InputCap(
    "promoter.yaml", 2 * MIB, "keep only environments and registry settings in it"
)
#: One application's rendered manifests (``--manifests``, kustomize's output); Argo CD itself struggles
#: long before an application renders to this much.
MANIFESTS_CAP: Final = InputCap(
    "rendered manifests", 32 * MIB, "split the application into smaller ones"
)
#: ``kubectl get pods -A -o json`` for ``prune --in-use``: a few KiB a Pod, so a large cluster's list
#: is hundreds of MiB; read whole, as the JSON must be.
POD_LIST_CAP: Final = InputCap(
    "Pod lists", 512 * MIB, "list the namespaces that run this registry's images (kubectl -n)"
)
#: An overlay's kustomization files and the ``configurations:`` files they name, read for their image
#: fieldSpecs; written by hand like promoter.yaml.
KUSTOMIZATION_CAP: Final = InputCap(
    "a kustomization or configurations file", 2 * MIB, "move what it holds into smaller files"
)
#: ``--images-file``, ``copy --batch`` and the hook component's image list: tens of thousands of lines.
LIST_CAP: Final = InputCap("a list file", 4 * MIB, "split it into several files")

_CHUNK: Final = 1024 * 1024
#: What a path that is no regular file is, by its ``stat`` file type, for the one-line refusal.
_FILE_KINDS: Final = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_input_text(source: Path | str, *, name: str, cap: InputCap) -> str:
    """The UTF-8 text of a file, or of standard input for ``-``, refused when over ``cap``.

    Args:
        source: the path, or ``-`` for standard input.
        name: how the messages call the input (``images file x.txt``, ``manifests from x.yaml``).
        cap: the size cap of this kind of input.

    Raises:
        ConfigError: the file cannot be read, is over the cap, or is not UTF-8; one line naming it.
    """
    if str(source) == "-":
        stream = sys.stdin
        binary: BinaryIO | None = getattr(stream, "buffer", None)
        if binary is None:  # a text stream put in place of stdin (tests, embedding callers)
            text = stream.read(cap.limit + 1)
            if len(text.encode("utf-8", "surrogatepass")) > cap.limit:
                raise cap.exceeded(name)
            return text
        try:
            # The descriptor itself, unbuffered: a read left blocked at the deadline must not hold
            # the buffered reader's lock, which the interpreter takes once more as it exits.
            reader: BinaryIO = io.FileIO(binary.fileno(), closefd=False)
        except (OSError, ValueError, AttributeError):  # no descriptor (an embedding caller's)
            reader = binary
        data = _within_deadline(lambda: _read_stream(reader, cap, name), name)
        return decode_text(data, name)
    path = Path(source)
    return decode_text(_within_deadline(lambda: _read_path(path, cap, name), name), name)


def _read_stream(stream: BinaryIO, cap: InputCap, name: str) -> bytes:
    try:
        return read_capped(stream, cap, name)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from exc


def _read_path(path: Path, cap: InputCap, name: str) -> bytes:
    try:
        with path.open("rb", buffering=0) as stream_file:  # unbuffered: see read_input_text
            return read_capped(stream_file, cap, name)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc.__class__.__name__}") from exc


#: How often a wait for a stream looks at the deadline (and lets a signal handler run).
_STREAM_POLL = 0.2


def _within_deadline(read: Callable[[], bytes], name: str) -> bytes:
    """``read()`` (of a stream: standard input, a pipe, a named pipe, which may never end) bounded
    by the current deadline (:func:`promoter.deadline.current_deadline`): it runs on a thread of
    its own, left behind blocked if the deadline passes first (a daemon: it does not keep the
    process alive). Without a deadline, it runs here.

    Raises:
        DeadlineExceededError: the read had not ended at the deadline.
        ConfigError: as ``read`` raises.
    """
    deadline = current_deadline()
    if deadline is None:
        return read()
    outcome: list[bytes | BaseException] = []

    def run() -> None:
        signals_to_main_thread()
        try:
            outcome.append(read())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            outcome.append(exc)

    thread = threading.Thread(target=run, name="promoter-read", daemon=True)
    thread.start()
    while thread.is_alive():
        if deadline.expired:
            raise DeadlineExceededError(
                f"reading {name}: it had not ended at the {deadline.seconds:g} s deadline"
            )
        thread.join(min(_STREAM_POLL, deadline.remaining()))
    [result] = outcome
    if isinstance(result, BaseException):
        raise result
    return result


def read_regular_file(path: Path, *, name: str, cap: InputCap, follow_links: bool = True) -> bytes:
    """The bytes of ``path``, which must be a regular file, refused when over ``cap``.

    The file type is checked before the file is opened (``stat``), and again on the open descriptor
    (``fstat``), so what was checked is what is read; the open itself does not block
    (``O_NONBLOCK``: opening a named pipe that nobody writes to would otherwise wait forever).

    Args:
        path: the file.
        name: how the messages call it (``promoter.yaml infra/promoter.yaml``).
        cap: the size cap of this kind of input.
        follow_links: False refuses a symbolic link as the last part of ``path``: for the files
            promoter rewrites, and the lists it trusts, a link could name any file of the machine.

    Raises:
        ConfigError: ``path`` is missing or unreadable, is not a regular file (a folder, a named
            pipe, a device, or with ``follow_links`` False a symbolic link), is over the cap, or
            changed type between the checks; one line naming it and what it is.
    """
    try:
        kind = _not_regular(path.stat() if follow_links else path.lstat())
        if kind is not None:
            raise not_regular_error(name, kind)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(path, flags if follow_links else flags | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc.__class__.__name__}") from exc
    try:
        kind = _not_regular(os.fstat(descriptor))  # replaced since the stat above
        if kind is not None:
            raise not_regular_error(name, kind)
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            return read_capped(stream, cap, name)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc.__class__.__name__}") from exc
    finally:
        os.close(descriptor)


def read_regular_text(path: Path, *, name: str, cap: InputCap, follow_links: bool = True) -> str:
    """The UTF-8 text of a regular file: :func:`read_regular_file`, then :func:`decode_text`.

    Raises:
        ConfigError: as :func:`read_regular_file` and :func:`decode_text` say.
    """
    data = read_regular_file(path, name=name, cap=cap, follow_links=follow_links)
    return decode_text(data, name)


def not_regular_error(name: str, kind: str) -> ConfigError:
    """The one line for ``name`` being ``kind`` (``a named pipe (FIFO)``) instead of a file."""
    if kind == "a symbolic link":
        return ConfigError(
            f"{name} is a symbolic link; promoter reads and writes this file only as a regular "
            "file, never through a link: replace the link with the file itself"
        )
    return ConfigError(f"{name} is {kind}, not a regular file; give a regular file")


def _not_regular(status: os.stat_result) -> str | None:
    """What a file of this status is when it is no regular file (``a folder``), else None."""
    if stat.S_ISREG(status.st_mode):
        return None
    for test, kind in _FILE_KINDS:
        if test(status.st_mode):
            return kind
    return "a special file"


def read_capped(stream: BinaryIO, cap: InputCap, name: str) -> bytes:
    """Read ``stream`` to its end, but never more than one byte past ``cap``.

    Raises:
        ConfigError: the stream holds more than the cap.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, cap.limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap.limit:
            raise cap.exceeded(name)
        chunks.append(chunk)


def decode_text(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text (a leading byte order mark dropped).

    Raises:
        ConfigError: the bytes are not UTF-8; the message names the first bad byte and its offset.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"cannot read {name}: not UTF-8 text (byte 0x{bad} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
