//! The `portcullis` command: `run` the gateway or `check` a config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A self-hosted edge API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway in the foreground (logs to stdout).
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the config and exit 0 (valid) or 1 (invalid), like `nginx -t`.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => match portcullis::runtime::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => match portcullis::gateway::load(&config) {
            Ok(_) => {
                println!("configuration ok: {}", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}
