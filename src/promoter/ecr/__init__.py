"""Amazon ECR specifics: tokens via boto3, repository creation, repository policies, images (push
times, batch delete).

Imported only where an ECR registry is involved; boto3 itself loads on the first AWS call, so runs that
never touch ECR (and ``promoter --help``) do not pay for it. Registry HTTP still goes through
:mod:`promoter.transport`: this package only supplies credentials and prepares repositories, handed to
the lower layers by the runtime (:mod:`promoter.app.runtime`): a credential source for the chain and
the copier's ``prepare_destination`` hook.
"""
