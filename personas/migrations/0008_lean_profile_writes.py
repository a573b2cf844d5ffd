"""Profiles are rewritten by the thousand each night: no index of the campus alone (the composite
ones serve it), and free space in each page so a rewrite that changes no indexed column stays in
place (a HOT update) instead of touching every index."""

import django.db.models.deletion
from django.db import migrations, models



def profile_fillfactor(apps, schema_editor, fillfactor=80):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE personas_studentprofile SET (fillfactor = {fillfactor})")


def profile_fillfactor_default(apps, schema_editor):
    profile_fillfactor(apps, schema_editor, fillfactor=100)


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0013_audit_actions_for_segments_and_tiers'),
        ('personas', '0007_segments'),
    ]

    operations = [
        migrations.AlterField(
            model_name='studentprofile',
            name='campus',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='crm.campus', verbose_name='campus'),
        ),
        migrations.RunPython(profile_fillfactor, profile_fillfactor_default),
    ]
