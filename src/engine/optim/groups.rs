//! Parameter groups: per-tensor control over how the optimiser treats a part of a model.
//!
//! A [`Rule`] matches parameter names by prefix (`"experts.0"` matches `"experts.0.layers.1.w"`
//! but not `"experts.01…"`); the first matching rule wins, unmatched tensors get the defaults.
//! A rule can
//! - **freeze** its tensors (no update at all; optimiser state is not even touched);
//! - scale their **learning rate** (`lr_scale` = 0.1 trains a pretrained expert 10× slower);
//! - **anchor** them to their starting weights θ₀ with the L2-SP penalty
//!   (Li, Grandvalet & Davoine 2018):
//!   ```text
//!     L_total = L + λ‖θ − θ₀‖²      ⇒      g ← g + 2λ(θ − θ₀)
//!   ```
//!   which lets a pretrained expert adapt, but pulls it back toward what it knew.
//!   The pull is added to the gradient *before* the optimiser's update, so under Adam it is
//!   rescaled by 1/√v̂ like the loss gradient ("coupled", as Adam's L2 weight decay is).
//!
//! These are the three ways to "limit how far a pretrained expert may move" (SPEC E4).

use serde::{Deserialize, Serialize};

/// How the optimiser treats the tensors whose names start with `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub prefix: String,
    pub frozen: bool,
    pub lr_scale: f64,
    /// λ of the L2-SP pull toward the starting weights (0 = none).
    pub l2sp: f64,
}

impl Rule {
    /// A rule that changes nothing yet: build it up with the methods below.
    pub fn new(prefix: &str) -> Rule {
        Rule { prefix: prefix.to_string(), frozen: false, lr_scale: 1.0, l2sp: 0.0 }
    }
    pub fn frozen(mut self) -> Rule {
        self.frozen = true;
        self
    }
    pub fn lr_scale(mut self, scale: f64) -> Rule {
        self.lr_scale = scale;
        self
    }
    pub fn l2sp(mut self, lambda: f64) -> Rule {
        self.l2sp = lambda;
        self
    }
    /// Does this rule cover parameter `name`? (Whole dotted components only.)
    pub fn matches(&self, name: &str) -> bool {
        self.prefix.is_empty()
            || name == self.prefix
            || (name.starts_with(&self.prefix) && name[self.prefix.len()..].starts_with('.'))
    }
}

/// The settings for one tensor, after the rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub frozen: bool,
    pub lr_scale: f64,
    pub l2sp: f64,
}

/// First matching rule wins; no match → train normally.
pub fn setting_for(rules: &[Rule], name: &str) -> Setting {
    match rules.iter().find(|r| r.matches(name)) {
        Some(r) => Setting { frozen: r.frozen, lr_scale: r.lr_scale, l2sp: r.l2sp },
        None => Setting { frozen: false, lr_scale: 1.0, l2sp: 0.0 },
    }
}
