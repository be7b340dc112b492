"""Cursor pagination: stable while rows are added, as fast on page 2,000 as on page 1."""

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class NewestFirst(CursorPagination):
    ordering = "-pk"  # ids only grow: newest first, and unique
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:  # a cursor this API never gave out: bad input, not a page
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from None
