from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "api_key_invalid",
    "error_response",
    "file_not_found",
    "invalid_argument",
    "missing_api_key",
    "quota_exceeded",
]

SERVICE = "generativelanguage.googleapis.com"


def error_response(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code)


def api_key_invalid() -> JSONResponse:
    # What Google answers for a wrong key: 400, not 401/403.
    message = "API key not valid. Please pass a valid API key."
    return error_response(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": SERVICE},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def missing_api_key() -> JSONResponse:
    return error_response(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
    )


def invalid_argument(message: str = "Request contains an invalid argument.") -> JSONResponse:
    return error_response(400, "INVALID_ARGUMENT", message)


def file_not_found(file_id: str) -> JSONResponse:
    return error_response(
        403,
        "PERMISSION_DENIED",
        f"You do not have permission to access the File {file_id} or it may not exist.",
    )


def quota_exceeded(model: str, metric: str, limit: int, retry_after_s: float) -> JSONResponse:
    quota_id = {
        "requests": "GenerateRequestsPerMinutePerProjectPerModel",
        "input_token_count": "GenerateContentInputTokensPerModelPerMinute",
    }[metric]
    full_metric = f"{SERVICE}/generate_content_{metric}"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more"
        " information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
        f"\n* Quota exceeded for metric: {full_metric}, limit: {limit}, model: {model}"
        f"\nPlease retry in {retry_after_s:.2f}s."
    )
    return error_response(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": full_metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(limit),
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{max(1, math.ceil(retry_after_s))}s",
            },
        ],
    )
