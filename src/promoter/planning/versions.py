"""Ordering two tags of one module, where their spelling allows it. Pure.

Status uses this to tell *behind* (the environment runs an older version than the one it promotes from)
from *ahead* (a newer one: a hotfix promoted straight to it, or its source rolled back). Tags are only
ordered when both read as dotted numbers, as semantic versions and calendar versions do (``1.8.0``,
``v2.4``, ``2024.11.3``), optionally with a pre-release after ``-`` (ordered before its release, as
Semantic Versioning 2.0.0 section 11 says); build metadata after ``+`` is ignored (same section).
Anything else (``latest``, ``main-3f2a1c``, a bare digest) has no order: the caller says "differs". So
has a number with a leading zero (``0123456``, ``1.0.0-rc.01``): SemVer 2.0.0 sections 2 and 9 forbid
them, and tags spelled so are most often abbreviated commit hashes, which have no order.
"""

from __future__ import annotations

import re
from typing import Final

_VERSION: Final = re.compile(
    r"v?(?P<release>\d+(?:\.\d+)*)(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?",
    re.IGNORECASE | re.ASCII,
)


def compare_tags(mine: str | None, theirs: str | None) -> int | None:
    """-1 when ``mine`` is the older version, 1 when newer, 0 when the same version, None when the
    tags cannot be ordered (either is missing or does not read as a version).

    Release numbers compare as numbers, missing trailing parts as zeros (``1.2`` equals ``1.2.0``);
    a pre-release is older than its release; two pre-releases compare part by part, numbers below
    words (SemVer 2.0.0 section 11).
    """
    if mine is None or theirs is None:
        return None
    a, b = _VERSION.fullmatch(mine), _VERSION.fullmatch(theirs)
    if a is None or b is None or _leading_zero(a) or _leading_zero(b):
        return None
    release_a = [int(part) for part in a["release"].split(".")]
    release_b = [int(part) for part in b["release"].split(".")]
    width = max(len(release_a), len(release_b))
    release_a += [0] * (width - len(release_a))
    release_b += [0] * (width - len(release_b))
    if release_a != release_b:
        return -1 if release_a < release_b else 1
    pre_a, pre_b = a["pre"], b["pre"]
    if pre_a == pre_b:
        return 0
    if pre_a is None:
        return 1
    if pre_b is None:
        return -1
    return _compare_pre(pre_a.split("."), pre_b.split("."))


def _leading_zero(version: re.Match[str]) -> bool:
    """Whether a release number or a numeric pre-release identifier has a leading zero."""
    parts = version["release"].split(".") + (version["pre"] or "").split(".")
    return any(len(part) > 1 and part.isdigit() and part.startswith("0") for part in parts)


def _compare_pre(a: list[str], b: list[str]) -> int:
    """SemVer pre-release precedence: numeric identifiers numerically and below alphanumeric ones,
    alphanumeric ones by ASCII order, a shorter list first when all its parts are equal."""
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(a) > len(b)) - (len(a) < len(b))
