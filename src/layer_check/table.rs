//! The dispatch table: every command of `tinymoe layer`, its arrays with their shapes, its
//! flags with their defaults, and its outputs. Run functions read their arrays' shapes from
//! here, and `tinymoe layer list` prints this, so the two cannot disagree.
//!
//! To add a layer: one [`Entry`] below and its run function (in `layers.rs`, `optim.rs`, or a
//! new file beside them). Parameter names are the engine's `Tensors` names, and the outputs
//! list `d` + each of them, in the engine's order.

use super::{layers, moe, optim, ArrayDoc, Entry, FlagDoc, Kind, Slot};

const fn input(name: &'static str, dims: &'static [&'static str]) -> ArrayDoc {
    ArrayDoc { slot: Slot::Input, name, dims }
}
const fn param(name: &'static str, dims: &'static [&'static str]) -> ArrayDoc {
    ArrayDoc { slot: Slot::Params, name, dims }
}
const fn dy(dims: &'static [&'static str]) -> ArrayDoc {
    ArrayDoc { slot: Slot::Dy, name: "dy", dims }
}
const fn out(name: &'static str, dims: &'static [&'static str]) -> ArrayDoc {
    ArrayDoc { slot: Slot::Output, name, dims }
}
const fn flag(flag: &'static str, default: Option<&'static str>, help: &'static str) -> FlagDoc {
    FlagDoc { flag, default, help }
}

const EPS_LN: FlagDoc = flag("--eps", Some("1e-5"), "added to the variance (PyTorch's default)");
const HEADS: FlagDoc = flag("--heads", None, "number of attention heads; d_model must be divisible by it");
const CAUSAL: FlagDoc = flag("--causal", Some("off"), "query i sees only keys j ≤ i");

/// x and dy `[..., d]`, y and dx the same: the element-wise activations and the softmaxes.
const ROW_WISE: &[ArrayDoc] =
    &[input("x", &["...", "d"]), dy(&["...", "d"]), out("y", &["...", "d"]), out("dx", &["...", "d"])];

/// Attention: x and the mask, the four projections q, k, v, o (each a Linear [d_model, d_model]).
const ATTENTION: &[ArrayDoc] = &[
    input("x", &["batch", "seq", "d_model"]),
    ArrayDoc { slot: Slot::Mask, name: "mask", dims: &["batch", "seq"] },
    param("q.w", &["d_model", "d_model"]),
    param("q.b", &["d_model"]),
    param("k.w", &["d_model", "d_model"]),
    param("k.b", &["d_model"]),
    param("v.w", &["d_model", "d_model"]),
    param("v.b", &["d_model"]),
    param("o.w", &["d_model", "d_model"]),
    param("o.b", &["d_model"]),
    dy(&["batch", "seq", "d_model"]),
    out("y", &["batch", "seq", "d_model"]),
    out("dx", &["batch", "seq", "d_model"]),
    out("dq.w", &["d_model", "d_model"]),
    out("dq.b", &["d_model"]),
    out("dk.w", &["d_model", "d_model"]),
    out("dk.b", &["d_model"]),
    out("dv.w", &["d_model", "d_model"]),
    out("dv.b", &["d_model"]),
    out("do.w", &["d_model", "d_model"]),
    out("do.b", &["d_model"]),
];

/// The block: ln1, attention, ln2 and a two-layer MLP, in the engine's tensor order.
const BLOCK: &[ArrayDoc] = &[
    input("x", &["batch", "seq", "d_model"]),
    ArrayDoc { slot: Slot::Mask, name: "mask", dims: &["batch", "seq"] },
    param("ln1.weight", &["d_model"]),
    param("ln1.bias", &["d_model"]),
    param("attn.q.w", &["d_model", "d_model"]),
    param("attn.q.b", &["d_model"]),
    param("attn.k.w", &["d_model", "d_model"]),
    param("attn.k.b", &["d_model"]),
    param("attn.v.w", &["d_model", "d_model"]),
    param("attn.v.b", &["d_model"]),
    param("attn.o.w", &["d_model", "d_model"]),
    param("attn.o.b", &["d_model"]),
    param("ln2.weight", &["d_model"]),
    param("ln2.bias", &["d_model"]),
    param("mlp.layers.0.w", &["d_model", "d_ff"]),
    param("mlp.layers.0.b", &["d_ff"]),
    param("mlp.layers.1.w", &["d_ff", "d_model"]),
    param("mlp.layers.1.b", &["d_model"]),
    dy(&["batch", "seq", "d_model"]),
    out("y", &["batch", "seq", "d_model"]),
    out("dx", &["batch", "seq", "d_model"]),
    out("dln1.weight", &["d_model"]),
    out("dln1.bias", &["d_model"]),
    out("dattn.q.w", &["d_model", "d_model"]),
    out("dattn.q.b", &["d_model"]),
    out("dattn.k.w", &["d_model", "d_model"]),
    out("dattn.k.b", &["d_model"]),
    out("dattn.v.w", &["d_model", "d_model"]),
    out("dattn.v.b", &["d_model"]),
    out("dattn.o.w", &["d_model", "d_model"]),
    out("dattn.o.b", &["d_model"]),
    out("dln2.weight", &["d_model"]),
    out("dln2.bias", &["d_model"]),
    out("dmlp.layers.0.w", &["d_model", "d_ff"]),
    out("dmlp.layers.0.b", &["d_ff"]),
    out("dmlp.layers.1.w", &["d_ff", "d_model"]),
    out("dmlp.layers.1.b", &["d_model"]),
];

/// Adam and AdamW read and write the same arrays: any named parameters, their gradients,
/// optionally the moments of earlier steps.
const ADAM: &[ArrayDoc] = &[
    param("<name>", &["any"]),
    ArrayDoc { slot: Slot::Grads, name: "<name>", dims: &["any"] },
    ArrayDoc { slot: Slot::State, name: "exp_avg.<name>", dims: &["any"] },
    ArrayDoc { slot: Slot::State, name: "exp_avg_sq.<name>", dims: &["any"] },
    out("<name>", &["any"]),
    out("exp_avg.<name>", &["any"]),
    out("exp_avg_sq.<name>", &["any"]),
];

const LR: FlagDoc = flag("--lr", Some("1e-3"), "learning rate (PyTorch's default)");
const BETA1: FlagDoc = flag("--beta1", Some("0.9"), "decay of the first moment");
const BETA2: FlagDoc = flag("--beta2", Some("0.999"), "decay of the second moment");
const EPS_ADAM: FlagDoc = flag("--eps", Some("1e-8"), "added to √v̂");
const STEP: FlagDoc = flag("--step", Some("1"), "t of this step, for the bias correction (1 = the first)");

/// Every command of `tinymoe layer`, in the order `layer list` prints them.
pub static TABLE: &[Entry] = &[
    Entry {
        name: "linear",
        kind: Kind::Layer,
        formula: "y = x·W + b",
        arrays: &[
            input("x", &["...", "d_in"]),
            param("w", &["d_in", "d_out"]),
            param("b", &["d_out"]),
            dy(&["...", "d_out"]),
            out("y", &["...", "d_out"]),
            out("dx", &["...", "d_in"]),
            out("dw", &["d_in", "d_out"]),
            out("db", &["d_out"]),
        ],
        flags: &[],
        note: "w is [d_in, d_out]; PyTorch's nn.Linear.weight is [d_out, d_in]: w = weight.T",
        run: layers::run_linear,
    },
    Entry {
        name: "relu",
        kind: Kind::Layer,
        formula: "y = max(x, 0)",
        arrays: ROW_WISE,
        flags: &[],
        note: "element-wise; relu'(0) = 0, as in PyTorch",
        run: layers::run_relu,
    },
    Entry {
        name: "gelu",
        kind: Kind::Layer,
        formula: "y = x·Φ(x) = ½x(1 + erf(x/√2))",
        arrays: ROW_WISE,
        flags: &[],
        note: "the exact GELU: PyTorch's F.gelu(x)",
        run: layers::run_gelu,
    },
    Entry {
        name: "gelu-tanh",
        kind: Kind::Layer,
        formula: "y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))",
        arrays: ROW_WISE,
        flags: &[],
        note: "GPT-2's GELU: PyTorch's F.gelu(x, approximate=\"tanh\")",
        run: layers::run_gelu_tanh,
    },
    Entry {
        name: "softmax",
        kind: Kind::Layer,
        formula: "y = exp(x − max x) / Σ exp(x − max x), over the last axis",
        arrays: ROW_WISE,
        flags: &[],
        note: "F.softmax(x, dim=-1)",
        run: layers::run_softmax,
    },
    Entry {
        name: "log-softmax",
        kind: Kind::Layer,
        formula: "y = x − max x − log Σ exp(x − max x), over the last axis",
        arrays: ROW_WISE,
        flags: &[],
        note: "F.log_softmax(x, dim=-1)",
        run: layers::run_log_softmax,
    },
    Entry {
        name: "layer-norm",
        kind: Kind::Layer,
        formula: "y = weight ⊙ (x − μ)/√(σ² + eps) + bias, over the last axis",
        arrays: &[
            input("x", &["...", "d"]),
            param("weight", &["d"]),
            param("bias", &["d"]),
            dy(&["...", "d"]),
            out("y", &["...", "d"]),
            out("dx", &["...", "d"]),
            out("dweight", &["d"]),
            out("dbias", &["d"]),
        ],
        flags: &[EPS_LN],
        note: "nn.LayerNorm(d): the same names and shapes; σ² is the biased variance (÷ d)",
        run: layers::run_layer_norm,
    },
    Entry {
        name: "embedding",
        kind: Kind::Layer,
        formula: "y[b, t] = tok[ids[b, t]] + pos[t]",
        arrays: &[
            input("ids", &["batch", "seq"]),
            param("tok", &["vocab", "d_model"]),
            param("pos", &["max_seq", "d_model"]),
            dy(&["batch", "seq", "d_model"]),
            out("y", &["batch", "seq", "d_model"]),
            out("dtok", &["vocab", "d_model"]),
            out("dpos", &["max_seq", "d_model"]),
        ],
        flags: &[flag("--pad-id", Some("none"), "this id's row of tok gets no gradient (nn.Embedding's padding_idx)")],
        note: "ids are integers (no dx); seq ≤ max_seq; tok = nn.Embedding(vocab, d_model).weight",
        run: layers::run_embedding,
    },
    Entry {
        name: "attention",
        kind: Kind::Layer,
        formula: "y = concat_h(softmax(Q_h·K_hᵀ/√d_head + mask)·V_h)·W_o + b_o, Q = x·W_q + b_q, …",
        arrays: ATTENTION,
        flags: &[HEADS, CAUSAL],
        note: "mask: 1 = real token, 0 = padding (hides that key); nn.MultiheadAttention fuses q, k, v \
               into in_proj_weight [3·d_model, d_model] and inverts the mask (True = padding)",
        run: layers::run_attention,
    },
    Entry {
        name: "block",
        kind: Kind::Layer,
        formula: "h = x + attn(ln1(x)),  y = h + mlp(ln2(h)),  mlp = Linear → act → Linear",
        arrays: BLOCK,
        flags: &[
            HEADS,
            CAUSAL,
            EPS_LN,
            flag("--act", Some("gelu-tanh"), "the MLP's activation: relu, gelu or gelu-tanh"),
        ],
        note: "the pre-LN GPT-2 block, no dropout; both LayerNorms use --eps",
        run: layers::run_block,
    },
    Entry {
        name: "mlp",
        kind: Kind::Layer,
        formula: "h = act(h·W_i + b_i) for i < L−1,  y = h·W_{L−1} + b_{L−1}",
        arrays: &[
            input("x", &["...", "d0"]),
            param("layers.{i}.w", &["d{i}", "d{i+1}"]),
            param("layers.{i}.b", &["d{i+1}"]),
            dy(&["...", "d{L}"]),
            out("y", &["...", "d{L}"]),
            out("dx", &["...", "d0"]),
            out("dlayers.{i}.w", &["d{i}", "d{i+1}"]),
            out("dlayers.{i}.b", &["d{i+1}"]),
        ],
        flags: &[flag("--act", Some("relu"), "the hidden activation: relu, gelu or gelu-tanh")],
        note: "i = 0 … L−1, L ≥ 1 layers (as many as the .npz holds); no activation after the last; no dropout",
        run: layers::run_mlp,
    },
    Entry {
        name: "mixture",
        kind: Kind::Layer,
        formula: "g = softmax(gate(x)),  y = Σ_e g[:, e] ⊙ expert_e(x)",
        arrays: &[
            input("x", &["...", "d0"]),
            param("gate.layers.{i}.w", &["g{i}", "g{i+1}"]),
            param("gate.layers.{i}.b", &["g{i+1}"]),
            param("experts.{e}.layers.{i}.w", &["d{i}", "d{i+1}"]),
            param("experts.{e}.layers.{i}.b", &["d{i+1}"]),
            dy(&["...", "d{L}"]),
            out("y", &["...", "d{L}"]),
            out("dx", &["...", "d0"]),
            out("dgate.layers.{i}.w", &["g{i}", "g{i+1}"]),
            out("dgate.layers.{i}.b", &["g{i+1}"]),
            out("dexperts.{e}.layers.{i}.w", &["d{i}", "d{i+1}"]),
            out("dexperts.{e}.layers.{i}.b", &["d{i+1}"]),
        ],
        flags: &[flag("--act", Some("relu"), "the hidden activation of the gate and the experts")],
        note: "dense soft mixture of MLPs; every expert has the same sizes; the gate is an MLP of its own \
               depth with g0 = d0 and its last g = n_experts (the number of experts.{e} in the .npz)",
        run: layers::run_mixture,
    },
    Entry {
        name: "router",
        kind: Kind::Layer,
        formula: "z = x·W + b (linear gate), or z = relu(x·W₀ + b₀)·W₁ + b₁ (feed-forward gate)",
        arrays: &[
            input("x", &["...", "d0"]),
            param("net.layers.{i}.w", &["d{i}", "d{i+1}"]),
            param("net.layers.{i}.b", &["d{i+1}"]),
            dy(&["...", "d{L}"]),
            out("y", &["...", "d{L}"]),
            out("dx", &["...", "d0"]),
            out("dnet.layers.{i}.w", &["d{i}", "d{i+1}"]),
            out("dnet.layers.{i}.b", &["d{i+1}"]),
        ],
        flags: &[],
        note: "the MoE router's clean logits, one per expert (d{L} = n_experts; L = 1 or 2 layers, ReLU between); \
               a noisy router's noise is training-only, so noise.w and noise.b are not read",
        run: moe::run_router,
    },
    Entry {
        name: "top-k",
        kind: Kind::Layer,
        formula: "g[u, e] = exp(z[u, e]) / Σ_{j ∈ top-k(z[u])} exp(z[u, j]) for e in the top k, else 0",
        arrays: &[
            input("logits", &["...", "n_experts"]),
            ArrayDoc { slot: Slot::Mask, name: "mask", dims: &["..."] },
            dy(&["...", "n_experts"]),
            out("y", &["...", "n_experts"]),
            out("dx", &["...", "n_experts"]),
        ],
        flags: &[flag("--k", None, "experts per unit (Switch: 1, Mixtral: 2)")],
        note: "y holds the gates; the choice itself has no gradient; ties go to the lower index; no capacity \
               limit; masked units choose nothing. PyTorch: v, i = z.topk(k); g = zeros.scatter(-1, i, v.softmax(-1))",
        run: moe::run_top_k,
    },
    Entry {
        name: "cross-entropy",
        kind: Kind::Loss,
        formula: "loss = mean over rows with t ≠ ignore of (logsumexp(z) − z[t])",
        arrays: &[
            input("logits", &["...", "classes"]),
            ArrayDoc { slot: Slot::Targets, name: "targets", dims: &["..."] },
            out("loss", &[]),
            out("dx", &["...", "classes"]),
        ],
        flags: &[flag(
            "--ignore-index",
            Some("-100"),
            "rows with this target count neither in the loss nor in the mean",
        )],
        note: "F.cross_entropy(logits, targets) (mean, ignore_index=-100); loss.npy is 0-d; dx = ∂loss/∂logits; \
               no real rows: loss 0",
        run: layers::run_cross_entropy,
    },
    Entry {
        name: "switch-loss",
        kind: Kind::Loss,
        formula: "loss = coef·E·Σ_e f_e·P_e,  f = share of the top-k choices, P = mean of softmax(z) over real rows",
        arrays: &[
            input("logits", &["...", "n_experts"]),
            ArrayDoc { slot: Slot::Mask, name: "mask", dims: &["..."] },
            out("loss", &[]),
            out("dx", &["...", "n_experts"]),
        ],
        flags: &[
            flag("--coef", Some("1e-2"), "α (the Switch Transformer's)"),
            flag("--k", Some("1"), "f counts each unit's top-k choices of these logits"),
        ],
        note: "Switch Transformer load balancing; f is a constant (not differentiated); padding units (mask 0) \
               count nowhere; uniform routing gives loss = coef",
        run: moe::run_switch_loss,
    },
    Entry {
        name: "z-loss",
        kind: Kind::Loss,
        formula: "loss = coef · mean over real rows of (logsumexp z)²",
        arrays: &[
            input("logits", &["...", "n_experts"]),
            ArrayDoc { slot: Slot::Mask, name: "mask", dims: &["..."] },
            out("loss", &[]),
            out("dx", &["...", "n_experts"]),
        ],
        flags: &[flag("--coef", Some("1e-3"), "β (ST-MoE's)")],
        note: "the ST-MoE router z-loss; padding units (mask 0) count nowhere",
        run: moe::run_z_loss,
    },
    Entry {
        name: "adam",
        kind: Kind::Optimizer,
        formula: "g += λθ;  m = β₁m + (1−β₁)g;  v = β₂v + (1−β₂)g²;  θ −= lr·m̂/(√v̂ + eps)",
        arrays: ADAM,
        flags: &[LR, BETA1, BETA2, EPS_ADAM, flag("--weight-decay", Some("0"), "λ, added to the gradient (L2)"), STEP],
        note: "one torch.optim.Adam step; exp_avg and exp_avg_sq are PyTorch's names for m and v; \
               without --state they start at zero",
        run: optim::run_adam,
    },
    Entry {
        name: "adamw",
        kind: Kind::Optimizer,
        formula: "θ ← θ(1 − lr·λ);  m = β₁m + (1−β₁)g;  v = β₂v + (1−β₂)g²;  θ −= lr·m̂/(√v̂ + eps)",
        arrays: ADAM,
        flags: &[
            LR,
            BETA1,
            BETA2,
            EPS_ADAM,
            flag("--weight-decay", Some("0.01"), "λ, decoupled (PyTorch's AdamW default)"),
            STEP,
        ],
        note: "one torch.optim.AdamW step; names as for adam",
        run: optim::run_adamw,
    },
];
