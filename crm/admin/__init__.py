"""The Django admin for every crm model, at /admin/.

- Scoping (scoping.py): staff see their campus's rows, administrators everything; lists,
  change pages (404 otherwise), autocomplete, filters and form choices all use one rule.
- One write path (base.py): facts are added by forms that call the services, and service
  errors show as form errors; actions (close as lost, tag, cancel a trial, refund) call
  services too. History is read-only here.
- Big tables (paginators.py): no full COUNT(*); lists order by the primary key
  and sort only by indexed columns; no facets; no per-row queries.

students.py: students, guardians, tags. facts.py: consultations, trials, contracts,
attendance, lessons. organisation.py: campuses, staff, courses, audit log, imports. tokens.py: integrations' API
tokens, for administrators.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from crm.admin import facts, organisation, students, tokens

admin.site.site_header = _("SCRM administration")
admin.site.site_title = _("SCRM admin")
# At a tablet's 1024 px the model sidebar left the lists too narrow to read (names broke
# after every character); the index page and the breadcrumbs lead to every model.
admin.site.enable_nav_sidebar = False

__all__ = ["facts", "organisation", "students", "tokens"]
