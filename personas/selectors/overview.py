"""The overview of a campus (`overview_for`): the snapshot, or computed live when there is none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.http import Http404
from django.utils.translation import gettext_lazy as _

from crm.models import (
    Campus,
    Channel,
    Stage,
    Student,
    User,
)
from crm.selectors import campuses_visible_to
from personas.models import (
    CampusOverview,
    OverviewDimension,
    OverviewGroup,
    RfmSegment,
    ValueTier,
)
from personas.services.overview import groups_live

# Each dimension's groups in the page's order: the choices', then the students with no RFM.
NO_RFM = ""


def _overview_groups() -> dict[str, list[tuple[str, str]]]:
    no_rfm = [(NO_RFM, str(_("No RFM yet")))]
    return {
        OverviewDimension.STAGE: [(k, str(label)) for k, label in Stage.choices],
        OverviewDimension.TIER: [(k, str(label)) for k, label in ValueTier.choices] + no_rfm,
        OverviewDimension.SEGMENT: [(k, str(label)) for k, label in RfmSegment.choices] + no_rfm,
    }


@dataclass
class OverviewRow:
    """One group of one dimension, as the page shows it (a group with no students: zeros)."""

    key: str
    label: str
    students: int = 0
    share: Decimal = Decimal(0)  # percent of the campus's students, one place
    top_grade: str = ""
    top_subject: str = ""
    top_channel: str = ""  # its label
    median_value: Decimal | None = None
    median_attendance: Decimal | None = None
    representative_id: int | None = None
    representative_name: str = ""


@dataclass
class OverviewTable:
    dimension: str
    label: str
    rows: list[OverviewRow]


@dataclass
class Overview:
    campus: Campus
    campuses: list[Campus]  # the picker's: every campus the viewer may see
    students: int
    as_of: dt.datetime | None  # None: computed live, no snapshot yet
    tables: list[OverviewTable]

    @property
    def chart(self) -> dict[str, Any]:
        """The charts' data, for json_script: per dimension, the groups with students."""
        return {
            t.dimension: [{"name": r.label, "value": r.students} for r in t.rows if r.students] for t in self.tables
        }


def _share(part: int, whole: int) -> Decimal:
    return (Decimal(100) * part / whole).quantize(Decimal("0.1")) if whole else Decimal(0)


def overview_for(*, viewer: User, campus_id: int | None = None) -> Overview:
    """A campus's overview for the viewer: their campus, or for an administrator the campus they
    picked (the first by name when none). A campus the viewer may not see is a 404.

    Four queries whatever the campus's size: the campuses, the snapshot's header, its groups with
    their representatives' names; with no snapshot yet (a new or demo campus) the groups are
    computed live instead (personas.services.overview.groups_live), then the names.
    """
    campuses = list(campuses_visible_to(viewer))
    if not campuses:
        raise Http404
    if campus_id is None:
        campus = campuses[0]
    else:
        campus = next((c for c in campuses if c.pk == campus_id), None)  # type: ignore[assignment]
        if campus is None:
            raise Http404
    header = CampusOverview.objects.filter(campus=campus).first()
    found: dict[tuple[str, str], OverviewRow] = {}
    if header is not None:
        for g in OverviewGroup.objects.filter(campus=campus).select_related("representative"):
            found[(g.dimension, g.key)] = _overview_row(g, g.representative.name if g.representative else "")
    else:
        live = groups_live(campus.pk)
        names = dict(Student.objects.filter(pk__in={g.representative_id for g in live}).values_list("pk", "name"))
        for t in live:
            found[(t.dimension, t.key)] = _overview_row(t, names.get(t.representative_id, ""))
    students = sum(r.students for (dimension, _key), r in found.items() if dimension == OverviewDimension.STAGE)
    tables = []
    for dimension, groups in _overview_groups().items():
        rows = []
        for key, label in groups:
            row = found.get((dimension, key)) or OverviewRow(key=key, label="")
            row.label = label
            row.share = _share(row.students, students)
            rows.append(row)
        tables.append(OverviewTable(dimension, str(OverviewDimension(dimension).label), rows))
    return Overview(
        campus=campus,
        campuses=campuses,
        students=students,
        as_of=header.as_of if header else None,
        tables=tables,
    )


def _overview_row(group: Any, name: str) -> OverviewRow:
    """An OverviewRow from a kept OverviewGroup or a live typical.Typical (the same fields)."""
    return OverviewRow(
        key=group.key,
        label="",
        students=group.students,
        top_grade=group.top_grade,
        top_subject=group.top_subject,
        top_channel=str(Channel(group.top_channel).label) if group.top_channel in Channel.values else group.top_channel,
        median_value=group.median_value,
        median_attendance=group.median_attendance,
        representative_id=group.representative_id if name else None,
        representative_name=name,
    )
