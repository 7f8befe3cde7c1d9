"""The alert automations, made by `registre deploy`: one per condition of tasks/control/alerts.py,
each calling the webhook ALERT_WEBHOOK_URL (a Prefect Webhook block) when the rebalance emits
its event. Idempotent: found by name and updated; with no webhook set, ours are removed."""

from __future__ import annotations

import logging

from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import SyncPrefectClient

from tasks.control.alerts import Alert
from tasks.settings import Settings

__all__ = ["BLOCK_NAME", "automation_name", "sync_alerts"]

logger = logging.getLogger(__name__)

BLOCK_NAME = "registre-alerts"
DESCRIPTIONS = {
    Alert.ERRORS: "Documents ended in error: one digest per period and environment.",
    Alert.STALLED: "A stage with documents waiting and none finished for ALERT_STALL_MINUTES.",
    Alert.HOST_LOST: "A host disappeared while it held runs.",
    Alert.NO_FIT: "Documents waiting for a kind of run that no live host's budget fits.",
    Alert.GEMINI_PAUSED: "Gemini paused for quota longer than ALERT_GEMINI_PAUSED_MINUTES.",
    Alert.GEMINI_BUSY: "Gemini usage above ALERT_GEMINI_USAGE_SHARE of its limit, sustained.",
    Alert.SPEND_CAP: "An environment reached a daily spend cap: new work waits.",
}
# Slack's incoming webhooks read "text"; any other endpoint gets the numbers beside it.
PAYLOAD = (
    '{"text": {{ event.payload.message | tojson }},'
    ' "alert": {{ event.payload.alert | tojson }},'
    ' "subject": {{ event.payload.subject | tojson }},'
    ' "occurred": "{{ event.occurred }}",'
    ' "payload": {{ event.payload | tojson }}}'
)


def automation_name(alert: Alert) -> str:
    return f"registre-alert-{alert.value}"


def sync_alerts(client: SyncPrefectClient, settings: Settings) -> list[str]:
    """Create or update the webhook block and one automation per alert; with no
    ALERT_WEBHOOK_URL, delete them. Returns the automations' names in place."""
    if settings.alert_webhook_url is None:
        for alert in Alert:
            for found in client.read_automations_by_name(automation_name(alert)):
                client.delete_automation(found.id)
        logger.warning("ALERT_WEBHOOK_URL is not set: no alert will be sent")
        return []
    # The URL is the operator's own (often a private address): no public-address check. It is
    # a secret (Slack's carries its token): the block keeps it encrypted, the UI masks it.
    block = Webhook(
        url=settings.alert_webhook_url,
        allow_private_urls=True,
        headers={"Content-Type": "application/json"},
    )
    block_id = block.save(BLOCK_NAME, overwrite=True)
    names = []
    for alert in Alert:
        wanted = AutomationCore(
            name=automation_name(alert),
            description=DESCRIPTIONS[alert],
            trigger=EventTrigger(
                expect={alert.event},
                match={"prefect.resource.id": f"{alert.event}.*"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD)],
        )
        found = client.read_automations_by_name(wanted.name)
        for extra in found[1:]:  # two deploys at once: keep one
            client.delete_automation(extra.id)
        if found:
            client.update_automation(found[0].id, wanted)
        else:
            client.create_automation(wanted)
        names.append(wanted.name)
    return names
