from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('lifecycle', '0002_activity_recheck'),
    ]

    operations = [
        migrations.RenameField(
            model_name='studentactivity',
            old_name='first_active_signed_at',
            new_name='last_active_signed_at',
        ),
    ]
