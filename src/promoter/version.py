"""promoter's version, in one place (the package, the User-Agent and the hook's default image use it)."""

__version__ = "0.1.0"
