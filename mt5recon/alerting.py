"""Prefect automations that notify on the pipeline's events (see `notifications`).

`install_automations` creates (or replaces, by name) three automations and the webhook block
they send through:

- a break opened or resolved -> one notification per break transition;
- no completed cycle for `silence_secs` -> the pipeline itself has stopped (proactive);

The webhook posts JSON `{"subject": ..., "body": ...}`; point it at a chat webhook, an incident
tool or a relay of your own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mt5recon.notifications import BREAK_OPENED, BREAK_RESOLVED, CYCLE_COMPLETED, PREFIX

BLOCK_NAME = "mt5recon-alerts"
BREAKS_AUTOMATION = "mt5recon: break opened or resolved"
SILENCE_AUTOMATION = "mt5recon: cycles stopped"
AUTOMATIONS = (BREAKS_AUTOMATION, SILENCE_AUTOMATION)

BREAK_SUBJECT = "mt5recon {{ event.event.split('.')[-1] }}: {{ event.resource.name }}"
BREAK_BODY = (
    "{{ event.payload.kind }} on account {{ event.payload.login }} {{ event.payload.symbol or '' }}: "
    "{{ event.payload.event }} (cause {{ event.payload.cause }}, size {{ event.payload.size_pips }} pips / "
    "{{ event.payload.size_money }}, age {{ event.payload.age_secs }} s, break {{ event.payload.break_id }})"
)
SILENCE_SUBJECT = "mt5recon: no reconciliation cycle completed"
SILENCE_BODY = "No cycle of fleet {{ event.resource.name or 'unknown' }} completed in the expected window."


@dataclass(frozen=True)
class Installed:
    block_id: str
    automation_ids: dict[str, str]


def install_automations(webhook_url: str, *, silence_secs: int = 60) -> Installed:
    """Create the webhook block and the automations, replacing earlier ones of the same names."""
    return asyncio.run(_install(webhook_url, silence_secs))


async def _install(webhook_url: str, silence_secs: int) -> Installed:
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=webhook_url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,  # a relay on the operator's own network is the usual target
    )
    block_id = await block.save(BLOCK_NAME, overwrite=True)
    await _remove_existing(AUTOMATIONS)
    specs: dict[str, tuple[Any, Any]] = {
        BREAKS_AUTOMATION: (
            EventTrigger(
                expect={BREAK_OPENED, BREAK_RESOLVED},
                match={"prefect.resource.id": f"{PREFIX}.break.*"},
                posture=Posture.Reactive,
                threshold=1,
                within=0,
            ),
            SendNotification(block_document_id=block_id, subject=BREAK_SUBJECT, body=BREAK_BODY),
        ),
        SILENCE_AUTOMATION: (
            EventTrigger(
                expect={CYCLE_COMPLETED},
                match={"prefect.resource.id": f"{PREFIX}.fleet.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=silence_secs,
            ),
            SendNotification(block_document_id=block_id, subject=SILENCE_SUBJECT, body=SILENCE_BODY),
        ),
    }
    created = {}
    for name, (trigger, action) in specs.items():
        automation = await Automation(name=name, trigger=trigger, actions=[action]).acreate()
        created[name] = str(automation.id)
    return Installed(block_id=str(block_id), automation_ids=created)


async def _remove_existing(names: tuple[str, ...]) -> None:
    from prefect import get_client

    async with get_client() as client:
        for name in names:
            for automation in await client.read_automations_by_name(name):
                await client.delete_automation(automation.id)
