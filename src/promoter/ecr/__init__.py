"""Amazon ECR specifics: tokens via boto3, repository creation, repository policies.

Imported only where an ECR registry is involved; boto3 itself loads on the first AWS call, so runs that
never touch ECR (and ``promoter --help``) do not pay for it. Registry HTTP still goes through
:mod:`promoter.transport`: this package only supplies credentials and prepares repositories, handed to
the lower layers as plain callables by the CLI.
"""
