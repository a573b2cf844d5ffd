"""The flags and the recheck moment move to crm.StudentStage beside the stage (one narrow row
per student that a decision rewrites); the activity keeps the engine's inputs, now with the
student's created_at and lost_at so a run never reads the wide student row."""

from django.db import migrations, models

COPY_DECISIONS = """
UPDATE crm_studentstage SET
    at_risk = a.at_risk, risk_recent = a.risk_recent, risk_before = a.risk_before,
    renewal_due = a.renewal_due, recheck_at = a.recheck_at
FROM lifecycle_studentactivity a WHERE a.student_id = crm_studentstage.student_id
"""
COPY_DECISIONS_SQLITE = """
UPDATE crm_studentstage SET
    (at_risk, risk_recent, risk_before, renewal_due, recheck_at) = (
        SELECT a.at_risk, a.risk_recent, a.risk_before, a.renewal_due, a.recheck_at
        FROM lifecycle_studentactivity a WHERE a.student_id = crm_studentstage.student_id)
WHERE student_id IN (SELECT student_id FROM lifecycle_studentactivity)
"""
COPY_STUDENT_DATES = """
UPDATE lifecycle_studentactivity SET
    created_at = (SELECT s.created_at FROM crm_student s WHERE s.id = lifecycle_studentactivity.student_id),
    lost_at = (SELECT s.lost_at FROM crm_student s WHERE s.id = lifecycle_studentactivity.student_id)
"""
COPY_DECISIONS_BACK = """
UPDATE lifecycle_studentactivity SET
    (at_risk, risk_recent, risk_before, renewal_due, recheck_at) = (
        SELECT st.at_risk, st.risk_recent, st.risk_before, st.renewal_due, st.recheck_at
        FROM crm_studentstage st WHERE st.student_id = lifecycle_studentactivity.student_id)
WHERE student_id IN (SELECT student_id FROM crm_studentstage)
"""


def copy_decisions(apps, schema_editor):
    schema_editor.execute(COPY_DECISIONS if schema_editor.connection.vendor == "postgresql" else COPY_DECISIONS_SQLITE)
    schema_editor.execute(COPY_STUDENT_DATES)


def copy_decisions_back(apps, schema_editor):
    schema_editor.execute(COPY_DECISIONS_BACK)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0007_student_stage_table"),
        ("lifecycle", "0005_lean_write_path"),
    ]

    operations = [
        migrations.AddField(
            model_name="studentactivity",
            name="created_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="studentactivity",
            name="lost_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(copy_decisions, copy_decisions_back),
        migrations.RemoveIndex(
            model_name="studentactivity",
            name="activity_at_risk",
        ),
        migrations.RemoveIndex(
            model_name="studentactivity",
            name="activity_renewal_due",
        ),
        migrations.RemoveField(
            model_name="studentactivity",
            name="at_risk",
        ),
        migrations.RemoveField(
            model_name="studentactivity",
            name="recheck_at",
        ),
        migrations.RemoveField(
            model_name="studentactivity",
            name="renewal_due",
        ),
        migrations.RemoveField(
            model_name="studentactivity",
            name="risk_before",
        ),
        migrations.RemoveField(
            model_name="studentactivity",
            name="risk_recent",
        ),
    ]
