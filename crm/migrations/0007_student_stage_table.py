"""The stage moves off the wide student row onto StudentStage, a narrow table of its own that
only the lifecycle engine writes (its flags join it in lifecycle's migration 0006)."""

import django.db.models.deletion
from django.db import migrations, models

STAGE_CHOICES = [
    ("lead", "Lead"),
    ("consulting", "Consulting"),
    ("trial", "Trial"),
    ("enrolled", "Enrolled"),
    ("active", "Active"),
    ("dormant", "Dormant"),
    ("churned", "Churned"),
    ("lost", "Lost"),
]

COPY_STAGES = """
INSERT INTO crm_studentstage (student_id, campus_id, stage, changed_at, at_risk, risk_recent, risk_before,
                              renewal_due, recheck_at)
SELECT id, campus_id, stage, stage_changed_at, false, 0, 0, false, NULL FROM crm_student ORDER BY id
"""
COPY_STAGES_BACK = """
UPDATE crm_student SET
    stage = coalesce((SELECT st.stage FROM crm_studentstage st WHERE st.student_id = crm_student.id), 'lead'),
    stage_changed_at = (SELECT st.changed_at FROM crm_studentstage st WHERE st.student_id = crm_student.id)
"""


def stage_fillfactor(apps, schema_editor, fillfactor=80):
    """Free space in each page, so a run that rewrites only flags or recheck moments updates rows in place."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE crm_studentstage SET (fillfactor = {fillfactor})")


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0006_student_lean_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="StudentStage",
            fields=[
                (
                    "student",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="pipeline",
                        serialize=False,
                        to="crm.student",
                    ),
                ),
                (
                    "campus",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="crm.campus",
                    ),
                ),
                (
                    "stage",
                    models.CharField(choices=STAGE_CHOICES, default="lead", max_length=20, verbose_name="stage"),
                ),
                ("changed_at", models.DateTimeField(blank=True, null=True, verbose_name="stage changed at")),
                ("at_risk", models.BooleanField(default=False, verbose_name="at risk")),
                ("risk_recent", models.PositiveIntegerField(default=0)),
                ("risk_before", models.PositiveIntegerField(default=0)),
                ("renewal_due", models.BooleanField(default=False, verbose_name="renewal due")),
                ("recheck_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "student stage",
                "verbose_name_plural": "student stages",
            },
        ),
        migrations.RunPython(stage_fillfactor, migrations.RunPython.noop),
        migrations.RunSQL(COPY_STAGES, COPY_STAGES_BACK),
        migrations.AddIndex(
            model_name="studentstage",
            index=models.Index(fields=["campus", "stage", "-changed_at", "-student"], name="stage_board_campus"),
        ),
        migrations.AddIndex(
            model_name="studentstage",
            index=models.Index(condition=models.Q(("at_risk", True)), fields=["student"], name="stage_at_risk"),
        ),
        migrations.AddIndex(
            model_name="studentstage",
            index=models.Index(
                condition=models.Q(("renewal_due", True)), fields=["student"], name="stage_renewal_due"
            ),
        ),
        migrations.RemoveIndex(
            model_name="student",
            name="student_board_campus",
        ),
        migrations.RemoveIndex(
            model_name="student",
            name="student_board_all",
        ),
        migrations.RemoveField(
            model_name="student",
            name="stage",
        ),
        migrations.RemoveField(
            model_name="student",
            name="stage_changed_at",
        ),
    ]
