"""``extract_domain``: the company's registered domain, from its website or else its e-mail address.

The registered domain (``example.co.uk`` for ``https://WWW.Shop.Example.co.uk/about``) is what the
firmographics lookup matches on, so it must follow the Public Suffix List rather than "the last two
labels". tldextract does that from its bundled snapshot: no network call is ever made.
"""

from __future__ import annotations

import tldextract
from pydantic import BaseModel, ConfigDict, Field

from airlock.registry import SideEffect, tool
from tools.email_syntax import address_domain

# Addresses at these providers say nothing about the company they belong to.
FREEMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
    "yahoo.co.jp", "yahoo.co.in", "yahoo.com.br", "ymail.com", "rocketmail.com", "hotmail.com", "hotmail.co.uk",
    "hotmail.fr", "hotmail.de", "hotmail.es", "hotmail.it", "outlook.com", "outlook.de", "live.com", "live.co.uk",
    "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "gmx.com",
    "web.de", "t-online.de", "freenet.de", "posteo.de", "mail.de", "protonmail.com", "proton.me", "pm.me",
    "tutanota.com", "zoho.com", "mail.com", "yandex.com", "yandex.ru", "mail.ru", "orange.fr", "wanadoo.fr",
    "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it", "tiscali.it", "alice.it", "btinternet.com",
    "sky.com", "virginmedia.com", "bluewin.ch", "ziggo.nl", "kpnmail.nl", "hetnet.nl", "telefonica.net",
    "bigpond.com", "optusnet.com.au", "shaw.ca", "rogers.com", "sympatico.ca", "rediffmail.com", "uol.com.br",
    "bol.com.br", "terra.com.br", "qq.com", "163.com", "126.com", "naver.com", "seznam.cz", "wp.pl", "o2.pl"
})

# suffix_list_urls=() and cache_dir=None: use the snapshot shipped with the package, fetch nothing.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class DomainInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    website: str | None = Field(default=None, max_length=2048)
    email: str | None = Field(default=None, max_length=320)


class DomainOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | None = None
    confidence: float = 0.0
    flags: list[str] = []


def registered_domain(host_or_url: str) -> str | None:
    """``example.co.uk`` for any URL or host under it; None when there is no public suffix (``n/a``,
    ``localhost``, an IP address) or the text cannot be a host."""
    text = host_or_url.strip().lower()
    if not text or len(text.split(maxsplit=1)) > 1:  # stripped, so any whitespace is inside
        return None
    parts = _EXTRACT(text)
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def email_domain(email: str) -> tuple[str | None, bool]:
    """The registered domain of an address and whether the address is well formed.

    A malformed address still often names its domain (``info@@example.de``), which is worth a
    lower-confidence answer rather than none."""
    text = email.strip()
    domain = address_domain(text)
    if domain is not None:
        return registered_domain(domain), True
    if "@" not in text:
        return None, False
    return registered_domain(text.rsplit("@", 1)[1]), False


def is_freemail(domain: str) -> bool:
    return domain in FREEMAIL_DOMAINS


@tool(effect=SideEffect.NONE, version="1")
def extract_domain(data: DomainInput) -> DomainOutput:
    """The company's registered domain (lower case, public-suffix aware, e.g. example.co.uk) from its
    website; falls back to the e-mail address's domain unless that is a free-mail provider. Confidence
    1.0 from the website, 0.8 from the e-mail, 0.6 from a malformed e-mail."""
    flags: list[str] = []
    if data.website and data.website.strip():
        domain = registered_domain(data.website)
        if domain is None:
            flags.append("website_invalid")
        elif is_freemail(domain):
            flags.append("freemail_domain")
        else:
            return DomainOutput(domain=domain, confidence=1.0, flags=flags)
    else:
        flags.append("website_missing")
    if not (data.email and data.email.strip()):
        flags.append("email_missing")
        return DomainOutput(domain=None, confidence=0.0, flags=flags)
    domain, well_formed = email_domain(data.email)
    if domain is None:
        flags.append("email_without_domain")
        return DomainOutput(domain=None, confidence=0.0, flags=flags)
    if is_freemail(domain):
        if "freemail_domain" not in flags:
            flags.append("freemail_domain")
        return DomainOutput(domain=None, confidence=0.0, flags=flags)
    flags.append("domain_from_email")
    if not well_formed:
        flags.append("email_malformed")
    return DomainOutput(domain=domain, confidence=0.8 if well_formed else 0.6, flags=flags)
