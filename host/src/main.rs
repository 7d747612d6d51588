use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = angage_host::cli::Cli::parse();
    match angage_host::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
