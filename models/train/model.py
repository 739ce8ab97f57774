# A Jamba-architecture language model in PyTorch, computing exactly the
# function of /work/shared/jamba-spec.md (and agentd's engine): Mamba mixers
# with RMSNorm on dt/B/C, conv with bias, A = -exp(A_log); attention without
# positional encoding on layers i % attn_period == attn_offset; MoE on layers
# i % expert_period == expert_offset with a softmax over all experts, top-k,
# no renormalisation, SwiGLU experts.
#
# Two scans: `exact` runs the recurrence step by step (the reference, used to
# compare with the engine); `chunk` (training) computes it chunk-parallel in
# closed form, clamping each step's log-decay at -CLAMP so exp(-cumsum) stays
# finite within a chunk. A clamped step still decays the state by e^-CLAMP,
# so the two differ only by terms that small.
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 3072
    d_model: int = 128
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ff: int = 256
    n_experts: int = 4
    top_k: int = 2
    attn_period: int = 8
    attn_offset: int = 4
    expert_period: int = 2
    expert_offset: int = 1
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 8
    eps: float = 1e-6
    context: int = 32768

    def is_attn(self, i):
        return i % self.attn_period == self.attn_offset

    def is_moe(self, i):
        return self.n_experts > 1 and i % self.expert_period == self.expert_offset


CHUNK = 16
CLAMP = 5.0


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def scan_exact(u, delta, A, Bm, Cm):
    b, t, d = u.shape
    s = u.new_zeros(b, d, A.shape[1])
    ys = []
    for i in range(t):
        s = torch.exp(delta[:, i, :, None] * A) * s + (delta[:, i] * u[:, i])[:, :, None] * Bm[:, i, None, :]
        ys.append((s * Cm[:, i, None, :]).sum(-1))
    return torch.stack(ys, 1)


def scan_chunk(u, delta, A, Bm, Cm):
    b, t, d = u.shape
    n = A.shape[1]
    L = CHUNK
    pad = (-t) % L
    if pad:
        u, delta = F.pad(u, (0, 0, 0, pad)), F.pad(delta, (0, 0, 0, pad))
        Bm, Cm = F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad))
    tt = t + pad
    dA = (delta.unsqueeze(-1) * A).clamp(min=-CLAMP).view(b, tt // L, L, d, n)
    bx = ((delta * u).unsqueeze(-1) * Bm.unsqueeze(2)).view(b, tt // L, L, d, n)
    cum = dA.cumsum(2)
    e = torch.exp(cum)
    w = (bx * torch.exp(-cum)).cumsum(2) * e
    s = u.new_zeros(b, 1, d, n)
    outs = []
    for wc, ec in zip(w.unbind(1), e.unbind(1)):
        sc = wc + ec * s
        outs.append(sc)
        s = sc[:, -1:]
    S = torch.stack(outs, 1).view(b, tt, d, n)
    y = (S * Cm.unsqueeze(2)).sum(-1)
    return y[:, :t]


class Mamba(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c.expand * c.d_model
        self.D, self.N, self.R, self.K = D, c.d_state, c.dt_rank, c.d_conv
        self.in_proj = nn.Linear(c.d_model, 2 * D, bias=False)
        self.conv1d = nn.Conv1d(D, D, c.d_conv, groups=D, padding=c.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(D, c.dt_rank + 2 * c.d_state, bias=False)
        self.dt_layernorm = RMSNorm(c.dt_rank, c.eps)
        self.b_layernorm = RMSNorm(c.d_state, c.eps)
        self.c_layernorm = RMSNorm(c.d_state, c.eps)
        self.dt_proj = nn.Linear(c.dt_rank, D, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, c.d_state + 1, dtype=torch.float32)).repeat(D, 1))
        self.D_skip = nn.Parameter(torch.ones(D))
        self.out_proj = nn.Linear(D, c.d_model, bias=False)
        # dt bias so that softplus(bias) spans [1e-3, 1e-1] as in Mamba.
        dt = torch.exp(torch.rand(D) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.scan = "chunk"

    def forward(self, h):
        t = h.shape[1]
        xz = self.in_proj(h)
        x, z = xz[..., : self.D], xz[..., self.D :]
        x = self.conv1d(x.transpose(1, 2))[..., :t].transpose(1, 2)
        u = F.silu(x)
        p = self.x_proj(u)
        dt = self.dt_layernorm(p[..., : self.R])
        Bm = self.b_layernorm(p[..., self.R : self.R + self.N])
        Cm = self.c_layernorm(p[..., self.R + self.N :])
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        y = (scan_exact if self.scan == "exact" else scan_chunk)(u, delta, A, Bm, Cm)
        y = y + u * self.D_skip
        y = y * F.silu(z)
        return self.out_proj(y)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.nkv = c.n_heads, c.n_kv_heads
        self.hd = c.d_model // c.n_heads
        self.q_proj = nn.Linear(c.d_model, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(c.d_model, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(c.d_model, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, c.d_model, bias=False)

    def forward(self, h):
        b, t, _ = h.shape
        q = self.q_proj(h).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.nkv, self.hd).transpose(1, 2)
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, 1)
        v = v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        mask = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(b, t, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.up_proj = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.down_proj = nn.Linear(c.d_ff, c.d_model, bias=False)

    def forward(self, h):
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.router = nn.Linear(c.d_model, c.n_experts, bias=False)
        self.experts = nn.ModuleList([MLP(c) for _ in range(c.n_experts)])
        self.k = c.top_k

    def forward(self, h):
        probs = self.router(h).softmax(-1)
        top, idx = probs.topk(self.k, -1)
        w = torch.zeros_like(probs).scatter(-1, idx, top)  # not renormalised
        out = 0
        for e, ex in enumerate(self.experts):
            out = out + w[..., e : e + 1] * ex(h)
        return out


class Layer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        self.input_layernorm = RMSNorm(c.d_model, c.eps)
        self.mixer = Attention(c) if c.is_attn(i) else Mamba(c)
        self.pre_ff_layernorm = RMSNorm(c.d_model, c.eps)
        self.ff = MoE(c) if c.is_moe(i) else MLP(c)

    def forward(self, h):
        h = h + self.mixer(self.input_layernorm(h))
        return h + self.ff(self.pre_ff_layernorm(h))


class Jamba(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab, c.d_model)
        self.layers = nn.ModuleList([Layer(c, i) for i in range(c.n_layers)])
        self.final_layernorm = RMSNorm(c.d_model, c.eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab, bias=False)
        for n, p in self.named_parameters():
            if p.dim() == 2 and "A_log" not in n:
                nn.init.normal_(p, std=0.02)
            if n.endswith("out_proj.weight") or n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layers))

    def set_scan(self, mode):
        for l in self.layers:
            if isinstance(l.mixer, Mamba):
                l.mixer.scan = mode

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for l in self.layers:
            h = l(h)
        return self.lm_head(self.final_layernorm(h))


def save(model, path, extra=None):
    torch.save({"config": asdict(model.c), "state": model.state_dict(), **(extra or {})}, path)


def load(path):
    ck = torch.load(path, map_location="cpu")
    m = Jamba(Config(**ck["config"]))
    m.load_state_dict(ck["state"])
    return m, ck
