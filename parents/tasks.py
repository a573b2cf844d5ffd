"""Parents tasks: referral rewards after a student's facts changed.

They take ids, are idempotent (a rerun pays nothing twice) and retry only transient database
errors, with backoff, under a time limit (personas' prompt retries: a fact is waiting)."""

from __future__ import annotations

from celery import shared_task

from personas.tasks import PROMPT

__all__ = ["apply_referral_rewards"]


@shared_task(name="parents.apply_referral_rewards", soft_time_limit=60, time_limit=90, **PROMPT)
def apply_referral_rewards(student_ids: list[int]) -> int:
    """The referral rewards these students' facts call for. Returns how many were paid."""
    from parents.services.referrals import referral_rewards_apply

    return referral_rewards_apply(student_ids)
