"""Registry operations (manifests, blobs, uploads, mounts, tags) and the copy engine built on them."""
