"""The campaigns pages at /campaigns/: the list, the builder (drafts), a campaign's page (preview
for real families, dry run, launch, pause, resume, cancel, and the results against the holdout),
and a call task's form, which records the call as a consultation.

Managers work their campus's campaigns, administrators any campus's; other roles get a 403, and
another campus's campaign is a 404. Thin views: reads through `campaigns.selectors`, writes
through `campaigns.services`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.forms import CallOutcomeForm, CampaignForm, initial_for
from campaigns.models import CallTask, Campaign, CampaignChannel, CampaignStatus, SuppressionReason
from campaigns.selectors import (
    call_task_rows,
    call_tasks_for,
    campaign_get,
    campaign_preview,
    campaign_results,
    campaigns_visible_to,
)
from campaigns.services.calls import call_task_complete
from campaigns.services.campaigns import (
    campaign_cancel,
    campaign_dry_run,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_save,
)
from crm.forms import apply_service_errors
from crm.models import Campus, Role, User
from crm.views.access import role_required

MANAGERS = (Role.MANAGER, Role.ADMIN)


def _viewer(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _campus_for_new(request: HttpRequest) -> Campus:
    """A manager's own campus; an administrator picks one (?campus=)."""
    viewer = _viewer(request)
    if viewer.campus_id is not None:
        return viewer.campus  # type: ignore[return-value]
    chosen = request.GET.get("campus") or request.POST.get("campus") or ""
    campus = (
        Campus.objects.filter(pk=int(chosen)).first() if chosen.isdigit() else Campus.objects.order_by("pk").first()
    )
    if campus is None:
        raise Http404
    return campus


@require_GET
@role_required(*MANAGERS)
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = campaigns_visible_to(_viewer(request)).select_related("segment", "campus").order_by("-created_at")
    return render(request, "campaigns/list.html", {"campaigns": campaigns[:200], "nav": "campaigns"})


