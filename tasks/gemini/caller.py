"""What an OCR run calls Gemini with: the client, the global limiter, the retry policy and the
models (tasks/ocr.py builds it from the settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.genai import types

from tasks.gemini.generate import GenerateResult, RateLimiter, RetryPolicy, generate

__all__ = ["GeminiCaller"]


@dataclass
class GeminiCaller:
    """Everything a Gemini call needs in this process: the client, the global limiter (every call
    goes through it), the retry policy and the models. `call` makes one call with them."""

    client: Any
    limiter: RateLimiter
    policy: RetryPolicy
    extract_model: str
    boost_model: str

    def call(
        self,
        contents: list[Any],
        *,
        model: str,
        config: types.GenerateContentConfig,
        tokens_estimate: int | None = None,
    ) -> GenerateResult:
        return generate(
            contents,
            model=model,
            limiter=self.limiter,
            client=self.client,
            config=config,
            tokens_estimate=tokens_estimate,
            policy=self.policy,
        )
