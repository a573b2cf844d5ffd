"""The unsubscribe link in marketing email: no login, the signed token is the authority.

A GET shows what the link does and a button (link scanners and previews follow GETs, so a GET
never opts anyone out); the button's POST, or a mail client's RFC 8058 one-click POST
(`List-Unsubscribe=One-Click` in the body, no cookie, no CSRF token), records the opt-out with
the words shown as its proof.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.models import MessageChannel
from campaigns.services.consent import consent_opt_out_by_token, unsubscribe_target

ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def _question(channel: str) -> str:
    return _("Stop receiving marketing messages from us by %(channel)s?") % {"channel": MessageChannel(channel).label}


@csrf_exempt  # mail clients post without our cookie; the signed token is what is checked
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    target = unsubscribe_target(token)
    if target is None:
        return render(request, "campaigns/unsubscribe.html", {"invalid": True}, status=404)
    _guardian, channel = target
    if request.method == "GET":
        return render(request, "campaigns/unsubscribe.html", {"question": _question(channel)})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    wording = ONE_CLICK_BODY if one_click else _question(channel)
    agent = request.headers.get("User-Agent", "")[:120]
    evidence = f"{request.META.get('REMOTE_ADDR', '')} {agent}".strip()
    consent_opt_out_by_token(token=token, wording=wording, evidence=evidence)
    return render(request, "campaigns/unsubscribe.html", {"done": True, "channel": MessageChannel(channel).label})
