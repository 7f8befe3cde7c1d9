from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RegistryConfig"]


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    """Where the registry is and how long to wait for it (DOMAIN.md §2.11); all times in seconds."""

    base_url: str = "https://www.registrefoncier.gouv.qc.ca"
    headless: bool = True
    goto_timeout_s: float = 30
    first_selector_timeout_s: float = 30  # 10 s failed ~47 jobs on the slow site (incident 6.1 #4)
    selector_timeout_s: float = 10
    reload_timeout_s: float = 30  # the page reload after a select
    submit_timeout_s: float = 60  # a search submit until the next page has loaded
    confirmation_timeout_s: float = 60
    document_load_timeout_s: float = 180
    document_poll_interval_s: float = 1
    save_link_timeout_s: float = 30
    download_timeout_s: float = 30
    login_timeout_s: float = 30

    @property
    def site_url(self) -> str:
        return self.base_url.rstrip("/") + "/Sirf/"

    def url(self, path: str) -> str:
        """The absolute URL of a path under /Sirf/ (e.g. "Script/13_01_11/...asp")."""
        return self.site_url + path.lstrip("/")
