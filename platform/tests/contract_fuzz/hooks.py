"""Schemathesis hooks for platform/tests/contract_fuzz.sh: what a client that follows
reference-service/api/openapi.yaml knows beyond JSON Schema, and the two tokens.

Loaded through SCHEMATHESIS_HOOKS; reads CONTRACT_FUZZ_TENANT_TOKEN and CONTRACT_FUZZ_ADMIN_TOKEN.
"""

import os
import re
import uuid

import schemathesis
from hypothesis import strategies as st


def _luhn_complete(body: str) -> str:
    """`body` followed by its Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these sit at odd positions from the right once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


# The contract's `format: luhn` (card_number): 12 to 19 digits, the last one the Luhn check digit of
# the others. JSON Schema cannot say it; the format name and its description do.
schemathesis.openapi.format(
    "luhn",
    st.integers(min_value=11, max_value=18).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ).map(_luhn_complete),
)


_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    """A well-formed Idempotency-Key is made unique per request.

    The contract promises a replay for the same key and body and 422 for the same key with another
    body; a client asks for a new order with a new key. The generator draws keys from a small space
    and shrinks them towards "0", so without this every second order would be a (declared) 422.
    Malformed and missing keys are left alone: they are the negative cases the service must refuse.
    """
    headers = case.headers
    if headers is None:
        return
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _KEY.match(key):
        headers["Idempotency-Key"] = "fuzz-" + uuid.uuid4().hex


@schemathesis.auth().apply_to(path_regex="^/admin/")
class AdminToken:
    """The kill-switch operations need a token with role `admin` (devtoken -roles admin)."""

    def get(self, case, context):
        return os.environ["CONTRACT_FUZZ_ADMIN_TOKEN"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth().skip_for(path_regex="^/admin/")
class TenantToken:
    """Every /v1 operation: a plain tenant token (devtoken -tenant fuzz)."""

    def get(self, case, context):
        return os.environ["CONTRACT_FUZZ_TENANT_TOKEN"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
