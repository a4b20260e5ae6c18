"""ssmbook.lm: RMSNorm, and the residual LM frame's step mode against its forward pass."""
import pytest
import torch

from ssmbook.delta import DeltaNetBlock
from ssmbook.lm import RMSNorm, ResidualLM
from ssmbook.mamba import MambaBlock


def test_rmsnorm():
    x = torch.randn(3, 5, dtype=torch.float64)
    n = RMSNorm(5).double()
    expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + n.eps)
    torch.testing.assert_close(n(x), expected)


def test_step_mode_equals_forward_for_any_block_with_a_state():
    torch.manual_seed(0)
    lm = ResidualLM(11, 8, 2, lambda d: MambaBlock(d, d_state=3, d_conv=3, backend="torch")).double().eval()
    tokens = torch.randint(0, 11, (2, 6))
    with torch.no_grad():
        full = lm(tokens)
        state = lm.allocate_state(2)
        steps = []
        for t in range(6):
            logits, state = lm.step(tokens[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full)
    assert lm.lm_head.weight is lm.embedding.weight                      # tied


def test_residual_lm_errors():
    with pytest.raises(TypeError, match="make_block"):
        ResidualLM(11, 8, 1, "delta")
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        ResidualLM(11, 8, 0, lambda d: DeltaNetBlock(d, 2, 4))
    lm = ResidualLM(11, 8, 1, lambda d: DeltaNetBlock(d, 2, 4))
    with pytest.raises(ValueError, match=r"tokens must hold token ids in \[0, vocab_size=11\)"):
        lm(torch.full((1, 3), 11))
    with pytest.raises(ValueError, match="state must be a list of 1 block states"):
        lm.step(torch.zeros(2, dtype=torch.int64), [])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_step_can_be_captured_in_a_cuda_graph():
    # The token check reads no value while a graph is being captured (reading one would sync, which
    # capture forbids); the replayed step gives the eager step's logits, and a bad token is still
    # refused outside capture.
    torch.manual_seed(0)
    lm = ResidualLM(11, 8, 2, lambda d: MambaBlock(d, d_state=3, d_conv=3, backend="torch")).cuda().eval()
    tok = torch.randint(0, 11, (2,), device="cuda")
    with torch.no_grad():
        state = lm.allocate_state(2, device="cuda")
        expected, _ = lm.step(tok, state)  # step does not modify the state it is given
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            lm.step(tok, state)  # warm-up outside capture
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits, _ = lm.step(tok, state)
        graph.replay()
    torch.testing.assert_close(logits, expected)
    with pytest.raises(ValueError, match="token_t"):
        lm.step(torch.full((2,), 11, device="cuda"), lm.allocate_state(2, device="cuda"))
