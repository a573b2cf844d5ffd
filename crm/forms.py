"""Forms for the staff pages. They parse and present; the services decide.

Short text fields take their length from crm/text.py, so the browser stops at the limit;
long text (notes, what was discussed, comments, feedback) has no maxlength, which would
make a browser cut a long paste silently: the service says it is too long instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm import text
from crm.models import (
    AttendanceStatus,
    Campus,
    Channel,
    ConsultationChannel,
    Course,
    Gender,
    Grade,
    Intent,
    Relation,
    Student,
    User,
)
from crm.services.contracts import AttendanceMark

# What a picker shows before a choice is made (instead of Django's dashes).
CHOOSE = _("Choose…")


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)  # type: ignore[arg-type]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)  # type: ignore[arg-type]


def picker(choices: Sequence[tuple[str, object]]) -> list[tuple[str, object]]:
    """A select's choices led by an empty "choose" entry, so nothing is preselected."""
    return [("", _("Choose…")), *choices]


def picker_field(label: Any, choices: Sequence[tuple[str, object]], current: str = "") -> forms.ChoiceField:
    """An optional select of the usual words; a word already stored that the list lacks (an
    import keeps whatever the school wrote) stays offered, so editing never loses it."""
    if current and current not in {value for value, _label in choices}:
        choices = [*choices, (current, current)]
    return forms.ChoiceField(label=label, choices=picker(choices), required=False)


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def email_field(label: Any) -> forms.CharField:
    """An optional email: the browser offers its email keyboard; the family service
    (crm.services.families.guardian_email_clean) checks it and says what is wrong."""
    return forms.CharField(label=label, required=False, max_length=254, widget=forms.EmailInput)


