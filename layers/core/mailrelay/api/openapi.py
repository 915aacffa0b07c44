"""The OpenAPI 3.1 document served at GET /v1/openapi.json, generated from the pydantic models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from mailrelay.events.feed import MAX_LIMIT
from mailrelay.events.model import EVENT_TYPES, Event
from mailrelay.models.send_request import SendRequest
from mailrelay.models.status import MessageStatus
from mailrelay.models.suppression import SUPPRESSION_REASONS, Suppression
from mailrelay.models.upload import UploadRequest
from mailrelay.suppression.service import MAX_LIMIT as SUPPRESSION_MAX_LIMIT
from mailrelay.suppression.service import SuppressionRequest
from mailrelay.webhooks.model import WebhookRequest

_REF = "#/components/schemas/{model}"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}  # fmt: skip


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "retryable": {"type": "boolean"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "required": ["field", "detail"],
                      "properties": {"field": {"type": "string"}, "detail": {"type": "string"}}},
        },
    },
}  # fmt: skip

_ACCEPTED = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "scheduled", "failed"],
                   "description": "failed: every recipient is suppressed; nothing is sent"},
        "suppressed": {"type": "array", "items": {"type": "string"},
                       "description": "recipients on this client's suppression list: recorded, never sent to"},
    },
}  # fmt: skip

_COMMON_ERRORS = {
    "400": _problem("The body is not JSON"),
    "401": _problem("Missing, unknown or revoked API key"),
    "403": _problem("The sender or From: is not allowed for this client"),
    "409": _problem("Idempotency-Key reused with another body, or still in flight"),
    "413": _problem("The message is larger than the limit"),
    "422": _problem("The request is invalid; `errors` names each field"),
    "503": _problem("Storage unavailable; nothing was accepted; retry after Retry-After seconds"),
}

_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Same key and same body: the first response again. Same key, other body: 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}  # fmt: skip


_WEBHOOK_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL = {"name": "email", "in": "path", "required": True, "description": "the address (percent-encoding allowed)",
          "schema": {"type": "string"}}  # fmt: skip

_EVENT_FEED_PARAMETERS = [
    {"name": "since", "in": "query", "required": False, "description": "events recorded at or after this instant",
     "schema": {"type": "string", "format": "date-time"}},
    {"name": "type", "in": "query", "required": False, "description": "comma-separated event types",
     "schema": {"type": "string", "pattern": f"^({'|'.join(t.replace('.', '[.]') for t in EVENT_TYPES)})"
                f"(,({'|'.join(t.replace('.', '[.]') for t in EVENT_TYPES)}))*$"}},
    {"name": "message_id", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}},
    {"name": "cursor", "in": "query", "required": False, "description": "next_cursor of the previous page",
     "schema": {"type": "string"}},
]  # fmt: skip


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    send = SendRequest.model_json_schema(by_alias=True, ref_template=_REF)
    status = MessageStatus.model_json_schema(by_alias=True, ref_template=_REF, mode="serialization")
    schemas: dict[str, Any] = {**send.pop("$defs", {}), **status.pop("$defs", {})}
    schemas["SendRequest"] = send
    schemas["MessageStatus"] = status
    schemas["Problem"] = _PROBLEM_SCHEMA
    schemas["Accepted"] = _ACCEPTED
    schemas["UploadRequest"] = UploadRequest.model_json_schema(by_alias=True, ref_template=_REF)
    event = Event.model_json_schema(by_alias=True, ref_template=_REF, mode="serialization")
    schemas.update(event.pop("$defs", {}))
    schemas["Event"] = event
    schemas["WebhookRequest"] = WebhookRequest.model_json_schema(by_alias=True, ref_template=_REF)
    schemas["Webhook"] = {
        "type": "object", "required": ["id", "url", "events", "created_at", "state"],
        "properties": {
            "id": {"type": "string", "pattern": "^wh_[0-9a-f]{24}$"}, "url": {"type": "string"},
            "events": {"type": ["array", "null"], "items": {"type": "string"}, "description": "null: every type"},
            "description": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "state": {"type": "string", "enum": ["active", "disabled"]},
            "secret": {"type": "string", "pattern": "^whsec_", "description": "shown when created or rotated"},
        },
    }  # fmt: skip
    schemas["EventPage"] = {
        "type": "object", "required": ["events", "next_cursor", "has_more"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": _REF.format(model="Event")}},
            "next_cursor": {"type": "string", "description": "pass back as `cursor`, with the same filters"},
            "has_more": {"type": "boolean", "description": "more events are ready now; otherwise poll again later"},
        },
    }  # fmt: skip
    schemas["Upload"] = {
        "type": "object", "required": ["upload_id", "url", "method", "headers", "expires_at"],
        "properties": {
            "upload_id": {"type": "string", "pattern": "^upl_[0-9a-f]{32}$"},
            "url": {"type": "string", "format": "uri", "description": "presigned S3 PUT, valid for an hour"},
            "method": {"const": "PUT"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "send exactly these with the PUT; the body must be exactly `size` bytes"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    }  # fmt: skip
    schemas["BatchRequest"] = {
        "type": "object", "required": ["messages"], "additionalProperties": False,
        "properties": {"messages": {"type": "array", "minItems": 1, "maxItems": 100,
                                    "items": {"$ref": _REF.format(model="SendRequest")}}},
    }  # fmt: skip
    schemas["BatchResult"] = {
        "type": "object",
        "properties": {"results": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "status": {"type": "string"},
            "error": {"$ref": _REF.format(model="Problem")}}}}},
    }  # fmt: skip
    schemas["Suppression"] = Suppression.model_json_schema(by_alias=True, ref_template=_REF, mode="serialization")
    schemas.update(schemas["Suppression"].pop("$defs", {}))
    schemas["SuppressionRequest"] = SuppressionRequest.model_json_schema(by_alias=True, ref_template=_REF)
    schemas["SuppressionPage"] = {
        "type": "object", "required": ["suppressions", "next_cursor", "has_more"],
        "properties": {
            "suppressions": {"type": "array", "items": {"$ref": _REF.format(model="Suppression")}},
            "next_cursor": {"type": ["string", "null"], "description": "pass back as `cursor`, with the same reason"},
            "has_more": {"type": "boolean"},
        },
    }  # fmt: skip
    json_body = {"required": True, "content": {"application/json": {"schema": {}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailrelay", "version": "1", "description": "Outbound email: queue a message, track it."},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "sendMessage",
                    "summary": "Queue one message",
                    "parameters": [_IDEMPOTENCY_HEADER],
                    "requestBody": _with_schema(json_body, "SendRequest"),
                    "responses": {"202": _json("Accepted and durably queued", "Accepted"), **_COMMON_ERRORS},
                },
                "get": {
                    "operationId": "listMessages",
                    "summary": "This client's messages, newest first, filtered, page by page",
                    "parameters": _HISTORY_PARAMETERS,
                    "responses": {
                        "200": {"description": "A page", "content": {"application/json": {"schema": _HISTORY_PAGE}}},
                        "401": _COMMON_ERRORS["401"],
                        "422": _problem("A filter or the cursor is invalid; `errors` names the parameter"),
                    },
                },
            },
            "/v1/messages/{id}/content": {
                "get": {
                    "operationId": "getMessageContent",
                    "summary": "The message as queued, when this client keeps content (retain_content_days)",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "The message",
                            "content": {"message/rfc822": {"schema": {"type": "string"}}},
                        },
                        "303": {
                            "description": "Over 4 MiB: a link valid for 5 minutes in Location",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such message for this client, or its content was not retained"),
                    },
                }
            },
            "/v1/messages/{id}/cancel": {
                "post": {
                    "operationId": "cancelMessage",
                    "summary": "Cancel a queued, scheduled or deferred message: it will never be sent",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json("The status record, now cancelled", "MessageStatus"),
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such message for this client"),
                        "409": _problem("The message is being sent or is already final; `detail` names its state"),
                    },
                }
            },
            "/v1/messages/batch": {
                "post": {
                    "operationId": "sendBatch",
                    "summary": "Queue up to 100 messages; each item is accepted or refused on its own",
                    "parameters": [_IDEMPOTENCY_HEADER],
                    "requestBody": _with_schema(json_body, "BatchRequest"),
                    "responses": {"200": _json("Per-item results", "BatchResult"), **_COMMON_ERRORS},
                }
            },
            "/v1/messages/{id}": {
                "get": {
                    "operationId": "getMessage",
                    "summary": "Status of a message sent by this client",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json("The status record", "MessageStatus"),
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such message for this client"),
                    },
                }
            },
            "/v1/uploads": {
                "post": {
                    "operationId": "createUpload",
                    "summary": "A presigned S3 PUT for an attachment too large for a request body",
                    "requestBody": _with_schema(json_body, "UploadRequest"),
                    "responses": {
                        "201": _json("Upload it with this PUT, then name upload_id", "Upload"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/v1/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "This client's delivery events, oldest first",
                    "parameters": _EVENT_FEED_PARAMETERS,
                    "responses": {
                        "200": _json("A page of events and the cursor to continue from", "EventPage"),
                        "401": _COMMON_ERRORS["401"],
                        "422": _problem("A parameter is invalid; `errors` names it"),
                        "503": _COMMON_ERRORS["503"],
                    },
                }
            },
            "/v1/webhooks": {
                "post": {
                    "operationId": "createWebhook",
                    "summary": "Register an https endpoint for signed event deliveries (Standard Webhooks)",
                    "requestBody": _with_schema(json_body, "WebhookRequest"),
                    "responses": {
                        "201": _json("The endpoint, with its secret (shown once)", "Webhook"),
                        **_COMMON_ERRORS,
                    },
                },
                "get": {
                    "operationId": "listWebhooks",
                    "summary": "This client's webhook endpoints",
                    "responses": {
                        "200": {
                            "description": "The endpoints",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "webhooks": {
                                                "type": "array",
                                                "items": {"$ref": _REF.format(model="Webhook")},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        "401": _COMMON_ERRORS["401"],
                    },
                },
            },
            "/v1/webhooks/{id}": {
                "get": {
                    "operationId": "getWebhook",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "One endpoint",
                    "responses": {
                        "200": _json("The endpoint", "Webhook"),
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such endpoint for this client"),
                    },
                },
                "delete": {
                    "operationId": "deleteWebhook",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "Remove an endpoint",
                    "responses": {
                        "204": {"description": "Removed"},
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such endpoint for this client"),
                    },
                },
            },
            "/v1/webhooks/{id}/rotate-secret": {
                "post": {
                    "operationId": "rotateWebhookSecret",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "A new secret; the old one keeps signing too for 24 h",
                    "responses": {
                        "200": _json("The endpoint with its new secret", "Webhook"),
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such endpoint for this client"),
                    },
                },
            },
            "/v1/webhooks/{id}/test": {
                "post": {
                    "operationId": "testWebhook",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "Queue a webhook.test event for this endpoint",
                    "responses": {
                        "202": {"description": "Queued", "content": {"application/json": {}}},
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such endpoint for this client"),
                    },
                },
            },
            "/v1/webhooks/{id}/deliveries": {
                "get": {
                    "operationId": "listWebhookDeliveries",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "Recent attempts (newest first): status code, latency, error",
                    "responses": {
                        "200": {"description": "The attempts", "content": {"application/json": {}}},
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("No such endpoint for this client"),
                    },
                },
            },
            "/v1/webhooks/{id}/replay": {
                "post": {
                    "operationId": "replayWebhook",
                    "parameters": [_WEBHOOK_ID],
                    "summary": "Send the stored events recorded in [since, until) again, with their original ids",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["since"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "since": {"type": "string", "format": "date-time"},
                                        "until": {"type": "string", "format": "date-time"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "Queued", "content": {"application/json": {}}},
                        **_COMMON_ERRORS,
                        "404": _problem("No such endpoint for this client"),
                    },
                },
            },
            "/v1/suppressions": {
                "get": {
                    "operationId": "listSuppressions",
                    "summary": "This client's suppression list, in address order",
                    "parameters": [
                        _query(
                            "reason",
                            "only entries of this reason",
                            {"type": "string", "enum": list(SUPPRESSION_REASONS)},
                        ),
                        _query(
                            "limit",
                            f"1-{SUPPRESSION_MAX_LIMIT}, default 50",
                            {"type": "integer", "minimum": 1, "maximum": SUPPRESSION_MAX_LIMIT},
                        ),
                        _query("cursor", "next_cursor of the previous page, with the same reason"),
                    ],
                    "responses": {
                        "200": _json("A page of entries", "SuppressionPage"),
                        "401": _COMMON_ERRORS["401"],
                        "422": _problem("A parameter is invalid, or the cursor was not issued for this key and reason"),
                        "503": _COMMON_ERRORS["503"],
                    },
                }
            },
            "/v1/suppressions/{email}": {
                "get": {
                    "operationId": "getSuppression",
                    "parameters": [_EMAIL],
                    "summary": "One entry (the address is compared with its domain case-folded and IDNA-encoded)",
                    "responses": {
                        "200": _json("The entry", "Suppression"),
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("The address is not on this client's list"),
                        "422": _problem("Not a valid address"),
                    },
                },
                "put": {
                    "operationId": "putSuppression",
                    "parameters": [_EMAIL],
                    "summary": "Add or replace an entry (reason manual or unsubscribe)",
                    "requestBody": _with_schema(json_body, "SuppressionRequest"),
                    "responses": {
                        "200": _json("The entry as stored", "Suppression"),
                        "400": _COMMON_ERRORS["400"],
                        "401": _COMMON_ERRORS["401"],
                        "422": _problem("Not a valid address, or the body is invalid; `errors` names each field"),
                        "503": _COMMON_ERRORS["503"],
                    },
                },
                "delete": {
                    "operationId": "deleteSuppression",
                    "parameters": [_EMAIL],
                    "summary": "Remove an entry: mail to the address is sent again",
                    "responses": {
                        "204": {"description": "Removed"},
                        "401": _COMMON_ERRORS["401"],
                        "404": _problem("The address is not on this client's list"),
                        "422": _problem("Not a valid address"),
                    },
                },
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI document", "content": {"application/json": {}}}},
                }
            },
        },
    }


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


_HISTORY_PARAMETERS = [
    _query("state", "one state, or several separated by commas"),
    _query("recipient", "an envelope recipient (matched without regard to case)"),
    _query("tag", "name:value"),
    _query("since", "RFC 3339 date-time: created at or after", {"type": "string", "format": "date-time"}),
    _query("until", "RFC 3339 date-time: created at or before", {"type": "string", "format": "date-time"}),
    _query("limit", "1-100, default 20", {"type": "integer", "minimum": 1, "maximum": 100}),
    _query("cursor", "next_cursor of the previous page, with the same filters"),
]
_HISTORY_PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["messages", "next_cursor", "has_more"],
    "properties": {
        "messages": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "from": {"type": "string"}, "subject": {"type": ["string", "null"]}, "state": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "recipients": {"type": "array", "items": {"type": "object", "properties": {
                "address": {"type": "string"}, "state": {"type": "string"}}}},
        }}},
        "next_cursor": {"type": ["string", "null"]},
        "has_more": {"type": "boolean"},
    },
}  # fmt: skip


def _json(description: str, model: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}  # fmt: skip


def _with_schema(body: dict[str, Any], model: str) -> dict[str, Any]:
    return {**body, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}
