//! Ctrl-C while a model trains: the first one asks the run to finish its current step, save
//! where it stands and stop cleanly (exit 0, with the command that continues it); a second
//! one, or one while nothing is training (loading data, drawing pictures), quits at once with
//! the usual status 130. Either way the last checkpoint stays whole: saves are atomic.
//!
//! One handler per process, installed on first use: `tinymoe demo` trains several models in a
//! row, and the `ctrlc` crate takes only one handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Raised by the first Ctrl-C of a training run; the training loops poll it after each step.
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether a model is training now.
static TRAINING: AtomicBool = AtomicBool::new(false);

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if !TRAINING.load(Ordering::SeqCst) || STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
}

/// A training run in progress: while it lives, the first Ctrl-C raises [`Training::stop`]
/// instead of quitting.
pub struct Training(());

impl Training {
    pub fn start() -> Training {
        install();
        STOP.store(false, Ordering::SeqCst);
        TRAINING.store(true, Ordering::SeqCst);
        Training(())
    }

    /// The flag to hand to a resumable training loop.
    pub fn stop(&self) -> &'static AtomicBool {
        &STOP
    }
}

impl Drop for Training {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}
