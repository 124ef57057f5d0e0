"""The JSON shapes promoter prints and writes, as TypedDicts, and the one function per value that makes
them. ``-o json``, ``--report`` and (later) the webhook's answers and the status page use these, so a shape
is defined once. Keys are camelCase, as Kubernetes and the README's examples write them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from promoter.outcome import Outcome
from promoter.planning.execute import explain
from promoter.planning.plan import PlanStatus
from promoter.remote.blobs import BlobAction

if TYPE_CHECKING:  # values only: importing their modules would load YAML handling for the hook
    from collections.abc import Sequence

    from promoter.app.plan import EnvironmentPlan
    from promoter.app.promote import ModuleChange, Promotion
    from promoter.app.prune import PrunePlan
    from promoter.app.status import StatusCell, StatusMatrix
    from promoter.app.sync import SyncReport
    from promoter.ecr.policy import PolicyChange
    from promoter.gitops.discover import UnmanagedReference
    from promoter.gitops.hookfile import HookFileDrift
    from promoter.gitops.promotions import PromotionRecord
    from promoter.oci.referrers import Attachment
    from promoter.planning.execute import SyncRecord
    from promoter.planning.plan import PlanItem
    from promoter.reference import Reference
    from promoter.remote.copy import CopyResult


class BlobCountsJson(TypedDict):
    copied: int
    mounted: int
    skipped: int


class AttachmentJson(TypedDict):
    """A signature, attestation or SBOM attached to an image (README "Signatures, attestations
    and SBOMs")."""

    kind: str  #: referrer | signature | attestation | sbom
    subject: str  #: the digest it is attached to (the image's, a child's, another attachment's)
    digest: str
    artifactType: str | None
    tag: NotRequired[str]  #: a cosign tag attachment's tag


class DifferingAttachmentJson(AttachmentJson):
    """A cosign tag attachment whose destination tag holds other content."""

    destinationDigest: str


class MovedTagJson(TypedDict):
    """A signature tag ``--force`` moved."""

    tag: str
    was: str  #: the digest it held before
    dropped: bool  #: whether that held signatures the new content lacks (now gone)


class CopyResultJson(TypedDict):
    """One image of ``copy -o json``."""

    source: str
    destination: str
    digest: str
    action: str  #: copied | present | attached
    blobs: BlobCountsJson
    bytes: int
    attachments: list[AttachmentJson]  #: those copied in this run
    movedTags: NotRequired[list[MovedTagJson]]  #: signature tags --force moved


class CopyFailureJson(TypedDict):
    """An image of ``copy -o json`` that failed or was refused; when the image itself was copied
    and only what is attached to it failed, also what the copy did (as :class:`CopyResultJson`)."""

    source: str
    destination: str
    error: str
    exitCode: int
    digest: NotRequired[str]
    action: NotRequired[str]
    blobs: NotRequired[BlobCountsJson]
    bytes: NotRequired[int]
    attachments: NotRequired[list[AttachmentJson]]


class PlanItemJson(TypedDict):
    """One image of a plan."""

    image: str
    source: str | None
    digest: str | None
    status: str
    error: NotRequired[str]
    destinationDigest: NotRequired[str]  #: a conflict's or divergence's: what the destination holds
    foreignEnvironment: NotRequired[str]  #: foreign-environment: whose registry the image is in
    blocking: bool  #: whether this image makes a sync fail (exit 3)
    warning: NotRequired[str]  #: a diverged tag, an allowed foreign image: done, but look
    #: plan: for ``attach``, what the destination lacks; sync: what was copied
    attachments: NotRequired[list[AttachmentJson]]
    #: signature tags whose destination holds other content (kept; see the warning)
    differingAttachments: NotRequired[list[DifferingAttachmentJson]]


class HookFileJson(TypedDict):
    path: str
    missing: list[str]
    extra: list[str]


class UnmanagedReferenceJson(TypedDict):
    """A string naming the environment's registry outside the fields images are read from."""

    value: str
    kind: str
    name: str
    path: str  #: where in the document: ``spec.executor.image``, ``spec.args[2]``


class PlanJson(TypedDict):
    """``plan -o json`` and ``sync --dry-run -o json``."""

    environment: str
    images: list[PlanItemJson]
    hookFile: NotRequired[HookFileJson]
    unmanagedReferences: NotRequired[list[UnmanagedReferenceJson]]
    warnings: NotRequired[list[str]]  #: probable mistakes in the overlay, one line each


class SyncRecordJson(PlanItemJson):
    """One image of ``sync -o json`` and ``--report``."""

    destination: str
    bytes: int
    seconds: float
    action: str  #: copied | present | attached | none


class SyncJson(TypedDict):
    environment: str
    images: list[SyncRecordJson]


class StatusCellJson(TypedDict):
    image: str
    tag: str | None
    digest: str | None
    present: bool | None
    behind: bool  #: drift == "behind", kept for readers of the first shape
    drift: str  #: none | in-sync | behind | ahead | differs | diverged
    state: str  #: the one state shown (CellState): missing | diverged | behind | ... | not-checked
    error: NotRequired[str]
    foreignEnvironment: NotRequired[str]  #: deployed from this environment's registry instead
    checked: NotRequired[bool]  #: false offline: the registry was not asked (present is null)


class StatusFindingJson(TypedDict):
    """A cell behind the matrix's verdict: drift (``failing``) or a registry not asked (``unchecked``)."""

    environment: str
    module: str
    state: str


class StatusModuleJson(TypedDict):
    module: str
    environments: dict[str, StatusCellJson]


class StatusJson(TypedDict):
    """``status -o json``."""

    environments: list[str]
    modules: list[StatusModuleJson]
    verdict: str  #: in-sync | drift | incomplete (Verdict): what status --exit-code exits by
    offline: bool  #: no registry was asked (status --offline)
    failing: list[StatusFindingJson]  #: cells missing, behind, differing or diverged
    unchecked: list[StatusFindingJson]  #: cells whose registry could not be asked
    warnings: NotRequired[list[str]]  #: probable mistakes in the overlays, one line each


class LoginJson(TypedDict):
    """``login -o json``: what was stored where (never the password)."""

    registry: str
    username: str
    storedIn: str  #: the docker config file, or the credential helper's program name


class ModuleChangeJson(TypedDict):
    """One module of ``promote -o json``."""

    module: str
    source: str  #: what the source environment runs
    digest: str | None  #: what the source registry resolved it to (null: not asked)
    before: str | None  #: what the target ran (null: not from its registry)
    after: str  #: what the target runs now
    changed: bool
    diverged: bool  #: the target's registry holds the tag with other content than the source's
    destinationDigest: NotRequired[str]  #: a diverged module's: what the target's registry holds


class RefusedModuleJson(TypedDict):
    """A module ``promote --all`` left alone."""

    module: str
    versions: list[str]
    error: str


class FileEditJson(TypedDict):
    """One file of ``promote -o json``: its whole text before and after."""

    file: str
    before: str
    after: str
    changed: bool


class PromotionJson(TypedDict):
    """``promote -o json`` (with ``--sync``, the sync's document under ``sync``)."""

    target: str
    source: str
    modules: list[ModuleChangeJson]
    refused: list[RefusedModuleJson]
    edits: list[FileEditJson]
    diff: str
    notes: list[str]
    warnings: list[str]
    dryRun: bool
    commit: PromotionCommitJson | None
    sync: NotRequired[SyncJson]


class PromotionCommitJson(TypedDict):
    """The commit ``promote --commit`` made."""

    commit: str
    branch: str | None
    createdBranch: bool
    newCommit: bool
    pushedTo: str | None
    pushError: str | None


class PromotionFailureJson(TypedDict):
    """``promote -o json`` when the promotion failed or was refused as a whole (nothing written):
    CI reading standard output gets a document, the error line and the exit code."""

    target: str
    error: str
    exitCode: int


class CommandFailureJson(TypedDict):
    """``plan``, ``sync`` or ``status -o json`` when the command ended with an error before it had
    a plan or matrix to print (an overlay that does not render, a bad promoter.yaml, the deadline,
    an interrupt): CI reading standard output gets a document, the error line and the exit code.
    ``environment`` is the one named (not for ``status``)."""

    environment: NotRequired[str]
    error: str
    exitCode: int


class PolicyChangeJson(TypedDict):
    """One repository of ``ecr grant-pull -o json`` / ``--dry-run``."""

    repository: str
    changed: bool
    policy: dict[str, Any]


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)


