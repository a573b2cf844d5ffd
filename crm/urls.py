from django.contrib.auth import views as auth_views
from django.urls import include, path

from crm.views import followups, home, leads, students, teacher

urlpatterns = [
    path("", home.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("leads/new/", leads.lead_capture, name="lead_capture"),
    path("leads/check-phone/", leads.lead_check_phone, name="lead_check_phone"),
    path("followups/", followups.followups, name="followups"),
    path("students/", students.student_list, name="student_list"),
    path("teacher/today/", teacher.teacher_today, name="teacher_today"),
    path("trials/<int:pk>/feedback/", teacher.trial_feedback, name="trial_feedback"),
    path("lessons/<int:pk>/attendance/", teacher.lesson_attendance, name="lesson_attendance"),
    path("attendance/<int:pk>/correct/", teacher.attendance_correct, name="attendance_correct"),
    path("imports/", include("crm.views.imports")),
]
