"""Which language a staff page speaks.

Staff read Simplified Chinese whatever their browser's Accept-Language says: school
tablets and laptops often ship with an English system language, and a page that follows
it would greet a consultant in English. English is a choice made with the menu's switch
(Django's `set_language`), which stores it in the language cookie; that choice is the only
thing that moves a page away from LANGUAGE_CODE.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers


def chosen_language(request: HttpRequest) -> str:
    """The language picked with the switch, if it is one we speak, else the default."""
    picked = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if picked:
        try:
            return translation.get_supported_language_variant(picked)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


class ChosenLanguageMiddleware:
    """Takes the place of LocaleMiddleware: the cookie or the default, never Accept-Language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = chosen_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()  # type: ignore[attr-defined]
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", translation.get_language())
        patch_vary_headers(response, ("Cookie",))
        return response
