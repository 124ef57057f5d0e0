"""GitOps logic that needs no registry: rendering overlays with the real kustomize (``render``), finding
images in manifests (``discover``), editing overlays (``overlay``, ``splice``), and the Kustomize component's
image list (``hookfile``). Never talks HTTP."""
