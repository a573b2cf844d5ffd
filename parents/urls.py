"""The parent API, mounted at /api/v1/parent/ (config/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from parents.api import satisfaction
from parents.api.auth import LoginCodeView, LoginView, LogoutView, RefreshView, WeChatLoginView
from parents.api.data import FamilyDataView
from parents.api.family import (
    ChildAttendanceView,
    ChildCoursesView,
    ChildrenView,
    ChildTrialRequestsView,
    ChildView,
    MeView,
)
from parents.api.preferences import PreferencesView, UnsubscribeView
from parents.api.referrals import InvitationsView, InviteLeadView, InviteView, ReferralView

app_name = "parent_api"

urlpatterns: list[URLPattern] = [
    path("auth/code/", LoginCodeView.as_view(), name="auth_code"),
    path("auth/login/", LoginView.as_view(), name="auth_login"),
    path("auth/wechat/", WeChatLoginView.as_view(), name="auth_wechat"),
    path("auth/refresh/", RefreshView.as_view(), name="auth_refresh"),
    path("auth/logout/", LogoutView.as_view(), name="auth_logout"),
    path("me/", MeView.as_view(), name="me"),
    path("children/", ChildrenView.as_view(), name="children"),
    path("children/<int:pk>/", ChildView.as_view(), name="child"),
    path("children/<int:pk>/attendance/", ChildAttendanceView.as_view(), name="child_attendance"),
    path("children/<int:pk>/courses/", ChildCoursesView.as_view(), name="child_courses"),
    path("children/<int:pk>/trial-requests/", ChildTrialRequestsView.as_view(), name="trial_requests"),
    path("preferences/", PreferencesView.as_view(), name="preferences"),
    path("preferences/unsubscribe/", UnsubscribeView.as_view(), name="unsubscribe"),
    path("data/", FamilyDataView.as_view(), name="data"),
    path("satisfaction/", satisfaction.SatisfactionDueList.as_view(), name="satisfaction"),
    path("children/<int:pk>/satisfaction/", satisfaction.SatisfactionAnswerCreate.as_view(), name="child_satisfaction"),
    path("referral/", ReferralView.as_view(), name="referral"),
    path("referral/invitations/", InvitationsView.as_view(), name="referral_invitations"),
    path("invites/<str:code>/", InviteView.as_view(), name="invite"),
    path("invites/<str:code>/lead/", InviteLeadView.as_view(), name="invite_lead"),
]
