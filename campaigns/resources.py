"""Exports of the campaigns app: the consent records, the proof kept for each family's decisions.

Export only: consent comes in through `consent_record` (a person, an SMS reply, the email link,
the parent app), never by a spreadsheet's upsert. Cells are escaped against spreadsheet formulae
as crm's exports are (a guardian's reply is text a stranger typed).
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export import fields

from campaigns.models import ConsentRecord
from crm.phones import phone_display
from crm.resources import FormulaSafeResource


class ConsentRecordResource(FormulaSafeResource):
    recorded_at = fields.Field(attribute="recorded_at", column_name=_("recorded at"))
    guardian = fields.Field(column_name=_("guardian"))
    phone = fields.Field(column_name=_("phone"))
    channel = fields.Field(column_name=_("channel"))
    granted = fields.Field(column_name=_("consents"))
    source = fields.Field(column_name=_("how"))
    wording = fields.Field(attribute="wording", column_name=_("words shown or received"))
    evidence = fields.Field(attribute="evidence", column_name=_("evidence"))
    recorded_by = fields.Field(column_name=_("recorded by"))

    class Meta:
        model = ConsentRecord
        fields = (
            "recorded_at",
            "guardian",
            "phone",
            "channel",
            "granted",
            "source",
            "wording",
            "evidence",
            "recorded_by",
        )
        export_order = fields

    def dehydrate_recorded_at(self, record: ConsentRecord) -> str:
        return f"{timezone.localtime(record.recorded_at):%Y-%m-%d %H:%M:%S}"

    def dehydrate_guardian(self, record: ConsentRecord) -> str:
        return record.guardian.name

    def dehydrate_phone(self, record: ConsentRecord) -> str:
        return phone_display(record.guardian.phone)

    def dehydrate_channel(self, record: ConsentRecord) -> str:
        return str(record.get_channel_display())

    def dehydrate_granted(self, record: ConsentRecord) -> str:
        return str(_("yes") if record.granted else _("no"))

    def dehydrate_source(self, record: ConsentRecord) -> str:
        return str(record.get_source_display())

    def dehydrate_recorded_by(self, record: ConsentRecord) -> str:
        return str(record.recorded_by) if record.recorded_by else ""
