"""The default tag rules (personas.default_tag_rules) for every campus that exists already; a
campus created later gets them from `tag_rules_ship_defaults`. The rules tag students at the next
run (the nightly recomputation, or any change of a rule), not here."""

from django.db import migrations

from personas.default_tag_rules import DEFAULT_RULES


def ship_defaults(apps, schema_editor):
    Campus = apps.get_model("crm", "Campus")
    TagGroup = apps.get_model("crm", "TagGroup")
    Tag = apps.get_model("crm", "Tag")
    TagRule = apps.get_model("personas", "TagRule")
    campus_ids = list(Campus.objects.order_by("pk").values_list("pk", flat=True))
    if not campus_ids:
        return
    tags = {}
    for default in DEFAULT_RULES:
        group, _created = TagGroup.objects.get_or_create(name=default.group, defaults={"exclusive": default.exclusive})
        tags[default.tag] = Tag.objects.get_or_create(group=group, name=default.tag)[0]
    have = set(TagRule.objects.values_list("campus_id", "tag_id"))
    TagRule.objects.bulk_create(
        [
            TagRule(campus_id=campus_id, tag=tags[d.tag], name=d.name, conditions=d.conditions)
            for campus_id in campus_ids
            for d in DEFAULT_RULES
            if (campus_id, tags[d.tag].pk) not in have
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("personas", "0002_tag_rules"),
    ]

    operations = [
        migrations.RunPython(ship_defaults, migrations.RunPython.noop),
    ]
