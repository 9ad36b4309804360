//! The facts a chapter states, checked as its example runs: each is printed with whether it
//! holds, and [`Facts::finish`] exits 1 if any did not. Shared by the chapter examples
//! through `#[path = "common/facts.rs"] mod facts;`.

/// Facts the chapter states; any that fails makes the example exit 1.
#[derive(Default)]
pub struct Facts {
    failed: Vec<String>,
}

impl Facts {
    /// Prints `what: true|false` and remembers a failure.
    pub fn check(&mut self, what: &str, holds: bool) {
        println!("{what}: {holds}");
        if !holds {
            self.failed.push(what.to_string());
        }
    }

    /// Exits 1 naming every fact that failed; otherwise prints the closing line, with the
    /// run time when given.
    pub fn finish(self, seconds: Option<f64>) {
        if !self.failed.is_empty() {
            eprintln!("FAIL: {}", self.failed.join("; "));
            std::process::exit(1);
        }
        match seconds {
            Some(s) => println!("\nevery fact above holds ({s:.1} s)."),
            None => println!("\nevery fact above holds."),
        }
    }
}
