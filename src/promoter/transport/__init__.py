"""HTTP to registries: connection pools, TLS, scheme choice, retries with backoff, the Basic/Bearer auth
flow and redirects. Everything that speaks HTTP lives here or above; nothing below imports urllib3."""
