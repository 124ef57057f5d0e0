"""Where registry credentials come from: docker config, credential helpers, containers auth.json.

No HTTP here; the transport layer asks :func:`promoter.authn.store.find_credential` and runs the
auth flow itself.
"""
