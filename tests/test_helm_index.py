"""helm_index: the local repository's index file, fuzzed in both reading paths (never a traceback)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment.core.errors import UserError
from faas_deployment.registry.helm_index import Index, stamp_of

ENTRY = {"apiVersion": "v2", "name": "faas-x", "version": "1.0.0", "digest": "a" * 64, "urls": ["faas-x-1.0.0.tgz"]}


def lines_of_the_layout():
    """Text shaped like this module's layout, with pieces missing or broken."""
    piece = st.sampled_from([
        "apiVersion: v1\n", "entries:\n", '  "faas-x":\n', '  "other":\n', '  - {"version": "1.0.0", "digest": "aa"}\n',
        "  - {not json\n", "  - [1, 2]\n", '  - "text"\n', 'generated: "2020"\n', "generated: ", "  - ", "\n", "",
    ])
    return st.lists(piece, max_size=8).map(lambda parts: "apiVersion: v1\n" + "".join(parts))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=200), lines_of_the_layout().map(str.encode)), trusted=st.booleans())
def test_any_bytes_give_an_index_or_a_clear_error(tmp_path_factory, body, trusted):
    path = tmp_path_factory.mktemp("index") / "index.yaml"
    path.write_bytes(body)
    try:
        index = Index.load(path, stamp_of(path) if trusted else None)
        versions = index.versions("faas-x")
        text = index.with_versions("faas-x", [ENTRY, *[v for v in versions if isinstance(v, dict)]])
    except UserError as exc:
        assert str(exc).startswith(f"{path}: not a Helm repository index")
    else:
        assert all(isinstance(v, dict) for v in versions)
        path.write_bytes(text)
        again = Index.load(path)  # what was written reads back in full
        assert again.versions("faas-x")[0] == ENTRY


def test_the_trusted_path_reads_only_what_the_stamp_vouches_for(tmp_path):
    path = tmp_path / "index.yaml"
    path.write_bytes(Index(path).with_versions("faas-x", [ENTRY]))
    stamp = stamp_of(path)
    assert Index.load(path, stamp).text is not None
    path.write_text(path.read_text().replace('"faas-x":', '"faas-y":'))  # same size: the mtime tells
    import os
    os.utime(path, ns=(stamp[1] + 1_000_000, stamp[1] + 1_000_000))
    index = Index.load(path, stamp)
    assert index.text is None and index.versions("faas-x") == [] and index.versions("faas-y") == [ENTRY]


@pytest.mark.parametrize("content", [b"entries: []\n", b"[1, 2]\n", b"a: [\n", b"\xff\xfe"])
def test_a_broken_index_names_the_file(tmp_path, content):
    path = tmp_path / "index.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match="index.yaml: not a Helm repository index"):
        Index.load(path)
