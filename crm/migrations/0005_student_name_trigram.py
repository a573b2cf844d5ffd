"""A trigram index for searching students by part of their name (admin, board, lists).

PostgreSQL only (pg_trgm is a trusted extension); the embedded SQLite default skips it.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS student_name_upper_trgm ON crm_student USING gin (UPPER(name) gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS student_name_upper_trgm"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in CREATE:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("crm", "0004_board_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]
