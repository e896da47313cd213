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
    /// Check a valid config against security controls; exit 1 on a high finding.
    Audit {
        #[arg(long, short)]
        config: PathBuf,
        /// Exit 1 on any finding.
        #[arg(long)]
        strict: bool,
    },
    /// Manage API keys in the store (works while the gateway runs).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key for a plan and print it (once: only its hash is stored).
    Create {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        plan: String,
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the stored keys (names, plans, states; never the keys).
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Revoke keys by name, or by hash prefix written `sha256:<at least 8 hex digits>`.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        selector: String,
    },
    /// Replace a key with a new one (printed once); the old one keeps working for `--grace`.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
        name: String,
        /// How long the old key keeps working, e.g. 24h, 30m.
        #[arg(long)]
        grace: String,
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
            Ok((_, _, gateway)) => {
                for line in &gateway.report {
                    println!("{line}");
                }
                println!("configuration ok: {}", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Audit { config, strict } => match portcullis::audit::audit_file(&config) {
            Ok((source, findings)) => {
                let (text, fail) = portcullis::audit::report(&source, &findings, strict);
                print!("{text}");
                if fail {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Keys { action } => match portcullis::keys::run(action.into()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

impl From<KeysAction> for portcullis::keys::Command {
    fn from(a: KeysAction) -> Self {
        use portcullis::keys::Command as C;
        match a {
            KeysAction::Create {
                config,
                plan,
                name,
                expires,
            } => C::Create {
                config,
                plan,
                name,
                expires,
            },
            KeysAction::List { config } => C::List { config },
            KeysAction::Revoke { config, selector } => C::Revoke { config, selector },
            KeysAction::Rotate {
                config,
                name,
                grace,
            } => C::Rotate {
                config,
                name,
                grace,
            },
        }
    }
}
