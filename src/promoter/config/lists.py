"""List files: one entry per line, ``#`` comments and blank lines skipped.

The in-cluster hook's ``--images-file``, the Kustomize component's ``promoter-images.txt`` and
``copy --batch`` pair files share this format and this reader.
"""

from __future__ import annotations

import sys
from pathlib import Path

from promoter.errors import ConfigError


def read_list_file(path: Path, what: str) -> list[tuple[int, str]]:
    """The entries of a list file as ``(line number, text)``, comments and surrounding blanks removed.

    Args:
        path: the file; ``-`` reads standard input.
        what: what the file is, for the error (``images file``, ``batch file``).

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 text; one line naming it.
    """
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append((number, entry))
    return entries
