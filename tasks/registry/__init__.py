from __future__ import annotations

from tasks.registry.accounts import Account, AccountPool
from tasks.registry.browser import BrowserHost
from tasks.registry.config import RegistryConfig
from tasks.registry.driver import download_document
from tasks.registry.errors import (
    AccountError,
    PermanentRegistryError,
    RegistryError,
    TransientRegistryError,
)
from tasks.registry.models import DownloadResult, Selections
from tasks.registry.session import SessionStore

__all__ = [
    "Account",
    "AccountError",
    "AccountPool",
    "BrowserHost",
    "DownloadResult",
    "PermanentRegistryError",
    "RegistryConfig",
    "RegistryError",
    "Selections",
    "SessionStore",
    "TransientRegistryError",
    "download_document",
]
