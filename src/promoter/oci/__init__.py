"""OCI and Docker image format values: media types, digests, descriptors and manifests. Pure, no I/O."""