def _builder(
    request: HttpRequest, form: CampaignForm, campus: Campus, campaign: Campaign | None, status: int = 200
) -> HttpResponse:
    context = {"form": form, "campus": campus, "campaign": campaign, "nav": "campaigns"}
    if _viewer(request).campus_id is None:
        context["campuses"] = Campus.objects.order_by("name")
    return render(request, "campaigns/builder.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(*MANAGERS)
def campaign_new(request: HttpRequest) -> HttpResponse:
    viewer = _viewer(request)
    campus = _campus_for_new(request)
    if request.method == "GET":
        return _builder(request, CampaignForm(viewer=viewer, campus_id=campus.pk), campus, None)
    form = CampaignForm(request.POST, viewer=viewer, campus_id=campus.pk)
    if form.is_valid():
        try:
            campaign = campaign_save(actor=viewer, campus=campus, data=form.to_input())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Campaign “%(name)s” saved as a draft.") % {"name": campaign.name})
            return redirect("campaign_detail", pk=campaign.pk)
    return _builder(request, form, campus, None, status=422)


@require_http_methods(["GET", "POST"])
@role_required(*MANAGERS)
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = _viewer(request)
    campaign = campaign_get(viewer=viewer, campaign_id=pk)
    if campaign.status != CampaignStatus.DRAFT:
        messages.error(request, _("Only a draft can be changed."))
        return redirect("campaign_detail", pk=campaign.pk)
    if request.method == "GET":
        form = CampaignForm(initial=initial_for(campaign), viewer=viewer, campus_id=campaign.campus_id)
        return _builder(request, form, campaign.campus, campaign)
    form = CampaignForm(request.POST, viewer=viewer, campus_id=campaign.campus_id)
    if form.is_valid():
        try:
            campaign = campaign_save(actor=viewer, campus=campaign.campus, campaign=campaign, data=form.to_input())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Campaign “%(name)s” saved as a draft.") % {"name": campaign.name})
            return redirect("campaign_detail", pk=campaign.pk)
    return _builder(request, form, campaign.campus, campaign, status=422)


@require_GET
@role_required(*MANAGERS)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = campaign_get(viewer=_viewer(request), campaign_id=pk)
    context: dict[str, Any] = {
        "campaign": campaign,
        "templates": list(campaign.templates.order_by("variant", "channel")),
        "nav": "campaigns",
    }
    if campaign.resolved_at is None:
        context["preview"] = campaign_preview(campaign)
    else:
        results = campaign_results(campaign)
        context["results"] = results
        context["chart"] = results.chart
    return render(request, "campaigns/detail.html", context)


@require_POST
@role_required(*MANAGERS)
def campaign_dry_run_view(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = _viewer(request)
    campaign = campaign_get(viewer=viewer, campaign_id=pk)
    try:
        dry = campaign_dry_run(actor=viewer, campaign=campaign)
    except ValidationError as exc:
        return render(request, "campaigns/_dry_run.html", {"problem": " ".join(exc.messages)}, status=400)
    reasons, channels = dict(SuppressionReason.choices), dict(CampaignChannel.choices)
    rows = [
        {
            "channel": channel,
            "label": channels.get(channel, channel),
            "reached": reached,
            "held": [(reasons.get(r, r), n) for r, n in sorted(dry.suppressed.get(channel, {}).items())],
        }
        for channel, reached in dry.reached.items()
    ]
    return render(request, "campaigns/_dry_run.html", {"dry": dry, "rows": rows, "campaign": campaign})


ACTIONS = {
    "launch": (campaign_launch, gettext_lazy("Campaign launched.")),
    "pause": (campaign_pause, gettext_lazy("Campaign paused: nothing more goes out until you resume it.")),
    "resume": (campaign_resume, gettext_lazy("Campaign resumed: only what was not sent goes out.")),
    "cancel": (campaign_cancel, gettext_lazy("Campaign cancelled: nothing more goes out.")),
}


@require_POST
@role_required(*MANAGERS)
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    viewer = _viewer(request)
    campaign = campaign_get(viewer=viewer, campaign_id=pk)
    if action not in ACTIONS:
        raise Http404
    service, done = ACTIONS[action]
    try:
        service(actor=viewer, campaign=campaign)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, str(done))
    return redirect("campaign_detail", pk=campaign.pk)


@require_http_methods(["GET", "POST"])
@role_required(Role.FRONT_DESK, *MANAGERS)
def call_task_record(request: HttpRequest, pk: int) -> HttpResponse:
    """The consultant's form for a campaign's call: what was said becomes a consultation."""
    viewer = _viewer(request)
    task = call_tasks_for(viewer).filter(pk=pk).first()
    if task is None:
        # A colleague's call at the viewer's own campus is theirs to make; anything else is not here.
        if CallTask.objects.filter(pk=pk, campaign__campus_id=viewer.campus_id or 0, status="open").exists():
            raise PermissionDenied
        raise Http404
    form = CallOutcomeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            call_task_complete(
                actor=viewer,
                task=task,
                content=data["content"],
                intent=data["intent"],
                outcome=data["outcome"],
                next_follow_up_at=data["next_follow_up_at"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Call recorded for %(student)s.") % {"student": task.student.name})
            return redirect("followups")
    status = 422 if request.method == "POST" else 200
    context = {"row": call_task_rows([task])[0], "form": form, "nav": "followups"}
    return render(request, "campaigns/call.html", context, status=status)


urlpatterns = [
    path("", campaign_list, name="campaign_list"),
    path("new/", campaign_new, name="campaign_new"),
    path("<int:pk>/", campaign_detail, name="campaign_detail"),
    path("<int:pk>/edit/", campaign_edit, name="campaign_edit"),
    path("<int:pk>/dry-run/", campaign_dry_run_view, name="campaign_dry_run"),
    path("<int:pk>/<slug:action>/", campaign_action, name="campaign_action"),
    path("calls/<int:pk>/", call_task_record, name="call_task_record"),
]
