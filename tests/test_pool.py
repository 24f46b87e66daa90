"""The plugin's exemplar pool: other tests' assertions, read as the miner reads them."""

from __future__ import annotations

import textwrap
import time

from pytest_kdassert.pool import ExemplarPool, file_entries, pool_files

TESTS = textwrap.dedent('''
    from shop import total

    def test_total_of_two():
        t = total([1, 2])
        assert t == 3

    def test_total_empty():
        t = total([])
        assert t == 0

    def test_wants_one():
        t = total([5])
        assert ...

    class TestCart:
        def test_count(self):
            n = len([1])
            self.assertEqual(n, 1)
''')


def test_entries_are_the_assertions_masked_as_the_miner_masks_them(tmp_path):
    path = tmp_path / "test_shop.py"
    path.write_text(TESTS)
    entries = file_entries(path, "test_shop.py")
    assert [(e.test_id, e.assertion) for e in entries] == [
        ("test_shop.py::test_total_of_two#0", "assert t == 3"),
        ("test_shop.py::test_total_empty#0", "assert t == 0"),
        ("test_shop.py::TestCart.test_count#0", "self.assertEqual(n, 1)"),
    ]
    assert entries[0].masked_test == "def test_total_of_two():\n    t = total([1, 2])\n    <AssertPlaceHolder>"


def test_query_never_returns_the_sites_own_test(tmp_path):
    (tmp_path / "test_shop.py").write_text(TESTS)
    pool = ExemplarPool(pool_files([tmp_path / "test_shop.py"]), lambda p: p.name)
    site = "def test_total_of_two():\n    t = total([1, 2])\n    <AssertPlaceHolder>"
    found = pool.query("test_shop.py", "test_total_of_two", site)
    assert [e.entry.assertion for e in found][:1] == ["assert t == 0"]
    assert all("test_total_of_two" not in e.entry.test_id for e in found)


def test_sibling_test_files_join_the_pool(tmp_path):
    (tmp_path / "test_a.py").write_text("def test_a():\n    assert 1\n")
    (tmp_path / "test_b.py").write_text("def test_b():\n    assert 2\n")
    (tmp_path / "helper.py").write_text("x = 1\n")
    assert [p.name for p in pool_files([tmp_path / "test_a.py"])] == ["test_a.py", "test_b.py"]


def test_unreadable_files_are_left_out(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_bytes(b"def test_x(:\n")
    assert file_entries(bad, "test_bad.py") == []


def test_indexing_a_suite_of_2000_tests_is_fast(tmp_path):
    body = "\n".join(f"def test_{i}():\n    v{i} = f({i})\n    assert v{i} == {i * 2}\n"
                     for i in range(2000))
    (tmp_path / "test_big.py").write_text(body)
    start = time.perf_counter()
    pool = ExemplarPool([tmp_path / "test_big.py"], lambda p: p.name)
    assert len(pool) == 2000
    assert time.perf_counter() - start < 10  # about 0.3 s here; generous for busy machines
