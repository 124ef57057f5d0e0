"""List files: one entry per line, ``#`` comments and blank lines skipped.

The in-cluster hook's ``--images-file``, the Kustomize component's ``promoter-images.txt`` and
``copy --batch`` pair files share this format and this reader.
"""

from __future__ import annotations

from pathlib import Path

from promoter.config.input_files import LIST_CAP, read_input_text


def read_list_file(path: Path, what: str) -> list[tuple[int, str]]:
    """The entries of a list file as ``(line number, text)``, comments and surrounding blanks removed.

    Args:
        path: the file; ``-`` reads standard input.
        what: what the file is, for the error (``images file``, ``batch file``).

    Raises:
        ConfigError: the file cannot be read, is larger than
            :data:`~promoter.config.input_files.LIST_CAP` or is not UTF-8 text; one line naming it.
    """
    name = f"{what} from standard input" if str(path) == "-" else f"{what} {path}"
    return list_entries(read_input_text(path, name=name, cap=LIST_CAP))


def list_entries(text: str) -> list[tuple[int, str]]:
    """The entries of a list file's text as ``(line number, text)``, as :func:`read_list_file`
    gives them; for callers that read the file their own way (the hook's image list)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append((number, entry))
    return entries