def attachment_json(attachment: Attachment) -> AttachmentJson:
    """One attachment."""
    entry: AttachmentJson = {
        "kind": str(attachment.kind),
        "subject": str(attachment.subject),
        "digest": str(attachment.digest),
        "artifactType": attachment.artifact_type,
    }
    if attachment.tag is not None:
        entry["tag"] = attachment.tag
    return entry


def copy_result_json(result: CopyResult) -> CopyResultJson:
    """The documented ``copy -o json`` line for a copied or present image."""
    entry: CopyResultJson = {
        "source": str(result.source),
        "destination": str(result.destination),
        "digest": str(result.digest),
        "action": str(result.action),
        "blobs": {
            "copied": result.blobs.get(BlobAction.COPIED, 0),
            "mounted": result.blobs.get(BlobAction.MOUNTED, 0),
            "skipped": result.blobs.get(BlobAction.SKIPPED, 0),
        },
        "bytes": result.bytes,
        "attachments": [attachment_json(a) for a in result.attachments],
    }
    if result.moved_tags:
        entry["movedTags"] = [
            {"tag": tag, "was": str(held), "dropped": lost} for tag, held, lost in result.moved_tags
        ]
    return entry


def copy_failure_json(
    pair: tuple[Reference, Reference],
    message: str,
    exit_code: int,
    copied: CopyResult | None = None,
) -> CopyFailureJson:
    """The ``copy -o json`` line for an image that failed, so a reader sees every pair; with
    ``copied``, the copy of an image whose attachments then failed."""
    source, destination = pair
    entry: CopyFailureJson = {
        "source": str(source),
        "destination": str(destination),
        "error": message,
        "exitCode": exit_code,
    }
    if copied is not None:
        done = copy_result_json(copied)
        entry["digest"] = done["digest"]
        entry["action"] = done["action"]
        entry["blobs"] = done["blobs"]
        entry["bytes"] = done["bytes"]
        entry["attachments"] = done["attachments"]
    return entry


