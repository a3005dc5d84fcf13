"""benchmarks/latency.py --resume on a fresh clone starts from the published JSON."""

import json

from tests.helpers.bench import bench_module


def _latency():
    return bench_module("latency")


def test_published_json_seeds_an_empty_run_folder(tmp_path):
    published = tmp_path / "latency_x_T8_n10.json"
    published.write_text(json.dumps({"methods": {"if-max": {}}, "meta": {"run": {"a": 1}}}))
    out_dir = tmp_path / "runs" / "x" / "latency-T8-n10"
    _latency().seed_from_published(published, out_dir)
    assert json.loads((out_dir / "results.json").read_text()) == json.loads(published.read_text())


def test_an_existing_run_is_kept_and_a_missing_file_is_ignored(tmp_path):
    latency = _latency()
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / "results.json").write_text('{"mine": 1}')
    published = tmp_path / "published.json"
    published.write_text('{"theirs": 1}')
    latency.seed_from_published(published, out_dir)
    assert json.loads((out_dir / "results.json").read_text()) == {"mine": 1}
    latency.seed_from_published(tmp_path / "absent.json", tmp_path / "other")
    assert not (tmp_path / "other").exists()
