"""The operations every front end shares, on plain values: the runtime (``runtime``: settings to transport,
credential chain, ECR preparer, scrubber), an environment's images (``environment``), plans (``plan``),
syncs and make-present (``sync``), the status matrix (``status``), promotion (``promote``), copies by
reference (``batch``), the Argo CD plugin's output (``hook``), the JSON shapes (``wire``) and the Python API's
session (``session``). No argument parsing and no printing: the CLI, the webhook and Python callers all call
this package.
"""
