"""The H5 parent app at /m/: one page whose JavaScript (static/m/) draws every screen from the
parent API alone, exactly the calls the mini-program makes. The server's only part is this
shell: the product's words, translated here through Django's catalogue (Chinese unless the
language switch chose otherwise) and handed to the script as JSON, and where the API lives."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

# Every word the app shows that the API does not send itself. Keys are what the script asks
# for (static/m/ui.js `t`); "%s" is filled in by the script.
STRINGS = {
    "app_title": _("Parent app"),
    "loading": _("Loading…"),
    "error_generic": _("Something went wrong. Please try again."),
    "error_network": _("No connection. Check the network and try again."),
    "retry": _("Try again"),
    "back": _("Back"),
    "tab_children": _("My children"),
    "tab_satisfaction": _("Rate us"),
    "tab_referral": _("Invite"),
    "tab_settings": _("Settings"),
    # Login
    "login_title": _("Parent login"),
    "login_intro": _("Log in with the mobile phone you gave the school."),
    "phone": _("Mobile phone"),
    "phone_placeholder": _("11-digit mobile number"),
    "code": _("SMS code"),
    "code_placeholder": _("6 digits"),
    "code_send": _("Get code"),
    "code_resend_in": _("Again in %s s"),
    "code_sent": _("If this phone is registered with the school, a code was sent to %s."),
    "login_submit": _("Log in"),
    "login_expired": _("Your login has ended. Please log in again."),
    # Children
    "children_empty": _("No children are linked to this phone yet."),
    "hours_left": _("Hours left"),
    "hours_unit": _("%s h"),
    "satisfaction_banner": _("A quick question about your child's lessons"),
    "satisfaction_banner_action": _("Answer"),
    # A child's page
    "upcoming_lessons": _("Upcoming lessons"),
    "upcoming_none": _("No lessons scheduled."),
    "upcoming_trials": _("Booked trial lessons"),
    "contracts": _("Course packages"),
    "contracts_none": _("No course package yet."),
    "contract_hours": _("%s used of %s, %s left"),
    "valid_until": _("Valid until %s"),
    "attendance": _("Lessons attended"),
    "attendance_none": _("No lessons attended yet."),
    "more": _("Show more"),
    "feedback": _("Teachers' feedback"),
    "feedback_none": _("No feedback yet."),
    "feedback_trial": _("Trial lesson"),
    "recommended_level": _("Recommended level: %s"),
    "stars": _("%s of 5"),
    "trial_requests": _("My trial requests"),
    "trial_title": _("Request a trial lesson"),
    "trial_intro": _("Pick a course and a time that suits you; the campus will call you to confirm."),
    "trial_course": _("Course"),
    "trial_course_any": _("Not sure yet"),
    "trial_subject": _("Subject you are interested in"),
    "trial_when": _("Preferred date and time"),
    "trial_note": _("Anything we should know"),
    "trial_submit": _("Send the request"),
    "trial_sent": _("Request sent. The campus will call you to confirm the time."),
    # Satisfaction
    "satisfaction_title": _("How are we doing?"),
    "satisfaction_none": _("Nothing to answer right now. Thank you!"),
    "satisfaction_not_likely": _("Not likely"),
    "satisfaction_very_likely": _("Very likely"),
    "satisfaction_pick": _("Please pick a score."),
    "satisfaction_submit": _("Send"),
    "satisfaction_thanks": _("Thank you for your answer!"),
    # Referral
    "referral_title": _("Invite a friend"),
    "referral_code": _("My invite code"),
    "referral_link": _("My invite link"),
    "copy": _("Copy link"),
    "copied": _("Copied"),
    "copy_manually": _("Press and hold the link to copy it."),
    "referral_invited": _("Friends invited"),
    "referral_earned": _("Bonus hours earned"),
    "invitations": _("My invitations"),
    "invitations_none": _("No one has signed up through your link yet."),
    "signed": _("Signed up"),
    # Invite landing page (no login)
    "invite_title": _("An invitation to a free trial lesson"),
    "invite_from": _("%s invites you to a trial lesson at %s."),
    "invite_child": _("Child's name"),
    "invite_guardian": _("Your name"),
    "invite_note": _("Which course interests you?"),
    "invite_submit": _("Book a trial"),
    "invite_unknown": _("This invite link is not valid. Please ask your friend for a new one."),
    # Settings
    "settings_title": _("Settings"),
    "preferences": _("Offers and news"),
    "preferences_saved": _("Saved"),
    # Beside each channel: where it stands now. The words under it are what a tap records.
    "switch_on": _("Subscribed"),
    "switch_off": _("Not subscribed"),
    "tap_on_means": _("Turning it on means: %s"),
    "tap_off_means": _("Turning it off means: %s"),
    "unsubscribe_all": _("Unsubscribe from all offers"),
    "unsubscribe_confirm": _("Stop all offers and news by every channel?"),
    "my_data": _("My data"),
    "download_data": _("Download my family's data"),
    "download_ready": _("Your data is downloaded."),
    "logout": _("Log out"),
}


def _browser_language(language: str) -> str:
    """The BCP 47 tag the script hands to Intl for dates: zh-hans is zh-CN."""
    return "zh-CN" if language.startswith("zh") else language


@require_GET
def parent_app(request: HttpRequest) -> HttpResponse:
    api_root = reverse("parent_api:me").removesuffix("me/")
    config = {
        "api": api_root,
        "lang": _browser_language(translation.get_language() or "zh-hans"),
        # Lessons are at the school's hours, whatever zone the phone is set to.
        "tz": settings.TIME_ZONE,
        "strings": {key: str(text) for key, text in STRINGS.items()},
    }
    response = render(request, "parents/h5.html", {"config": config})
    # The shell carries no personal data; the tokens live in the phone's localStorage.
    response["Cache-Control"] = "no-cache"
    response["Referrer-Policy"] = "same-origin"
    return response
