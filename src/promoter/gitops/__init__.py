"""GitOps side: promoter.yaml, kustomize rendering, image discovery in manifests, overlay editing.

Never talks HTTP: registry facts come from promoter.promote and promoter.remote through the CLI.
"""
