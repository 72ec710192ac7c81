"""The language a person picks in the menu: remembered for them, and theirs again at each login.

LocaleMiddleware reads the language from the cookie (Django no longer reads it from the
session), so logging in sets the cookie on the login's own response."""
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.views import i18n

from ..models import Preference


def set_language(request):
    """Django's set_language (the cookie and the redirect), and, for a logged-in person, the
    choice remembered: their next login and the e-mails sent to them use it."""
    response = i18n.set_language(request)
    language = request.POST.get(i18n.LANGUAGE_QUERY_PARAMETER) if request.method == "POST" else None
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        Preference.remember_language(user=request.user, language=language)
    return response


class LoginView(auth_views.LoginView):
    """Django's login; then the pages speak the language this person picked last, whatever the
    browser (a shared computer at the counter) was set to before."""

    def form_valid(self, form):
        response = super().form_valid(form)
        language = Preference.language_of(form.get_user())
        if language:
            set_language_cookie(response, language)
        return response


def set_language_cookie(response: HttpResponse, language: str) -> None:
    """The cookie as Django's set_language writes it."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
