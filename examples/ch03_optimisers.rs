//! Chapter 03 — optimisers, clipping, schedules and parameter groups
//! (notebooks-md/03-optimisers-clipping-schedules-groups.md).
//!
//! Shows, in order:
//! 1. One step of SGD, SGD with momentum and Adam through `Optimizer`, against the formula
//!    worked by hand.
//! 2. Adam's bias correction: its first step is lr·sign(g) whatever the gradient's scale.
//! 3. SGD vs momentum vs Adam on an ill-conditioned quadratic bowl.
//! 4. Coupled (Adam + L2) vs decoupled (AdamW) weight decay.
//! 5. Global-norm clipping: the length is capped, the direction kept.
//! 6. The warm-up + cosine learning-rate schedule, step by step.
//! 7. Parameter groups: freeze, per-group learning rate, the L2-SP anchor (and a finite-
//!    difference check of its gradient 2λ(θ − θ₀)).
//! 8. The training loop (`tinymoe::train::fit`) on the spirals: SGD, momentum, Adam, AdamW.
//!
//! Exits 1 if a hand-computed step or the L2-SP gradient check disagrees.
//! Run: `cargo run --release --example ch03_optimisers`

use ndarray::{array, Array1, Array2};
use tinymoe::data::synthetic::{spirals, Dataset};
use tinymoe::engine::gradcheck::{compare, numeric_grad};
use tinymoe::engine::init;
use tinymoe::engine::layers::linear;
use tinymoe::engine::optim::{adam, clip_global_norm, global_norm, Kind, Optimizer, Rule, Schedule};
use tinymoe::engine::params::{Named, NamedMut, Tensors};
use tinymoe::models::classifier::{self, Classifier};
use tinymoe::train::{self, Config};

/// A model with one tensor θ: the smallest thing an `Optimizer` can drive. Any struct
/// plugs in the same way, by naming its tensors.
#[derive(Clone)]
struct Point {
    theta: Array1<f64>,
}

impl Tensors<f64> for Point {
    fn tensors(&self) -> Vec<Named<'_, f64>> {
        vec![("theta".into(), self.theta.view().into_dyn())]
    }
    fn tensors_mut(&mut self) -> Vec<NamedMut<'_, f64>> {
        vec![("theta".into(), self.theta.view_mut().into_dyn())]
    }
}

fn main() {
    let mut problems = Vec::new();
    one_step_by_hand(&mut problems);
    adam_bias_correction();
    quadratic_bowl();
    weight_decay();
    clipping();
    schedule();
    parameter_groups(&mut problems);
    training_loop();
    if problems.is_empty() {
        println!("\nevery hand-computed step and the L2-SP gradient check agree");
    } else {
        for p in &problems {
            eprintln!("FAIL: {p}");
        }
        std::process::exit(1);
    }
}

/// Compares two small vectors, printing both; records a problem if they differ.
fn agree(what: &str, got: &Array1<f64>, by_hand: &Array1<f64>, problems: &mut Vec<String>) {
    let worst = (got - by_hand).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let ok = worst <= 1e-12;
    println!("{what:<34} {got:.6}   by hand {by_hand:.6}   {}", if ok { "ok" } else { "DIFFERENT" });
    if !ok {
        problems.push(format!("{what}: optimizer gave {got}, the formula gives {by_hand}"));
    }
}

fn one_step_by_hand(problems: &mut Vec<String>) {
    println!("== 1. One step of each optimiser, θ = [1, −2], g = [0.5, 4], lr = 0.1");
    let theta0 = array![1.0, -2.0];
    let g = Point { theta: array![0.5, 4.0] };
    let lr = 0.1;

    // SGD: θ ← θ − lr·g
    let mut p = Point { theta: theta0.clone() };
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.0 }, &[], &p);
    opt.step(&mut p, &g, lr);
    agree("SGD", &p.theta, &(&theta0 - &(lr * &g.theta)), problems);

    // Momentum μ = 0.9, two steps with the same g: v₁ = g, v₂ = μ·g + g = 1.9·g.
    let mut p = Point { theta: theta0.clone() };
    let mut opt = Optimizer::new(Kind::Sgd { momentum: 0.9 }, &[], &p);
    opt.step(&mut p, &g, lr);
    opt.step(&mut p, &g, lr);
    agree("momentum, after 2 steps", &p.theta, &(&theta0 - &((lr * (1.0 + 1.9)) * &g.theta)), problems);

    // Adam, step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g² ⇒ θ ← θ − lr·g/(|g| + ε).
    let mut p = Point { theta: theta0.clone() };
    let mut opt = Optimizer::new(Kind::adam(), &[], &p);
    opt.step(&mut p, &g, lr);
    let by_hand = &theta0 - &(lr * g.theta.mapv(|g| g / (g.abs() + 1e-8)));
    agree("Adam, step 1", &p.theta, &by_hand, problems);
}

