"""Every write in crm. Admin, pages, API, import and tasks all call these."""

from crm.services.audit import audit
from crm.services.consultations import consultation_log
from crm.services.contracts import (
    AttendanceMark,
    attendance_correct,
    attendance_correctable_by,
    attendance_hours,
    attendance_record,
    contract_for_attendance,
    contract_refund,
    contract_sign,
    lesson_attendance_record,
)
from crm.services.families import guardian_update
from crm.services.leads import (
    ExistingFamily,
    LeadCaptured,
    guardian_add,
    guardian_find,
    lead_capture,
    lead_close_lost,
    referral_lead_capture,
    student_update,
)
from crm.services.tags import student_tag_add, student_tag_remove, student_tags_change
from crm.services.trials import TeacherBusy, teacher_busy, trial_book, trial_cancel, trial_feedback_record

__all__ = [
    "AttendanceMark",
    "ExistingFamily",
    "LeadCaptured",
    "TeacherBusy",
    "attendance_correct",
    "attendance_correctable_by",
    "attendance_hours",
    "attendance_record",
    "audit",
    "consultation_log",
    "contract_for_attendance",
    "contract_refund",
    "contract_sign",
    "guardian_add",
    "guardian_find",
    "guardian_update",
    "lead_capture",
    "lead_close_lost",
    "lesson_attendance_record",
    "referral_lead_capture",
    "student_tag_add",
    "student_tag_remove",
    "student_tags_change",
    "student_update",
    "teacher_busy",
    "trial_book",
    "trial_cancel",
    "trial_feedback_record",
]
