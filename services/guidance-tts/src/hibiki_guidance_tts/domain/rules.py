"""Rules of the guidance catalogue: what may be changed or deleted, and revisions."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hibiki_runtime.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument

from hibiki_guidance_tts.domain.model import AudioFile, GuidanceUser, OriginalGuidance

USER_ID_MAX_CHARS = 128
USER_NAME_MAX_CHARS = 200


def check_guidance_source(speech_synthesis: bool) -> None:
    """A guidance plays a synthesized audio file (音声合成ガイダンス); there are no uploaded recordings."""
    if not speech_synthesis:
        raise InvalidArgument.field(
            "speech_synthesis",
            "must be true: guidances play synthesized audio files (uploads are not supported)",
        )


def check_revision(field: str, current: int, expected: int) -> None:
    """Optimistic concurrency: 0 means "any revision"; another stale value is refused with ABORTED."""
    if expected and expected != current:
        raise Aborted(f"{field} {expected} is stale: the current revision is {current}; reload and retry")


def check_guidance_deletable(guidance: OriginalGuidance, users: Sequence[GuidanceUser]) -> None:
    """A system guidance, or one a published routing flow plays, stays."""
    if guidance.system:
        raise FailedPrecondition(f"guidance {guidance.name!r} is a system guidance and cannot be deleted")
    if users:
        names = ", ".join(sorted(user.display_name for user in users))
        raise FailedPrecondition(
            f"guidance {guidance.name!r} is in use by {names}; remove it from them first"
        )


def check_system_guidance_name(guidance: OriginalGuidance, new_name: str) -> None:
    """Routing refers to system guidances by their role, and tenants recognise them by name."""
    if guidance.system and new_name != guidance.name:
        raise InvalidArgument.field("name", "the name of a system guidance cannot be changed")


def check_audio_file_deletable(audio_file: AudioFile, guidances: Sequence[OriginalGuidance]) -> None:
    """An audio file that a guidance plays stays; the guidance must point elsewhere first."""
    if guidances:
        names = ", ".join(sorted(guidance.name for guidance in guidances))
        raise FailedPrecondition(
            f"audio file {audio_file.name!r} is used by the guidances {names}; change or delete them first"
        )


def check_usage(user: GuidanceUser, known_guidance_ids: Collection[str], guidance_ids: Sequence[str]) -> None:
    """A usage record names its user and only guidances of the tenant."""
    violations = [
        FieldViolation(field, f"must be 1..{limit} characters")
        for field, value, limit in (
            ("user_id", user.user_id, USER_ID_MAX_CHARS),
            ("display_name", user.display_name, USER_NAME_MAX_CHARS),
        )
        if not value.strip() or len(value) > limit
    ]
    violations += [
        FieldViolation(f"guidance_ids[{index}]", f"no original guidance {guidance_id!r} in this tenant")
        for index, guidance_id in enumerate(guidance_ids)
        if guidance_id not in known_guidance_ids
    ]
    if violations:
        raise InvalidArgument(*violations)