fn adam_bias_correction() {
    println!("\n== 2. Adam's first step, for gradients of very different sizes (lr = 0.01)");
    let g = [1e-3, 1.0, 1e3];
    let mut theta = [0.0; 3];
    let (mut m, mut v) = ([0.0; 3], [0.0; 3]);
    let h = adam::Hyper { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false, t: 1 };
    adam::update(&mut theta, &g, &mut m, &mut v, h);
    println!("g                              {g:?}");
    println!("Δθ with bias correction        [{:.6}, {:.6}, {:.6}]   (= −lr·sign g)", theta[0], theta[1], theta[2]);
    // Without the correction: m = (1 − β₁)g, v = (1 − β₂)g², so m/√v = 0.1/√0.001 · sign g.
    let uncorrected: Vec<String> =
        g.iter().map(|&g: &f64| format!("{:.6}", -0.01 * (0.1 * g) / ((0.001 * g * g).sqrt() + 1e-8))).collect();
    println!("Δθ without bias correction     [{}]   (√10 ≈ 3.16× too big)", uncorrected.join(", "));
}

/// f(θ) = ½(θ₀² + 100·θ₁²): condition number 100, minimum at 0.
fn bowl_loss_and_grad(p: &Point) -> (f64, Point) {
    let c = array![1.0, 100.0];
    let loss = 0.5 * (&c * &p.theta * &p.theta).sum();
    (loss, Point { theta: &c * &p.theta })
}

fn quadratic_bowl() {
    println!("\n== 3. f(θ) = ½(θ₀² + 100·θ₁²) from θ = [1, 1]: loss after k steps");
    let runs: [(&str, Kind, f64); 4] = [
        ("SGD lr 0.019", Kind::Sgd { momentum: 0.0 }, 0.019),
        ("SGD lr 0.021 (too big)", Kind::Sgd { momentum: 0.0 }, 0.021),
        ("momentum 0.9, lr 0.019", Kind::Sgd { momentum: 0.9 }, 0.019),
        ("Adam lr 0.1", Kind::adam(), 0.1),
    ];
    let checkpoints = [10, 50, 100, 200];
    println!("{:<24} {:>10} {:>10} {:>10} {:>10}", "optimiser", "k = 10", "k = 50", "k = 100", "k = 200");
    for (name, kind, lr) in runs {
        let mut p = Point { theta: array![1.0, 1.0] };
        let mut opt = Optimizer::new(kind, &[], &p);
        let mut row = Vec::new();
        for step in 1..=200 {
            let (_, g) = bowl_loss_and_grad(&p);
            opt.step(&mut p, &g, lr);
            if checkpoints.contains(&step) {
                row.push(format!("{:>10.2e}", bowl_loss_and_grad(&p).0));
            }
        }
        println!("{name:<24} {}", row.join(" "));
    }
}

fn weight_decay() {
    println!("\n== 4. Weight decay λ = 0.1, lr = 0.01, 100 steps from θ = 1; the loss gradient alternates ±s");
    println!("{:>8}   {:>10}   {:>20}   {:>18}", "s", "no decay", "Adam + L2 (coupled)", "AdamW (decoupled)");
    for s in [0.01, 1.0, 100.0] {
        // (weight decay, decoupled?) for the three columns.
        let finals: Vec<f64> = [(0.0, false), (0.1, false), (0.1, true)]
            .into_iter()
            .map(|(weight_decay, decoupled)| {
                let (mut theta, mut m, mut v) = ([1.0f64], [0.0], [0.0]);
                for t in 1..=100u64 {
                    let g = [if t % 2 == 0 { s } else { -s }];
                    let h = adam::Hyper { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, decoupled, t };
                    adam::update(&mut theta, &g, &mut m, &mut v, h);
                }
                theta[0]
            })
            .collect();
        println!("{s:>8}   {:>10.4}   {:>20.4}   {:>18.4}", finals[0], finals[1], finals[2]);
    }
    println!(
        "AdamW multiplies θ by (1 − lr·λ) each step, (1 − 0.001)^100 = {:.4}, whatever s;",
        (1.0f64 - 0.001).powi(100)
    );
    println!("Adam + L2 adds λθ to g, and that is divided by √v̂ ≈ s along with the rest.");
}

