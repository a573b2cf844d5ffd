"""The stage history's b-tree on changed_at becomes a BRIN index on PostgreSQL: the history is
appended in time order, so block ranges summarise it in a few pages, and a big nightly run no
longer writes an entry per change into a b-tree."""

from django.db import migrations, models


def brin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX stagechange_changed_at_brin ON lifecycle_stagechange USING brin (changed_at)"
        )


def brin_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS stagechange_changed_at_brin")


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0006_activity_inputs_only"),
    ]

    operations = [
        migrations.AlterField(
            model_name="stagechange",
            name="changed_at",
            field=models.DateTimeField(verbose_name="changed at"),
        ),
        migrations.RunPython(brin, brin_drop),
    ]