class LeadCaptureForm(forms.Form):
    phone = forms.CharField(
        label=_("Parent's phone"),
        max_length=30,
        widget=forms.TextInput(attrs={"type": "tel", "autofocus": True, "autocomplete": "off", "inputmode": "tel"}),
    )
    guardian_name = forms.CharField(label=_("Parent's name"), max_length=text.NAME, required=False)
    relation = picker_field(_("Relation"), Relation.choices)
    guardian_email = email_field(_("Parent's email"))
    student_name = forms.CharField(label=_("Child's name"), max_length=text.NAME)
    grade = picker_field(_("Grade"), Grade.choices)
    school = forms.CharField(label=_("School"), max_length=text.TITLE, required=False)
    gender = forms.ChoiceField(label=_("Gender"), choices=Gender.choices, required=False)
    birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DateInput())
    # Required, with nothing preselected: a hurried save must not record a source nobody chose.
    channel = forms.ChoiceField(label=_("Source channel"), choices=picker(Channel.choices))
    # A parent's invite code, read out or shown by the family they invited.
    referral_code = forms.CharField(
        label=_("Invite code"),
        max_length=20,
        required=False,
        help_text=_("The inviting parent's code, if they were referred; the source becomes Referral."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    add_to_family = forms.BooleanField(label=_("Add as a sibling to this family"), required=False)
    campus = forms.ModelChoiceField(
        label=_("Campus"), queryset=Campus.objects.none(), required=False, empty_label=CHOOSE
    )

    def __init__(self, *args: object, viewer: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if viewer.campus_id is None:
            self.fields["campus"].queryset = Campus.objects.all()  # type: ignore[attr-defined]
            self.fields["campus"].required = True
        else:
            del self.fields["campus"]


class ConsultationForm(forms.Form):
    channel = forms.ChoiceField(label=_("Channel"), choices=ConsultationChannel.choices)
    intent = forms.ChoiceField(label=_("Intent"), choices=Intent.choices, initial=Intent.MEDIUM)
    content = forms.CharField(label=_("What was discussed"), widget=forms.Textarea(attrs={"rows": 3}))
    outcome = forms.CharField(label=_("Outcome"), max_length=text.LINE, required=False)
    next_follow_up_at = forms.DateTimeField(label=_("Next follow-up"), required=False, widget=DateTimeLocalInput())


class TrialBookingForm(forms.Form):
    course = forms.ModelChoiceField(label=_("Course"), queryset=Course.objects.none(), empty_label=CHOOSE)
    teacher = forms.ModelChoiceField(label=_("Teacher"), queryset=User.objects.none(), empty_label=CHOOSE)
    scheduled_at = forms.DateTimeField(label=_("Time"), widget=DateTimeLocalInput())
    duration_minutes = forms.IntegerField(label=_("Minutes"), min_value=15, max_value=240, initial=60)

    def __init__(self, *args: object, courses: object, teachers: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["course"].queryset = courses  # type: ignore[attr-defined]
        self.fields["teacher"].queryset = teachers  # type: ignore[attr-defined]


class ContractForm(forms.Form):
    course = forms.ModelChoiceField(label=_("Course"), queryset=Course.objects.none(), empty_label=CHOOSE)
    hours_bought = forms.DecimalField(label=_("Hours"), min_value=0, max_digits=7, decimal_places=1)
    amount = forms.DecimalField(label=_("Amount (¥)"), min_value=0, max_digits=12, decimal_places=2)
    paid_amount = forms.DecimalField(label=_("Paid (¥)"), min_value=0, max_digits=12, decimal_places=2)
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput())

    def __init__(self, *args: object, courses: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["course"].queryset = courses  # type: ignore[attr-defined]


class CloseLostForm(forms.Form):
    reason = forms.CharField(label=_("Why is this lead lost?"), max_length=text.LINE)


class GuardianAddForm(forms.Form):
    phone = forms.CharField(label=_("Phone"), max_length=30, widget=forms.TextInput(attrs={"type": "tel"}))
    name = forms.CharField(label=_("Name"), max_length=text.NAME, required=False)
    relation = picker_field(_("Relation"), Relation.choices)
    email = email_field(_("Email address"))


class TrialFeedbackForm(forms.Form):
    attended = forms.TypedChoiceField(
        label=_("Did the child come?"),
        choices=[("1", _("Attended")), ("0", _("No show"))],
        coerce=lambda v: v == "1",
        widget=forms.RadioSelect,
        initial="1",
    )
    rating = forms.TypedChoiceField(
        label=_("Rating"),
        choices=[("", "-")] + [(str(i), "★" * i) for i in range(1, 6)],
        coerce=int,
        empty_value=None,
        required=False,
    )
    comment = forms.CharField(
        label=_("Comment for the parents"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    recommended_level = forms.CharField(label=_("Recommended level"), max_length=text.LABEL, required=False)


class LessonAttendanceForm(forms.Form):
    """A lesson's attendance sheet: one status and note per student still to record, everyone
    present until the teacher says otherwise."""

    def __init__(self, *args: object, students: list[Student], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.students = students
        # The sheet's inputs sit in table rows beside other forms, so they name their <form>.
        self.html_id = f"sheet-{self.prefix}"
        in_sheet = {"form": self.html_id}
        for student in students:
            self.fields[f"status_{student.pk}"] = forms.ChoiceField(
                label=student.name,
                choices=AttendanceStatus.choices,
                initial=AttendanceStatus.PRESENT,
                widget=forms.RadioSelect(attrs=in_sheet),
            )
            self.fields[f"feedback_{student.pk}"] = forms.CharField(
                label=_("Feedback"), required=False, max_length=500, widget=forms.TextInput(attrs=in_sheet)
            )

    def rows(self) -> list[tuple[Student, forms.BoundField, forms.BoundField]]:
        return [(s, self[f"status_{s.pk}"], self[f"feedback_{s.pk}"]) for s in self.students]

    def marks(self) -> list[AttendanceMark]:
        data = self.cleaned_data
        return [
            AttendanceMark(student=s, status=data[f"status_{s.pk}"], feedback=data[f"feedback_{s.pk}"])
            for s in self.students
        ]


class AttendanceCorrectForm(forms.Form):
    status = forms.ChoiceField(label=_("Attendance"), choices=AttendanceStatus.choices)
    hours = forms.DecimalField(
        label=_("Lesson hours"),
        min_value=0,
        max_digits=4,
        decimal_places=1,
        required=False,
        help_text=_("Leave empty for the lesson's hours. Leave costs no hours whatever is entered."),
    )
    reason = forms.CharField(label=_("Why"), max_length=text.LINE, required=False)
