"""Forms of the campaigns pages. They parse and present; `campaigns.services` decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import Campaign, CampaignChannel, CampaignGoal
from campaigns.rules import variable_names
from campaigns.services.campaigns import CampaignInput, TemplateInput
from crm import text
from crm.forms import CHOOSE, DateTimeLocalInput
from crm.models import User
from personas.models import Segment
from personas.selectors import segments_visible_to


def variables_help() -> str:
    """The variables a template may use, named in the page's language."""
    names = variable_names(chinese=translation.get_language().startswith("zh"))
    return _("Variables: %(names)s") % {"names": "  ".join(names)}


# Per channel, the parts a text has beside its body.
CHANNEL_PARTS = {
    CampaignChannel.SMS: ("template_code",),
    CampaignChannel.EMAIL: ("subject",),
    CampaignChannel.WECHAT: ("template_code",),
    CampaignChannel.CALL: (),
}


def wechat_help() -> str:
    return _("One line per field of the WeChat subscription template, like thing1={学员}. %(variables)s") % {
        "variables": variables_help()
    }


TEXT_LABELS = {
    CampaignChannel.SMS: gettext_lazy("SMS text"),
    CampaignChannel.EMAIL: gettext_lazy("Email text"),
    CampaignChannel.WECHAT: gettext_lazy("WeChat message"),
    CampaignChannel.CALL: gettext_lazy("Call script"),
}
PART_LABELS = {
    "subject": gettext_lazy("Email subject"),
    "template_code": gettext_lazy("Provider's template code (if it needs one)"),
}


def text_field_name(channel: str, variant: str, part: str = "text") -> str:
    return f"{channel}_{variant.lower()}_{part}"


class CampaignForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Campaign name"), max_length=text.NAME)
    goal = forms.ChoiceField(label=gettext_lazy("Goal"), choices=[("", CHOOSE), *CampaignGoal.choices])
    segment = forms.ModelChoiceField(
        label=gettext_lazy("Audience (segment)"), queryset=Segment.objects.none(), empty_label=CHOOSE
    )
    channels = forms.MultipleChoiceField(
        label=gettext_lazy("Channels"), choices=CampaignChannel.choices, widget=forms.CheckboxSelectMultiple
    )
    with_b = forms.BooleanField(label=gettext_lazy("A/B test: write a variant B"), required=False)
    split_a_pct = forms.IntegerField(label=gettext_lazy("Variant A's share (%)"), min_value=1, max_value=99, initial=50)
    holdout_pct = forms.IntegerField(
        label=gettext_lazy("Holdout (%)"),
        min_value=0,
        max_value=90,
        initial=10,
        help_text=gettext_lazy("Chosen at random and left alone, to measure what the campaign changed."),
    )
    scheduled_at = forms.DateTimeField(
        label=gettext_lazy("Send at"),
        required=False,
        widget=DateTimeLocalInput(),
        help_text=gettext_lazy("Empty: when launched."),
    )
    attribution_days = forms.IntegerField(
        label=gettext_lazy("Attribution window (days)"), min_value=1, max_value=90, initial=14
    )

    def __init__(self, *args: Any, viewer: User, campus_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        segments = segments_visible_to(viewer).filter(campus_id__in=[campus_id]) | segments_visible_to(viewer).filter(
            campus__isnull=True
        )
        self.fields["segment"].queryset = segments.order_by("name")  # type: ignore[attr-defined]
        for channel, parts in CHANNEL_PARTS.items():
            for variant in ("A", "B"):
                self.fields[text_field_name(channel, variant)] = forms.CharField(
                    label=TEXT_LABELS[channel],
                    required=False,
                    widget=forms.Textarea(attrs={"rows": 3, "data-channel": channel, "data-variant": variant}),
                    help_text=variables_help() if channel != CampaignChannel.WECHAT else wechat_help(),
                )
                for part in parts:
                    self.fields[text_field_name(channel, variant, part)] = forms.CharField(
                        label=PART_LABELS[part],
                        required=False,
                        max_length=200 if part == "subject" else 64,
                        widget=forms.TextInput(attrs={"data-channel": channel, "data-variant": variant}),
                    )

    def text_blocks(self) -> list[dict[str, Any]]:
        """The template fields grouped by channel and variant, for the template."""
        blocks = []
        for channel, parts in CHANNEL_PARTS.items():
            for variant in ("A", "B"):
                fields = [self[text_field_name(channel, variant, part)] for part in parts]
                blocks.append(
                    {
                        "channel": channel,
                        "variant": variant,
                        "legend": f"{CampaignChannel(channel).label} · {variant}",
                        "text": self[text_field_name(channel, variant)],
                        "parts": fields,
                    }
                )
        return blocks

    def to_input(self) -> CampaignInput:
        data = self.cleaned_data
        channels = list(data.get("channels") or [])
        variants = ["A", "B"] if data.get("with_b") else ["A"]
        templates = []
        for channel in channels:
            for variant in variants:
                parts = {
                    part: data.get(text_field_name(channel, variant, part)) or "" for part in CHANNEL_PARTS[channel]
                }
                templates.append(
                    TemplateInput(
                        channel=channel,
                        variant=variant,
                        text=data.get(text_field_name(channel, variant)) or "",
                        subject=parts.get("subject", ""),
                        template_code=parts.get("template_code", ""),
                    )
                )
        return CampaignInput(
            name=data.get("name") or "",
            goal=data.get("goal") or "",
            segment=data.get("segment"),
            channels=channels,
            templates=templates,
            holdout_pct=data.get("holdout_pct") or 0,
            split_a_pct=data.get("split_a_pct") or 50,
            attribution_days=data.get("attribution_days") or 14,
            scheduled_at=data.get("scheduled_at"),
        )


def initial_for(campaign: Campaign) -> dict[str, Any]:
    initial: dict[str, Any] = {
        "name": campaign.name,
        "goal": campaign.goal,
        "segment": campaign.segment_id,
        "channels": campaign.channels,
        "split_a_pct": campaign.split_a_pct,
        "holdout_pct": campaign.holdout_pct,
        "scheduled_at": campaign.scheduled_at,
        "attribution_days": campaign.attribution_days,
    }
    for template in campaign.templates.all():
        initial[text_field_name(template.channel, template.variant)] = template.text
        initial[text_field_name(template.channel, template.variant, "subject")] = template.subject
        initial[text_field_name(template.channel, template.variant, "template_code")] = template.template_code
        if template.variant == "B":
            initial["with_b"] = True
    return initial


class CallOutcomeForm(forms.Form):
    """What the consultant says of the call: logged as a consultation by phone."""

    content = forms.CharField(label=gettext_lazy("What was discussed"), widget=forms.Textarea(attrs={"rows": 3}))
    intent = forms.ChoiceField(label=gettext_lazy("Intent"))
    outcome = forms.CharField(label=gettext_lazy("Outcome"), max_length=text.LINE, required=False)
    next_follow_up_at = forms.DateTimeField(
        label=gettext_lazy("Next follow-up"), required=False, widget=DateTimeLocalInput()
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from crm.models import Intent

        super().__init__(*args, **kwargs)
        self.fields["intent"].choices = Intent.choices  # type: ignore[attr-defined]
        self.fields["intent"].initial = Intent.MEDIUM
