"""HTTP to registries: connection pools and TLS (``pools``), scheme discovery (``discovery``), the auth flow
(``auth``), retries with backoff (``retry``), errors from answers (``responses``), body streams (``body``),
and the per-registry session that ties them together (``session``)."""
