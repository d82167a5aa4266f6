import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_encoders.py"


def test_quick_benchmark_writes_a_markdown_table(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_encoders", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "encoders.md"
    bench.main(["--quick", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| space | batch | texts/s | images/s | audio s/s |"
    assert len(rows) == 5
    for row in rows[1:]:
        figures = [float(cell) for cell in row.strip("|").split("|")[2:]]
        assert all(f > 0 for f in figures), row
