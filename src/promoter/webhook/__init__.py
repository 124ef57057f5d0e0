"""The admission webhook's HTTPS server: AdmissionReview in, verdict out.

The only code of promoter that opens listening sockets. The decisions are
:mod:`promoter.app.admission`'s; this package serves them (uvicorn, chosen by measurement: see
bench/README.md "Webhook HTTP server choice"), reloads the TLS certificate when cert-manager rotates
it, answers health and readiness probes, exports Prometheus metrics and logs one JSON line per review.
"""
