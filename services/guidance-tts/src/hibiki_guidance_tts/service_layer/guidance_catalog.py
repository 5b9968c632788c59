"""Use cases of original guidances (オリジナルガイダンス), system guidances and who uses them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime

from hibiki_runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sqlalchemy.exc import IntegrityError

from hibiki_guidance_tts.domain.model import AudioFormat, GuidanceType, GuidanceUser, OriginalGuidance, Wav
from hibiki_guidance_tts.domain.rules import (
    check_guidance_deletable,
    check_guidance_source,
    check_revision,
    check_system_guidance_name,
    check_usage,
)
from hibiki_guidance_tts.domain.system_prompts import (
    SYSTEM_GUIDANCES,
    SystemGuidance,
    SystemSilence,
    is_system_id,
    system_prompt,
)
from hibiki_guidance_tts.domain.text_rules import clean_name
from hibiki_guidance_tts.service_layer.audio_library import AudioLibrary
from hibiki_guidance_tts.service_layer.paging import decode_token, encode_token, page_limit
from hibiki_guidance_tts.service_layer.unit_of_work import UnitOfWork

# `<guidance id>@<content revision>` names what a guidance sounded like when a user pinned it.
PIN_SEPARATOR = "@"


class GuidanceCatalog:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], library: AudioLibrary) -> None:
        self._uow = unit_of_work
        self._library = library
        self._provisioned: set[str] = set()  # tenants whose system guidances this process has seen
        self._system_guidances: set[tuple[str, str]] = set()  # (tenant, key) known to exist
        # One provisioning at a time in this process (its synthesis is one request in the queue);
        # replicas race on primary keys instead.
        self._provisioning = asyncio.Lock()

    async def provision_tenant(self, tenant_id: str) -> None:
        """Give a tenant its first system guidances on first use (idempotent, safe across replicas)."""
        if tenant_id in self._provisioned:
            return
        async with self._provisioning:
            if tenant_id in self._provisioned:
                return
            for spec in SYSTEM_GUIDANCES:
                if spec.with_tenant:
                    await self._provision(tenant_id, spec)
            self._provisioned.add(tenant_id)

    async def system_guidance_id(self, tenant_id: str, prompt_id: str) -> str:
        """The tenant's guidance behind a `system:<name>` id, created and synthesized on its first use."""
        spec = system_prompt(prompt_id)
        if isinstance(spec, SystemSilence):
            raise NotFound(f"{prompt_id} is silence, not a guidance; only its audio can be fetched")
        known = (tenant_id, spec.key)
        if known not in self._system_guidances:
            async with self._provisioning:
                if known not in self._system_guidances and not await self._provision(tenant_id, spec):
                    raise FailedPrecondition(
                        f"system prompt {prompt_id} cannot be created: this tenant already has an audio file "
                        f"or guidance named {spec.name!r}; rename it"
                    )
                self._system_guidances.add(known)
        return spec.guidance_id(tenant_id)

    async def create(
        self,
        tenant_id: str,
        guidance_type: GuidanceType | None,
        name: str,
        speech_synthesis: bool,
        audio_file_id: str,
    ) -> OriginalGuidance:
        if guidance_type is None:
            raise InvalidArgument.field("type", "must be set, e.g. GUIDANCE_TYPE_PB_ROUTING")
        name = clean_name("name", name)
        check_guidance_source(speech_synthesis)
        now = datetime.now(UTC)
        guidance = OriginalGuidance(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            type=guidance_type,
            name=name,
            speech_synthesis=True,
            audio_file_id=audio_file_id,
            system=False,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._uow() as uow:
                await _check_name_free(uow, tenant_id, name)
                await _check_audio_file(uow, tenant_id, audio_file_id)
                await uow.guidances.add(guidance)
                await uow.commit()
        except IntegrityError as error:  # a concurrent create took the name first
            raise AlreadyExists(f"a guidance named {name!r} already exists") from error
        return guidance

    async def get(self, tenant_id: str, guidance_id: str) -> OriginalGuidance:
        if is_system_id(guidance_id):
            guidance_id = await self.system_guidance_id(tenant_id, guidance_id)
        async with self._uow() as uow:
            return await _existing(uow, tenant_id, guidance_id)

    async def search(
        self,
        tenant_id: str,
        guidance_type: GuidanceType | None,
        name_contains: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[OriginalGuidance], str]:
        limit = page_limit(page_size)
        after = decode_token(page_token)
        async with self._uow() as uow:
            found = await uow.guidances.search(tenant_id, guidance_type, name_contains, after, limit + 1)
        more = len(found) > limit
        return found[:limit], encode_token(found[limit - 1].name) if more else ""

    async def update(
        self, tenant_id: str, guidance_id: str, name: str, audio_file_id: str, expected_revision: int
    ) -> OriginalGuidance:
        """Rename and/or point at another audio file; empty fields stay as they are."""
        async with self._uow() as uow:
            current = await _existing(uow, tenant_id, guidance_id)
            check_revision("expected_revision", current.revision, expected_revision)
            new_name = clean_name("name", name) if name else current.name
            check_system_guidance_name(current, new_name)
            if new_name != current.name:
                await _check_name_free(uow, tenant_id, new_name)
            if audio_file_id:
                await _check_audio_file(uow, tenant_id, audio_file_id)
            revised = replace(
                current,
                name=new_name,
                audio_file_id=audio_file_id or current.audio_file_id,
                revision=current.revision + 1,
                updated_at=datetime.now(UTC),
            )
            if not await uow.guidances.update(revised, current.revision):
                latest = await _existing(uow, tenant_id, guidance_id)
                check_revision("expected_revision", latest.revision, current.revision)
            try:
                await uow.commit()
            except IntegrityError as error:
                raise AlreadyExists(f"a guidance named {new_name!r} already exists") from error
        return revised

    async def delete(self, tenant_id: str, guidance_id: str) -> None:
        async with self._uow() as uow:
            guidance = await _existing(uow, tenant_id, guidance_id)
            check_guidance_deletable(guidance, await uow.usages.users_of(tenant_id, guidance_id))
            try:
                await uow.guidances.delete(tenant_id, guidance_id)
                await uow.commit()
            except IntegrityError as error:  # a usage was recorded meanwhile
                raise FailedPrecondition(f"guidance {guidance.name!r} was just taken into use") from error

    async def wav(
        self, tenant_id: str, audio_format: AudioFormat, *, guidance_id: str = "", audio_file_id: str = ""
    ) -> Wav:
        """Stored audio of a guidance or of an audio file of the tenant, or of a system prompt (either id).

        `<guidance id>@<content revision>` is the content a user pinned (see set_usage), while one pins it.
        """
        prompt_id = guidance_id or audio_file_id
        if PIN_SEPARATOR in prompt_id and not is_system_id(prompt_id):
            return await self._pinned_wav(tenant_id, audio_format, prompt_id)
        if is_system_id(prompt_id):
            spec = system_prompt(prompt_id)
            if isinstance(spec, SystemSilence):
                return self._library.silence(spec.duration_ms, audio_format)
            guidance_id = await self.system_guidance_id(tenant_id, prompt_id)
        async with self._uow() as uow:
            if guidance_id:
                audio_file_id = (await _existing(uow, tenant_id, guidance_id)).audio_file_id
            return await self._library.wav_of(uow, tenant_id, audio_file_id, audio_format)

    async def wav_by_id(self, tenant_id: str, audio_format: AudioFormat, item_id: str) -> Wav:
        """Audio of whatever `item_id` names: an audio file, a guidance or a system prompt."""
        try:
            return await self.wav(tenant_id, audio_format, audio_file_id=item_id)
        except NotFound:
            if is_system_id(item_id):
                raise
            return await self.wav(tenant_id, audio_format, guidance_id=item_id)

    async def record_usage(
        self, tenant_id: str, user: GuidanceUser, version: int, guidance_ids: Sequence[str]
    ) -> bool:
        """Note which guidances `user` (e.g. a published routing flow) plays; older versions are ignored."""
        applied, _ = await self.set_usage(tenant_id, user, version, guidance_ids)
        return applied

    async def set_usage(
        self,
        tenant_id: str,
        user: GuidanceUser,
        version: int,
        guidance_ids: Sequence[str],
        *,
        skip_unknown: bool = False,
        pin_content: bool = False,
        content_revisions: Mapping[str, int] | None = None,
    ) -> tuple[bool, dict[str, int]]:
        """Note which guidances `user` plays (older versions are ignored) and, with `pin_content`, which
        content of each: the revision named in `content_revisions`, else the current one. Returns whether it
        was applied and the content revision pinned per guidance."""
        wanted = dict(content_revisions or {})
        async with self._uow() as uow:
            known = await uow.guidances.existing_ids(tenant_id, guidance_ids)
            if skip_unknown:
                guidance_ids = [gid for gid in guidance_ids if gid in known]
            check_usage(user, known, guidance_ids)
            pins: dict[str, int] = {}
            for gid in sorted(set(guidance_ids)) if pin_content else ():
                if gid in wanted:
                    if await uow.usages.content_key(tenant_id, gid, wanted[gid], pinned=False) is None:
                        raise InvalidArgument.field(
                            f"content_revisions[{gid}]",
                            f"guidance {gid!r} has no content revision {wanted[gid]}",
                        )
                    pins[gid] = wanted[gid]
                else:
                    guidance = await _existing(uow, tenant_id, gid)
                    audio_file = await uow.audio_files.get(tenant_id, guidance.audio_file_id)
                    if audio_file is None:  # the foreign key makes this impossible short of manual edits
                        raise NotFound(f"the audio file of guidance {gid!r} is missing")
                    pins[gid] = await uow.usages.content_revision(tenant_id, gid, audio_file.cache_key)
            released = await uow.usages.pinned_keys(tenant_id, user.user_id)
            applied = await uow.usages.replace(tenant_id, user, version, guidance_ids, pins)
            if applied:  # audio only a pin kept goes once nobody pins it
                for cache_key in released - await uow.usages.pinned_keys(tenant_id, user.user_id):
                    await uow.audio.delete_unreferenced(tenant_id, cache_key)
            try:
                await uow.commit()
            except IntegrityError as error:  # a guidance was deleted (or pinned) meanwhile
                raise FailedPrecondition(
                    "a guidance was deleted or changed meanwhile; check the flow and retry"
                ) from error
        return applied, pins if applied else {}

    async def _pinned_wav(self, tenant_id: str, audio_format: AudioFormat, pinned_id: str) -> Wav:
        guidance_id, _, number = pinned_id.rpartition(PIN_SEPARATOR)
        if not number.isdigit():
            raise NotFound(f"no pinned content {pinned_id!r} (expected <guidance id>@<content revision>)")
        async with self._uow() as uow:
            cache_key = await uow.usages.content_key(tenant_id, guidance_id, int(number), pinned=True)
            if cache_key is None:
                raise NotFound(f"no content revision {number} of guidance {guidance_id!r} is pinned")
            return await self._library.wav_of_key(uow, tenant_id, cache_key, audio_format, pinned_id)

    async def _provision(self, tenant_id: str, spec: SystemGuidance) -> bool:
        """Create the tenant's system guidance `spec` unless it exists; False if its name is taken."""
        guidance_id, file_id = spec.guidance_id(tenant_id), spec.audio_file_id(tenant_id)
        async with self._uow() as uow:
            if await uow.guidances.get(tenant_id, guidance_id) is not None:
                return True
            has_file = await uow.audio_files.get(tenant_id, file_id) is not None
        # Another replica may create it at the same time, or the tenant may use the name: checked below.
        if not has_file:
            with suppress(AlreadyExists, IntegrityError):
                await self._library.create(
                    tenant_id,
                    spec.name,
                    spec.text,
                    file_id=file_id,
                    system=True,
                    trim_silence=spec.trim_silence,
                )
        now = datetime.now(UTC)
        system_guidance = OriginalGuidance(
            id=guidance_id,
            tenant_id=tenant_id,
            type=spec.type,
            name=spec.name,
            speech_synthesis=True,
            audio_file_id=file_id,
            system=True,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        with suppress(IntegrityError):
            async with self._uow() as uow:
                if await uow.audio_files.get(tenant_id, file_id) is None:
                    return False
                await uow.guidances.add(system_guidance)
                await uow.commit()
        async with self._uow() as uow:
            return await uow.guidances.get(tenant_id, guidance_id) is not None


async def _existing(uow: UnitOfWork, tenant_id: str, guidance_id: str) -> OriginalGuidance:
    guidance = await uow.guidances.get(tenant_id, guidance_id)
    if guidance is None:
        raise NotFound(f"no original guidance {guidance_id!r}")
    return guidance


async def _check_name_free(uow: UnitOfWork, tenant_id: str, name: str) -> None:
    if await uow.guidances.name_taken(tenant_id, name):
        raise AlreadyExists(f"a guidance named {name!r} already exists")


async def _check_audio_file(uow: UnitOfWork, tenant_id: str, audio_file_id: str) -> None:
    if not audio_file_id:
        raise InvalidArgument.field("audio_file_id", "must name the audio file the guidance plays")
    if await uow.audio_files.get(tenant_id, audio_file_id) is None:
        raise InvalidArgument.field("audio_file_id", f"no audio file {audio_file_id!r} in this tenant")
