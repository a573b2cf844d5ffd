from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from crm.models import Role, User

ROLE_HOME = {
    Role.FRONT_DESK: "followups",
    Role.TEACHER: "teacher_today",
    Role.MANAGER: "followups",
    Role.ADMIN: "student_list",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role lands on the page of its daily work."""
    user: User = request.user  # type: ignore[assignment]
    target = ROLE_HOME.get(user.role)  # type: ignore[call-overload]
    if target is None:
        return HttpResponse(status=403)
    return redirect(target)
