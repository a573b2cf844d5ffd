"""django-import-export resources: the columns of each kind, for export and the admin.

Columns are the Chinese headers institutions keep (docs/import.md), so an export can
be edited and imported back, and re-importing it unchanged changes nothing.

Imports do not go through the library's row-by-row save: `import_data` hands the
dataset to the one import service (crm.services.imports.import_rows), which checks
every row, matches families by phone (the natural key, never an id) and writes in
bulk in one transaction, and turns its report into the library's Result, so the
admin shows its usual preview (new / update / skip, and every invalid row with its
column and reason) before the confirm button.

Exports escape spreadsheet formulae: any text starting with = + - @ or a control
character is written with a leading ', so a student named "=HYPERLINK(...)" is text,
not a live formula, in Excel and WPS.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export import fields, resources
from import_export.results import InvalidRow, Result, RowResult

from crm.models import Campus, Consultation, Contract, Student, StudentTag, User
from crm.phones import phone_display
from crm.services.imports import ImportFileError, cells, import_rows, table_from_dataset
from crm.services.imports.report import ERROR, NEW, UNCHANGED, UPDATED, ImportReport
from crm.text import printable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d\s.,]*")
# The admin's preview lists this many rows; the counts always cover the whole file.
ADMIN_PREVIEW_ROWS = 500
IMPORT_TYPES = {
    NEW: RowResult.IMPORT_TYPE_NEW,
    UPDATED: RowResult.IMPORT_TYPE_UPDATE,
    UNCHANGED: RowResult.IMPORT_TYPE_SKIP,
}


def neutralise_formula(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading ' (plain numbers stay)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _local(value: Any) -> str:
    if value is None:
        return ""
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _first_guardian(student: Student) -> Any:
    guardians = sorted(student.guardians.all(), key=lambda g: g.pk)
    return guardians[0] if guardians else None


def _staff(user: User | None) -> str:
    return user.username if user is not None else ""


def result_from_report(report: ImportReport, headers: list[str]) -> Result:
    """The service's report in the shape the library's admin templates show."""
    result = Result()
    result.diff_headers = headers
    result.total_rows = report.total_rows
    shown = 0
    for outcome in report.outcomes:
        if outcome.status == ERROR:
            continue
        row = RowResult()
        row.import_type = IMPORT_TYPES[outcome.status]
        result.totals[row.import_type] += 1
        if shown < ADMIN_PREVIEW_ROWS:
            row.diff = [outcome.row, outcome.label, "; ".join(outcome.changes) or outcome.note]
            result.append_row_result(row)
            shown += 1
    by_row: dict[int, dict[str, list[str]]] = {}
    for error in report.errors:
        by_row.setdefault(error.row, {}).setdefault(error.column, []).append(error.message)
    if report.failure:
        by_row.setdefault(0, {}).setdefault("__all__", []).append(report.failure)
    labels = {o.row: o.label for o in report.outcomes}
    for number, messages in sorted(by_row.items()):
        result.invalid_rows.append(
            InvalidRow(
                number=number, validation_error=ValidationError(messages), values=(number, labels.get(number, ""), "")
            )
        )
        result.totals[RowResult.IMPORT_TYPE_INVALID] += 1
    return result


def _refusal(message: str) -> Result:
    result = Result()
    result.invalid_rows.append(InvalidRow(number=0, validation_error=ValidationError(message), values=()))
    return result


class FormulaSafeResource(resources.ModelResource):
    """Every exported cell printable and never a live formula."""

    def export_field(self, field: fields.Field, instance: Any, **kwargs: Any) -> Any:
        value = super().export_field(field, instance, **kwargs)
        return neutralise_formula(printable(value) if isinstance(value, str) else value)


class CrmResource(FormulaSafeResource):
    """Explicit columns for export; imports delegate to the one import service."""

    import_kind: ClassVar[str]

    def import_data(  # type: ignore[override]
        self,
        dataset: Any,
        dry_run: bool = False,
        raise_errors: bool = False,
        use_transactions: bool | None = None,
        collect_failed_rows: bool = False,
        rollback_on_validation_errors: bool = False,
        **kwargs: Any,
    ) -> Result:
        actor: User = kwargs["user"]
        campus: Campus | None = kwargs.get("campus") or actor.campus
        if campus is None:
            return _refusal(_("Choose a campus."))
        try:
            table = table_from_dataset(dataset)
        except ImportFileError as exc:
            return _refusal(exc.message)
        report = import_rows(
            kind=self.import_kind,
            table=table,
            campus=campus,
            actor=actor,
            dry_run=dry_run,
            file_name=kwargs.get("file_name") or "",
        )
        return result_from_report(report, ["行", "记录", "变更"])


class StudentResource(CrmResource):
    import_kind = "students"

    name = fields.Field(attribute="name", column_name="学生姓名")
    gender = fields.Field(column_name="性别")
    birth_date = fields.Field(column_name="出生日期")
    grade = fields.Field(column_name="年级")
    school = fields.Field(column_name="学校")
    channel = fields.Field(column_name="来源渠道")
    guardian_name = fields.Field(column_name="家长姓名")
    relation = fields.Field(column_name="关系")
    phone = fields.Field(column_name="家长电话")
    guardian_email = fields.Field(column_name="家长邮箱")
    tags = fields.Field(column_name="标签")
    notes = fields.Field(column_name="备注")
    owner = fields.Field(column_name="负责顾问")
    other_guardians = fields.Field(column_name="其他家长", readonly=True)
    campus = fields.Field(column_name="校区", readonly=True)
    stage = fields.Field(column_name="阶段", readonly=True)
    created_at = fields.Field(column_name="创建时间", readonly=True)

    class Meta:
        model = Student
        name = "学生 (students)"
        fields = (
            "name",
            "gender",
            "birth_date",
            "grade",
            "school",
            "channel",
            "guardian_name",
            "relation",
            "phone",
            "guardian_email",
            "tags",
            "notes",
            "owner",
            "other_guardians",
            "campus",
            "stage",
            "created_at",
        )
        export_order = fields
        import_id_fields = ("phone", "name")  # the family's phone and the child's name
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_transactions = True
        chunk_size = 2000

    def filter_export(self, queryset: QuerySet[Student], **kwargs: Any) -> QuerySet[Student]:
        return queryset.select_related("campus", "owner", "pipeline").prefetch_related(
            "guardians", Prefetch("student_tags", queryset=StudentTag.objects.select_related("tag__group"))
        )

    def dehydrate_name(self, student: Student) -> str:
        return student.name

    def dehydrate_gender(self, student: Student) -> str:
        return cells.choice_word(cells.GENDER_WORDS, student.gender) if student.gender else ""

    def dehydrate_birth_date(self, student: Student) -> str:
        return student.birth_date.isoformat() if student.birth_date else ""

    def dehydrate_grade(self, student: Student) -> str:
        return student.grade

    def dehydrate_school(self, student: Student) -> str:
        return student.school

    def dehydrate_channel(self, student: Student) -> str:
        return cells.choice_word(cells.CHANNEL_WORDS, student.channel)

    def dehydrate_guardian_name(self, student: Student) -> str:
        guardian = _first_guardian(student)
        return guardian.name if guardian else ""

    def dehydrate_relation(self, student: Student) -> str:
        guardian = _first_guardian(student)
        return guardian.relation if guardian else ""

    def dehydrate_phone(self, student: Student) -> str:
        guardian = _first_guardian(student)
        return phone_display(guardian.phone) if guardian else ""

    def dehydrate_guardian_email(self, student: Student) -> str:
        guardian = _first_guardian(student)
        return guardian.email if guardian else ""

    def dehydrate_tags(self, student: Student) -> str:
        names = sorted(f"{st.tag.group.name}:{st.tag.name}" for st in student.student_tags.all())
        return ";".join(names)

    def dehydrate_notes(self, student: Student) -> str:
        return student.notes

    def dehydrate_owner(self, student: Student) -> str:
        return _staff(student.owner)

    def dehydrate_other_guardians(self, student: Student) -> str:
        guardians = sorted(student.guardians.all(), key=lambda g: g.pk)[1:]
        return "; ".join(
            " ".join(p for p in (g.name, g.relation, phone_display(g.phone), g.email) if p) for g in guardians
        )

    def dehydrate_campus(self, student: Student) -> str:
        return student.campus.name

    def dehydrate_stage(self, student: Student) -> str:
        return student.stage

    def dehydrate_created_at(self, student: Student) -> str:
        return _local(student.created_at)


class _StudentRefResource(CrmResource):
    """Rows that name their student by the family's phone and the student's name."""

    def dehydrate_phone(self, obj: Consultation | Contract) -> str:
        guardian = _first_guardian(obj.student)
        return phone_display(guardian.phone) if guardian else ""

    def dehydrate_student_name(self, obj: Consultation | Contract) -> str:
        return obj.student.name

    def dehydrate_campus(self, obj: Consultation | Contract) -> str:
        return obj.student.campus.name


class ConsultationResource(_StudentRefResource):
    import_kind = "consultations"

    phone = fields.Field(column_name="家长电话")
    student_name = fields.Field(column_name="学生姓名")
    consulted_at = fields.Field(column_name="咨询时间")
    channel = fields.Field(column_name="方式")
    content = fields.Field(column_name="内容")
    intent = fields.Field(column_name="意向")
    outcome = fields.Field(column_name="结果")
    next_follow_up_at = fields.Field(column_name="下次跟进")
    consultant = fields.Field(column_name="顾问")
    campus = fields.Field(column_name="校区", readonly=True)

    class Meta:
        model = Consultation
        name = "咨询记录 (consultations)"
        fields = (
            "phone",
            "student_name",
            "consulted_at",
            "channel",
            "content",
            "intent",
            "outcome",
            "next_follow_up_at",
            "consultant",
            "campus",
        )
        export_order = fields
        import_id_fields = ("phone", "student_name", "consulted_at")
        clean_model_instances = True
        skip_unchanged = True
        use_transactions = True
        chunk_size = 2000

    def filter_export(self, queryset: QuerySet[Consultation], **kwargs: Any) -> QuerySet[Consultation]:
        return queryset.select_related("student__campus", "consultant").prefetch_related("student__guardians")

    def dehydrate_consulted_at(self, consultation: Consultation) -> str:
        return _local(consultation.consulted_at)

    def dehydrate_channel(self, consultation: Consultation) -> str:
        return cells.choice_word(cells.CONSULTATION_CHANNEL_WORDS, consultation.channel)

    def dehydrate_content(self, consultation: Consultation) -> str:
        return consultation.content

    def dehydrate_intent(self, consultation: Consultation) -> str:
        return cells.choice_word(cells.INTENT_WORDS, consultation.intent)

    def dehydrate_outcome(self, consultation: Consultation) -> str:
        return consultation.outcome

    def dehydrate_next_follow_up_at(self, consultation: Consultation) -> str:
        return _local(consultation.next_follow_up_at)

    def dehydrate_consultant(self, consultation: Consultation) -> str:
        return _staff(consultation.consultant)


class ContractResource(_StudentRefResource):
    import_kind = "contracts"

    phone = fields.Field(column_name="家长电话")
    student_name = fields.Field(column_name="学生姓名")
    course = fields.Field(column_name="课程")
    hours_bought = fields.Field(column_name="课时")
    amount = fields.Field(column_name="金额")
    paid_amount = fields.Field(column_name="实收")
    signed_at = fields.Field(column_name="签约时间")
    valid_until = fields.Field(column_name="有效期至")
    status = fields.Field(column_name="状态")
    hours_consumed = fields.Field(column_name="已消课时")
    refund_amount = fields.Field(column_name="退费金额")
    refund_reason = fields.Field(column_name="退费原因")
    campus = fields.Field(column_name="校区", readonly=True)

    class Meta:
        model = Contract
        name = "合同 (contracts)"
        fields = (
            "phone",
            "student_name",
            "course",
            "hours_bought",
            "amount",
            "paid_amount",
            "signed_at",
            "valid_until",
            "status",
            "hours_consumed",
            "refund_amount",
            "refund_reason",
            "campus",
        )
        export_order = fields
        import_id_fields = ("phone", "student_name", "course", "signed_at")
        clean_model_instances = True
        skip_unchanged = True
        use_transactions = True
        chunk_size = 2000

    def filter_export(self, queryset: QuerySet[Contract], **kwargs: Any) -> QuerySet[Contract]:
        return queryset.select_related("student__campus", "course").prefetch_related("student__guardians")

    def dehydrate_course(self, contract: Contract) -> str:
        return contract.course.name

    def dehydrate_hours_bought(self, contract: Contract) -> str:
        return _text(contract.hours_bought)

    def dehydrate_amount(self, contract: Contract) -> str:
        return _text(contract.amount)

    def dehydrate_paid_amount(self, contract: Contract) -> str:
        return _text(contract.paid_amount)

    def dehydrate_signed_at(self, contract: Contract) -> str:
        return _local(contract.signed_at)

    def dehydrate_valid_until(self, contract: Contract) -> str:
        return contract.valid_until.isoformat() if contract.valid_until else ""

    def dehydrate_status(self, contract: Contract) -> str:
        return cells.choice_word(cells.CONTRACT_STATUS_WORDS, contract.status)

    def dehydrate_hours_consumed(self, contract: Contract) -> str:
        return _text(contract.hours_consumed)

    def dehydrate_refund_amount(self, contract: Contract) -> str:
        return _text(contract.refund_amount)

    def dehydrate_refund_reason(self, contract: Contract) -> str:
        return contract.refund_reason


RESOURCES: dict[str, type[CrmResource]] = {
    "students": StudentResource,
    "consultations": ConsultationResource,
    "contracts": ContractResource,
}
