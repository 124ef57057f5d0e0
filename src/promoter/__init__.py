"""promoter: promote container images between registries, digest-exact.

The package is layered (see README and ``pyproject.toml``'s import-linter contracts): ``cli`` on top,
then ``remote`` (registry operations and the copy engine), ``transport`` (HTTP, TLS, retries, auth
flow), ``authn`` (where credentials come from), ``oci`` (media types, digests, manifests as values),
``reference`` (image references) and ``errors`` at the bottom.
"""

__version__ = "0.1.0"
