"""The throughput probe runs and compares like with like."""

from __future__ import annotations

import pytest

from trainables.throughput import main, measure_throughput


@pytest.mark.parametrize("name", ["convnet_tiny", "unet_tiny"])
def test_measure_throughput_reports_both_loops(name):
    result = measure_throughput(name, {"max_epochs": 1}, rounds=2, warmup=1)
    assert result.loop_samples_per_s > 0 and result.bare_samples_per_s > 0
    assert result.ratio == pytest.approx(result.loop_samples_per_s / result.bare_samples_per_s)
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert "samples/s" in result.summary()


def test_command_line(capsys):
    main(["convnet_tiny", '{"subset": 100}', "--rounds", "1", "--warmup", "0", "--json"])
    assert '"ratio"' in capsys.readouterr().out
