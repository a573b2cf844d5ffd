"""What every crm ModelAdmin shares: campus scoping, role gate, service-backed forms, actions.

How a service's errors reach the page
-------------------------------------
An admin form that writes a fact is a `ServiceModelForm`. ModelForm validates in three steps:
each field, then `clean()`, then `_post_clean()`, which builds the model instance and runs
model validation. A `ServiceModelForm` replaces that last step: once the fields are clean it
calls the service (inside a savepoint). The service validates and writes in one step, as it
does for the pages, the API and imports; a `ValidationError` it raises becomes form errors
(its keys mapped to form fields), so the admin re-renders the page with them like any other
invalid form. `save()` then only returns the service's object; `save_model()` writes nothing.

The admin runs the whole change-form view in a transaction; `changeform_view` additionally
rolls it back whenever a POST ends in a page showing errors, so "the page shows an error"
always means "nothing was written". `PermissionDenied` from a service propagates: a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import router, transaction
from django.db.models import BLANK_CHOICE_DASH, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.admin.paginators import EstimatedCountPaginator
from crm.admin.scoping import scope_to_viewer, viewer_sees
from crm.models import Role, User
from crm.roles import ADMIN_SITE_ROLES, sees_all_campuses
from crm.selectors import student_search_q

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

# A picker's first line (actions, a form's choices), in words rather than Django's dashes.
NOTHING_CHOSEN = [("", cast(str, gettext_lazy("Choose…")))]

# An action applies a service to each selected row; past this many rows it asks for a narrower selection.
MAX_ACTION_ROWS = 500


def actor_of(request: HttpRequest) -> User:
    """The signed-in staff member (the admin site lets no one else in)."""
    return cast(User, request.user)


# --- forms -------------------------------------------------------------------------------


def add_service_error(
    form: forms.BaseForm,
    exc: ValidationError,
    *,
    field_map: Mapping[str, str] | None = None,
    default_field: str | None = None,
) -> None:
    """Put a service's ValidationError on the form: keyed errors on the matching field
    (renamed through `field_map`), the rest at the top of the form."""
    field_map = field_map or {}
    if hasattr(exc, "error_dict"):
        for key, errors in exc.error_dict.items():
            field: str | None = field_map.get(key, key)
            if field == NON_FIELD_ERRORS or field not in form.fields:
                field = None
            form.add_error(field, errors)
    else:
        form.add_error(default_field if default_field in form.fields else None, exc.error_list)


class ServiceModelForm(forms.ModelForm):
    """A ModelForm whose valid data is handed to a service instead of saved (see the module docstring)."""

    # Set per request by CrmModelAdmin.get_form.
    actor: ClassVar[User]
    # Service error keys that differ from the form's field names.
    service_field_map: ClassVar[Mapping[str, str]] = {}

    result: Model | None = None

    def run_service(self) -> Model:
        raise NotImplementedError

    def _post_clean(self) -> None:
        if self.errors:  # the fields or clean() already failed: nothing to hand over
            return
        try:
            with transaction.atomic():
                self.result = self.run_service()
        except ValidationError as exc:
            add_service_error(self, exc, field_map=self.service_field_map)

    def save(self, commit: bool = True) -> Any:
        if self.result is None:
            raise ValueError("save() before a successful clean: the service has not run")
        self.instance = self.result
        return self.result

    def save_m2m(self) -> None:
        """The service wrote the relations already."""


# --- list filters and search --------------------------------------------------------------


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """Choices limited to what the viewer may see (all users of all campuses would leak and be long)."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str | _StrPromise]]:
        related = field.remote_field.model
        rows = scope_to_viewer(related._default_manager.all(), actor_of(request))
        if related is User:
            rows = rows.filter(is_staff=True) if field.name != "teacher" else rows.filter(groups__name=Role.TEACHER)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            rows = rows.order_by(*ordering)
        return [(str(row.pk), str(row)) for row in rows[:500]]


