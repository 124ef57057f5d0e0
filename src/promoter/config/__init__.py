"""promoter.yaml and the other files a user hands promoter: finding promoter.yaml (``locate``, light: no
pydantic), its values (``values``), its schema (``schema``) and loading it with one-line errors (``load``),
YAML input shared by every reader (``yaml_input``), and one-entry-per-line list files (``lists``).

Read by the CLI, the in-cluster hook and (later) the admission webhook; it is not GitOps logic.
"""