fn clipping() {
    println!("\n== 5. Global-norm clipping to 1.0");
    let mut g = linear::Grads { dw: array![[3.0, 4.0]], db: array![12.0] };
    println!("before: dW = {}, db = {}, ‖g‖ = √(9 + 16 + 144) = {}", g.dw, g.db, global_norm(&g));
    let norm = clip_global_norm(&mut g, 1.0);
    println!(
        "after:  dW = {:.4}, db = {:.4}, ‖g‖ = {:.4} (was {norm}; every entry scaled by 1/13)",
        g.dw,
        g.db,
        global_norm(&g)
    );
}

fn schedule() {
    println!("\n== 6. Warm-up + cosine: lr = 1e-3, warm-up 4 steps, total 20, min_lr 1e-5");
    let s = Schedule::WarmupCosine { warmup: 4, total: 20, min_lr: 1e-5 };
    for step in 0..=21 {
        let lr = s.lr_at(step, 1e-3);
        let bar = "#".repeat((lr / 1e-3 * 40.0).round() as usize);
        let line = format!("step {step:>2}  lr {lr:.3e}  {bar}");
        println!("{}", line.trim_end());
    }
}

fn parameter_groups(problems: &mut Vec<String>) {
    println!("\n== 7. Parameter groups on a 2 → 32 → 32 → 3 MLP");
    let rules = [Rule::new("layers.0").frozen(), Rule::new("layers.1").lr_scale(0.1), Rule::new("layers.2").l2sp(0.05)];
    let mut rng = init::rng(3);
    let model: Classifier<f64> = classifier::init_mlp(2, &[32, 32], 3, 0.0, &mut rng);
    let opt = Optimizer::new(Kind::adam(), &rules, &model);
    for (name, s) in opt.settings() {
        println!("{name:<12} frozen {:<5}  lr × {:<4}  L2-SP λ = {}", s.frozen, s.lr_scale, s.l2sp);
    }

    // The L2-SP gradient: move layers.2 away from θ₀, then compare 2λ(θ − θ₀) with central
    // differences of the penalty λ‖θ − θ₀‖² that the optimiser reports.
    let anchor = Optimizer::new(Kind::adam(), &[Rule::new("").l2sp(0.05)], &linear_of(&model, 2));
    let theta0 = linear_of(&model, 2).w;
    let moved: Array2<f64> = &theta0 + &init::normal::<f64, _, _>(theta0.raw_dim(), 0.1, &mut rng);
    let b = linear_of(&model, 2).b;
    let penalty = |w: &Array2<f64>| anchor.l2sp_penalty(&linear::Params { w: w.clone(), b: b.clone() });
    let numeric = numeric_grad(penalty, &moved, 1e-5);
    let analytic = (&moved - &theta0) * (2.0 * 0.05);
    let report = compare("l2sp.dw", &analytic, &numeric);
    let tag = if report.worst_rel_err <= 1e-6 { "ok" } else { "FAIL" };
    println!("{tag:<4} {report}");
    if tag == "FAIL" {
        problems.push(format!("the L2-SP gradient is not 2λ(θ − θ₀): {report}"));
    }

    println!("\nPretrain on spirals with 1.25 turns, then fine-tune 15 epochs on spirals with 1.75 turns,");
    println!("with each rule on the hidden layers (layers.0 and layers.1); the output layer always trains:");
    let (old_train, old_val) = spiral_split(1.25, 42);
    let (new_train, new_val) = spiral_split(1.75, 43);
    let mut pretrained: Classifier<f32> = classifier::init_mlp(2, &[32, 32], 3, 0.0, &mut init::rng(3));
    train::fit(&mut pretrained, &old_train, &old_val, &config(Kind::adam(), 1e-2, 20), &mut |_| {})
        .expect("a valid config");
    let (_, acc) = classifier::evaluate(&pretrained, new_val.x.view(), &new_val.y, 512);
    let (_, old_acc) = classifier::evaluate(&pretrained, old_val.x.view(), &old_val.y, 512);
    println!(
        "pretrained: old-task val acc {:.1}%, new-task val acc {:.1}% before fine-tuning",
        100.0 * old_acc,
        100.0 * acc
    );
    let both = |rule: fn(Rule) -> Rule| vec![rule(Rule::new("layers.0")), rule(Rule::new("layers.1"))];
    let hidden_rules: [(&str, Vec<Rule>); 5] = [
        ("no rule", vec![]),
        ("lr × 0.1", both(|r| r.lr_scale(0.1))),
        ("L2-SP λ = 0.1", both(|r| r.l2sp(0.1))),
        ("L2-SP λ = 1", both(|r| r.l2sp(1.0))),
        ("frozen", both(|r| r.frozen())),
    ];
    println!(
        "{:<16} {:>14} {:>14} {:>13} {:>13}",
        "hidden layers", "‖Δ layers.0‖", "‖Δ layers.1‖", "new val acc", "old val acc"
    );
    for (name, rules) in hidden_rules {
        let mut model = pretrained.clone();
        let cfg = Config { rules, ..config(Kind::adam(), 1e-2, 15) };
        let history = train::fit(&mut model, &new_train, &new_val, &cfg, &mut |_| {}).expect("a valid config");
        let acc = history.epochs.last().expect("15 epochs").val_acc;
        let (_, old_acc) = classifier::evaluate(&model, old_val.x.view(), &old_val.y, 512);
        println!(
            "{name:<16} {:>14.4} {:>14.4} {:>12.1}% {:>12.1}%",
            distance(&model, &pretrained, "layers.0"),
            distance(&model, &pretrained, "layers.1"),
            100.0 * acc,
            100.0 * old_acc
        );
    }
}

