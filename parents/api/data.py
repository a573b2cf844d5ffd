"""A family's own data, everything we hold on them, as one JSON download (PIPL)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parents.api.family import guardian_of
from parents.api.permissions import IsParent
from parents.services.family_data import family_data_export


class FamilyDataView(APIView):
    permission_classes = [IsParent]

    @extend_schema(
        operation_id="parent_data_export",
        summary="Download everything held on my family",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        response = Response(family_data_export(guardian=guardian_of(request)))
        response["Content-Disposition"] = f'attachment; filename="family-data-{timezone.localdate():%Y%m%d}.json"'
        response["Cache-Control"] = "no-store"
        return response
