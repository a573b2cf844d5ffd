"""The tag rules a viewer sees: their campus's, or every campus's for an administrator."""

from __future__ import annotations

from django.db.models import CharField, Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.http import Http404

from crm.models import (
    StudentTag,
    TagSource,
    User,
)
from crm.selectors import in_viewers_campuses
from personas.models import (
    TagRule,
)


def tag_rules_visible_to(viewer: User) -> QuerySet[TagRule]:
    """The rules of the viewer's campus (every campus for an administrator), each with `carriers`,
    the number of students who carry its tag by this rule. A constant number of queries."""
    carriers = (
        StudentTag.objects.filter(
            source=TagSource.RULE,
            tag_id=OuterRef("tag_id"),
            rule__startswith=Concat(Value("#"), Cast(OuterRef("pk"), CharField()), Value(" ")),
        )
        .order_by()
        .values("tag_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rules = TagRule.objects.select_related("campus", "tag__group", "created_by")
    return (
        in_viewers_campuses(rules, viewer)
        .annotate(carriers=Coalesce(Subquery(carriers), 0))
        .order_by("campus__name", "tag__group__name", "pk")
    )


def tag_rule_get(*, viewer: User, rule_id: int) -> TagRule:
    """One rule the viewer may see (with `carriers`), or 404: another campus's rule does not exist
    for them."""
    rule = tag_rules_visible_to(viewer).filter(pk=rule_id).first()
    if rule is None:
        raise Http404
    return rule


# The overview at /personas/ ---------------------------------------------------------------------
