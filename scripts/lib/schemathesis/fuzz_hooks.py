"""Schemathesis hooks of the API fuzz run (scripts/lib/api-fuzz.sh), loaded through
SCHEMATHESIS_HOOKS.

Every check stays on and every operation is fuzzed. The API documents state each rule
the services enforce on a request's shape in JSON Schema; the few rules JSON Schema
cannot state (they depend on what is stored, or compare items of one list) are in the
documents' words, and their answers to schema-valid requests are listed below, each
with the status and message the services give. A schema-valid request answered with
anything else still fails the run, as does the same status with another message.
"""

import atexit
import collections
import json
import re
import sys
import threading

import schemathesis

# (method, path template, status, the whole error message) of the answers to
# schema-valid requests that JSON Schema cannot foresee, as the documents describe them.
RULES_BEYOND_JSON_SCHEMA = [
    # `If-Match` names a version the order or product has moved on from (state).
    ("PUT", "/oms/orders/{orderId}", 412, r"the order is at version \d+, not the one in If-Match; read it again"),
    *(
        (method, path, 412, r"the product is at version \d+, not the one in If-Match; read it again")
        for method, path in [
            ("PUT", "/inventory/products/{productId}"),
            ("POST", "/inventory/products/{productId}/restock"),
            ("POST", "/inventory/products/{productId}/adjustments"),
        ]
    ),
    # An `Idempotency-Key` used before with another body (state).
    ("POST", "/oms/orders", 422, r"this Idempotency-Key was already used for a different order"),
    ("POST", "/inventory/products/{productId}/restock", 422, r"Idempotency-Key: used on this product for another request"),
    ("POST", "/inventory/products/{productId}/adjustments", 422, r"Idempotency-Key: used on this product for another request"),
    # The same product twice in one request (compares the items of a list).
    ("POST", "/oms/orders", 422, r"product '[A-Za-z0-9._:-]+' appears more than once in orderItems"),
    ("PUT", "/oms/orders/{orderId}", 422, r"product '[A-Za-z0-9._:-]+' appears more than once in orderItems"),
    # Canceling an item the order does not have, or more than 100 items once the
    # changes are applied (state).
    ("PUT", "/oms/orders/{orderId}", 422, r"product '[A-Za-z0-9._:-]+' is not an item of this order"),
    ("PUT", "/oms/orders/{orderId}", 422, r"an order may hold at most 100 items"),
]


# How many answers each rule explained, printed at the end so that a run shows them.
_explained = collections.Counter()
_explained_lock = threading.Lock()


_mislabelled = collections.Counter()


@atexit.register
def _report():
    for (method, path, status, pattern), count in sorted(_explained.items()):
        print(f"explained by a rule beyond JSON Schema: {count} x {status} to {method} {path} ({pattern})", file=sys.stderr)
    for header, count in sorted(_mislabelled.items()):
        print(f"dropped as mislabelled valid: {count} case(s) with a disallowed {header}", file=sys.stderr)


def _error_message(response):
    try:
        body = json.loads(response.text)
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) and body.get("success") is False else None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but a schema-valid request's answer under a rule above."""
    if failure.code != "ST202":
        return True
    message = _error_message(response)
    for rule in RULES_BEYOND_JSON_SCHEMA:
        method, path, status, pattern = rule
        if (
            case.method.upper() == method
            and case.path == path
            and response.status_code == status
            and message is not None
            and re.fullmatch(pattern, message)
        ):
            with _explained_lock:
                _explained[rule] += 1
            return False
    return True


@schemathesis.hook
def filter_case(context, case):
    """Drops a case labelled valid that carries a header its document does not allow.

    Schemathesis 4.32.5's coverage phase only builds header values from letters and
    digits: for a header whose pattern needs other characters (`If-Match` needs `"` or
    `*`) it seeds the wrong-type value `0` and still sends the case as a valid request,
    which the service rightly refuses (400). Such a case is not a valid request; the
    same header values are sent as invalid ones, and valid ones come from the other
    phases.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not case.headers:
        return True
    sent = {name.lower(): value for name, value in case.headers.items()}
    for parameter in case.operation.headers:
        value = sent.get(parameter.name.lower())
        if value is not None and not parameter.is_valid(str(value)):
            with _explained_lock:
                _mislabelled[parameter.name] += 1
            return False
    return True
