"""Parse ``WWW-Authenticate`` challenges (RFC 7235, section 4.1) into values. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge: ``Bearer realm="...",service="...",scope="..."`` or ``Basic``.

    Attributes:
        scheme: lower-cased scheme name (``bearer``, ``basic``).
        params: the auth-params, names lower-cased, values unquoted.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def realm(self) -> str:
        """The token endpoint for Bearer, a label for Basic."""
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        """The ``service`` the token server should issue for."""
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """Scopes the registry asked for (space separated in the header)."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header; None if it is empty or garbled.

    Registries send one challenge, but the header may list several (``Basic realm=x, Bearer ...``);
    we prefer Bearer when both are offered, as docker does.
    """
    challenges = _parse_all(header)
    for preferred in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == preferred:
                return challenge
    return challenges[0] if challenges else None


def _parse_all(header: str) -> list[Challenge]:
    found: list[Challenge] = []
    text = header.strip()
    while text:
        scheme_match = re.match(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)", text)
        if not scheme_match:
            break
        scheme = scheme_match.group(1).lower()
        text = text[scheme_match.end() :]
        params: dict[str, str] = {}
        while True:
            match = _PARAM.match(text)
            if not match:
                break
            value = match.group(2) if match.group(2) is not None else match.group(3) or ""
            params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            text = text[match.end() :]
        found.append(Challenge(scheme, params))
        text = text.lstrip(" ,")
    return found


def scope_for(repository: str, *actions: str) -> str:
    """A repository scope string as the token spec writes it: ``repository:NAME:pull,push``."""
    return f"repository:{repository}:{','.join(actions)}"