class StudentSearchMixin:
    """Search a list by student name or guardian phone: the rule every student search shares
    (`crm.selectors.student_search_q`), applied through the list's path to its student."""

    student_lookup = "student"
    student_name_lookup = "student__name"
    search_help_text: str | _StrPromise | None = gettext_lazy(
        "Child's name, or a guardian's phone in any format (or its last digits)."
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        q = student_search_q(search_term, student_lookup=self.student_lookup, name_lookup=self.student_name_lookup)
        return queryset.filter(q), False


# --- the base ModelAdmin ------------------------------------------------------------------


class CrmChangeList(ChangeList):
    """Adds the admin's `list_prefetch_related` to the page's rows (one query per relation), and
    fetches a list that fits on one page by the keys the paginator already read, rather than
    running its (possibly table-scanning) filter a second time."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        prefetch = getattr(self.model_admin, "list_prefetch_related", ())
        return queryset.prefetch_related(*prefetch) if prefetch else queryset

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if isinstance(self.paginator, EstimatedCountPaginator) and (
            (self.show_all and self.can_show_all) or not self.multi_page
        ):
            rows = self.paginator.all_rows()
            if rows is not None:
                self.result_list = rows


class CrmModelAdmin(admin.ModelAdmin):
    """Scoped to the viewer's campus, closed to roles that do not use the admin, cheap on big tables."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_prefetch_related: ClassVar[Sequence[str]] = ()
    # Filters only an administrator (who sees every campus) needs.
    admin_only_list_filter: ClassVar[Sequence[Any]] = ()
    add_form: type[forms.ModelForm] | None = None
    add_fieldsets: Any = None

    # Roles -----------------------------------------------------------------------------

    def uses_admin(self, request: HttpRequest) -> bool:
        user = actor_of(request)
        return user.is_active and user.is_staff and (user.is_superuser or user.role in ADMIN_SITE_ROLES)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.uses_admin(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.uses_admin(request) and super().has_view_permission(request, obj) and self.sees(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.uses_admin(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.uses_admin(request) and super().has_change_permission(request, obj) and self.sees(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.uses_admin(request) and super().has_delete_permission(request, obj) and self.sees(request, obj)

    def sees(self, request: HttpRequest, obj: Model | None) -> bool:
        return obj is None or viewer_sees(request, obj, actor_of(request))

    def is_administrator(self, request: HttpRequest) -> bool:
        return sees_all_campuses(actor_of(request))

    # Reads -----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        # Joined here rather than left to the ChangeList (which skips list_select_related once a
        # queryset has any), so autocomplete results and change pages get them too.
        if isinstance(self.list_select_related, list | tuple) and self.list_select_related:
            queryset = queryset.select_related(*self.list_select_related)
        return scope_to_viewer(queryset, actor_of(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Another campus's row does not exist for this viewer: 404, not the admin's redirect."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("No %(name)s with this id.") % {"name": self.opts.verbose_name})
        return obj

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CrmChangeList

    def get_action_choices(self, request: HttpRequest, default_choices: Any = None) -> Any:
        return super().get_action_choices(request, default_choices=NOTHING_CHOSEN)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("empty_label", NOTHING_CHOSEN[0][1])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield: Any = super().formfield_for_choice_field(db_field, request, **kwargs)
        if formfield is not None:
            formfield.choices = [NOTHING_CHOSEN[0] if c == BLANK_CHOICE_DASH[0] else c for c in formfield.choices]
        return formfield

    def get_list_filter(self, request: HttpRequest) -> Any:
        extra = self.admin_only_list_filter if self.is_administrator(request) else ()
        return (*extra, *super().get_list_filter(request))

    def get_field_queryset(self, db: str | None, db_field: Any, request: HttpRequest) -> QuerySet[Any] | None:
        """Foreign-key and many-to-many choices: only what the viewer may see."""
        queryset = super().get_field_queryset(db, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db).all()
        if db_field.remote_field.model is User:
            queryset = queryset.filter(is_active=True)
            if db_field.name == "teacher":
                queryset = queryset.filter(groups__name=Role.TEACHER)
            elif db_field.name != "owner":
                # An owner is not narrowed here: the service says who may own a student, in the
                # same words as every other door (crm.services.owners).
                queryset = queryset.filter(is_staff=True)
        return scope_to_viewer(queryset, actor_of(request))

    # Writes ----------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None and self.add_fieldsets is not None:
            return self.add_fieldsets
        return super().get_fieldsets(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None and self.add_form is not None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceModelForm):
            form.actor = actor_of(request)  # a fresh class per request (modelform_factory)
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if isinstance(form, ServiceModelForm):
            return  # the service wrote it
        super().save_model(request, obj, form, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with transaction.atomic(using=router.db_for_write(self.model)):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if request.method == "POST" and shows_errors(response):
                transaction.set_rollback(True)
        return response


def chosen_action(request: HttpRequest) -> str:
    """The action picked on the change list (which may show an action bar at the top and bottom)."""
    names = request.POST.getlist("action")
    try:
        index = int(request.POST.get("index", 0))
    except ValueError:
        index = 0
    return names[index] if 0 <= index < len(names) else ""


def shows_errors(response: HttpResponse) -> bool:
    return isinstance(response, TemplateResponse) and bool((response.context_data or {}).get("errors"))


class FactAdmin(CrmModelAdmin):
    """A fact (consultation, trial, contract, attendance): added through its service by the
    add form; history is never edited or deleted by hand."""

    paginator = EstimatedCountPaginator

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class HistoryInline(admin.TabularInline):
    """A read-only table of a student's history on their page; facts are added through services."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    select_related: ClassVar[Sequence[str]] = ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.select_related) if self.select_related else queryset


# --- actions with an intermediate page ----------------------------------------------------


def action_with_form(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form_class: type[forms.Form],
    title: str,
    apply: Callable[[Any, dict[str, Any]], object],
    single: bool = False,
    form_kwargs: dict[str, Any] | None = None,
) -> HttpResponse | None:
    """Ask for the action's details on a page of its own, then call `apply` (a service) per row.

    With one row, the service's errors go back onto that page's form; with several, rows that
    fail are reported by name and the others go ahead. Everything runs in one transaction, so a
    PermissionDenied (a 403) leaves no row half-done.
    """
    rows = list(queryset[: MAX_ACTION_ROWS + 1])
    if len(rows) > MAX_ACTION_ROWS:
        model_admin.message_user(
            request,
            _("Select at most %(max)s rows for this action.") % {"max": MAX_ACTION_ROWS},
            messages.ERROR,
        )
        return None
    if not rows:  # the selected rows are outside the viewer's campus (or gone)
        model_admin.message_user(request, _("None of the selected rows can be changed."), messages.WARNING)
        return None
    if single and len(rows) != 1:
        model_admin.message_user(request, _("Select exactly one row for this action."), messages.ERROR)
        return None
    form_kwargs = form_kwargs or {}
    if "apply" in request.POST:
        form = form_class(request.POST, **form_kwargs)
        if form.is_valid():
            failures: list[str] = []
            with transaction.atomic():
                for row in rows:
                    try:
                        with transaction.atomic():
                            apply(row, form.cleaned_data)
                    except ValidationError as exc:
                        if len(rows) == 1:
                            add_service_error(form, exc)
                        else:
                            failures.append(f"{row}: {' '.join(exc.messages)}")
            if form.is_valid():
                done = len(rows) - len(failures)
                if done:
                    model_admin.message_user(
                        request, _("%(title)s: done for %(count)s.") % {"title": title, "count": done}, messages.SUCCESS
                    )
                for failure in failures:
                    model_admin.message_user(request, failure, messages.ERROR)
                return None
    else:
        form = form_class(**form_kwargs)
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "form": form,
        "rows": rows,
        "action": chosen_action(request),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/crm/action_form.html", context)