def plan_item_json(item: PlanItem) -> PlanItemJson:
    """One plan entry: image, source, digest, status (and error, if any)."""
    entry: PlanItemJson = {
        "image": str(item.destination) if item.destination is not None else item.image,
        "source": _text(item.source),
        "digest": _text(item.digest),
        "status": str(item.status),
        "blocking": item.outcome is not Outcome.DONE,
    }
    explained = explain(item)
    if item.status is PlanStatus.ERROR and item.error is not None:
        entry["error"] = item.error
    elif explained is not None and item.outcome is not Outcome.DONE:
        entry["error"] = explained
    elif explained is not None:
        entry["warning"] = explained
    if item.held is not None:
        entry["destinationDigest"] = str(item.held)
    if item.foreign is not None:
        entry["foreignEnvironment"] = item.foreign
    if item.attachments:
        entry["attachments"] = [attachment_json(a) for a in item.attachments]
    if item.differing_attachments:
        entry["differingAttachments"] = [
            {**attachment_json(a), "destinationDigest": str(held)}
            for a, held in item.differing_attachments
        ]
    return entry


def hook_file_json(drift: HookFileDrift) -> HookFileJson:
    """The ``hookFile`` entry of a plan."""
    return {"path": str(drift.path), "missing": list(drift.missing), "extra": list(drift.extra)}


def unmanaged_reference_json(reference: UnmanagedReference) -> UnmanagedReferenceJson:
    """One ``unmanagedReferences`` entry of a plan."""
    return {
        "value": reference.value,
        "kind": reference.kind,
        "name": reference.name,
        "path": reference.path,
    }


