"""Create the role groups with their model permissions (crm.roles.ROLE_PERMISSIONS)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_role_groups(apps, schema_editor):
    from crm.roles import ROLE_PERMISSIONS

    app_config = apps.get_app_config("crm")
    app_config.models_module = True  # the stub lacks it; create_permissions only checks it is set
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, models in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=str(role))
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.set(Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
