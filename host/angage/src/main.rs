use std::process::ExitCode;

use clap::Parser;

// Every request allocates many short-lived strings (plugin calls, headers, usage events); the
// system allocator's consolidation of freed chunks showed in profiles of the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = angage::cli::Cli::parse();
    match angage::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
