//! `rsttrace doctor`: whether rsttrace can run here, and the TCP settings and
//! counters behind resets in this network namespace.

use std::process::ExitCode;

use crate::cli::DoctorOptions;

pub fn main(_options: &DoctorOptions) -> ExitCode {
    eprintln!("rsttrace: doctor is not implemented yet");
    ExitCode::from(1)
}
