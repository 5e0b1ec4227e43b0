"""The benchmark scripts run (tiny settings) and their outputs hold what the README quotes."""
import json

from bench import profile_step


def test_profile_accounts_for_the_step_and_finds_the_convolutions(tmp_path):
    out = tmp_path / "p.json"
    assert profile_step.main(["--steps", "2", "--warmup", "1", "--workers", "0",
                              "--variants", "fp32", "--device", "cpu", "--json", str(out)]) == 0
    prof = json.loads(out.read_text())
    assert set(prof) == {"baseline", "engine fp32"}
    for r in prof.values():
        total = sum(r["buckets_s"].values()) + r["unaccounted_s"]
        assert total >= 0.9 * r["wall_s"]
        assert max(r["buckets_s"], key=r["buckets_s"].get) == "convolution fwd+bwd"
    assert profile_step.bucket_of("aten::convolution_backward") == "convolution fwd+bwd"
    assert profile_step.bucket_of("aten::native_batch_norm") == "batch norm fwd+bwd"
