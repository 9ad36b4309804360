//! The experiments `tinymoe experiment list` shows and `tinymoe experiment run NAME` runs.
//! Each is an [`Experiment`]: its arms, how one cell runs, and its own report sections. Adding
//! one is a file here and a line in [`all`].

pub mod demo;
pub mod e1;
pub mod e5;
pub mod e6;

use crate::error::{Error, Result};
use crate::run::experiment::Experiment;

/// Every registered experiment, in the order `experiment list` shows them.
pub fn all() -> Vec<&'static dyn Experiment> {
    vec![&demo::Spirals, &demo::MoeLm, &e1::E1, &e5::E5, &e6::E6]
}

/// The experiment called `name`; the error lists them.
pub fn find(name: &str) -> Result<&'static dyn Experiment> {
    all().into_iter().find(|e| e.name() == name).ok_or_else(|| Error::Unknown {
        what: "experiment".into(),
        name: name.into(),
        expected: all().iter().map(|e| e.name()).collect::<Vec<_>>().join(", "),
    })
}
