"""A campaign's audience resolved, set-based, once: members with their groups, outbox rows with
their suppressions, call tasks.

Three statements, run in one transaction when a campaign starts sending (and rolled back for a
dry run, so the dry run counts exactly what a launch would do):

1. `MEMBERS_SQL`: the segment's students, as the campaign's campus sees them, each with a group
   (holdout, A, B) drawn by `campaigns.rules.group_for` from the campaign's seed, and the stage
   they were in at launch.
2. `OUTBOX_SQL`: one `Message` row per (campaign, guardian, channel) for the members outside the
   holdout, `queued`, or `suppressed` with its reason (no address, no consent, opted out, the
   frequency cap), under the unique constraint `message_once_per_campaign` and a deterministic
   idempotency key, so a second resolution inserts nothing.
3. `CALLS_SQL`: a call task per member for the student's consultant, when the campaign calls.

The texts are filled in per recipient when a worker sends (`campaigns.services.outbox`), so a
template is rendered with the facts of that moment (hours left, the consultant's name).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, F

from campaigns.models import (
    CallTask,
    Campaign,
    CampaignChannel,
    CampaignGroup,
    CampaignMember,
    Message,
    MessageStatus,
)
from campaigns.rules import HASH_MULTIPLIER, HASH_RANGE
from campaigns.services.marketing import at_param, marketing_settings_for
from personas.conditions import campus_viewer
from personas.selectors import segment_members

# Mirrors `campaigns.rules.group_for`: the bucket from the seed and the id, the holdout's
# buckets first, then variant A's share of the rest.
MEMBERS_SQL = """
INSERT INTO campaigns_campaignmember (campaign_id, student_id, group_name, stage_at_launch)
SELECT %s, audience.id,
       CASE WHEN audience.bucket < %s THEN 'holdout'
            WHEN NOT %s OR (audience.bucket - %s) * 100 < (100 - %s) * %s THEN 'A'
            ELSE 'B' END,
       COALESCE(stage.stage, '')
FROM (
    SELECT segment.member_id AS id, ((segment.member_id * %s + %s) %% %s) * 100 / %s AS bucket
    FROM ({segment}) AS segment
) AS audience
LEFT JOIN crm_studentstage AS stage ON stage.student_id = audience.id
WHERE true
ON CONFLICT DO NOTHING
"""

OUTBOX_SQL = """
WITH family AS (
    -- A guardian of two members is reached once, about the member with the lowest id.
    SELECT member.student_id, member.group_name AS variant, link.guardian_id,
           ROW_NUMBER() OVER (PARTITION BY link.guardian_id ORDER BY member.student_id) AS nth
    FROM campaigns_campaignmember AS member
    JOIN crm_student_guardians AS link ON link.student_id = member.student_id
    WHERE member.campaign_id = %s AND member.group_name <> 'holdout'
),
channels AS (
    -- The campaign's message channels.
    {channels}
),
targets AS (
    -- Each family on each channel, with its address there ('' when it has none).
    SELECT family.student_id, family.variant, family.guardian_id, channels.channel,
           CASE channels.channel WHEN 'sms' THEN guardian.phone
                                 WHEN 'email' THEN guardian.email
                                 ELSE COALESCE(guardian.wechat_openid, '') END AS recipient
    FROM family
    JOIN crm_guardian AS guardian ON guardian.id = family.guardian_id
    CROSS JOIN channels
    WHERE family.nth = 1
),
judged AS (
    -- `campaigns.services.marketing.marketing_gate`'s rules, in its order, as of now; the
    -- worker asks the gate again when it sends.
    SELECT targets.*,
           CASE WHEN targets.recipient = '' THEN 'no_address'
                WHEN consent.granted IS NULL THEN 'no_consent'
                WHEN NOT consent.granted THEN 'opted_out'
                WHEN contact.last_at > %s AND contact.last_by <> %s THEN 'frequency_cap'
                ELSE '' END AS reason
    FROM targets
    LEFT JOIN campaigns_consent AS consent
           ON consent.guardian_id = targets.guardian_id AND consent.channel = targets.channel
    LEFT JOIN campaigns_marketingcontact AS contact ON contact.guardian_id = targets.guardian_id
)
INSERT INTO campaigns_message (
    category, channel, campus_id, guardian_id, campaign_id, variant, student_id, recipient,
    subject, text, html, template_code, params, idempotency_key, status, suppressed_reason,
    provider, provider_message_id, attempts, error_code, error, created_at, updated_at
)
SELECT 'marketing', judged.channel, %s, judged.guardian_id, %s, judged.variant, judged.student_id,
       judged.recipient, '', '', '', '', '{{}}',
       'c' || %s || '-g' || judged.guardian_id || '-' || judged.channel,
       CASE WHEN judged.reason = '' THEN 'queued' ELSE 'suppressed' END, judged.reason,
       '', '', 0, '', '', %s, %s
