"""The name grammars of names.py, as tables: each row is a value and whether the rule accepts it."""

from __future__ import annotations

import pytest

from faas_deployment.core import names

CASES = [
    (names.is_registry_host, "registry.example.org", True),
    (names.is_registry_host, "127.0.0.1:5000", True),
    (names.is_registry_host, "[::1]:5000", True),
    (names.is_registry_host, "-bad.example.org", False),
    (names.is_registry_host, "host:port", False),
    (names.is_repository_path, "eo4eu-faas/charts", True),
    (names.is_repository_path, "a__b/c.d/e--f", True),
    (names.is_repository_path, "Eo4eu/charts", False),
    (names.is_repository_path, "charts/", False),
    (names.is_repository_path, "a//b", False),
    (names.is_image_repository, "registry.example.org/eo4eu-faas/faas-controller", True),
    (names.is_image_repository, "localhost/x", True),
    (names.is_image_repository, "eo4eu-faas/faas-controller", False),  # no registry host (Docker's rule)
    (names.is_image_repository, "registry.example.org/Faas", False),
    (names.is_image_repository, "registry.example.org/faas:1.0", False),
    (names.is_tag, "1.4.2", True),
    (names.is_tag, "3f2c9e1", True),
    (names.is_tag, "-x", False),
    (names.is_tag, "x" * 129, False),
    (names.is_digest, "sha256:" + "0" * 64, True),
    (names.is_digest, "sha256:" + "A" * 64, False),
    (names.is_chart_name, "faas-operator", True),
    (names.is_chart_name, "Faas", False),
    (names.is_chart_name, "a" * 64, False),
    (names.is_dns_label, "faas-dev", True),
    (names.is_dns_label, "faas.dev", False),
    (names.is_dns_subdomain, "faas.dev", True),
    (names.is_dns_subdomain, "faas..dev", False),
    (names.is_quantity, "500m", True),
    (names.is_quantity, "1Gi", True),
    (names.is_quantity, "0", False),
    (names.is_quantity, "1 Gi", False),
    (names.is_duration, "1h30m", True),
    (names.is_duration, "0", True),
    (names.is_duration, "1d", False),
    (names.is_oci_repository_url, "oci://127.0.0.1:5000/charts", True),
    (names.is_oci_repository_url, "oci://registry.example.org/eo4eu-faas/charts", True),
    (names.is_oci_repository_url, "oci://registry.example.org", False),
    (names.is_oci_repository_url, "oci://registry.example.org/Charts", False),
    (names.is_oci_repository_url, "https://registry.example.org/charts", False),
]


@pytest.mark.parametrize(("rule", "value", "accepted"), CASES, ids=[f"{r.__name__}:{v[:30]}" for r, v, _ in CASES])
def test_each_rule_accepts_exactly_its_grammar(rule, value, accepted):
    assert rule(value) is accepted


@pytest.mark.parametrize("rule", sorted({r for r, _, _ in CASES}, key=lambda r: r.__name__))
def test_non_strings_are_refused(rule):
    assert rule(None) is False and rule(5) is False


OCI_URLS = [
    ("oci://127.0.0.1:5000/charts", ("127.0.0.1:5000", "charts")),
    ("oci://registry.example.org/eo4eu-faas/charts/dev", ("registry.example.org", "eo4eu-faas/charts/dev")),
    ("oci://registry.example.org/charts/", ("registry.example.org", "charts")),
    ("oci://registry.example.org", ("registry.example.org", "")),
    ("oci://registry.example.org/", ("registry.example.org", "")),
    ("oci://[::1]:5000/a/b", ("[::1]:5000", "a/b")),
    ("oci://localhost:5000/x", ("localhost:5000", "x")),
    ("https://registry.example.org/charts", "form"),
    ("registry.example.org/charts", "form"),
    ("OCI://registry.example.org/charts", "form"),
    ("oci://", "form"),
    ("oci:///", "form"),
    ("oci:///charts", "host"),
    ("oci://bad host/charts", "host"),
    ("oci://-bad.example.org/charts", "host"),
    ("oci://registry.example.org/Charts", "path"),
    ("oci://registry.example.org/charts//x", "path"),
    ("oci://registry.example.org/-charts", "path"),
]


@pytest.mark.parametrize(("url", "expected"), OCI_URLS, ids=[u for u, _ in OCI_URLS])
def test_one_parser_of_oci_urls(url, expected):
    """names.parse_oci_url is the parser; the registry client's root check gives the same answer."""
    from faas_deployment.core.errors import UserError
    from faas_deployment.registry.registry_client import check_root

    if isinstance(expected, tuple):
        parsed = names.parse_oci_url(url)
        assert (parsed.host, parsed.path) == expected
        assert str(parsed) == url.rstrip("/") == check_root(url)
        assert parsed.reference == url.rstrip("/").removeprefix("oci://")
        assert names.is_oci_repository_url(url) is (bool(expected[1]) and not url.endswith("/"))
    else:
        with pytest.raises(names.OciUrlError) as caught:
            names.parse_oci_url(url)
        assert caught.value.part == expected
        with pytest.raises(UserError, match="--registry: "):
            check_root(url)
        assert not names.is_oci_repository_url(url)


def test_oci_url_parser_refuses_non_strings():
    for value in (None, 5, b"oci://h/x", ["oci://h/x"]):
        with pytest.raises(names.OciUrlError) as caught:
            names.parse_oci_url(value)
        assert caught.value.part == "form"
