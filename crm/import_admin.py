"""Import/export wiring for the admin, mixed into crm.admin's ModelAdmins."""


class StudentImportExportMixin:
    pass


class ConsultationImportExportMixin:
    pass


class ContractImportExportMixin:
    pass