FROM judged
WHERE true
ON CONFLICT DO NOTHING
"""

CALLS_SQL = """
INSERT INTO campaigns_calltask (campaign_id, student_id, consultant_id, variant, script, status, created_at)
SELECT %s, member.student_id, student.owner_id, member.group_name,
       CASE member.group_name WHEN 'B' THEN %s ELSE %s END, 'open', %s
FROM campaigns_campaignmember AS member
JOIN crm_student AS student ON student.id = member.student_id
WHERE member.campaign_id = %s AND member.group_name <> 'holdout'
ON CONFLICT DO NOTHING
"""


def message_channels(campaign: Campaign) -> list[str]:
    return [channel for channel in campaign.channels if channel != CampaignChannel.CALL]


def has_variant_b(campaign: Campaign) -> bool:
    return campaign.templates.filter(variant="B").exists()


def resolve_audience(campaign: Campaign, *, now: dt.datetime) -> None:
    """Members, outbox rows and call tasks for the campaign; inserting nothing that exists."""
    segment = segment_members(viewer=campus_viewer(campaign.campus_id), segment=campaign.segment)
    segment_sql, segment_params = (
        segment.order_by().annotate(member_id=F("pk")).values("member_id").query.sql_with_params()
    )
    holdout, split = campaign.holdout_pct, campaign.split_a_pct
    members_params = [campaign.pk, holdout, has_variant_b(campaign), holdout, holdout, split]
    members_params += [HASH_MULTIPLIER, campaign.seed, HASH_RANGE, HASH_RANGE, *segment_params]
    channels = message_channels(campaign)
    rules = marketing_settings_for(campaign.campus_id)
    with connection.cursor() as cursor:
        cursor.execute(MEMBERS_SQL.format(segment=segment_sql), members_params)
        if channels:
            channel_rows = " UNION ALL ".join(["SELECT CAST(%s AS varchar(10)) AS channel"] * len(channels))
            cap_cutoff = now - dt.timedelta(days=rules.cap_days)
            cursor.execute(
                OUTBOX_SQL.format(channels=channel_rows),
                [
                    campaign.pk,
                    *channels,
                    at_param(cap_cutoff),
                    f"campaign:{campaign.pk}",
                    campaign.campus_id,
                    campaign.pk,
                    campaign.pk,
                    at_param(now),
                    at_param(now),
                ],
            )
        if CampaignChannel.CALL in campaign.channels:
            scripts = {t.variant: t.text for t in campaign.templates.filter(channel=CampaignChannel.CALL)}
            cursor.execute(
                CALLS_SQL,
                [campaign.pk, scripts.get("B", scripts.get("A", "")), scripts.get("A", ""), at_param(now), campaign.pk],
            )


@dataclass
class DryRun:
    """What a launch would do now: the audience, the holdout, and per channel how many would be
    reached and how many held back, by reason."""

    audience: int = 0
    holdout: int = 0
    calls: int = 0
    reached: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_reached(self) -> int:
        return sum(self.reached.values())


class _RollBack(Exception):
    pass


def dry_run_counts(campaign: Campaign, *, now: dt.datetime) -> DryRun:
    """The launch's own statements, counted and rolled back."""
    result = DryRun()
    try:
        with transaction.atomic():
            resolve_audience(campaign, now=now)
            groups = {
                row["group"]: row["n"]
                for row in CampaignMember.objects.filter(campaign=campaign).values("group").annotate(n=Count("pk"))
            }
            result.audience = sum(groups.values())
            result.holdout = groups.get(CampaignGroup.HOLDOUT, 0)
            result.calls = CallTask.objects.filter(campaign=campaign).count()
            rows = (
                Message.objects.filter(campaign=campaign)
                .values("channel", "status", "suppressed_reason")
                .annotate(n=Count("pk"))
            )
            for row in rows:
                channel = row["channel"]
                result.reached.setdefault(channel, 0)
                if row["status"] == MessageStatus.SUPPRESSED:
                    result.suppressed.setdefault(channel, {})[row["suppressed_reason"]] = row["n"]
                else:
                    result.reached[channel] += row["n"]
            raise _RollBack
    except _RollBack:
        pass
    return result
