"""``?ordering=`` validated: a field the list does not offer answers 400 naming it, where DRF's
filter drops it without a word and the client reads rows in an order it did not ask for."""

from rest_framework import filters
from rest_framework.exceptions import ValidationError

from webapp.api.query_strings import query_names_read


class StrictOrderingFilter(filters.OrderingFilter):
    def get_ordering(self, request, queryset, view):
        query_names_read(request, (self.ordering_param,))
        raw = request.query_params.get(self.ordering_param)
        if raw:  # empty, as a form's blank field sends it: the list's own order
            terms = [term.strip() for term in raw.split(",") if term.strip()]
            offered = [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]
            unknown = [term for term in terms if term.removeprefix("-") not in offered]
            if unknown:
                raise ValidationError({self.ordering_param: [
                    f"cannot order by {unknown[0]!r}; this list orders by {', '.join(offered)} "
                    "(prefix - to reverse, comma-separate several)"]})
        return super().get_ordering(request, queryset, view)

    def get_schema_operation_parameters(self, view):
        """The fields this list orders by, as the 400 for any other names them."""
        fields = [name if isinstance(name, str) else name[0] for name in view.ordering_fields]
        term = f"-?(?:{'|'.join(fields)})"
        return [{
            "name": self.ordering_param, "required": False, "in": "query",
            "description": f"Order by {', '.join(fields)} (prefix - to reverse, comma-separate several); "
                           "empty keeps the list's own order.",
            "schema": {"type": "string", "pattern": f"^(?:{term}(?:,{term})*)?$"},
        }]
