"""Argo CD integration that needs no registry: the PreSync hook's Kubernetes objects (``hookjob``) and the
Config Management Plugin's settings (``plugin``)."""
