"""The API's JSON parser: DRF's, with nesting too deep for Python's parser answered as a
parse error (400) instead of a RecursionError (500), and nesting deeper than the web app can
read back once stored (``webapp.core.json_input.MAX_DEPTH``) refused the same way."""

import sys

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from webapp.core.json_input import nesting_check


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ParseError as exc:  # DRF quotes json's ValueError, whose digit limit names sys.set_int_max_str_digits()
            if "integer string conversion" not in str(exc.__context__ or ""):
                raise
            raise ParseError(f"JSON parse error - holds a whole number of more than "
                             f"{sys.get_int_max_str_digits()} digits; write it as a string") from None
        try:
            nesting_check(value)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return value
