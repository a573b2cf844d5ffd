"""An index for the at-risk windows: present attendance by lesson time (with the student, so
the window counts are read from the index alone). It sits on crm's attendance table but only
the lifecycle engine reads it this way, so it lives here."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('lifecycle', '0003_last_active_signed_at'),
        ('crm', '0002_roles'),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS lifecycle_attendance_present_at ON crm_attendance (lesson_at, student_id) "
            "WHERE status = 'present'",
            "DROP INDEX IF EXISTS lifecycle_attendance_present_at",
        ),
    ]
