"""AdamW over float32 master copies of a low-precision policy's parameters.

A bfloat16 weight near 0.02 is stored to about 1.2e-4, while AdamW at the learning rates of RL
post-training moves it by about the learning rate (1e-6 by default). Stepped directly, such a
policy hardly trains: one AdamW step at 1e-6 on a 576 × 576 matrix of bfloat16 weights left
98 % of them as they were: only the 2 % closest to zero, where the resolution is fine
enough, moved at all. As in mixed-precision training elsewhere (Megatron, DeepSpeed,
verl's FSDP workers), the optimiser here steps float32 copies of those parameters, with its
moments in float32, and rounds the model's weights from them after every step. Forward,
backward and decoding still run on the bfloat16 weights. Unlike Megatron and DeepSpeed, the
gradients are still summed over micro-batches and clipped in bfloat16 and cast to float32 only
for the step: their relative rounding (about 0.4 %) is far below a policy gradient's noise,
whereas the rounding of the weights removed whole steps. It costs 8 bytes a parameter (the
copy and the moments' extra width), and on a GPU two passes over the parameters per step.

The master copies are part of the optimiser's state dict, so a resumed run carries on from
them rather than from the rounded weights of the checkpoint's model files.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

MASTER_KEY = "master_weights"
LOW_PRECISION = (torch.bfloat16, torch.float16)


class MasterWeightsAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` whose low-precision parameters are stepped as float32 copies.

    Other parameters are stepped as themselves. Keyword arguments are AdamW's. The step is
    AdamW's own, between a pre-hook that casts the gradients and a post-hook that rounds the
    weights (an overridden ``step`` would run torch's step hooks and profiler marker twice:
    torch wraps the step of both classes).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], **adamw_kwargs) -> None:
        params = list(params)
        masters = [p.detach().to(torch.float32, copy=True).requires_grad_(p.requires_grad)
                   if p.dtype in LOW_PRECISION else p for p in params]
        self._pairs = [(p, m) for p, m in zip(params, masters) if m is not p]
        super().__init__(masters, **adamw_kwargs)
        self.register_step_pre_hook(_cast_gradients)
        self.register_step_post_hook(_round_weights)

    @property
    def low_precision_params(self) -> list[torch.nn.Parameter]:
        return [p for p, _ in self._pairs]

    @property
    def master_params(self) -> list[torch.Tensor]:
        """The float32 copies, in the order of ``low_precision_params``."""
        return [m for _, m in self._pairs]

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for p in self.low_precision_params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state[MASTER_KEY] = self.master_params
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """AdamW's state, and the master copies where the dict has them. A dict saved by a
        plain AdamW (a checkpoint written before master weights) starts them from the current
        weights."""
        state_dict = dict(state_dict)
        saved = state_dict.pop(MASTER_KEY, None)
        if saved is not None:
            shapes = [tuple(m.shape) for m in self.master_params]
            if [tuple(s.shape) for s in saved] != shapes:
                raise ValueError(
                    f"optimizer state: {len(saved)} master weights do not match the model's "
                    f"{len(shapes)} low-precision parameters (or their shapes differ)")
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for i, (p, m) in enumerate(self._pairs):
                if saved is None:
                    m.copy_(p)
                else:
                    m.copy_(saved[i])
                    p.copy_(m)


def _cast_gradients(optimizer: MasterWeightsAdamW, args, kwargs) -> None:
    """Before AdamW's step: the low-precision gradients, in float32, on the master copies."""
    # args are step's own, self first
    if (args[1] if len(args) > 1 else kwargs.get("closure")) is not None:
        raise TypeError("MasterWeightsAdamW.step takes no closure")
    for p, m in optimizer._pairs:
        m.grad = None if p.grad is None else p.grad.to(torch.float32)


@torch.no_grad()
def _round_weights(optimizer: MasterWeightsAdamW, args, kwargs) -> None:
    """After AdamW's step: the model's weights rounded from the master copies."""
    if optimizer._pairs:
        torch._foreach_copy_(optimizer.low_precision_params, optimizer.master_params)
        for m in optimizer.master_params:
            m.grad = None  # a float32 gradient lives only during the step
