"""Argo CD integration that needs no registry: the hook Job's Kubernetes objects (``hookjob``) and the
Config Management Plugin's settings (``plugin``)."""
