use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    jarvis_kiosk::cli::main(jarvis_kiosk::cli::Cli::parse())
}