def plan_json(plan: EnvironmentPlan) -> PlanJson:
    """A whole plan; ``hookFile`` and ``unmanagedReferences`` only when there is something to say."""
    document: PlanJson = {
        "environment": plan.environment,
        "images": [plan_item_json(i) for i in plan.items],
    }
    if plan.hook_file is not None:
        document["hookFile"] = hook_file_json(plan.hook_file)
    if plan.unmanaged:
        document["unmanagedReferences"] = [unmanaged_reference_json(r) for r in plan.unmanaged]
    if plan.warnings:
        document["warnings"] = list(plan.warnings)
    return document


def sync_record_json(record: SyncRecord) -> SyncRecordJson:
    """A ``--report`` entry: source, destination, digest, bytes, seconds, action (and error)."""
    item = record.item
    result = record.result
    entry: SyncRecordJson = {
        **plan_item_json(item),
        "destination": str(item.destination) if item.destination else item.image,
        "bytes": result.bytes if result is not None else 0,
        "seconds": round(result.seconds, 3) if result is not None else 0.0,
        "action": str(result.action) if result is not None else "none",
    }
    entry.pop("attachments", None)
    if result is not None:
        # What was copied, which is what the plan saw unless the copy itself says otherwise.
        entry["digest"] = str(result.digest)
        entry["attachments"] = [attachment_json(a) for a in result.attachments]
    entry.pop("error", None)
    entry.pop("warning", None)
    if record.error is not None:
        entry["error"] = record.error
    if record.warning is not None:
        entry["warning"] = record.warning
    return entry


def sync_json(report: SyncReport) -> SyncJson:
    """A whole sync."""
    return {
        "environment": report.environment,
        "images": [sync_record_json(r) for r in report.records],
    }


def status_cell_json(cell: StatusCell) -> StatusCellJson:
    """One module in one environment."""
    shape: StatusCellJson = {
        "image": str(cell.reference),
        "tag": cell.reference.tag,
        "digest": _text(cell.digest),
        "present": cell.present,
        "behind": cell.behind,
        "drift": str(cell.drift),
        "state": str(cell.state),
    }
    if cell.error:
        shape["error"] = cell.error
    if cell.foreign is not None:
        shape["foreignEnvironment"] = cell.foreign
    if not cell.checked:
        shape["checked"] = False
    return shape


def _findings(matrix: StatusMatrix, keys: Sequence[tuple[str, str]]) -> list[StatusFindingJson]:
    return [
        {"environment": name, "module": module, "state": str(matrix.cells[(name, module)].state)}
        for name, module in keys
    ]


def status_json(matrix: StatusMatrix) -> StatusJson:
    """The whole matrix with its verdict (``warnings`` when there are any)."""
    document: StatusJson = {
        "environments": list(matrix.environments),
        "modules": [
            {
                "module": module,
                "environments": {
                    name: status_cell_json(cell)
                    for name in matrix.environments
                    if (cell := matrix.cell(name, module)) is not None
                },
            }
            for module in matrix.modules
        ],
        "verdict": str(matrix.verdict),
        "offline": matrix.offline,
        "failing": _findings(matrix, matrix.failing()),
        "unchecked": _findings(matrix, matrix.unchecked()),
    }
    if matrix.warnings:
        document["warnings"] = list(matrix.warnings)
    return document


def login_json(registry: str, username: str, stored_in: object) -> LoginJson:
    """The ``login -o json`` document."""
    return {"registry": registry, "username": username, "storedIn": str(stored_in)}


def module_change_json(change: ModuleChange) -> ModuleChangeJson:
    """One promoted module."""
    entry: ModuleChangeJson = {
        "module": change.module,
        "source": str(change.source),
        "digest": _text(change.digest),
        "before": _text(change.before),
        "after": str(change.after),
        "changed": change.changed,
        "diverged": change.diverged,
    }
    if change.destination_digest is not None:
        entry["destinationDigest"] = str(change.destination_digest)
    return entry


