"""A cheaper write path for the engine: no index on the columns every decision or refresh
rewrites (so PostgreSQL updates activity rows in place), free space in each activity page for
those in-place (HOT) updates, and a stage history without the per-row foreign-key check."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def activity_fillfactor(apps, schema_editor, fillfactor=80):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE lifecycle_studentactivity SET (fillfactor = {fillfactor})")


def activity_fillfactor_default(apps, schema_editor):
    activity_fillfactor(apps, schema_editor, fillfactor=100)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0006_student_lean_indexes"),
        ("lifecycle", "0004_attendance_present_window_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="stagechange",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="stagechange",
            name="student",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="stage_changes",
                to="crm.student",
            ),
        ),
        migrations.AlterField(
            model_name="studentactivity",
            name="at_risk",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="studentactivity",
            name="recheck_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="studentactivity",
            name="renewal_due",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="stagechange",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)), fields=["actor"], name="stagechange_actor"
            ),
        ),
        migrations.AddIndex(
            model_name="studentactivity",
            index=models.Index(condition=models.Q(("at_risk", True)), fields=["student"], name="activity_at_risk"),
        ),
        migrations.AddIndex(
            model_name="studentactivity",
            index=models.Index(
                condition=models.Q(("renewal_due", True)), fields=["student"], name="activity_renewal_due"
            ),
        ),
        # Pages written from now on keep a fifth free; existing pages gain room as old row
        # versions are pruned.
        migrations.RunPython(activity_fillfactor, activity_fillfactor_default),
    ]