fn training_loop() {
    println!("\n== 8. The training loop: spirals (3 arms, 960 train / 240 validation), MLP 2 → 64 → 64 → 3");
    let (train_set, val) = spiral_split(1.25, 42);
    let runs: [(&str, Kind, f64); 5] = [
        ("SGD lr 0.1", Kind::Sgd { momentum: 0.0 }, 0.1),
        ("SGD lr 1.0", Kind::Sgd { momentum: 0.0 }, 1.0),
        ("momentum 0.9 lr 0.1", Kind::Sgd { momentum: 0.9 }, 0.1),
        ("Adam lr 1e-2", Kind::adam(), 1e-2),
        ("AdamW 1e-2, λ 0.1", Kind::adamw(0.1), 1e-2),
    ];
    let epochs = 20;
    println!("validation loss (accuracy); batch 32, warm-up 30 steps then cosine to 0, clip ‖g‖ ≤ 5, seed 42");
    print!("{:<6}", "epoch");
    for (name, _, _) in &runs {
        print!("{name:>21}");
    }
    println!();
    let mut columns = Vec::new();
    for (_, kind, lr) in runs {
        let mut model: Classifier<f32> = classifier::init_mlp(2, &[64, 64], 3, 0.0, &mut init::rng(7));
        let history =
            train::fit(&mut model, &train_set, &val, &config(kind, lr, epochs), &mut |_| {}).expect("a valid config");
        columns.push(history.epochs);
    }
    for e in [1, 2, 5, 10, 15, 20] {
        print!("{e:<6}");
        for col in &columns {
            print!("{:>21}", format!("{:.4} ({:.1}%)", col[e - 1].val_loss, 100.0 * col[e - 1].val_acc));
        }
        println!();
    }
}

/// Spirals (3 arms, 400 points each) split 80/20; the generator already shuffled them.
fn spiral_split(turns: f64, seed: u64) -> (Dataset, Dataset) {
    let all = spirals(400, 3, turns, 0.2, seed);
    let n_train = all.len() * 4 / 5;
    let idx: Vec<usize> = (0..all.len()).collect();
    (all.select(&idx[..n_train]), all.select(&idx[n_train..]))
}

/// Batch 32, warm-up 30 steps then cosine to 0, clipping at 5, seed 42.
fn config(optimizer: Kind, lr: f64, epochs: usize) -> Config {
    let steps = epochs * 960usize.div_ceil(32);
    Config {
        epochs,
        batch_size: 32,
        lr,
        schedule: Schedule::WarmupCosine { warmup: 30, total: steps, min_lr: 0.0 },
        optimizer,
        clip: Some(5.0),
        seed: 42,
        rules: vec![],
    }
}

/// A copy of layer `i` of an MLP classifier.
fn linear_of(model: &Classifier<f64>, i: usize) -> linear::Params<f64> {
    match model {
        Classifier::Mlp(p) => p.layers[i].clone(),
        Classifier::Moe(_) => unreachable!("init_mlp builds an MLP"),
    }
}

/// ‖θ − θ₀‖ over the tensors whose names start with `prefix.`.
fn distance(a: &Classifier<f32>, b: &Classifier<f32>, prefix: &str) -> f64 {
    let mut sq = 0.0f64;
    for ((name, x), (_, y)) in a.tensors().into_iter().zip(b.tensors()) {
        if name.starts_with(&format!("{prefix}.")) {
            sq += x.iter().zip(y.iter()).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum::<f64>();
        }
    }
    sq.sqrt()
}
