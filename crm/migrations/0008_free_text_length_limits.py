"""One length limit per free-text field (crm/text.py): the long text columns get a check
constraint, as the varchar columns already have their lengths.

A row longer than the limit written before this migration stays as it is, but PostgreSQL
checks the constraint on every later UPDATE of that row, so its text must be shortened
(on the student's page or in the admin) before anything else about it can be saved. Find
such rows with e.g. `SELECT id FROM crm_student WHERE char_length(notes) > 10000`."""

import django.db.models.functions.text
import django.db.models.lookups
from django.contrib.postgres.operations import AddConstraintNotValid
from django.db import migrations, models


class AddLengthConstraint(AddConstraintNotValid):
    """NOT VALID on PostgreSQL: a note typed before the limit existed stays readable and
    exportable (the import then says it is too long), while every row written from now on
    is checked. SQLite has no NOT VALID; there the table is rebuilt as AddConstraint does."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddConstraint.database_forwards(self, app_label, schema_editor, from_state, to_state)


def _length(model_name, field):
    return AddLengthConstraint(
        model_name=model_name,
        constraint=models.CheckConstraint(
            condition=django.db.models.lookups.LessThanOrEqual(django.db.models.functions.text.Length(field), 10000),
            name=f"{'trial' if model_name == 'triallesson' else model_name}_{field}_length",
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0007_student_stage_table"),
    ]

    operations = [
        migrations.AlterField(
            model_name="attendance",
            name="feedback",
            field=models.TextField(blank=True, max_length=10000, verbose_name="feedback"),
        ),
        migrations.AlterField(
            model_name="consultation",
            name="content",
            field=models.TextField(max_length=10000, verbose_name="content"),
        ),
        migrations.AlterField(
            model_name="student",
            name="notes",
            field=models.TextField(blank=True, max_length=10000, verbose_name="notes"),
        ),
        migrations.AlterField(
            model_name="triallesson",
            name="comment",
            field=models.TextField(blank=True, max_length=10000, verbose_name="teacher's comment"),
        ),
        _length("attendance", "feedback"),
        _length("consultation", "content"),
        _length("student", "notes"),
        _length("triallesson", "comment"),
    ]
