"""The pipeline board at /board/: a column per stage, cards that page per column, and
drag and drop that records the fact behind a move.

A card is never moved by writing its stage. Dropping it on another column asks for the
fact that would explain the move (the student page's own forms, run through the same
crm services); the lifecycle engine then decides the stage, and the card is re-rendered
where the engine put it. A move no fact can explain is refused with the reason.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from crm.forms import apply_service_errors
from crm.models import Stage, Student, StudentStage, User
from crm.selectors import stage_rows_visible_to, student_get
from crm.views.access import FRONT_OFFICE, role_required

# The student page's forms and fact runners: the board records exactly what that page records.
from crm.views.students import ACTIONS, action_forms
from lifecycle.filters import StudentFilter, contributed_filter_names
from lifecycle.selectors import (
    board_card_get,
    board_column,
    board_columns,
    board_counts,
    count_label,
)

# Which fact explains a move from one column to another. Anything else is refused.
MOVES: dict[tuple[str, str], str] = {
    (Stage.LEAD, Stage.CONSULTING): "consultation",
    (Stage.LEAD, Stage.TRIAL): "trial",
    (Stage.CONSULTING, Stage.TRIAL): "trial",
    (Stage.LEAD, Stage.ENROLLED): "contract",
    (Stage.CONSULTING, Stage.ENROLLED): "contract",
    (Stage.TRIAL, Stage.ENROLLED): "contract",
    # Signing again after leaving is a win-back; the engine marks it.
    (Stage.DORMANT, Stage.ENROLLED): "contract",
    (Stage.CHURNED, Stage.ENROLLED): "contract",
    (Stage.LEAD, Stage.LOST): "lost",
    (Stage.CONSULTING, Stage.LOST): "lost",
    (Stage.TRIAL, Stage.LOST): "lost",
}

FACT_TITLES = {
    "consultation": (gettext_lazy("Log a consultation"), gettext_lazy("Save consultation")),
    "trial": (gettext_lazy("Book a trial lesson"), gettext_lazy("Book trial")),
    "contract": (gettext_lazy("Sign a contract"), gettext_lazy("Sign contract")),
    "lost": (gettext_lazy("Close as lost"), gettext_lazy("Close as lost")),
}

FILTER_KEYS = ("q", "campus", "owner", "channel", "tag", "flag")
PIPELINE = list(Stage.values)

# For each column, the stages whose cards a fact can bring there: the board dims the other
# columns while a card is dragged (a drop there is still answered, with the reason).
ACCEPTS: dict[str, list[str]] = {to: [source for (source, target) in MOVES if target == to] for to in Stage.values}


def move_refusal(from_stage: str, to_stage: str) -> str:
    """Why no fact can move a card from `from_stage` to `to_stage`, in words for the user."""
    source, target = Stage(from_stage).label, Stage(to_stage).label
    if to_stage == Stage.ACTIVE:
        return _(
            "A student becomes active by attending lessons, not by moving a card: "
            "record attendance on the teacher's day."
        )
    if to_stage in (Stage.DORMANT, Stage.CHURNED):
        return _("%(stage)s follows from time without lessons; the nightly run moves students there by itself.") % {
            "stage": target
        }
    if from_stage == Stage.LOST:
        return _("This lead was closed as lost; open the student page to see why before recording anything new.")
    if to_stage == Stage.LOST:
        return _("Only leads can be closed as lost; %(stage)s students leave through a refund or by stopping.") % {
            "stage": source
        }
    if to_stage == Stage.ENROLLED:
        return _("%(stage)s students already signed; a new contract is signed on the student page.") % {"stage": source}
    if PIPELINE.index(to_stage) < PIPELINE.index(from_stage):
        return _(
            "A card cannot go back from %(from)s to %(to)s: stages follow what was recorded, "
            "and recorded facts are not undone by moving a card."
        ) % {"from": source, "to": target}
    return _("No fact moves a student from %(from)s to %(to)s.") % {"from": source, "to": target}


def filter_keys() -> tuple[str, ...]:
    """The board's own filters and those a higher app contributed (a segment, a value tier)."""
    return FILTER_KEYS + contributed_filter_names()


def _filter_data(request: HttpRequest) -> QueryDict:
    data = QueryDict(mutable=True)
    for key in filter_keys():
        value = request.GET.get(key, "")
        if value:
            data[key] = value
    return data


def _unfiltered_rows(request: HttpRequest) -> QuerySet[StudentStage] | None:
    """The viewer's stage rows when the board has no filter (its counts read only them)."""
    if _filter_data(request):
        return None
    return stage_rows_visible_to(request.user)  # type: ignore[arg-type]


def _filterset(request: HttpRequest) -> StudentFilter:
    viewer: User = request.user  # type: ignore[assignment]
    return StudentFilter(_filter_data(request), viewer=viewer)


