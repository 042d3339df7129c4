from rest_framework.pagination import CursorPagination


class ItemCursorPagination(CursorPagination):
    """Keyset pagination: constant cost per page however large the project (no COUNT(*))."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
