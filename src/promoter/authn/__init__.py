"""Where registry credentials come from: docker config, credential helpers, containers auth.json, and
the chain that asks them in order and again when a credential stops working.

No HTTP here; the transport asks the chain for a credential, runs the auth flow itself, and reports
refusals back. Other sources (the AWS identity for ECR hosts) plug into the chain from their own layer.
"""
