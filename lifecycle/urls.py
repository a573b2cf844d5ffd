from django.urls import include, path

urlpatterns = [
    path("board/", include("lifecycle.views.board")),
    path("pool/", include("lifecycle.views.pool")),
]
