"""What the staff API's record endpoints (courses, consultations, trials, contracts,
attendance) share: the shape of their views (a scoped list, a creating POST and an action
on one row, each a thin call of one service), who may read and who may write, references to
rows the viewer may see, the short {id, name} form of a related row, and the filter backend
that builds a FilterSet for the viewer (crm/filters.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.idempotency import idempotent
from crm.api.permissions import IsStaff, staff_of, staff_roles
from crm.models import Role, User

Scope = Callable[[Any], QuerySet[Any]]


class ScopedPk(serializers.PrimaryKeyRelatedField):
    """The id of a row among those the viewer may see (`scope(viewer)`): another campus's
    student or course is "does not exist", as in the pages' pickers. `queryset` names the
    model for the schema; the rows are always the scoped ones."""

    def __init__(self, *, scope: Scope, queryset: QuerySet[Any], **kwargs: Any) -> None:
        self.scope = scope
        self.nothing = queryset.none()
        kwargs["queryset"] = queryset
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        request = self.context.get("request")
        viewer = staff_of(request) if request is not None else None
        return self.scope(viewer) if viewer is not None else self.nothing


def decimal_input(**kwargs: Any) -> serializers.DecimalField:
    """Any finite decimal ("40.5"): how many digits its column holds is the service's to say,
    in the same words as on the pages."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class NamedRef(serializers.Serializer):
    """A related row in short: its id and the name people know it by."""

    id = serializers.IntegerField(source="pk")
    name = serializers.CharField(source="__str__")


class ViewerFilterBackend(DjangoFilterBackend):
    """django-filter's backend, building the view's FilterSet for the signed-in viewer, whose
    choices are then the viewer's own. A bad value is a 400 in the one error shape."""

    def get_filterset_kwargs(self, request: Request, queryset: QuerySet[Any], view: Any) -> dict[str, Any]:
        return {**super().get_filterset_kwargs(request, queryset, view), "viewer": staff_of(request)}


class ReadWriteRoles(APIView):
    """A view whose reads and writes are open to different roles, as the pages are: e.g. every
    role reads trials, the front office books them."""

    read_roles: tuple[str, ...] = tuple(Role.values)
    write_roles: tuple[str, ...] = ()

    def get_permissions(self) -> list[IsStaff]:
        roles = self.read_roles if self.request.method in permissions.SAFE_METHODS else self.write_roles
        return [staff_roles(*roles)()]


def viewer_of(request: Request) -> User:
    """The staff member a permission class has already let in."""
    viewer = staff_of(request)
    assert viewer is not None, "the view's permission admits staff only"
    return viewer


def scoped_get(rows: QuerySet[Any], pk: int) -> Any:
    """One row of the viewer's scope, or 404: another campus's row does not exist for them."""
    return get_object_or_404(rows, pk=pk)


class RecordList(ReadWriteRoles, generics.ListAPIView):
    """GET: the viewer's rows (`rows(viewer)`, scoped and with their related rows fetched), narrowed
    by the view's FilterSet and paged."""

    filter_backends = [ViewerFilterBackend]

    def rows(self, viewer: User) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        viewer = staff_of(self.request)
        if viewer is None:  # the schema generator has no viewer
            return self.get_serializer_class().Meta.model.objects.none()  # type: ignore[attr-defined]
        return self.rows(viewer)


class RecordListCreate(RecordList):
    """And POST: one new row, through `record(viewer, validated input)`, which calls the
    service; a retry with the same Idempotency-Key creates nothing more."""

    input_class: type[serializers.Serializer]

    def record(self, viewer: User, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    @idempotent
    def post(self, request: Request) -> Response:
        data = self.input_class(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        row = self.record(viewer_of(request), data.validated_data)
        return Response(self.get_serializer(row).data, status=201)


class RecordAction(APIView):
    """POST on one of the viewer's rows (another campus's is a 404): `check` who may act on
    it, validate the input, `act` through the service, answer with the row as it now is."""

    input_class: type[serializers.Serializer]
    output_class: type[serializers.Serializer]

    def rows(self, viewer: User) -> QuerySet[Any]:
        raise NotImplementedError

    def check(self, viewer: User, row: Any) -> None:
        """Refuse (PermissionDenied) a viewer the row's own rule does not allow."""

    def act(self, viewer: User, row: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        viewer = viewer_of(request)
        row = scoped_get(self.rows(viewer), pk)
        self.check(viewer, row)
        data = self.input_class(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        return Response(self.output_class(self.act(viewer, row, data.validated_data)).data)
