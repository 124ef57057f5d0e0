"""Promotions recorded in Git: the commit message ``promote --commit`` writes, and reading them back.

A promotion commit carries one ``Promoted-Digest:`` trailer per image (``git interpret-trailers``
format, the last paragraph of the message), so ``git log`` is the promotion history and
``promoter history`` lists it without anything but Git::

    promote shop/checkout to production: 1.2.0 -> 1.3.0

    Promoted from staging, as staging runs it.

    Promoted-To: production
    Promoted-From: staging
    Promoted-Digest: shop/checkout 1.3.0 sha256:4f1c... from 1.2.0

A ``Promoted-Digest`` value is ``MODULE VERSION DIGEST [from PREVIOUS]``: the repository path, the
tag written (``-`` for a digest-only version), the digest the source registry resolved it to (``-``
when it was not asked: ``--no-verify``), and what the target ran before (absent for a module new
to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from promoter.oci.digest import Digest

#: The trailer naming the environment promoted to.
TO_TRAILER: Final = "Promoted-To"
#: The trailer naming the environment promoted from.
FROM_TRAILER: Final = "Promoted-From"
#: One per image: ``MODULE VERSION DIGEST [from PREVIOUS]``.
DIGEST_TRAILER: Final = "Promoted-Digest"


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """One module's promotion, as a promotion commit records it.

    Attributes:
        environment: the environment promoted to.
        source: the environment promoted from ("" when the commit does not say).
        module: the repository path.
        version: the tag written; None for a digest-only version.
        digest: the content the source registry resolved the version to; None when it was not
            asked.
        previous: the version the target ran before (a tag, ``tag@digest`` or a digest); None
            for a module new to it.
        commit: the full commit hash.
        committed_at: the committer date, in UTC.
        subject: the commit's first line, as written (escape it before printing).
    """

    environment: str
    source: str
    module: str
    version: str | None
    digest: Digest | None
    previous: str | None
    commit: str
    committed_at: datetime
    subject: str
