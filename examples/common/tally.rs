//! The gradient-check tally the chapter examples share (included with `#[path]`; not an
//! example itself): counts the checks that should pass, the broken ones that must fail, and
//! any other fact that must hold, and prints each report line as `ok`, `FAIL`, `caught` or
//! `MISSED` (tests/examples.rs reads those lines).

// Each example uses the methods it needs.
#![allow(dead_code)]

use tinymoe::engine::gradcheck::Report;

/// The bar every correct backward must clear, in f64.
pub const TOL: f64 = 1e-6;
/// A deliberately broken gradient must be off by at least this much to count as caught.
pub const CAUGHT: f64 = 1e-2;

#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub worst: f64,
    pub problems: Vec<String>,
}

impl Tally {
    /// A check that must pass: prints `ok` or `FAIL` and the report, named `prefix.name`.
    pub fn expect_pass(&mut self, prefix: &str, mut r: Report) {
        r.name = format!("{prefix}.{}", r.name);
        if r.worst_rel_err <= TOL {
            self.passed += 1;
            self.worst = self.worst.max(r.worst_rel_err);
            println!("ok     {r}");
        } else {
            println!("FAIL   {r}");
            self.problems.push(format!("{r}"));
        }
    }

    pub fn expect_pass_all(&mut self, prefix: &str, reports: Vec<Report>) {
        for r in reports {
            self.expect_pass(prefix, r);
        }
    }

    /// A deliberately broken gradient: the report must show a large error.
    pub fn expect_caught(&mut self, prefix: &str, mut r: Report) {
        r.name = format!("{prefix}.{}", r.name);
        if r.worst_rel_err > CAUGHT {
            println!("caught {r}");
        } else {
            println!("MISSED {r}");
            self.problems.push(format!("not caught: {r}"));
        }
    }

    /// Any other fact the example promises.
    pub fn require(&mut self, what: &str, holds: bool) {
        if !holds {
            self.problems.push(what.to_string());
        }
    }

    /// Ends the example: on success prints how many checks passed and the worst error, then
    /// `; {suffix}`; otherwise lists every problem and exits 1.
    pub fn finish(self, suffix: &str) {
        if self.problems.is_empty() {
            println!(
                "all {} gradient checks passed (worst rel err {:.2e} ≤ {TOL:.0e}); {suffix}",
                self.passed, self.worst
            );
        } else {
            eprintln!("FAIL: {} problem(s):", self.problems.len());
            for p in &self.problems {
                eprintln!("  {p}");
            }
            std::process::exit(1);
        }
    }
}