def no_match_message(data: QueryDict) -> str:
    """What an empty filtered board says, naming the searched text when there is one."""
    text = data.get("q", "").strip()
    others = any(data.get(key) for key in filter_keys() if key != "q")
    if text and others:
        return _("No student matches “%(text)s” with these filters.") % {"text": text}
    if text:
        return _("No student matches “%(text)s”.") % {"text": text}
    return _("No student matches these filters.")


@require_GET
@role_required(*FRONT_OFFICE)
def board(request: HttpRequest) -> HttpResponse:
    filters = _filterset(request)
    data = _filter_data(request)
    columns = board_columns(filters.qs, filters.campus_ids(), _unfiltered_rows(request))
    return render(
        request,
        "lifecycle/board.html",
        {
            "columns": columns,
            "accepts": ACCEPTS,
            "filter": filters,
            "filter_query": data.urlencode(),
            "filtered": bool(data),
            "no_match": no_match_message(data) if data and not any(col.count for col in columns) else "",
            "nav": "board",
        },
    )


@require_GET
@role_required(*FRONT_OFFICE)
def board_column_more(request: HttpRequest, stage: str) -> HttpResponse:
    """The next page of one column ("load more")."""
    if stage not in Stage.values:
        raise Http404
    try:
        offset = max(0, int(request.GET.get("offset", "0")))
    except ValueError:
        offset = 0
    filters = _filterset(request)
    return render(
        request,
        "lifecycle/partials/board_column_page.html",
        {
            "col": board_column(filters.qs, stage, offset, filters.campus_ids()),
            "filter_query": _filter_data(request).urlencode(),
        },
    )


def _refuse(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "lifecycle/partials/board_refusal.html", {"message": message}, status=400)


def _dialog(
    request: HttpRequest, student: Student, to_stage: str, fact: str, form: Any, status: int = 200
) -> HttpResponse:
    title, submit = FACT_TITLES[fact]
    return render(
        request,
        "lifecycle/partials/board_move_dialog.html",
        {
            "s": student,
            "to": to_stage,
            "to_label": Stage(to_stage).label,
            "fact": fact,
            "form": form,
            "title": title,
            "submit": submit,
            "filter_query": _filter_data(request).urlencode(),
        },
        status=status,
    )


@require_POST
@role_required(*FRONT_OFFICE)
def board_move(request: HttpRequest, pk: int) -> HttpResponse:
    """A card dropped on column `to`.

    Without `record`: answers the form of the fact that explains the move (200), or why no
    fact can (400). With `record` and the form's fields: records the fact through the crm
    service and answers the card re-read where the engine put it, with fresh counts (JSON);
    a form or service error answers the form again with its errors (422).
    """
    viewer: User = request.user  # type: ignore[assignment]
    student = student_get(viewer=viewer, student_id=pk)
    to_stage = request.POST.get("to", "")
    if to_stage not in Stage.values:
        return _refuse(request, _("Drop the card on one of the board's columns."))
    if to_stage == student.stage:
        return _refuse(
            request, _("%(name)s is already in %(stage)s.") % {"name": student.name, "stage": Stage(to_stage).label}
        )
    fact = MOVES.get((student.stage, to_stage))
    if fact is None:
        return _refuse(request, move_refusal(student.stage, to_stage))

    recording = "record" in request.POST
    form = action_forms(student, request.POST if recording else None, bound=fact)[fact]
    if not recording:
        return _dialog(request, student, to_stage, fact, form)
    if form.is_valid():
        try:
            message = ACTIONS[fact](viewer, student, form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return _moved(request, viewer, student.pk, to_stage, message)
    return _dialog(request, student, to_stage, fact, form, status=422)


def _moved(request: HttpRequest, viewer: User, student_id: int, to_stage: str, message: str) -> JsonResponse:
    """The fact is committed (and, with the engine in place, the stage recomputed after commit)."""
    card = board_card_get(viewer=viewer, student_id=student_id)
    filters = _filterset(request)
    campuses = filters.campus_ids()
    stage = card.student.stage
    if stage != to_stage:
        message = _("%(message)s %(name)s stays in %(stage)s for now.") % {
            "message": message,
            "name": card.student.name,
            "stage": Stage(stage).label,
        }
    return JsonResponse(
        {
            "stage": stage,
            "moved": stage == to_stage,
            "message": message,
            "card": render_to_string("lifecycle/partials/board_card.html", {"card": card}, request),
            "counts": {
                stage: count_label(n)
                for stage, n in board_counts(filters.qs, campuses, _unfiltered_rows(request)).items()
            },
        }
    )


urlpatterns = [
    path("", board, name="board"),
    path("columns/<slug:stage>/", board_column_more, name="board_column"),
    path("students/<int:pk>/move/", board_move, name="board_move"),
]
