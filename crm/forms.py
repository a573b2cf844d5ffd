"""Forms for the staff pages. They parse and present; the services decide."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm.models import (
    AttendanceStatus,
    Campus,
    Channel,
    ConsultationChannel,
    Course,
    Gender,
    Intent,
    User,
)

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


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


class LeadCaptureForm(forms.Form):
    phone = forms.CharField(
        label=_("Parent's phone"),
        max_length=30,
        widget=forms.TextInput(attrs={"type": "tel", "autofocus": True, "autocomplete": "off", "inputmode": "tel"}),
    )
    guardian_name = forms.CharField(label=_("Parent's name"), max_length=50, required=False)
    relation = forms.CharField(label=_("Relation"), max_length=20, required=False)
    student_name = forms.CharField(label=_("Child's name"), max_length=50)
    grade = forms.CharField(label=_("Grade"), max_length=20, required=False)
    school = forms.CharField(label=_("School"), max_length=100, required=False)
    gender = forms.ChoiceField(label=_("Gender"), choices=Gender.choices, required=False)
    birth_date = forms.DateField(label=_("Birth date"), required=False, widget=DateInput())
    channel = forms.ChoiceField(label=_("Source channel"), choices=Channel.choices)
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
    outcome = forms.CharField(label=_("Outcome"), max_length=200, required=False)
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
    reason = forms.CharField(label=_("Why is this lead lost?"), max_length=200)


class GuardianAddForm(forms.Form):
    phone = forms.CharField(label=_("Phone"), max_length=30, widget=forms.TextInput(attrs={"type": "tel"}))
    name = forms.CharField(label=_("Name"), max_length=50, required=False)
    relation = forms.CharField(label=_("Relation"), max_length=20, required=False)


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
    recommended_level = forms.CharField(label=_("Recommended level"), max_length=50, required=False)


class AttendanceForm(forms.Form):
    student = forms.IntegerField(widget=forms.HiddenInput)
    status = forms.ChoiceField(label=_("Attendance"), choices=AttendanceStatus.choices)
    hours = forms.DecimalField(label=_("Hours"), min_value=0, max_digits=4, decimal_places=1)
    feedback = forms.CharField(label=_("Feedback"), required=False, max_length=500)
