"""Students and their families: guardians, tags, and the student page with its history."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm import text
from crm.admin.base import (
    CrmModelAdmin,
    HistoryInline,
    ScopedRelatedFieldListFilter,
    ServiceModelForm,
    StudentSearchMixin,
    action_with_form,
    actor_of,
)
from crm.admin.imports import StudentImportExportMixin
from crm.admin.paginators import EstimatedCountPaginator
from crm.admin.scoping import StudentGuardian
from crm.forms import email_field, picker, picker_field
from crm.models import (
    Channel,
    Consultation,
    Contract,
    Grade,
    Guardian,
    Relation,
    Student,
    StudentTag,
    Tag,
    TagGroup,
    TrialLesson,
    User,
)
from crm.phones import normalize_phone, phone_display
from crm.selectors import phone_search, text_contains
from crm.services import (
    guardian_add,
    guardian_update,
    lead_capture,
    lead_close_lost,
    student_tag_add,
    student_tag_remove,
    student_tags_change,
    student_update,
)
from crm.services.leads import STUDENT_EDITABLE_FIELDS

# --- forms -------------------------------------------------------------------------------


class StudentAddForm(ServiceModelForm):
    """A new lead, phone first: `lead_capture` finds an existing family whatever the phone's format."""

    phone = forms.CharField(label=gettext_lazy("guardian's phone"), max_length=30)
    guardian_name = forms.CharField(label=gettext_lazy("guardian's name"), max_length=text.NAME, required=False)
    relation = picker_field(gettext_lazy("relation"), Relation.choices)
    guardian_email = email_field(gettext_lazy("guardian's email"))
    add_to_family = forms.BooleanField(
        label=gettext_lazy("add as a sibling"),
        required=False,
        help_text=gettext_lazy("If the phone already belongs to a family, add this child to it."),
    )
    service_field_map = {"student_name": "name"}

    class Meta:
        model = Student
        fields = ("name",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "grade" in self.fields:
            self.fields["grade"] = picker_field(self.fields["grade"].label, Grade.choices)
        if "channel" in self.fields:
            # As on the lead page: nothing preselected, so a hurried save names no source by accident.
            self.fields["channel"] = forms.ChoiceField(
                label=self.fields["channel"].label, choices=picker(Channel.choices), required=True
            )

    def run_service(self) -> Model:
        data = self.cleaned_data
        captured = lead_capture(
            actor=self.actor,
            campus=data["campus"],
            phone=data["phone"],
            student_name=data["name"],
            guardian_name=data["guardian_name"],
            relation=data["relation"],
            guardian_email=data["guardian_email"],
            channel=data["channel"],
            grade=data.get("grade", ""),
            school=data.get("school", ""),
            gender=data.get("gender", ""),
            birth_date=data.get("birth_date"),
            notes=data.get("notes", ""),
            owner=data.get("owner"),
            referrer=data.get("referrer"),
            add_to_family=data["add_to_family"],
        )
        return captured.student


class StudentChangeForm(ServiceModelForm):
    """Edits go through `student_update`; tags through `student_tags_change` (one write); another
    parent through `guardian_add`. All in one savepoint: an error anywhere writes nothing."""

    tag_list = forms.ModelMultipleChoiceField(
        label=gettext_lazy("tags"),
        queryset=Tag.objects.select_related("group"),
        required=False,
        widget=FilteredSelectMultiple(gettext_lazy("tags"), is_stacked=False),
    )
    new_guardian_phone = forms.CharField(label=gettext_lazy("phone"), max_length=30, required=False)
    new_guardian_name = forms.CharField(label=gettext_lazy("name"), max_length=text.NAME, required=False)
    new_guardian_relation = picker_field(gettext_lazy("relation"), Relation.choices)
    new_guardian_email = email_field(gettext_lazy("email"))
    link_existing_guardian = forms.BooleanField(
        label=gettext_lazy("link the existing guardian"),
        required=False,
        help_text=gettext_lazy("If the phone already belongs to a guardian, link that guardian to this child."),
    )

    service_field_map = {"tags": "tag_list"}

    class Meta:
        model = Student
        fields = ("name",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tag_list"].initial = [t.tag_id for t in self.instance.student_tags.all()]
        if "grade" in self.fields:
            self.fields["grade"] = picker_field(self.fields["grade"].label, Grade.choices, self.instance.grade)
        if "owner" in self.fields:
            # Who may own the student is the service's rule (crm.services.owners); the field only
            # keeps the current owner a valid choice after they have left.
            owner_field = cast(forms.ModelChoiceField, self.fields["owner"])
            owner_field.queryset = owner_field.queryset | User.objects.filter(pk=self.instance.owner_id)  # type: ignore[operator]

    def clean_new_guardian_phone(self) -> str:
        raw = self.cleaned_data["new_guardian_phone"].strip()
        return normalize_phone(raw) if raw else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        phone = cleaned.get("new_guardian_phone")
        if phone:
            existing = Guardian.objects.filter(phone=phone).first()
            if existing is not None:
                if StudentGuardian.objects.filter(student_id=self.instance.pk, guardian=existing).exists():
                    self.add_error("new_guardian_phone", _("This guardian is already linked to this child."))
                elif not cleaned.get("link_existing_guardian"):
                    self.add_error(
                        "new_guardian_phone",
                        _("This phone already belongs to a guardian. Tick “link the existing guardian” to link them."),
                    )
        return cleaned

    def run_service(self) -> Model:
        data = self.cleaned_data
        student = self.instance
        changes = {name: data[name] for name in STUDENT_EDITABLE_FIELDS if name in self.changed_data}
        if changes:
            student = student_update(actor=self.actor, student=student, **changes)
        if "tag_list" in self.changed_data:
            chosen = set(data["tag_list"])
            current = {st.tag for st in student.student_tags.select_related("tag__group")}
            student_tags_change(
                actor=self.actor,
                student=student,
                add=sorted(chosen - current, key=lambda t: t.pk),
                remove=sorted(current - chosen, key=lambda t: t.pk),
            )
        if data.get("new_guardian_phone"):
            try:
                guardian_add(
                    actor=self.actor,
                    student=student,
                    phone=data["new_guardian_phone"],
                    name=data["new_guardian_name"],
                    relation=data["new_guardian_relation"],
                    email=data["new_guardian_email"],
                )
            except ValidationError as exc:
                # guardian_add names its parameters; "name" here is the child's name field.
                raise ValidationError(
                    {GUARDIAN_ADD_FIELDS.get(key, key): errors for key, errors in exc.error_dict.items()}
                ) from None
        return student


GUARDIAN_ADD_FIELDS = {
    "phone": "new_guardian_phone",
    "name": "new_guardian_name",
    "relation": "new_guardian_relation",
    "email": "new_guardian_email",
}


class GuardianChangeForm(ServiceModelForm):
    """Corrections through `guardian_update`, which keeps a shared family's guardian with
    their home campus (crm.services.families)."""

    # Not the model's EmailField: the service checks the address, in the words every door uses.
    email = email_field(gettext_lazy("email"))

    class Meta:
        model = Guardian
        fields = ("name", "relation", "email")

    def run_service(self) -> Model:
        return guardian_update(
            actor=self.actor,
            guardian=self.instance,
            name=self.cleaned_data["name"],
            relation=self.cleaned_data["relation"],
            email=self.cleaned_data["email"],
        )


class ReasonForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("reason"), max_length=text.LINE)


class TagChoiceForm(forms.Form):
    tag = forms.ModelChoiceField(label=gettext_lazy("tag"), queryset=Tag.objects.select_related("group"))


class StudentTagAddForm(ServiceModelForm):
    service_field_map = {"tags": "tag"}

    class Meta:
        model = StudentTag
        fields = ("student", "tag")

    def run_service(self) -> Model:
        student, tag = self.cleaned_data["student"], self.cleaned_data["tag"]
        student_tag_add(actor=self.actor, student=student, tag=tag)
        return StudentTag.objects.get(student=student, tag=tag)


# --- inlines -----------------------------------------------------------------------------


class GuardianInline(HistoryInline):
    model = StudentGuardian
    verbose_name = gettext_lazy("guardian")
    verbose_name_plural = gettext_lazy("guardians")
    fields = ("guardian", "phone", "relation")
    readonly_fields = ("guardian", "phone", "relation")
    select_related = ("guardian",)
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The link has no permissions of its own (it was Django's implicit many-to-many table):
        # whoever may see guardians sees a child's parents, as Django decides for such a table.
        user = actor_of(request)
        return user.has_perm("crm.view_guardian") or user.has_perm("crm.change_guardian")

    @admin.display(description=gettext_lazy("phone"))
    def phone(self, obj: Any) -> str:
        return phone_display(obj.guardian.phone)

    @admin.display(description=gettext_lazy("relation"))
    def relation(self, obj: Any) -> str:
        return obj.guardian.relation


class StudentTagInline(HistoryInline):
    model = StudentTag
    fields = ("tag", "source", "rule", "created_by", "created_at")
    readonly_fields = fields
    select_related = ("tag__group", "created_by")
    show_change_link = False


class ConsultationInline(HistoryInline):
    model = Consultation
    fields = ("consulted_at", "consultant", "channel", "intent", "content", "outcome", "next_follow_up_at")
    readonly_fields = fields
    select_related = ("consultant",)


class TrialInline(HistoryInline):
    model = TrialLesson
    fields = ("scheduled_at", "course", "teacher", "status", "rating", "comment", "recommended_level")
    readonly_fields = fields
    select_related = ("course", "teacher")


class ContractInline(HistoryInline):
    model = Contract
    fields = ("signed_at", "course", "hours_bought", "hours_consumed", "amount", "paid_amount", "status")
    readonly_fields = fields
    select_related = ("course",)


# --- admins ------------------------------------------------------------------------------


@admin.register(Student)
class StudentAdmin(StudentImportExportMixin, StudentSearchMixin, CrmModelAdmin):
    paginator = EstimatedCountPaginator
    list_display = ("name", "campus", "stage", "channel", "owner", "guardian_phones", "next_follow_up_at", "created_at")
    list_select_related = ("campus", "owner", "pipeline")
    list_prefetch_related = ("guardians",)
    list_filter = (
        "pipeline__stage",
        "channel",
        ("owner", ScopedRelatedFieldListFilter),
        ("tags", ScopedRelatedFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    admin_only_list_filter = (("campus", ScopedRelatedFieldListFilter),)
    # Only indexed orderings: sorting a million rows by an unindexed column would time out.
    ordering = ("-id",)
    sortable_by = ("name", "created_at")
    search_fields = ("name", "guardians__phone")  # get_search_results: name, or phone in any format
    student_lookup = "pk"
    student_name_lookup = "name"
    autocomplete_fields = ("owner", "referrer")
    actions = ("close_as_lost", "add_tag")

    add_form = StudentAddForm
    add_fieldsets = (
        (gettext_lazy("Family"), {"fields": ("phone", "guardian_name", "relation", "guardian_email", "add_to_family")}),
        (
            gettext_lazy("Child"),
            {"fields": ("name", "gender", "birth_date", "grade", "school", "campus", "channel", "owner", "referrer")},
        ),
        (None, {"fields": ("notes",)}),
    )
    form = StudentChangeForm
    fieldsets = (
        (
            None,
            {"fields": ("name", "gender", "birth_date", "grade", "school", "campus", "channel", "owner", "referrer")},
        ),
        (gettext_lazy("Tags"), {"fields": ("tag_list",)}),
        (None, {"fields": ("notes",)}),
        (
            gettext_lazy("Lifecycle"),
            {"fields": ("stage", "stage_changed_at", "next_follow_up_at", "lost_at", "lost_reason")},
        ),
        (
            gettext_lazy("Add a guardian"),
            {
                "classes": ("collapse",),
                "fields": (
                    "new_guardian_phone",
                    "new_guardian_name",
                    "new_guardian_relation",
                    "new_guardian_email",
                    "link_existing_guardian",
                ),
            },
        ),
        (gettext_lazy("Record"), {"classes": ("collapse",), "fields": ("created_by", "created_at", "updated_at")}),
    )
    # Stage and follow-up follow from facts; the campus is where the family signed up.
    change_readonly_fields = (
        "campus",
        "stage",
        "stage_changed_at",
        "next_follow_up_at",
        "lost_at",
        "lost_reason",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = (GuardianInline, StudentTagInline, ConsultationInline, TrialInline, ContractInline)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.change_readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return () if obj is None else self.inlines

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        actor = actor_of(request)
        if actor.campus_id is not None:
            initial.setdefault("campus", str(actor.campus_id))
        return initial

    # The stage lives in StudentStage (written only by the lifecycle engine): shown, never edited.
    @admin.display(description=gettext_lazy("stage"))
    def stage(self, obj: Student) -> str:
        return obj.get_stage_display()

    @admin.display(description=gettext_lazy("stage changed at"))
    def stage_changed_at(self, obj: Student) -> str:
        # A read-only field shows a method's value as str(): the admin's own formatting gives
        # local time in the reader's language, and "-" for none.
        return display_for_value(obj.stage_changed_at, self.get_empty_value_display())

    @admin.display(description=gettext_lazy("guardians' phones"))
    def guardian_phones(self, obj: Student) -> str:
        return ", ".join(phone_display(g.phone) for g in obj.guardians.all())

    @admin.action(description=gettext_lazy("Close as lost…"), permissions=("change",))
    def close_as_lost(self, request: HttpRequest, queryset: QuerySet[Student]) -> HttpResponse | None:
        actor = actor_of(request)
        return action_with_form(
            self,
            request,
            queryset,
            form_class=ReasonForm,
            title=_("Close as lost"),
            apply=lambda student, data: lead_close_lost(actor=actor, student=student, reason=data["reason"]),
        )

    @admin.action(description=gettext_lazy("Add a tag…"), permissions=("tag",))
    def add_tag(self, request: HttpRequest, queryset: QuerySet[Student]) -> HttpResponse | None:
        actor = actor_of(request)
        return action_with_form(
            self,
            request,
            queryset,
            form_class=TagChoiceForm,
            title=_("Add a tag"),
            apply=lambda student, data: student_tag_add(actor=actor, student=student, tag=data["tag"]),
        )

    def has_tag_permission(self, request: HttpRequest) -> bool:
        return self.uses_admin(request) and actor_of(request).has_perm("crm.add_studenttag")


@admin.register(Guardian)
class GuardianAdmin(CrmModelAdmin):
    """Guardians join a family through a student (lead capture, or "add a guardian" on the
    student's page); their name, relation and email are corrected here through `guardian_update`."""

    paginator = EstimatedCountPaginator
    list_display = ("name", "phone_display", "relation", "children", "created_at")
    list_prefetch_related = ("students",)
    ordering = ("-id",)
    sortable_by = ("name", "created_at")
    search_fields = ("name", "phone")
    search_help_text = gettext_lazy("Name, or a phone in any format (or its last digits).")
    fields = ("name", "phone", "relation", "email", "wechat_openid", "wechat_unionid", "created_at", "updated_at")
    readonly_fields = ("phone", "wechat_openid", "wechat_unionid", "created_at", "updated_at")
    form = GuardianChangeForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        kind, value = phone_search(term)
        if kind == "exact":
            return queryset.filter(phone=value), False
        if kind == "digits":
            return queryset.filter(phone__contains=value), False
        return queryset.filter(**{f"name__{text_contains(term)}": term}), False

    @admin.display(description=gettext_lazy("phone"), ordering="phone")
    def phone_display(self, obj: Guardian) -> str:
        return phone_display(obj.phone)

    @admin.display(description=gettext_lazy("children"))
    def children(self, obj: Guardian) -> str:
        return ", ".join(s.name for s in obj.students.all())


@admin.register(StudentTag)
class StudentTagAdmin(StudentSearchMixin, CrmModelAdmin):
    """Tagging through `student_tag_add`, untagging (delete) through `student_tag_remove`."""

    paginator = EstimatedCountPaginator
    list_display = ("student", "tag", "source", "rule", "created_by", "created_at")
    list_select_related = ("student", "tag__group", "created_by")
    list_filter = (("tag", ScopedRelatedFieldListFilter), "source")
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("student__name",)
    autocomplete_fields = ("student",)
    add_form = StudentTagAddForm
    add_fieldsets = ((None, {"fields": ("student", "tag")}),)
    readonly_fields = ("student", "tag", "source", "rule", "created_by", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: StudentTag) -> None:
        student_tag_remove(actor=actor_of(request), student=obj.student, tag=obj.tag)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StudentTag]) -> None:
        actor = actor_of(request)
        for student_tag in queryset.select_related("student", "tag__group"):
            student_tag_remove(actor=actor, student=student_tag.student, tag=student_tag.tag)


class TagInline(admin.TabularInline):
    model = Tag
    extra = 1


@admin.register(TagGroup)
class TagGroupAdmin(CrmModelAdmin):
    """Tags are the institution's shared vocabulary (configuration, not facts)."""

    list_display = ("name", "exclusive")
    search_fields = ("name",)
    inlines = (TagInline,)


@admin.register(Tag)
class TagAdmin(CrmModelAdmin):
    list_display = ("name", "group")
    list_select_related = ("group",)
    list_filter = ("group",)
    search_fields = ("name", "group__name")
