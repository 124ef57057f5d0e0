"""Reading the files promoter is given, with a size cap checked while reading.

promoter.yaml, rendered manifests (``--manifests``, kustomize's output) and list files (``--images-file``,
``copy --batch``) may come from anyone who can open a pull request, and ``argocd generate`` reads them inside
Argo CD's repo-server. So no input is read whole and measured afterwards: at most one byte more than its cap
is read, and a file over the cap is refused in one line. Text must be UTF-8; anything else is bad input with
a line that says where it stopped making sense, not a decoding traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from promoter.errors import ConfigError

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
#: An overlay's kustomization files and the ``configurations:`` files they name, read for their image
#: fieldSpecs; written by hand like promoter.yaml.
KUSTOMIZATION_CAP: Final = InputCap(
    "a kustomization or configurations file", 2 * MIB, "move what it holds into smaller files"
)
#: ``--images-file``, ``copy --batch`` and the hook component's image list: tens of thousands of lines.
LIST_CAP: Final = InputCap("a list file", 4 * MIB, "split it into several files")

_CHUNK: Final = 1024 * 1024


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
        try:
            if binary is None:  # a text stream put in place of stdin (tests, embedding callers)
                text = stream.read(cap.limit + 1)
                if len(text.encode("utf-8", "surrogatepass")) > cap.limit:
                    raise cap.exceeded(name)
                return text
            data = read_capped(binary, cap, name)
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from exc
        return decode_text(data, name)
    try:
        with Path(source).open("rb") as stream_file:
            data = read_capped(stream_file, cap, name)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc.__class__.__name__}") from exc
    return decode_text(data, name)


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
