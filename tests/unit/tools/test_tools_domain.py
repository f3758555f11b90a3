"""extract_domain: registered domains from websites and e-mails, offline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airlock.errors import ToolInputError
from airlock.registry import SideEffect
from tools.domain import DomainOutput, extract_domain, registered_domain


@pytest.mark.parametrize(
    ("website", "expected"),
    [
        ("https://WWW.Shop.Example.co.uk/about", "example.co.uk"),
        ("example.de", "example.de"),
        ("www.example.de", "example.de"),
        ("http://example.com:8080/path?q=1", "example.com"),
        ("HTTPS://WWW.NORDWIND-LOGISTICS.COM.AU", "nordwind-logistics.com.au"),
        ("shop.example.co.jp", "example.co.jp"),
        ("www.example.de/en/contact", "example.de"),
    ],
)
def test_website_gives_registered_domain_with_full_confidence(website: str, expected: str) -> None:
    out = extract_domain.call({"website": website, "email": "someone@other-company.de"})
    assert out.domain == expected
    assert out.confidence == 1.0
    assert out.flags == []


@pytest.mark.parametrize("website", ["n/a", "http://", "www", "-", "localhost", "10.0.0.1", "nordwind", "foo bar.de"])
def test_unusable_website_falls_back_to_the_email(website: str) -> None:
    out = extract_domain.call({"website": website, "email": "info@nordwind.de"})
    assert out.domain == "nordwind.de"
    assert out.confidence == pytest.approx(0.8)
    assert "website_invalid" in out.flags and "domain_from_email" in out.flags


def test_freemail_address_gives_no_domain() -> None:
    out = extract_domain.call({"website": None, "email": "Anna.Mueller77@GMAIL.com"})
    assert out.domain is None
    assert out.confidence == 0.0
    assert "freemail_domain" in out.flags


def test_freemail_domain_as_website_is_not_the_company() -> None:
    out = extract_domain.call({"website": "https://mail.yahoo.co.uk", "email": "sales@acme.co.uk"})
    assert out.domain == "acme.co.uk"
    assert "freemail_domain" in out.flags


def test_malformed_email_still_names_its_domain_with_lower_confidence() -> None:
    out = extract_domain.call({"email": "info@@nordwind.de"})
    assert out.domain == "nordwind.de"
    assert out.confidence == pytest.approx(0.6)
    assert "email_malformed" in out.flags


@pytest.mark.parametrize("email", ["info.nordwind.de", "info@nordwind", ""])
def test_email_without_usable_domain(email: str) -> None:
    out = extract_domain.call({"website": "", "email": email})
    assert out.domain is None and out.confidence == 0.0
    assert out.flags[0] == "website_missing"


def test_nothing_at_all() -> None:
    out = extract_domain.call({})
    assert out == DomainOutput(domain=None, confidence=0.0, flags=["website_missing", "email_missing"])


def test_contract() -> None:
    assert extract_domain.effect is SideEffect.NONE
    assert extract_domain.requires == ("website", "email")
    assert extract_domain.produces == ("domain",)
    with pytest.raises(ToolInputError):
        extract_domain.call({"website": "example.de", "url": "x"})
    with pytest.raises(ToolInputError):
        extract_domain.call({"website": 42})


def test_registered_domain_is_none_without_public_suffix() -> None:
    assert registered_domain("https://intranet/") is None
    assert registered_domain("Example.COM.") == "example.com"


def test_sample_domains_match_the_truth(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    agree = total = 0
    for account in accounts:
        out = extract_domain.call({"website": account["website"] or None, "email": account["email"] or None})
        if out.domain is not None:
            assert out.domain == out.domain.lower() and "." in out.domain and "/" not in out.domain
            total += 1
            agree += out.domain == truth[account["id"]]["domain"]
    assert total > 0.85 * len(accounts)
    assert agree / total > 0.97


def test_first_use_makes_no_network_call(project_dir: Path) -> None:
    """tldextract reads its suffix list lazily; the first extraction must use the bundled snapshot."""
    code = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from tools.domain import extract_domain
        out = extract_domain.call({"website": "https://www.example.co.uk/x"})
        assert out.domain == "example.co.uk", out
        print("offline-ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project_dir, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "offline-ok" in result.stdout