def promotion_json(promotion: Promotion) -> PromotionJson:
    """A whole promotion; files named as its diff names them (:meth:`Promotion.file_name`)."""
    return {
        "target": promotion.target,
        "source": promotion.source,
        "modules": [module_change_json(c) for c in promotion.changes],
        "refused": [
            {
                "module": r.module,
                "versions": [str(v) for v in r.versions],
                "error": r.message(promotion.source, promotion.target),
            }
            for r in promotion.refused
        ],
        "edits": [
            {
                "file": promotion.file_name(e.path),
                "before": e.before,
                "after": e.after,
                "changed": e.changed,
            }
            for e in promotion.edits
        ],
        "diff": promotion.diff,
        "notes": list(promotion.notes),
        "warnings": list(promotion.warnings),
        "dryRun": promotion.dry_run,
        "commit": None
        if promotion.commit is None
        else {
            "commit": promotion.commit.commit,
            "branch": promotion.commit.branch,
            "createdBranch": promotion.commit.created,
            "newCommit": promotion.commit.new,
            "pushedTo": promotion.commit.remote,
            "pushError": promotion.commit.push_error or None,
        },
    }


def promotion_failure_json(target: str, message: str, exit_code: int) -> PromotionFailureJson:
    """The ``promote -o json`` document of a promotion that ended with an error (the CLI's one
    line for it, and its exit code)."""
    return {"target": target, "error": message, "exitCode": exit_code}


def command_failure_json(
    environment: str | None, message: str, exit_code: int
) -> CommandFailureJson:
    """The ``plan``, ``sync`` or ``status -o json`` document of a run that ended with an error (the
    CLI's one line for it, and its exit code); ``environment`` when the command names one."""
    document: CommandFailureJson = {"error": message, "exitCode": exit_code}
    if environment is not None:
        document = {"environment": environment, **document}
    return document


def policy_change_json(change: PolicyChange) -> PolicyChangeJson:
    """One repository's policy after ``ecr grant-pull``."""
    return {"repository": change.repository, "changed": change.changed, "policy": change.policy}


class PruneEntryJson(TypedDict):
    """One decision of ``prune -o json``."""

    repository: str
    tag: str | None
    digest: str
    action: str  #: keep | delete
    reason: str
    bytes: int | None


class PruneJson(TypedDict):
    """``prune -o json``."""

    environment: str
    registry: str
    sharedWith: list[str]  #: the environments whose registry it is, all kept
    dryRun: bool
    refused: list[str]  #: repositories over --max-delete (the run stops)
    entries: list[PruneEntryJson]


def prune_json(plan: PrunePlan, *, dry_run: bool) -> PruneJson:
    """A prune plan (and, once carried out, what was deleted)."""
    return {
        "environment": plan.environment,
        "registry": plan.registry,
        "sharedWith": list(plan.sharing),
        "dryRun": dry_run,
        "refused": [r.repository for r in plan.refused],
        "entries": [
            {
                "repository": e.repository,
                "tag": e.tag,
                "digest": str(e.digest),
                "action": str(e.action),
                "reason": e.reason,
                "bytes": e.size,
            }
            for r in plan.repositories
            for e in r.entries
        ],
    }


class PromotionRecordJson(TypedDict):
    """One promotion of ``history -o json``."""

    environment: str
    source: str
    module: str
    version: str | None
    digest: str | None
    previous: str | None
    commit: str
    committedAt: str
    subject: str
    mergedAt: str | None
    merge: str | None
    revertedBy: str | None


def history_json(records: Sequence[PromotionRecord]) -> list[PromotionRecordJson]:
    """``history -o json``'s promotions, newest first; dates in ISO 8601, UTC."""
    return [
        {
            "environment": r.environment,
            "source": r.source,
            "module": r.module,
            "version": r.version,
            "digest": str(r.digest) if r.digest else None,
            "previous": r.previous,
            "commit": r.commit,
            "committedAt": r.committed_at.isoformat(),
            "subject": r.subject,
            "mergedAt": r.merged_at.isoformat() if r.merged_at else None,
            "merge": r.merge,
            "revertedBy": r.reverted_by,
        }
        for r in records
    ]
