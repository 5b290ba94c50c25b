"""`GET /api/hello/`: the design documents' first example, proof that DRF answers
through the whole stack."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

HELLO_MESSAGE = "Hello from DRF with Uvicorn!"


class HelloView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(responses=inline_serializer("Hello", {"message": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        return Response({"message": HELLO_MESSAGE})
