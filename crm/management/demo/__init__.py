"""The demo institution behind `manage.py seed_demo` and `make run`."""

from crm.management.demo.builder import MIN_STUDENTS, DemoAccount, DemoBuilder, DemoSummary, demo_account_specs
from crm.management.demo.catalogue import DEMO_PARENT_PHONE, DEMO_PASSWORD

__all__ = [
    "DEMO_PARENT_PHONE",
    "DEMO_PASSWORD",
    "MIN_STUDENTS",
    "DemoAccount",
    "DemoBuilder",
    "DemoSummary",
    "demo_account_specs",
]
