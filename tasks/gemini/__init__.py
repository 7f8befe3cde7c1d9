"""The one way this project calls Gemini: every model call goes through `generate.generate`.

Callers import from the module of the concern they need:
* errors: the exceptions, cut by what the caller does
* client: the google-genai client, one per process, with the SDK's own retries off
* tokens: the input-token estimate the shared rate limiter charges before a call
* generate: a call within the rate limit, its retry policy, and the checks on the answer
* files: a document as a request part, inline or through the Files API
* google_errors: what Google's and the transport's errors mean (retry or not, how long)
"""
