"""Schemathesis hooks for exports-api: the bulk upload takes NDJSON, which schemathesis has
no serializer for. The document types that body as a string; send it as it was generated."""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return (json.dumps(value) + "\n").encode("utf-8")
