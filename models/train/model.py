# A Jamba-architecture language model in PyTorch, computing exactly the
# function of /work/shared/jamba-spec.md (and agentd's engine): Mamba mixers
# with RMSNorm on dt/B/C, conv with bias, A = -exp(A_log); attention without
# positional encoding on layers i % attn_period == attn_offset; MoE on layers
# i % expert_period == expert_offset with a softmax over all experts, top-k,
# no renormalisation, SwiGLU experts.
#
# Three scans: `exact` runs the recurrence step by step in PyTorch (the
# reference, used to compare with the engine); `kernel` (training, the
# default) is the same recurrence in C with a hand-written backward (scan.c,
# scan.py); `chunk` (the fallback when no C compiler works) computes it
# chunk-parallel in closed form, clamping each step's log-decay at -CLAMP so
# exp(-cumsum) stays finite within a chunk. A clamped step still decays the
# state by e^-CLAMP, so it differs from the others only by terms that small.
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

import scan as S


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
    # lm_head shares the embedding matrix (GGUF: no output.weight; the engine
    # then uses token_embd). With a vocabulary of thousands, copying a token
    # from the context needs an attention circuit that maps each embedding
    # back to its own logit: tied, one near-identity map serves every token
    # and copying is learned in hundreds of steps; untied it must be learned
    # token by token (measured: no progress in 300 steps on a 3000-token copy
    # task that the tied model learned to 96% in the same steps).
    tie_embeddings: bool = False

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
    """Chunk-parallel scan: closed form inside chunks of CHUNK steps, and a
    short loop over chunk boundaries on (b, d, n) states only, so no Python
    loop touches a (b, t, d, n) tensor. Inside a chunk the state at step t is
    e_t * (Z_t + s0) with e_t = exp(cum_t) (cumulative log-decay from the
    chunk start) and Z_t = sum_{j<=t} dt_j u_j B_j / e_j."""
    b, t, d = u.shape
    n = A.shape[1]
    L = CHUNK
    pad = (-t) % L
    if pad:
        u, delta = F.pad(u, (0, 0, 0, pad)), F.pad(delta, (0, 0, 0, pad))
        Bm, Cm = F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad))
    tt = t + pad
    nc = tt // L
    cum = (delta.unsqueeze(-1) * A).clamp(min=-CLAMP).view(b, nc, L, d, n).cumsum(2)
    e = torch.exp(cum)
    bx = ((delta * u).unsqueeze(-1) * Bm.unsqueeze(2)).view(b, nc, L, d, n)
    Z = (bx / e).cumsum(2)
    # State entering each chunk: s_{c+1} = e_last_c * (Z_last_c + s_c).
    # select/unbind rather than indexing: each `x[:, c]` would add a slice
    # node whose backward zero-fills and adds a full-size gradient.
    e_last, z_last = e.select(2, L - 1).unbind(1), Z.select(2, L - 1).unbind(1)
    s = u.new_zeros(b, d, n)
    starts = [s]
    for c in range(nc - 1):
        s = e_last[c] * (z_last[c] + s)
        starts.append(s)
    S = e * (Z + torch.stack(starts, 1).unsqueeze(2))
    y = (S.view(b, tt, d, n) * Cm.unsqueeze(2)).sum(-1)
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
        self.scan = "kernel"

    def forward(self, h):
        t = h.shape[1]
        xz = self.in_proj(h)
        x, z = xz[..., : self.D], xz[..., self.D :]
        # Causal depthwise conv as K shifted products: the same function as
        # self.conv1d, but PyTorch's depthwise conv backward is very slow on CPU.
        w = self.conv1d.weight[:, 0, :]
        xp = F.pad(x, (0, 0, self.K - 1, 0))
        acc = self.conv1d.bias
        for k in range(self.K):
            acc = acc + xp[:, k : k + t] * w[:, k]
        x = acc
        u = F.silu(x)
        p = self.x_proj(u)
        dt = self.dt_layernorm(p[..., : self.R])
        Bm = self.b_layernorm(p[..., self.R : self.R + self.N])
        Cm = self.c_layernorm(p[..., self.R + self.N :])
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        if self.scan == "exact":
            y = scan_exact(u, delta, A, Bm, Cm)
        elif self.scan == "kernel" and S.available():
            y = S.scan(u, delta, A, Bm, Cm)
        else:
            y = scan_chunk(u, delta, A, Bm, Cm)
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
        # Scale and causal mask folded into one baddbmm: no extra passes over
        # the (t, t) scores, which dominate long training sequences.
        mask = torch.full((t, t), float("-inf"), device=h.device).triu(1)
        q = q.reshape(b * self.nh, t, self.hd)
        k = k.reshape(b * self.nh, t, self.hd).transpose(1, 2)
        att = torch.baddbmm(mask, q, k, alpha=1.0 / math.sqrt(self.hd)).softmax(-1)
        o = (att @ v.reshape(b * self.nh, t, self.hd)).view(b, self.nh, t, self.hd)
        o = o.transpose(1, 2).reshape(b, t, self.nh * self.hd)
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
        if c.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        for n, p in self.named_parameters():
            if p.dim() == 2 and "A_log" not in n:
                nn.init.normal_(p, std=0.02)
            if n.endswith("out_proj.weight") or n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layers))

    def set_scan(self, mode):
        for l in self.layers:
            if isinstance(l.mixer, Mamba):
                l.mixer.scan = mode

    def hidden(self, ids):
        """Final normalised hidden states; training applies lm_head only
        where the loss is taken."""
        h = self.embed_tokens(ids)
        for l in self.layers:
            h = l(h)
        return self.final_layernorm(h)

    def forward(self, ids):
        return self.lm_head(self.hidden(ids))


def save(model, path, extra=None):
    torch.save({"config": asdict(model.c), "state": model.state_dict(), **(extra or {})}, path)


def load(path):
    ck = torch.load(path, map_location="cpu")
    m = Jamba(Config(**ck["config"]))
    m.load_state_dict(ck["state"])
    return m, ck
